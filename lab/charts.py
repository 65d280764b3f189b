"""Charts of the study's numbers for the notebooks and RESULTS.md: error against real size, threshold and metrics,
Algorithm 1's per-class filter statistics, per-class accuracy, EC-GAN's curves and sweeps (`lab.plots.export`
writes them at paper size)."""
import matplotlib.pyplot as plt
import torch

from .config import image_bytes
from .plots import COLUMN_WIDTH_IN, PAGE_WIDTH_IN

UNFILTERED_X = -0.05  # where threshold-axis charts draw the unfiltered stream (threshold None), left of 0


def error_vs_real_size(results, gan_errors=None, title: str = None):
    """Fig 1/2 of the paper: test error vs real training-set size, same #steps and same #epochs,
    with the GAN-sample classifier's error as a horizontal band (mean ± std over its runs).

    Args:
        results: DataFrame from `lab.experiments.classifier_results` restricted to real runs, with a
            column "match" ("steps" or "epochs").
        gan_errors: errors (%) of GAN-sample classifiers, or None.
    """
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.4))
    for match, marker in (("steps", "o"), ("epochs", "s")):
        d = results[results["match"] == match].groupby("n_real")["error"].agg(["mean", "std"]).reset_index()
        ax.errorbar(d["n_real"], d["mean"], yerr=d["std"].fillna(0), marker=marker, ms=4, lw=1, capsize=2,
                    label=f"real, same #{match}")
    if gan_errors is not None and len(gan_errors):
        e = torch.tensor(list(gan_errors), dtype=torch.float64)
        m, s = e.mean().item(), (e.std().item() if len(e) > 1 else 0.0)
        ax.axhline(m, color="C3", lw=1, label=f"GAN samples ({m:.2f} %)")
        ax.axhspan(m - s, m + s, color="C3", alpha=0.15, lw=0)
    ax.set(xlabel="real training images", ylabel="test error (%)", title=title)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}")  # 10k, not 10000
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def per_class_accuracy(rows, class_names, title: str = None):
    """Per-class test accuracy (%) of each threshold rule's classifiers (`lab.tables.rule_table` rows), one bar
    per rule and class (mean over seeds), the legend above the axes."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 2.4))
    rows = rows[rows["per_class"].map(lambda p: p is not None)]
    w = 0.8 / max(1, len(rows))
    for i, (_, r) in enumerate(rows.iterrows()):
        ax.bar(np.arange(len(class_names)) + (i - (len(rows) - 1) / 2) * w, r["per_class"], w, label=r["rule"])
    ax.set_xticks(range(len(class_names)), class_names, fontsize=7, rotation=30)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    ax.legend(fontsize=7, ncol=max(1, len(rows)), loc="lower center", bbox_to_anchor=(0.5, 1.04), frameon=False)
    fig.tight_layout()
    return fig


def error_vs_threshold(results, title: str = None):
    """Fig 5 of the paper: test error of the GAN-sample classifier vs Algorithm 1's threshold
    (None, the unfiltered stream, is drawn left of threshold 0 with an open marker); the paper's fixed rule
    only (the class-adaptive rules' runs are `per_class_accuracy`'s)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    if "threshold_mode" in results:
        results = results[results["threshold_mode"] == "fixed"]
    d = results.assign(t=results["threshold"].fillna(UNFILTERED_X).astype(float))
    g = d.groupby(["t", d["threshold"].isna()])["error"].agg(["mean", "std"]).reset_index()
    filtered, unfiltered = g[~g["threshold"]], g[g["threshold"]]
    ax.errorbar(filtered["t"], filtered["mean"], yerr=filtered["std"].fillna(0), marker="o", ms=4, lw=1, capsize=2,
                label="filtered")
    if len(unfiltered):
        ax.errorbar(unfiltered["t"], unfiltered["mean"], yerr=unfiltered["std"].fillna(0), marker="o", ms=5,
                    mfc="none", ls="none", capsize=2, label="unfiltered")
    ax.set(xlabel="threshold", ylabel="test error (%)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def filter_bars(stats, class_names, title: str = None, max_classes: int = 100, ax=None):
    """Fig 6/7 of the paper: per class, how many drawn samples were accepted, rejected for a wrong
    predicted class, or rejected for a probability below the threshold (stacked, as fractions).

    Draws on `ax` when given (the threshold explorer does); else makes and returns a figure.
    """
    drawn = stats.drawn.double().cpu().clamp(min=1)[:max_classes]
    n = len(drawn)
    if ax is None:
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN if n > 20 else COLUMN_WIDTH_IN, 2.4))
    bottom = torch.zeros(n, dtype=torch.float64)
    for label, counts, color in (("accepted", stats.accepted, "C2"), ("wrong class", stats.wrong_class, "C3"),
                                 ("below threshold", stats.low_confidence, "C1")):
        frac = counts.double().cpu()[:max_classes] / drawn
        ax.bar(range(n), frac.numpy(), bottom=bottom.numpy(), width=0.85, color=color, label=label)
        bottom += frac
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 1)
    names = list(class_names)[:n]
    if n <= 20:
        long = max(map(len, names)) > 2
        ax.set_xticks(range(n), names, rotation=45 if long else 0, fontsize=7, ha="right" if long else "center")
    else:
        ax.set_xlabel("class index")
    ax.set(ylabel="fraction of drawn", title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def class_confidence(p_y, right, threshold, name: str, ax):
    """The filter's p[y] over the samples of one conditioning class y, split into argmax = y (Algorithm 1 can keep
    them) and another argmax (always rejected), with the class's threshold as a dashed line (None: unfiltered)."""
    p_y, right = torch.as_tensor(p_y, dtype=torch.float64).cpu(), torch.as_tensor(right, dtype=torch.bool).cpu()
    ax.hist([p_y[right].numpy(), p_y[~right].numpy()], bins=torch.linspace(0, 1, 21).numpy(), stacked=True,
            color=["C2", "C3"], label=["argmax = y", "wrong class"])
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=1, ls="--", label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), xlabel="p[y] (filter)", ylabel="samples", title=f"{name}: p[y]")
    ax.title.set_fontsize(8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best", frameon=False)
    return ax.figure


def acceptance_vs_threshold(table):
    """Overall acceptance rate of Algorithm 1 against the threshold (rows of `algorithm1.acceptance_table`)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    d = table[table["threshold"].notna()]  # None is the unfiltered stream: everything accepted
    ax.plot(d["threshold"].astype(float), 100 * d["acceptance"], marker="o", ms=4, lw=1, label="accepted")
    ax.plot(d["threshold"].astype(float), 100 * d["wrong_class"], marker="s", ms=3, lw=1, label="wrong class")
    ax.plot(d["threshold"].astype(float), 100 * d["low_confidence"], marker="^", ms=3, lw=1, label="below threshold")
    ax.set(xlabel="threshold", ylabel="% of drawn samples", ylim=(0, 100))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def acceptance_heatmap(rates, class_names, thresholds):
    """Per-class acceptance rate of Algorithm 1 (rows: classes, columns: thresholds), a seaborn heatmap:
    which classes the filter starves as the threshold rises (the paper's Fig. 6-7, over all thresholds).

    Args:
        rates: (C, T) acceptance rates in [0, 1], e.g. from `lab.algorithm1.acceptance_matrix`.
    """
    import seaborn as sns

    C = len(class_names)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.9 + 0.22 * min(C, 40)))
    labels = ["none" if t is None else f"{t:g}" for t in thresholds]
    sns.heatmap(100 * torch.as_tensor(rates)[:40].numpy(), ax=ax, vmin=0, vmax=100, cmap="viridis",
                annot=C <= 20, fmt=".0f", annot_kws={"fontsize": 6}, xticklabels=labels,
                yticklabels=list(class_names)[:40], cbar_kws={"label": "% accepted"})
    ax.set(xlabel="threshold", ylabel="")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def metric_scatter(sets, correlations, metrics=("IS", "FID", "feature FD", "CAS")):
    """Classifier error against each GAN metric, one panel per metric, Spearman's rho in the title.

    Args:
        sets: DataFrame of `lab.experiments.gan_set_rows`.
        correlations: rows of `lab.experiments.correlations(sets)`.
    """
    rho = {r["metric"]: r for r in correlations}
    fig, axes = plt.subplots(1, len(metrics), figsize=(PAGE_WIDTH_IN, 1.9), sharey=True)
    # One colour per set size, the same in every panel (a colour scale per panel would not be).
    sizes = sorted({int(k) for k in sets["GANs"]}) if "GANs" in sets else []
    colour = {k: plt.get_cmap("viridis")(i / max(1, len(sizes) - 1)) for i, k in enumerate(sizes)}
    label = {k: f"{k} GAN{'s' if k > 1 else ''}" for k in sizes}
    for ax, m in zip(axes, metrics):
        d = sets[["error", m, "GANs"]].dropna() if m in sets else sets.iloc[0:0]
        for k in sizes:
            dk = d[d["GANs"] == k]
            if len(dk):
                ax.scatter(dk[m], dk["error"], color=colour[k], s=14)
        if not len(d):
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        r = rho.get(m, {})
        num = lambda v: "–" if v is None or v != v else f"{v:.2g}"  # None / NaN: too few sets for a value
        ax.set_title(f"ρ = {num(r.get('spearman rho'))}\n(n = {r.get('GAN sets', 0)}, p = {num(r.get('p'))})", fontsize=7)
        ax.set_xlabel(m, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("error (%)")
    if sizes:
        handles = [plt.Line2D([], [], ls="", marker="o", ms=4, color=colour[k]) for k in sizes]
        fig.legend(handles, [label[k] for k in sizes], loc="center left",
                   bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)  # beside the panels: over no point
    fig.tight_layout()
    return fig


def compression(real, sets):
    """Error against storage: real subsets (raw uint8 images) and sets of 1…k generators (float32 weights).

    Args:
        real: DataFrame of `lab.experiments.real_results` (same #steps rows are used).
        sets: DataFrame of `lab.experiments.gan_set_rows`.
    """
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.3))
    d = real[real["match"] == "steps"].groupby("n_real")["error"].mean().reset_index()
    ax.plot(d["n_real"] * image_bytes(real["dataset"].iloc[0]) / 2**20, d["error"], marker="o", ms=4, lw=1, label="real images")
    for block, g in sets.dropna(subset=["error", "size (MiB)"]).groupby("block"):
        g = g.groupby("GANs")[["size (MiB)", "error"]].mean().reset_index()
        ax.plot(g["size (MiB)"], g["error"], marker="s", ms=4, lw=1, label=f"GANs ({block})")
        for _, r in g.iterrows():
            ax.annotate(int(r["GANs"]), (r["size (MiB)"], r["error"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="storage (MiB)", ylabel="test error (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def per_class_lines(named: dict, ylabel: str, class_names=None):
    """One line per named set of per-class values (e.g. duplicate rate or FD of add vs concat GANs); with none
    (a study notebook before the ledger has them), the empty axes say so."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    for label, values in named.items():
        ax.plot(range(len(values)), values, marker="o", ms=3, lw=1, label=label)
    n = len(next(iter(named.values()))) if named else len(class_names or ())
    if class_names is not None and n <= 20:
        ax.set_xticks(range(n), list(class_names)[:n], fontsize=7, rotation=45 if max(map(len, class_names)) > 2 else 0)
    ax.set(xlabel="class", ylabel=ylabel)
    if named:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not in the run store yet", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def curves(named: dict, key: str, ylabel: str, x: str = "epoch"):
    """One line per named run of a logged quantity, e.g. {"EC-GAN": run.stats_frame(), ...} and "test_acc"."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    for label, stats in named.items():
        d = stats.dropna(subset=[key]) if key in stats else stats.iloc[0:0]
        ax.plot(d[x], d[key], lw=1, marker="o" if len(d) < 30 else None, ms=3, label=label)
    ax.set(xlabel=x, ylabel=ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sweep(results, param: str, value: str = "final_accuracy", xlabel: str = None, ylabel: str = "test accuracy (%)"):
    """Mean ± std of `value` against a swept config field (e.g. EC-GAN's λ or t)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    g = results.groupby(param)[value].agg(["mean", "std"]).reset_index()
    ax.errorbar(g[param], g["mean"], yerr=g["std"].fillna(0), marker="o", ms=4, lw=1, capsize=2)
    ax.set(xlabel=xlabel or param, ylabel=ylabel)
    fig.tight_layout()
    return fig
