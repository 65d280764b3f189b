"""The papers' experiment grids as get-or-train runs, gathered into pandas tables beside the papers' numbers."""
import math

from .config import ClassifierConfig, classifier_preset, gan_preset, preset
from .data import load_dataset, subset
from .models import build_gan, param_count, size_mb
from .runs import Run, find_runs, get_or_train

# Pham et al. 2019, Table I, "Size (MB)" of one generator.
PAPER_GENERATOR_MB = {"cifar10-paper": 16.6, "cifar100-paper": 17.7, "cifar100-concat-paper": 18.8}

# Pham et al. 2019, Table I: test error (%) of the ResNet-18 trained on real subsets of n images,
# for the same number of optimisation steps (156,250) and for the same number of epochs (200).
PAPER_REAL_ERROR = {
    "cifar10": {
        "steps": {50_000: 4.83, 40_000: 5.47, 30_000: 6.12, 20_000: 7.69, 10_000: 11.09},
        "epochs": {50_000: 4.83, 40_000: 5.42, 30_000: 6.77, 20_000: 8.94, 10_000: 13.76},
    },
    "cifar100": {
        "steps": {50_000: 25.39, 40_000: 26.42, 30_000: 29.72, 20_000: 35.4, 10_000: 44.99},
        "epochs": {50_000: 25.39, 40_000: 26.72, 30_000: 30.36, 20_000: 36.65, 10_000: 48.64},
    },
}
# Table I: error (%) of the classifier trained on filtered samples of 1 GAN (mean ± std).
PAPER_GAN_ERROR = {"cifar10": (11.75, 0.23), "cifar100": (40.25, 0.32), "cifar100-concat": (37.78, 0.28)}

# The paper's real subsets are 10k..50k of 50k training images: these fractions of the train split.
REAL_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)


def gan_size_table(extra: dict = None) -> list:
    """Rows of G/D parameter counts and float32 sizes for the paper presets (and `extra` configs).

    Args:
        extra: {label: GANConfig} to add, e.g. the notebook's own config.
    """
    names = ("cifar10-paper", "cifar10-concat-paper", "cifar100-paper", "cifar100-concat-paper")
    configs = {name: preset(name) for name in names}
    configs.update(extra or {})
    rows = []
    for name, cfg in configs.items():
        G, D = build_gan(cfg)
        rows.append({
            "config": name, "G params": param_count(G), "D params": param_count(D),
            "G MB": round(size_mb(G), 2), "G MiB": round(size_mb(G, "MiB"), 2),
            "paper G MB": PAPER_GENERATOR_MB.get(name),
        })
    return rows


# --- Runs -------------------------------------------------------------------------------
def _train_real(cfg, path, on_step=None):
    from .train.classifier import train_classifier

    train = load_dataset(cfg.dataset, "train", cfg.data_root)
    if cfg.subset:
        train = subset(train, cfg.subset, seed=cfg.subset_seed)
    return train_classifier(cfg, train, path, on_step=on_step)


def classifier_config(profile: str, dataset: str = None, data_root: str = "data", **changes) -> ClassifierConfig:
    """The profile's classifier preset with `changes`, reading data from `data_root`."""
    return classifier_preset(profile, dataset).replace(data_root=data_root, **changes)


