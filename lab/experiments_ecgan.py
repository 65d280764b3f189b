"""The EC-GAN experiment grid (Haque 2021, Table 1) as get-or-train runs, gathered into a table beside the paper's."""
from .config import ECGANConfig, preset
from .experiments import format_pm
from .data import load_dataset
from .runs import Run, finished_runs, get_or_train

# Haque 2021 (arXiv 2012.15864), Table 1: SVHN test accuracy (%) by labelled fraction of the train split.
# Three pairs of columns, each a plain classifier of an architecture vs. the GAN method built on it.
PAPER_TABLE1 = {
    0.10: {"EC-GAN: Classifier": 88.63, "EC-GAN": 91.15, "Shared DC-Disc: Classifier": 83.54,
           "Shared DC-Disc GAN": 86.17, "Shared ResNet-Disc: Classifier": 88.63, "Shared ResNet-Disc GAN": 89.32},
    0.15: {"EC-GAN: Classifier": 90.88, "EC-GAN": 92.21, "Shared DC-Disc: Classifier": 85.20,
           "Shared DC-Disc GAN": 88.72, "Shared ResNet-Disc: Classifier": 90.88, "Shared ResNet-Disc GAN": 91.37},
    0.20: {"EC-GAN: Classifier": 92.61, "EC-GAN": 93.40, "Shared DC-Disc: Classifier": 86.77,
           "Shared DC-Disc GAN": 89.39, "Shared ResNet-Disc: Classifier": 92.61, "Shared ResNet-Disc GAN": 93.24},
    0.25: {"EC-GAN: Classifier": 92.89, "EC-GAN": 93.93, "Shared DC-Disc: Classifier": 87.58,
           "Shared DC-Disc GAN": 87.93, "Shared ResNet-Disc: Classifier": 92.89, "Shared ResNet-Disc GAN": 93.96},
    0.30: {"EC-GAN: Classifier": 93.12, "EC-GAN": 94.32, "Shared DC-Disc: Classifier": 87.78,
           "Shared DC-Disc GAN": 90.62, "Shared ResNet-Disc: Classifier": 93.12, "Shared ResNet-Disc GAN": 93.42},
}
# Which method fills each column: the ResNet-18 classifier is the baseline of both EC-GAN and the
# shared ResNet discriminator (the paper lists the same numbers for both).
COLUMNS = {
    "EC-GAN: Classifier": "classifier", "EC-GAN": "ecgan",
    "Shared DC-Disc: Classifier": "classifier-dcgan", "Shared DC-Disc GAN": "shared-dcgan",
    "Shared ResNet-Disc: Classifier": "classifier", "Shared ResNet-Disc GAN": "shared-resnet",
    # Beyond the paper (no paper value): EC-GAN with the class-conditional BigGAN and Algorithm 1's labels.
    "EC-GAN, BigGAN + Alg. 1": "ecgan-biggan",
}
FRACTIONS = tuple(PAPER_TABLE1)
METHODS = ("classifier", "ecgan", "classifier-dcgan", "shared-dcgan", "shared-resnet", "ecgan-biggan")
def ecgan_config(profile: str = "paper", data_root: str = "data", **changes) -> ECGANConfig:
    """The profile's EC-GAN preset with `changes` (method, fraction, seed, ...), reading data from `data_root`
    ("paper": SVHN as the paper; "official": the official notebook's settings; "study": Fashion-MNIST)."""
    from .profiles import preset_for

    return preset_for("ecgan", profile).replace(data_root=data_root, **changes)


def grid(base: ECGANConfig, fractions=FRACTIONS, methods=METHODS, seeds=(0,)) -> list:
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
    if not cfg.steps:
        from .train.ecgan import total_steps

        n = int(len(load_dataset(cfg.dataset, "train", cfg.data_root)) * cfg.fraction)
        cfg = cfg.replace(steps=total_steps(cfg, n))
    return get_or_train(cfg, _train, root=root, on_step=on_step)


# --- Tables -------------------------------------------------------------------------------
def results(root=None, dataset: str = None, runs=None) -> list:
    """One row per finished EC-GAN-family run: method, fraction, λ, t, seed, final and best test accuracy, ...

    Args:
        runs: only these runs (e.g. the values of a notebook's grid), else every run under `root`.
    """
    rows = []
    keep = None if runs is None else {Run(r.path if hasattr(r, "path") else r).path.name for r in runs}
    for run, cfg, done in finished_runs(ECGANConfig, root, dataset):
        if keep is not None and run.path.name not in keep:
            continue
        rows.append({
            "run": run.path.name, "dataset": cfg.dataset, "method": cfg.method, "fraction": cfg.fraction,
            "n_labelled": done["n_labelled"], "lam": cfg.lam, "threshold": cfg.threshold,
            "classifier_width": cfg.classifier_width, "real_range": cfg.real_range, "c_steps": cfg.c_steps,
            "bn_stats": cfg.bn_stats, "augment": cfg.augment, "biggan": cfg.biggan if cfg.method == "ecgan-biggan" else "", "seed": cfg.seed, "steps": done["step"],
            "epochs": done["epochs"], "final_accuracy": done["final_accuracy"], "best_accuracy": done["best_accuracy"],
        })
    return rows


def table(results_df, which: str = "final_accuracy"):
    """Table 1's layout: one row per labelled size, for each paper column our accuracy (mean ± std over
    seeds) beside the paper's, then this lab's "EC-GAN, BigGAN + Alg. 1" column (no paper value). `results_df`: a DataFrame of `results` for one setting (filter it first).

    Args:
        which: "final_accuracy" (the last epoch) or "best_accuracy" (the best evaluated epoch); the
            paper does not say which it reports.
    """
    import pandas as pd

    rows = []
    for frac in sorted(set(results_df["fraction"]) | set(FRACTIONS)):
        row = {"size": f"{100 * frac:g}%"}
        for col, method in COLUMNS.items():
            acc = results_df[(results_df["method"] == method) & (results_df["fraction"] == frac)][which]
            row[col] = format_pm(acc, "seeds")
            if col in PAPER_TABLE1[FRACTIONS[0]]:
                row[f"{col} (paper)"] = PAPER_TABLE1.get(frac, {}).get(col)
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")

