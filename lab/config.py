"""Typed, validated run configurations and the named presets."""
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields

from .errors import ConfigError

# Number of classes of every dataset `lab.data.load_dataset` knows.
# Algorithm 1's threshold rules (lab.thresholds): the paper's fixed one and three class-adaptive ones.
THRESHOLD_MODES = ("fixed", "quantile", "freematch", "flexmatch")
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "digits": 10, "fashion": 10}
# Side of the square RGB images of every dataset. The embedded digits (the smoke profile's data) are 16x16: a
# GAN step there costs a third of one at 32x32 (0.37 vs 1.01 s on one AVX2 core), which is what lets `make
# demo` train its three GANs in minutes on 2 CPU cores; every other dataset is 32x32, as in both papers.
DATASET_RESOLUTION = {"cifar10": 32, "cifar100": 32, "svhn": 32, "digits": 16, "fashion": 32}


def image_bytes(dataset: str) -> int:
    """Raw uint8 bytes of one image of `dataset` (3 * side**2: 3,072 at 32x32)."""
    return 3 * DATASET_RESOLUTION[dataset] ** 2


def opt(default, *, lo=None, hi=None, lo_open=False, hi_open=False, choices=None, identity=True, legacy=None):
    """A config field with its valid range or choices.

    Args:
        lo, hi: inclusive bounds (exclusive with `lo_open` / `hi_open`); None = unbounded.
        choices: the allowed values, for categorical fields.
        identity: False for fields that do not change what a run computes
            (step budget, device, logging), so they are left out of the run's hash.
        legacy: for a field added after runs existed, the value that reproduces what those runs computed;
            a config holding it hashes as before the field existed, so their run directories stay valid.
    """
    meta = dict(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices, identity=identity, legacy=legacy)
    return field(default=default, metadata=meta)


def _type_ok(value, tp) -> bool:
    if tp is typing.Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is tuple:  # tuple[X, ...]
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, tuple) and all(_type_ok(v, args[0]) for v in value) if args else isinstance(value, tuple)
    if tp is float:  # an int is a fine float, a bool is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


class Config:
    """Mixin for config dataclasses: validation, dict round-trip, identity for hashing."""

    def __post_init__(self):
        for f in fields(self):
            self._check(f, getattr(self, f.name))

    def _check(self, f, v):
        name = f"{type(self).__name__}.{f.name}"
        if not _type_ok(v, f.type):
            raise ConfigError(f"{name} must be of type {getattr(f.type, '__name__', f.type)}, got {v!r}.")
        m = f.metadata
        if m.get("choices") is not None and v not in m["choices"]:
            raise ConfigError(f"{name} must be one of {list(m['choices'])}, got {v!r}.")
        if f.name == "device" and not re.fullmatch(r"auto|cpu|(cuda|xpu)(:\d+)?|mps", v):
            raise ConfigError(f"{name} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {v!r}.")
        if v is None or isinstance(v, (str, bool)):
            return
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v!r}.")
        lo, hi = m.get("lo"), m.get("hi")
        too_low = lo is not None and (v <= lo if m["lo_open"] else v < lo)
        too_high = hi is not None and (v >= hi if m["hi_open"] else v > hi)
        if too_low or too_high:
            lb = "(" if m["lo_open"] else "["
            rb = ")" if m["hi_open"] else "]"
            rng = f"{lb}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{rb}"
            raise ConfigError(f"{name} must lie in {rng}, got {v!r}.")

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a dict; unknown keys are an error (a typo must not be silently ignored)."""
        cls._reject_unknown(d)
        tuples = {f.name for f in fields(cls) if typing.get_origin(f.type) is tuple or f.type is tuple}
        return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **changes):
        """A copy with some fields changed, validated like a new config."""
        self._reject_unknown(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def _reject_unknown(cls, d):
        names = [f.name for f in fields(cls)]
        for key in d:
            if key not in names:
                raise ConfigError(f"Unknown key {key!r} for {cls.__name__}; valid keys are: {', '.join(names)}.")

    def identity(self) -> dict:
        """The fields that define what a run computes (what its hash is taken over); a field at its `legacy`
        value is left out, as it was before the field existed. The image side joins them where it is not 32
        (the digits since they became 16x16), so a run of the 32x32 digits never passes for one at 16x16."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("identity", True)
               and not (f.metadata.get("legacy") is not None and getattr(self, f.name) == f.metadata["legacy"])}
        if self.resolution != 32:
            out["resolution"] = self.resolution
        return out

    @property
    def num_classes(self) -> int:
        return DATASET_CLASSES[self.dataset]

    @property
    def resolution(self) -> int:
        """Side of the dataset's square images (`DATASET_RESOLUTION`)."""
        return DATASET_RESOLUTION[self.dataset]

    @property
    def kind(self) -> str:
        """Short name of the run family, used as the run store's sub-folder."""
        return type(self).KIND


