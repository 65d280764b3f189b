"""EC-GAN's tables from a run store: one row per finished EC-GAN-family run, Table 1 beside the paper's values
(`lab.papers`), the BatchNorm-statistics ablation and the class-adaptive pseudo-label rules."""
from .config import ECGANConfig
from .experiments import FRACTIONS
from .papers import PAPER_TABLE1
from .runs import Run, finished_runs
from .tables import format_pm

# Which method fills each column: the ResNet-18 classifier is the baseline of both EC-GAN and the
# shared ResNet discriminator (the paper lists the same numbers for both).
COLUMNS = {
    "EC-GAN: Classifier": "classifier", "EC-GAN": "ecgan",
    "Shared DC-Disc: Classifier": "classifier-dcgan", "Shared DC-Disc GAN": "shared-dcgan",
    "Shared ResNet-Disc: Classifier": "classifier", "Shared ResNet-Disc GAN": "shared-resnet",
    # Beyond the paper (no paper value): EC-GAN with the class-conditional BigGAN and Algorithm 1's labels.
    "EC-GAN, BigGAN + Alg. 1": "ecgan-biggan",
}

# Each method in a figure's legend (the columns' names above are the paper's table's).
METHOD_LABELS = {"classifier": "ResNet-18 alone", "ecgan": "EC-GAN", "classifier-dcgan": "DCGAN D alone",
                 "shared-dcgan": "shared DCGAN D", "shared-resnet": "shared ResNet D",
                 "ecgan-biggan": "EC-GAN, BigGAN + Alg. 1"}


def ecgan_results(root=None, dataset: str = None, runs=None) -> list:
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
            "bn_stats": cfg.bn_stats, "threshold_mode": cfg.threshold_mode, "augment": cfg.augment, "biggan": cfg.biggan if cfg.method == "ecgan-biggan" else "", "seed": cfg.seed, "steps": done["step"],
            "epochs": done["epochs"], "final_accuracy": done["final_accuracy"], "best_accuracy": done["best_accuracy"],
            "per_class": done.get("per_class_accuracy"),
            "evals": [(r["step"], r["test_acc"]) for r in run.stats() if "test_acc" in r],
        })
    return rows


BN_COLUMNS = {  # EC-GAN and the shared ResNet discriminator with and without fakes in their BatchNorm running
    "classifier alone": ("classifier", "all"),  # statistics, beside C alone
    "EC-GAN (fakes in BN statistics, the official code)": ("ecgan", "all"),
    "EC-GAN (fakes out of BN running statistics)": ("ecgan", "real"),
    "shared ResNet D (fakes in BN statistics)": ("shared-resnet", "all"),
    "shared ResNet D (fakes out of BN running statistics)": ("shared-resnet", "real"),
}


def ecgan_rule_table(results_df, modes, which: str = "final_accuracy"):
    """EC-GAN's accuracy (mean ± std over seeds) per labelled size under its fixed t and under each class-adaptive
    pseudo-label rule of `modes` (`lab.thresholds`). `results_df`: `ecgan_results` of EC-GAN runs of one λ, t."""
    import pandas as pd

    d = results_df[results_df["method"] == "ecgan"] if len(results_df) else results_df
    cols = {"EC-GAN (fixed t)": "fixed", **{f"EC-GAN, {m}": m for m in modes}}
    rows = []
    for frac in sorted(set(d["fraction"]) if len(d) else ()):
        row = {"size": f"{100 * frac:g}%"}
        for col, mode in cols.items():
            row[col] = format_pm(d[(d["threshold_mode"] == mode) & (d["fraction"] == frac)][which], "seeds")
        rows.append(row)
    return pd.DataFrame(rows, columns=["size", *cols]).set_index("size")


def _fixed_rule(d):
    """The EC-GAN rows of the paper's fixed pseudo-label threshold (the class-adaptive ones are `lab.claims`')."""
    return d[d["threshold_mode"] == "fixed"] if len(d) and "threshold_mode" in d else d


def ecgan_bn_table(results_df, which: str = "final_accuracy"):
    """Accuracy (mean ± std over seeds) of C alone, and of EC-GAN and the shared ResNet discriminator with
    `bn_stats` "all" and "real", one row per labelled size with runs at `bn_stats="real"` (notebook 07: the
    first fraction only).
    `results_df`: `ecgan_results` of one λ and t."""
    import pandas as pd

    d = _fixed_rule(results_df)
    real = d[d["bn_stats"] == "real"] if len(d) else d
    rows = []
    for frac in sorted(set(real["fraction"]) if len(real) else ()):
        row = {"size": f"{100 * frac:g}%"}
        for col, (method, bn) in BN_COLUMNS.items():
            row[col] = format_pm(d[(d["method"] == method) & (d["bn_stats"] == bn) & (d["fraction"] == frac)][which], "seeds")
        rows.append(row)
    return pd.DataFrame(rows, columns=["size", *BN_COLUMNS]).set_index("size")


def ecgan_table(results_df, which: str = "final_accuracy"):
    """Table 1's layout: one row per labelled size, for each paper column our accuracy (mean ± std over
    seeds) beside the paper's, then this lab's "EC-GAN, BigGAN + Alg. 1" column (no paper value). `results_df`: a DataFrame of `ecgan_results` for one setting (one grid).

    Args:
        which: "final_accuracy" (the last epoch) or "best_accuracy" (the best evaluated epoch); the
            paper does not say which it reports.
    """
    import pandas as pd

    results_df, rows = _fixed_rule(results_df), []
    for frac in sorted(set(results_df["fraction"]) | set(FRACTIONS)):
        row = {"size": f"{100 * frac:g}%"}
        for col, method in COLUMNS.items():
            acc = results_df[(results_df["method"] == method) & (results_df["fraction"] == frac)][which]
            row[col] = format_pm(acc, "seeds")
            if col in PAPER_TABLE1[FRACTIONS[0]]:
                row[f"{col} (paper)"] = PAPER_TABLE1.get(frac, {}).get(col)
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")
