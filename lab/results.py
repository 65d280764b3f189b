"""The study's runs as result frames, read from its ledger (results/ledger/ by default) or a run store with no
dataset and no training, and the verdict rule. The runs are selected by the study's manifest
(`lab.study.manifest`); a run that is missing is reported missing, never filled in. `lab.claims` tests each
paper's claims on them, `lab.report` writes RESULTS.md and its figures (`python -m lab results`)."""
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import experiments as ex
from . import ledger as lg
from . import profiles
from . import ecgan_tables as et
from . import tables as tb
from .config import ClassifierConfig, ECGANConfig, GANConfig, image_bytes
from .runs import Run, run_dir

ALPHA = 0.05  # two-sided significance level of the verdicts (Welch's t-test over seeds)
# The columns of the result frames, so that a ledger without some runs yet gives empty frames that select alike.
CLASSIFIER_COLUMNS = ["run", "config", "dataset", "source", "n_real", "gans", "gan_names", "threshold", "threshold_mode",
                      "filter", "steps", "epochs", "seed", "error", "per_class", "evals"]
ECGAN_COLUMNS = ["run", "dataset", "method", "fraction", "n_labelled", "lam", "threshold", "bn_stats", "threshold_mode",
                 "seed", "steps", "epochs", "final_accuracy", "best_accuracy", "per_class", "evals"]


def _frame(rows, columns) -> pd.DataFrame:
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


@dataclass
class Study:
    """The runs of one profile's manifest found in a ledger (or a run store)."""

    root: Path
    profile: profiles.Profile
    base: ClassifierConfig  # the classifier config of every headline classifier
    n_train: int
    classes: list
    gans: dict  # {(block, seed): Run}
    filter: Run
    results: pd.DataFrame  # tables.classifier_results of the manifest's classifiers
    real: pd.DataFrame  # tables.real_results: the real subsets, same #steps and #epochs
    sets: pd.DataFrame  # tables.gan_set_rows of the manifest's GAN sets
    ecgan: pd.DataFrame  # ecgan_tables.ecgan_results of EC-GAN's table at the headline λ and t
    ecgan_bn: pd.DataFrame = field(default_factory=pd.DataFrame)  # EC-GAN with bn_stats="real"
    metrics: dict = field(default_factory=dict)  # {tuple of GAN names: metrics record}
    records: list = field(default_factory=list)  # lab.ledger.records
    ecgan_adaptive: pd.DataFrame = field(default_factory=pd.DataFrame)  # EC-GAN under class-adaptive rules

    @property
    def threshold(self) -> float:
        return self.profile.threshold


def load(root=lg.DEFAULT, profile: str = "study", data_root: str = "data", steps: int = None) -> Study:
    """The runs of `profile`'s manifest under `root` (a ledger; a run store works too where the dataset is on
    disk), its datasets' sizes and class names from the ledger's datasets.json. `steps`: the manifest's
    length override (`lab.study.manifest`)."""
    from .manifest import manifest

    root, P = Path(root), profiles.get(profile)
    if (root / "datasets.json").exists() and P.dataset in json.loads((root / "datasets.json").read_text()):
        info = lg.dataset_info(root, P.dataset)
    else:
        from .data import load_dataset

        info = {"n_train": ex.train_size(P.dataset, data_root),
                "classes": load_dataset(P.dataset, "test", data_root).classes}
    with ex.known_train_sizes({P.dataset: info["n_train"]}):
        configs = [j.config for j in manifest(profile, data_root, steps) if j.config is not None]
    base = ex.classifier_config(profile, P.dataset, data_root, **({"steps": steps} if steps else {}))
    gans = {(c.block, c.seed): Run(run_dir(c, root)) for c in configs if isinstance(c, GANConfig)}
    filt = Run(run_dir(ex.filter_config(profile, P.dataset, data_root, steps), root))
    res = _frame(tb.classifier_results(root, P.dataset), CLASSIFIER_COLUMNS)
    if len(res):  # exactly the manifest's classifiers, nothing else of the store
        keys = {tb.grid_key(c) for c in configs if isinstance(c, ClassifierConfig)}
        res = res[res["config"].isin(keys)].reset_index(drop=True)
    real = (tb.real_results(res, base, info["n_train"], P.real_fractions) if len(res)
            else pd.DataFrame(columns=CLASSIFIER_COLUMNS + ["match", "fraction"]))
    sets = tb.gan_set_rows(res, root, P.threshold) if len(res) else pd.DataFrame()
    ec = [c for c in configs if isinstance(c, ECGANConfig)]
    headline = [c for c in ec if c.lam == P.ecgan_lambda and c.threshold == P.ecgan_threshold and c.bn_stats == "all"
                and c.threshold_mode == "fixed"]
    ecgan = _frame(et.ecgan_results(root, runs=[run_dir(c, root) for c in headline]), ECGAN_COLUMNS)
    ecgan_bn = _frame(et.ecgan_results(root, runs=[run_dir(c, root) for c in ec if c.bn_stats == "real"]), ECGAN_COLUMNS)
    adaptive = _frame(et.ecgan_results(root, runs=[run_dir(c, root) for c in ec if c.threshold_mode != "fixed"]),
                      ECGAN_COLUMNS)
    metrics = {}
    for m in sorted(tb.cached_metrics(root), key=lambda m: m["n"]):
        if m["filter"] == filt.path.name:
            metrics[tuple(sorted(m["gans"]))] = m
    records = lg.records(root) if (root / "datasets.json").exists() else []
    return Study(root, P, base, info["n_train"], info["classes"], gans, filt, res, real, sets, ecgan, ecgan_bn,
                 metrics, records, adaptive)