@dataclass
class GANConfig(Config):
    """Class-conditional BigGAN for the dataset's images, 32x32 (defaults: BigGAN-PyTorch's CIFAR script) or 16x16
    (the embedded digits: one up-block fewer in G, one downsampling fewer in D)."""

    KIND: typing.ClassVar[str] = "gan"

    # --- Data ---
    dataset: str = opt("cifar10", choices=tuple(DATASET_CLASSES))  # training set (its train split)
    data_root: str = opt("data", identity=False)  # folder holding the dataset files
    hflip: bool = opt(False)  # random horizontal flips of real images (the CIFAR script uses none)
    # --- Architecture ---
    block: str = opt("add", choices=("add", "concat"))  # residual merge: F(x)+s(x) or Conv1x1([F(x), s(x)])
    # concat: the 1x1 conv starts at [I | I], i.e. (F(x)+s(x))/sqrt(2) after SN ("identity"), or at `init`
    concat_init: str = opt("identity", choices=("identity", "init"))
    g_ch: int = opt(64, lo=1)  # G width unit; its 3 up-blocks carry 4*g_ch channels
    d_ch: int = opt(64, lo=1)  # D width unit; its 4 blocks carry 4*d_ch channels
    z_dim: int = opt(128, lo=1)  # latent size
    shared_dim: int = opt(0, lo=0)  # 0: a class embedding per cond. BN (CIFAR); >0: shared embedding + hierarchical z
    attn: bool = opt(False)  # self-attention at 16x16 in G and D (off for CIFAR)
    init: str = opt("N02", choices=("N02", "ortho"))  # weight init: N(0, 0.02) or orthogonal
    # reference: BigGAN-PyTorch's start: biases keep PyTorch's default (uniform in ±1/sqrt(fan_in)), the spectral
    # norm's vectors start random (no warm-up). lab: biases zero, the vectors after 15 power iterations (this lab's
    # start until 2026-11; the smoke and study presets keep it: their step counts were tuned with it).
    init_start: str = opt("reference", choices=("reference", "lab"), legacy="lab")
    bn_eps: float = opt(1e-5, lo=0, lo_open=True)  # BatchNorm epsilon
    sn_eps: float = opt(1e-8, lo=0, lo_open=True)  # epsilon of the spectral-norm power iteration
    # --- Optimisation ---
    batch_size: int = opt(50, lo=1)  # real (and fake) images per D step, fakes per G step
    d_steps: int = opt(4, lo=1)  # D updates per G update
    g_lr: float = opt(2e-4, lo=0, lo_open=True)  # Adam learning rate of G
    d_lr: float = opt(2e-4, lo=0, lo_open=True)  # Adam learning rate of D
    beta1: float = opt(0.0, lo=0, hi=1, hi_open=True)  # Adam beta1 (G and D)
    beta2: float = opt(0.999, lo=0, hi=1, hi_open=True)  # Adam beta2 (G and D)
    adam_eps: float = opt(1e-8, lo=0, lo_open=True)  # Adam epsilon
    ema_decay: float = opt(0.9999, lo=0, hi=1)  # decay of the EMA copy of G
    ema_start: int = opt(1000, lo=0)  # G step from which the EMA averages; before it the EMA copies G
    seed: int = opt(0, lo=0)  # seeds weights, noise and data order
    # --- Budget and runtime (not part of the run's identity) ---
    steps: int = opt(125_000, lo=1, identity=False)  # total G steps (500 epochs of CIFAR at 200 images per G step)
    device: str = opt("auto", identity=False)  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    precision: str = opt("auto", choices=("auto", "fp32", "bf16"), identity=False)  # auto: bf16 autocast on CUDA
    channels_last: str = opt("auto", choices=("auto", "on", "off"), identity=False)  # auto: on for CUDA
    compile: bool = opt(False, identity=False)  # torch.compile G and D
    log_every: int = opt(50, lo=1, identity=False)  # G steps between stats.jsonl lines (the only host syncs)
    ckpt_every: int = opt(1000, lo=1, identity=False)  # G steps between checkpoints
    grid_every: int = opt(1000, lo=1, identity=False)  # G steps between sample grids of the fixed noise

    def __post_init__(self):
        super().__post_init__()
        chunks = 1 + self.g_blocks
        if self.shared_dim > 0 and self.z_dim % chunks:
            raise ConfigError(f"GANConfig.z_dim must be divisible by {chunks} (input + {self.g_blocks} blocks at "
                              f"{self.resolution}x{self.resolution}) when shared_dim > 0, got {self.z_dim}.")
        if self.attn and min(self.g_ch, self.d_ch) < 2:
            raise ConfigError("GANConfig.attn needs g_ch and d_ch >= 2 (attention uses C/8 channels).")
        if self.attn and self.resolution < 32:
            raise ConfigError(f"GANConfig.attn sits at 16x16 inside G and D, which needs 32x32 images; {self.dataset} "
                              f"is {self.resolution}x{self.resolution}: set attn=False.")

    @property
    def g_blocks(self) -> int:
        """G's up-blocks from its 4x4 input: 3 for 32x32, 2 for 16x16."""
        return (self.resolution // 4).bit_length() - 1


@dataclass
class ClassifierConfig(Config):
    """ResNet-18 on real images or on a stream of (filtered) GAN samples, tested on the real test split."""

    KIND: typing.ClassVar[str] = "classifier"

    # --- Task ---
    dataset: str = opt("cifar10", choices=tuple(DATASET_CLASSES))  # classes and the real test split
    data_root: str = opt("data", identity=False)  # folder holding the dataset files
    width: int = opt(64, lo=1)  # ResNet-18 widths width..8*width (64: the paper's 11 M parameters)
    # --- Data source (identity only: the caller passes the matching dataset or sampler) ---
    source: str = opt("real", choices=("real", "gan"))  # real training images, or GAN samples (Algorithm 1)
    subset: int = opt(0, lo=0)  # real: a seeded class-balanced subset of this size; 0 = the whole train split
    subset_seed: int = opt(0, lo=0)  # real: seed of the subset
    # real: train on a synthetic set written by `python -m lab synthesize` (its folder) instead of the real
    # split; the test split stays the dataset's real one
    train_folder: str = opt("", legacy="")
    augment: bool = opt(True)  # real: random crop (+ flip for CIFAR) per batch
    gans: tuple[str, ...] = opt(())  # gan: names of the GAN runs mixed uniformly
    threshold: float | None = opt(None, lo=0, hi=1)  # gan: Algorithm 1 threshold; None = unfiltered
    # gan: "fixed" (the paper's rule) or a class-adaptive rule of lab.thresholds with `threshold` as its base
    threshold_mode: str = opt("fixed", choices=THRESHOLD_MODES, legacy="fixed")
    filter: str = opt("")  # gan: name of the classifier run that filters (trained on the GAN's data)
    # gan: False = Algorithm 1 as written (labels y ~ U(0, C); classes in proportion to their acceptance rates);
    # True = every batch class-balanced (a class the filter rarely accepts then costs many draws per batch)
    balanced: bool = opt(False)
    # --- Optimisation (the same for every source) ---
    # Images per step. 64: the paper's 156,250 steps are then its 200 epochs of 50k images, and its
    # Table I lists the same error for 50k images under "same #steps" and "same #epochs".
    batch_size: int = opt(64, lo=1)
    steps: int = opt(156_250, lo=1)  # optimisation steps (the paper's 156,250); sets the lr schedule
    lr: float = opt(0.1, lo=0, lo_open=True)  # peak SGD learning rate
    schedule: str = opt("cosine", choices=("cosine", "step", "constant"))  # lr decay over `steps`
    momentum: float = opt(0.9, lo=0, hi=1, hi_open=True)  # SGD momentum (Nesterov)
    nesterov: bool = opt(True)  # Nesterov momentum
    weight_decay: float = opt(5e-4, lo=0)  # L2 weight decay
    seed: int = opt(0, lo=0)  # seeds weights, batch order and augmentation
    # --- Runtime (not part of the run's identity) ---
    device: str = opt("auto", identity=False)  # "auto" (CUDA if present), "cpu", "cuda", ...
    precision: str = opt("auto", choices=("auto", "fp32", "bf16"), identity=False)  # auto: bf16 autocast on CUDA
    channels_last: str = opt("auto", choices=("auto", "on", "off"), identity=False)  # auto: on for CUDA
    compile: bool = opt(False, identity=False)  # torch.compile the model
    log_every: int = opt(100, lo=1, identity=False)  # steps between stats.jsonl lines
    eval_every: int = opt(5000, lo=1, identity=False)  # steps between test-set evaluations
    ckpt_every: int = opt(5000, lo=1, identity=False)  # steps between checkpoints

    def __post_init__(self):
        super().__post_init__()
        if self.source == "gan" and not self.gans:
            raise ConfigError("ClassifierConfig.gans must name at least one GAN run when source='gan'.")
        if self.source == "real" and (self.gans or self.threshold is not None or self.filter or self.balanced
                                      or self.threshold_mode != "fixed"):
            raise ConfigError("ClassifierConfig.gans/threshold/threshold_mode/filter/balanced only apply to source='gan'.")
        if self.threshold is None and self.threshold_mode != "fixed":
            raise ConfigError(f"ClassifierConfig.threshold_mode {self.threshold_mode!r} needs a threshold (its base "
                              f"level); the unfiltered stream (threshold None) has no rule.")
        if self.source == "gan" and self.train_folder:
            raise ConfigError("ClassifierConfig.train_folder only applies to source='real' (a synthetic set on disk).")


@dataclass
class ECGANConfig(Config):
    """EC-GAN (Haque, AAAI 2021): a DCGAN and an external classifier trained together on a labelled subset.

    Defaults are the paper's (arXiv 2012.15864, "Implementation Details"); the fields under "Official
    notebook compatibility" reproduce `ayaanzhaque/EC-GAN:EC-GAN.ipynb` where it differs from the paper
    (preset `svhn-ecgan-official`; see shared/reference/ecgan.md).
    """

    KIND: typing.ClassVar[str] = "ecgan"

    # --- Task ---
    dataset: str = opt("svhn", choices=tuple(DATASET_CLASSES))  # labelled subset of its train split; its test split
    data_root: str = opt("data", identity=False)  # folder holding the dataset files
    # ecgan: G + D + external classifier C on real and pseudo-labelled fakes (eqs 3-5).
    # classifier: C alone on the labelled subset (Table 1's "Classifier" of EC-GAN and of Shared ResNet-Disc).
    # shared-dcgan / shared-resnet: one D with a real/fake and a class head (eq. 2) on a DCGAN / ResNet-18 body.
    # classifier-dcgan: that DCGAN body + class head alone on the labelled subset (Shared DC-Disc's "Classifier").
    # ecgan-biggan (beyond the paper): EC-GAN whose G is the class-conditional BigGAN of `biggan`, and whose
    # pseudo-labels are the conditioning classes of the fakes that Algorithm 1 (Pham et al.) accepts with C
    # as its classifier: C's argmax is the class and C's probability of it is > t.
    method: str = opt("ecgan", choices=(
        "ecgan", "classifier", "shared-dcgan", "shared-resnet", "classifier-dcgan", "ecgan-biggan"))
    # Labelled fraction of the train split: the subset is lab.data.subset(train, int(N * fraction),
    # seed=subset_seed, balanced=False), the same images for every method (10 % of SVHN = 7,325).
    fraction: float = opt(0.1, lo=0, hi=1, lo_open=True)
    subset_seed: int = opt(0, lo=0)  # seed of the labelled subset (the notebook draws an unseeded one)
    augment: bool = opt(False)  # random crop (pad 4) + rotation within ±10° of real batches (see below)
    # The paper lists crop + rotation, but its Table 1 numbers match the no-augmentation, weight-decay
    # curves ("GanReg", "ClassifierReg", Fig. 3/7), as does the notebook's EC-GAN cell: off by default.
    # --- EC-GAN ---
    lam: float = opt(0.1, lo=0)  # λ: weight of the pseudo-label loss (ecgan) or of the real/fake BCE (shared, eq. 2)
    threshold: float = opt(0.7, lo=0, hi=1)  # t: a fake counts iff its max softmax prob. is > t (ecgan)
    # "fixed" (the paper's t) or a class-adaptive rule of lab.thresholds for the pseudo-labels, t its base level
    threshold_mode: str = opt("fixed", choices=("fixed", "freematch", "flexmatch"), legacy="fixed")
    # --- Architecture ---
    classifier_width: int = opt(64, lo=1)  # ResNet-18 widths w..8w: 64 the paper's (11 M), 16 the notebook's (0.70 M)
    z_dim: int = opt(100, lo=1)  # DCGAN latent size
    ngf: int = opt(64, lo=1)  # DCGAN G width: 4*ngf, 2*ngf, ngf channels at 4, 8, 16 px (no ngf at 16x16)
    ndf: int = opt(64, lo=1)  # DCGAN D width: ndf, 2*ndf, 4*ndf channels at 16, 8, 4 px (no ndf at 16x16)
    # ecgan-biggan: the GAN preset whose BigGAN architecture, Adam settings (lr, betas, eps) and D steps per
    # iteration are used (its dataset, batch size, steps and EMA are not: the EC-GAN loop sets those)
    biggan: str = opt("cifar10-paper")
    # --- Optimisation: Adam for G, D and C ---
    lr: float = opt(2e-4, lo=0, lo_open=True)  # learning rate of G, D and C ("recommended by DCGAN")
    beta1: float = opt(0.5, lo=0, hi=1, hi_open=True)  # Adam beta1
    beta2: float = opt(0.999, lo=0, hi=1, hi_open=True)  # Adam beta2
    weight_decay: float = opt(1e-3, lo=0)  # L2 weight decay (Adam's, coupled) on D and C; none on G
    batch_size: int = opt(64, lo=1)  # real images per iteration, and as many fakes
    seed: int = opt(0, lo=0)  # seeds weights, noise, batch order and augmentation
    # --- Official notebook compatibility (paper values are the defaults) ---
    real_range: str = opt("[-1,1]", choices=("[-1,1]", "[0,1]"))  # real (train and test) pixels; the notebook
    # feeds ToTensor() images in [0, 1] to D and C while G's tanh outputs [-1, 1]
    c_steps: int = opt(1, lo=1, hi=2)  # C optimiser steps per iteration: 1 on eq. 5; 2 = the notebook's real
    # step, then a separate step on the pseudo-labelled fakes
    dcgan_init: bool = opt(True)  # N(0, 0.02) init of G and D (DCGAN); the notebook keeps PyTorch's default
    d_first_bn: bool = opt(False)  # BN after D's first conv (the notebook); DCGAN has none there
    sampling: str = opt("epochs", choices=("epochs", "independent"))  # epochs: shuffled passes over the subset;
    # independent: every batch a fresh random draw (the notebook re-creates iter(loader) each step)
    # --- Not in the paper or the notebook (a lab option) ---
    bn_stats: str = opt("all", choices=("all", "real"))  # BN running statistics of the evaluated network
    # (C; the shared D), which it uses at test time: "all" = updated by real and fake batches alike (the
    # notebook runs C and D on fakes in train mode); "real" = fake batches leave them unchanged
    # --- Budget and runtime (not part of the run's identity) ---
    epochs: int = opt(100, lo=1, identity=False)  # passes over the labelled subset (len // batch_size iterations each)
    steps: int = opt(0, lo=0, identity=False)  # iterations in all; 0 = epochs * (len(subset) // batch_size)
    device: str = opt("auto", identity=False)  # "auto" (CUDA if present), "cpu", "cuda", ...
    precision: str = opt("auto", choices=("auto", "fp32", "bf16"), identity=False)  # auto: bf16 autocast on CUDA
    channels_last: str = opt("auto", choices=("auto", "on", "off"), identity=False)  # auto: on for CUDA
    compile: bool = opt(False, identity=False)  # torch.compile the models
    log_every: int = opt(100, lo=1, identity=False)  # iterations between stats.jsonl lines
    eval_every: int = opt(100, lo=1, identity=False)  # iterations between test-set evaluations (and sample grids)
    ckpt_every: int = opt(1000, lo=1, identity=False)  # iterations between checkpoints

    @property
    def uses_gan(self) -> bool:
        return self.method in ("ecgan", "shared-dcgan", "shared-resnet", "ecgan-biggan")