def real_classifier(cfg: ClassifierConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the classifier of a real-data config (its subset fields say which images)."""
    return get_or_train(cfg, _train_real, root=root, on_step=on_step)


def filter_classifier(profile: str, dataset: str = None, data_root: str = "data", root=None, **changes) -> Run:
    """Algorithm 1's pretrained classifier: the ResNet-18 trained on the whole real training split."""
    return real_classifier(classifier_config(profile, dataset, data_root, **changes), root)


def real_subset_configs(base: ClassifierConfig, n_train: int, match: str) -> list:
    """Configs of the real-subset baselines: REAL_FRACTIONS of the `n_train` training images.

    Args:
        match: "steps" (every subset trains `base.steps` steps, as the GAN-sample classifier) or
            "epochs" (every subset trains as many epochs as `base` does on the whole split).
    """
    epochs = base.steps * base.batch_size / n_train
    out = []
    for frac in REAL_FRACTIONS:
        n = round(frac * n_train)
        steps = base.steps if match == "steps" else max(1, math.ceil(epochs * n / base.batch_size))
        out.append(base.replace(subset=0 if n == n_train else n, steps=steps))
    return out


def gan_classifier(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold, root=None, on_step=None) -> Run:
    """Get, resume or train a classifier on the live stream of Algorithm-1-filtered samples of `gan_runs`."""
    cfg = base.replace(source="gan", gans=tuple(r.path.name for r in gan_runs), threshold=threshold,
                       filter=filter_run.path.name, augment=False)

    def train(cfg, path, on_step=None):
        from .sampling import FilteredSampler
        from .train.classifier import load_classifier, train_classifier
        from .train.common import resolve_device
        from .train.gan import load_generator

        dev = resolve_device(cfg.device)
        gens = [load_generator(r.path, device=dev) for r in gan_runs]
        clf = load_classifier(filter_run.path, device=dev)
        stream = FilteredSampler(gens, clf, threshold, cfg.batch_size, seed=cfg.seed, device=dev)
        return train_classifier(cfg, stream, path, on_step=on_step)

    return get_or_train(cfg, train, root=root, on_step=on_step)


def gan_run(profile: str, dataset: str = None, block: str = "add", seed: int = 0, data_root: str = "data",
            root=None, steps: int = None) -> Run:
    """Get, resume or train the GAN of a notebook's parameters."""
    from .train.gan import train_gan

    cfg = gan_preset(profile, dataset, block).replace(seed=seed, data_root=data_root)
    if steps:
        cfg = cfg.replace(steps=steps)
    return get_or_train(cfg, train_gan, root=root)


# --- Tables -----------------------------------------------------------------------------
def classifier_results(root=None, dataset: str = None) -> list:
    """One row per finished classifier run: source, size or threshold, steps, epochs, seed, error."""
    rows, n_train = [], {}
    for run in find_runs("classifier", root):
        done = run.done()
        if done is None:
            continue
        cfg = run.config(ClassifierConfig)
        if dataset and cfg.dataset != dataset:
            continue
        if cfg.source == "real" and cfg.dataset not in n_train:
            n_train[cfg.dataset] = len(load_dataset(cfg.dataset, "train", cfg.data_root))
        n = (cfg.subset or n_train[cfg.dataset]) if cfg.source == "real" else None
        rows.append({
            "run": run.path.name, "dataset": cfg.dataset, "source": cfg.source, "n_real": n,
            "gans": len(cfg.gans), "threshold": cfg.threshold, "filter": cfg.filter or None,
            "steps": cfg.steps, "epochs": round(cfg.steps * cfg.batch_size / n, 2) if n else None,
            "seed": cfg.seed, "error": done["error"],
        })
    return rows


def at_threshold(results, threshold):
    """Rows of `results` whose Algorithm-1 threshold is `threshold` (None selects the unfiltered runs)."""
    return results[results["threshold"].isna()] if threshold is None else results[results["threshold"] == threshold]


def real_results(results, base: ClassifierConfig, n_train: int):
    """The real-subset rows of `results` (a DataFrame of `classifier_results`) that belong to `base`'s grid,
    labelled with how they were matched ("steps" or "epochs"); the full-set run belongs to both."""
    import pandas as pd

    rows = []
    for match in ("steps", "epochs"):
        for cfg in real_subset_configs(base, n_train, match):
            n = cfg.subset or n_train
            hit = results[(results["source"] == "real") & (results["n_real"] == n) & (results["steps"] == cfg.steps)
                          & (results["dataset"] == base.dataset)]
            rows.append(hit.assign(match=match, fraction=n / n_train))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def classifier_table(real, gan_errors, dataset: str):
    """The classifier rows of Table I: GAN-sample error, then real subsets for the same #steps and #epochs,
    each beside the paper's value at the same fraction of the training set (CIFAR-10's when the study
    runs on another dataset, e.g. the smoke profile's digits; the column says which)."""
    import pandas as pd

    ref = dataset if dataset in PAPER_REAL_ERROR else "cifar10"
    col = f"paper error (%, {ref})"
    e = pd.Series(list(gan_errors), dtype=float)
    rows = [{"rows": "GAN samples (1 GAN)", "train images": "stream", "error (%)": _pm(e),
             col: "%.2f ± %.2f" % PAPER_GAN_ERROR[ref]}]
    for match in ("steps", "epochs"):
        d = real[real["match"] == match].groupby("fraction")
        for frac, g in sorted(d, key=lambda kv: -kv[0]):
            paper_n = round(frac * 50_000)
            rows.append({"rows": f"same #{match}", "train images": int(g["n_real"].iloc[0]), "error (%)": _pm(g["error"]),
                         col: PAPER_REAL_ERROR[ref][match].get(paper_n)})
    return pd.DataFrame(rows)


def _pm(errors) -> str:
    """'mean ± std (n runs)' of a Series of errors; std over runs, blank for one run."""
    if len(errors) == 0:
        return "–"
    if len(errors) == 1:
        return f"{errors.iloc[0]:.2f}"
    return f"{errors.mean():.2f} ± {errors.std():.2f} ({len(errors)} runs)"