# --- The verdict rule --------------------------------------------------------------------------
def compare(a, b, claim: str, unit: str | tuple = "seeds") -> dict:
    """Does "a < b" (claim "lower") or "a > b" (claim "higher") hold across seeds (or GANs)? `unit` names what
    each side's values are over, one for both or (a's, b's).

    Welch's t-test, two-sided: "reproduced" when the means differ in the claimed direction with p < ALPHA,
    "not reproduced" when they differ the other way with p < ALPHA, "inconclusive" otherwise (or when a
    side has fewer than two runs, so no spread is known)."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, float), np.asarray(b, float)
    ua, ub = (unit, unit) if isinstance(unit, str) else unit
    out = {"a": tb.format_pm(pd.Series(a), ua), "b": tb.format_pm(pd.Series(b), ub),
           "diff": a.mean() - b.mean() if len(a) and len(b) else float("nan"), "p": None}
    if len(a) < 2 or len(b) < 2:
        return {**out, "verdict": "inconclusive" if len(a) and len(b) else "missing runs"}
    with warnings.catch_warnings():  # nearly identical samples: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    p = 1.0 if p != p else p  # identical constant samples
    agrees = out["diff"] < 0 if claim == "lower" else out["diff"] > 0
    verdict = "inconclusive" if p >= ALPHA else ("reproduced" if agrees else "not reproduced")
    return {**out, "p": p, "verdict": verdict}


def _overall(verdicts: list) -> str:
    """One verdict for a claim tested at several sizes: reproduced only if it is at every one."""
    if any(v == "missing runs" for v in verdicts):
        return "missing runs"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if any(v == "not reproduced" for v in verdicts) else "inconclusive"


# --- Selections -------------------------------------------------------------------------------
def stream_rows(s: Study, gans, threshold="headline", mode: str = "fixed") -> pd.DataFrame:
    """The manifest's classifiers on the stream of exactly `gans` at `threshold` (default: the headline one;
    None: unfiltered) under the threshold rule `mode`."""
    t = s.threshold if threshold == "headline" else threshold
    if not len(s.results):
        return s.results
    rows = tb.at_threshold(s.results[s.results["source"] == "gan"], t, mode)
    return rows[rows["gan_names"] == tuple(sorted(r.path.name for r in gans))]


def per_gan_errors(s: Study, gans) -> pd.Series:
    """Each GAN's error: the mean over its classifier seeds at the headline threshold (GANs without runs left out)."""
    means = [stream_rows(s, [g])["error"].mean() for g in gans]
    return pd.Series([m for m in means if m == m], dtype=float)


def full_real(s: Study) -> pd.DataFrame:
    """The classifiers on the whole real split at the same #steps (every seed)."""
    return s.real[(s.real["match"] == "steps") & (s.real["n_real"] == s.n_train)] if len(s.real) else s.real


def acceptance(s: Study, gans) -> dict:
    """{GAN name: per-class acceptance at the headline threshold (its single-GAN metrics, else its acceptance
    record), or None}."""
    return {g.path.name: (gan_acceptance(s, g.path.name) or {}).get("per_class") for g in gans}


def gan_acceptance(s: Study, name: str) -> dict | None:
    """{"threshold", "per_class", "n"} of one GAN at the headline threshold, or None when not measured."""
    import json

    m = s.metrics.get((name,), {})
    if m.get("acceptance", {}).get("threshold") == s.threshold:
        return {**m["acceptance"], "n": m.get("n")}
    p = s.root / "acceptance" / f"{name}.json"
    rec = json.loads(p.read_text()) if p.exists() else {}
    if rec.get("acceptance", {}).get("threshold") == s.threshold and rec.get("filter") == s.filter.path.name:
        return {**rec["acceptance"], "n": rec.get("n")}
    return None


def _runs(rows) -> list:
    return [] if rows is None or not len(rows) else rows[["run", "steps", "evals"]].to_dict("records")


def _blocks(s: Study, block: str) -> list:
    return [s.gans[(block, k)] for k in s.profile.block_gan_seeds if (block, k) in s.gans]


def image_mib(s: Study, n: int) -> float:
    return n * image_bytes(s.profile.dataset) / 2**20
