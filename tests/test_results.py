"""lab.results, lab.claims, lab.report: the verdict rule against scipy, and RESULTS.md written from a fabricated
run store of the smoke profile's manifest whose every number is known: the selection of the study's runs, the
tables, each claim's verdict where its runs pass the adequacy rules and `inconclusive (budget: ...)` where they
do not, the figures."""
import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import ttest_ind

from lab import experiments as ex
from lab import presets, profiles, report, results, study
from lab.claims import _p
from lab.config import ClassifierConfig, ECGANConfig, GANConfig
from lab.runs import Run, run_dir


@pytest.mark.parametrize("a,b,claim,verdict", [
    ([10.0, 10.2, 10.1], [12.0, 12.3, 11.9], "lower", "reproduced"),
    ([10.0, 10.2, 10.1], [12.0, 12.3, 11.9], "higher", "not reproduced"),
    ([10.0, 12.0, 11.0], [10.5, 11.5, 11.2], "lower", "inconclusive"),
    ([10.0], [12.0, 12.3, 11.9], "lower", "inconclusive"),  # one run: no spread
    ([], [12.0, 12.3], "lower", "missing runs"),
])
def test_compare_is_welchs_test_with_the_stated_rule(a, b, claim, verdict):
    c = results.compare(a, b, claim)
    assert c["verdict"] == verdict
    if len(a) > 1 and len(b) > 1:
        assert c["p"] == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
        assert c["diff"] == pytest.approx(np.mean(a) - np.mean(b))


@pytest.fixture
def smoke3(monkeypatch, digits_root):
    """The smoke profile with three seeds everywhere, three GANs per block, and classifiers of 320 steps (5.1
    epochs of the 4,000 digits, so that the budget rule can pass)."""
    smoke = profiles.get("smoke")
    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(
        smoke, ecgan_seeds=(0, 1, 2), classifier_seeds=(0, 1, 2), block_gan_seeds=(0, 1, 2),
        threshold_modes=("freematch",), ecgan_threshold_modes=("flexmatch",)))
    clf = presets.PRESETS["classifier-digits-smoke"]
    monkeypatch.setitem(presets.PRESETS, "classifier-digits-smoke", lambda: clf().replace(steps=320))
    return str(digits_root)


def _done(run: Run, cfg, value, key="test_error", moving=False, **summary):
    """A finished run whose evaluations at 70, 80, 90 and 100 % of its steps read `value` (falling by 2 points
    an evaluation when `moving`)."""
    run.init(cfg)
    for i, frac in enumerate((0.7, 0.8, 0.9, 1.0)):
        run.log({"step": round(frac * cfg.steps), key: value + (2.0 * (3 - i) if moving else 0.0)})
    run.mark_done(summary)
    return run


def _error(cfg, names, n) -> float:
    """The made-up error of a classifier: real ones fall with size; the stream of add s0 20 % at t = 0.9, 25 %
    unfiltered; add s1, s2 21, 22 %; two GANs 15 %; concat GANs 30, 31, 32 %."""
    if cfg.source == "real":
        return 2.0 + 8000 / (cfg.subset or n) + 0.01 * cfg.seed
    if cfg.threshold_mode == "freematch":  # the class-adaptive rule: 18 % against the fixed t's 20 %
        return 18.0 + 0.1 * cfg.seed
    one = {names[("add", 0)]: 20.0, names[("add", 1)]: 21.0, names[("add", 2)]: 22.0,
           names[("concat", 0)]: 30.0, names[("concat", 1)]: 31.0, names[("concat", 2)]: 32.0}
    base = 15.0 if len(cfg.gans) == 2 else one[cfg.gans[0]]
    return base + (5.0 if cfg.threshold is None else 0.0) + 0.1 * cfg.seed


def _store(root, data, moving_run=None):
    """Every run of the smoke manifest, finished with known numbers, and each GAN set's metrics."""
    n = len(ex.load_dataset("digits", "train", data))
    jobs = study.manifest("smoke", data)
    gans = {(j.config.block, j.config.seed): run_dir(j.config).name for j in jobs if j.kind == "gan"}
    acc = {"classifier": 90.0, "ecgan": 92.0, "shared-resnet": 92.1, "classifier-dcgan": 80.0, "shared-dcgan": 79.0,
           "ecgan-biggan": 93.0}
    for j in jobs:
        c = j.config
        if isinstance(c, GANConfig):
            Run(run_dir(c, root)).init(c)
            Run(run_dir(c, root)).mark_done({"step": c.steps})
        elif isinstance(c, ClassifierConfig):
            e = _error(c, gans, n)
            _done(Run(run_dir(c, root)), c, e, moving=run_dir(c).name == moving_run, step=c.steps, error=e,
                  per_class_accuracy=[100 - e] * 10, **({"train_images": c.subset or n} if c.source == "real" else {}))
        elif isinstance(c, ECGANConfig):
            a = acc[c.method] + 0.2 * c.seed + (1.5 if c.bn_stats == "real" else 0.0) + (
                0.9 if c.threshold_mode == "flexmatch" else 0.0)
            _done(Run(run_dir(c, root)), c, a, "test_acc", moving=run_dir(c).name == moving_run, step=c.steps,
                  epochs=1.0, final_accuracy=a, best_accuracy=a, n_labelled=1000)
        else:
            (root / "metrics").mkdir(exist_ok=True)
            per_class = [0.6] * 10 if j.gans != (gans[("add", 0)],) else [0.03] + [0.7] * 9
            (root / "metrics" / f"{'_'.join(j.gans)}.json").write_text(json.dumps({
                "gans": list(j.gans), "filter": j.filter, "n": 1000, "G_MiB": 0.5 * len(j.gans),
                "feature_fd": 9.0 / len(j.gans), "IS": None, "IS_std": None, "FID": 50.0 / len(j.gans), "fid_n": 2000,
                "fid_reference_n": 10_000, "per_class_fd": [], "duplicate_rate": 0.0,
                "acceptance": {"threshold": 0.9, "per_class": per_class}}))
    return gans


def _verdicts(text):
    return {line.split(" | ")[1]: line.split("**")[-2] for line in text.splitlines()
            if line.startswith("| Pham") or line.startswith("| EC-GAN |") or line.startswith("| this lab")}


def test_results_md_from_a_known_store(tmp_path, smoke3):
    root = tmp_path / "runs"
    gans = _store(root, smoke3)
    # A run of another config in the same store must not leak into the study's rows.
    stray = ex.classifier_config("smoke", None, smoke3, lr=0.5)
    _done(Run(run_dir(stray, root)), stray, 99.0, step=stray.steps, error=99.0, train_images=4000)
    md = report.write(root, tmp_path / "RESULTS.md", tmp_path / "results", "smoke", smoke3)
    text = md.read_text()
    v = _verdicts(text)
    assert v["Samples of one GAN train a worse classifier than the real data (same #steps)"] == "reproduced"
    assert v["Filtering by the pretrained classifier (t = 0.9) lowers the error against the unfiltered stream"] \
        == "reproduced"
    assert v["A uniform mixture of 2 GANs lowers the error against one GAN"] == "reproduced"
    assert v["The concat residual block lowers the error against the add block"] == "not reproduced"
    # 2 GANs (1 MiB) reach 15.1 %, worse than the smallest real subset (800 images, 12 %): not reproduced.
    assert v["A GAN set is smaller than the real data that trains an equally good classifier (same #steps)"] \
        == "not reproduced"
    assert v["IS and FID do not tell which GAN set trains the better classifier"] == \
        "inconclusive (budget: the correlation has 7 GAN set(s) with FID (< 8))"
    assert v["EC-GAN beats the classifier alone"] == "reproduced"
    assert v["Algorithm 1 with the freematch rule (base 0.9) lowers the error of the 1-GAN stream against the fixed "
             "t = 0.9"] == "reproduced"
    assert v["EC-GAN with the flexmatch pseudo-label rule (base t = 0.7) beats EC-GAN with the fixed t"] == "reproduced"
    assert "| freematch | 3 | 18.10 ± 0.10 (3 seeds) | 81.9 |" in text  # error, then class 0's test accuracy
    assert v["EC-GAN beats the shared ResNet discriminator"] == "inconclusive"
    assert v["The shared DCGAN discriminator beats its classifier alone"] == "not reproduced"
    bn = next(line for line in text.splitlines() if "BatchNorm running statistics" in line)
    assert "25 %: 93.70 ± 0.20 (3 seeds) vs 92.20 ± 0.20 (3 seeds)" in bn and bn.endswith("**reproduced** |")
    shared = next(line for line in text.splitlines() if "shared ResNet discriminator's BatchNorm" in line)
    assert "25 %: 93.80 ± 0.20 (3 seeds) vs 92.30 ± 0.20 (3 seeds)" in shared and shared.endswith("**reproduced** |")
    assert f"| {_p(ttest_ind([93.5, 93.7, 93.9], [92.0, 92.2, 92.4], equal_var=False).pvalue)} |" in bn
    assert "20.10 ± 0.10 (3 seeds) vs 4.01 ± 0.01 (3 seeds)" in text  # one GAN vs all 4,000 real images
    assert "31.03 ± 0.95 (3 GANs) vs 21.03 ± 0.95 (3 GANs)" in text  # concat vs add: the spread between GANs
    assert "15.10 ± 0.10 (3 seeds) vs 21.03 ± 0.95 (3 GANs) % (p over the classifier seeds" in text  # 2 GANs vs 1
    assert "99.0" not in text  # the stray run is not the study's
    assert "| 2 GANs |" in text and "11.75 ± 0.23" in text  # Table I with the paper's CIFAR-10 values
    assert "## EC-GAN Table 1 analogue" in text and "88.63" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| add s0 | {gans[('add', 0)]} |"))
    assert row.endswith("| 0 |") and "| 63.3 |" in row  # mean acceptance, and class "0" (3 %) named
    pngs = sorted(p.name for p in (tmp_path / "results").glob("*.png"))
    assert {"error_vs_real_size.png", "threshold_sweep.png", "compression.png", "metric_correlations.png",
            "ecgan_accuracy.png"} <= set(pngs)
    for p in pngs:
        assert f"results/{p}" in text


def test_a_claim_whose_runs_fail_a_rule_gets_no_verdict(tmp_path, smoke3):
    """The real split's seed-1 run still falling at its end: every claim that compares it is inconclusive, with
    the run and its number; the claims that do not use it keep their verdicts."""
    base = ex.classifier_config("smoke", None, smoke3)
    moving = run_dir(base.replace(seed=1)).name
    _store(tmp_path / "runs", smoke3, moving_run=moving)
    s = results.load(tmp_path / "runs", "smoke", smoke3)
    v = {c["claim"]: c["verdict"] for c in report.pham_claims(s)}
    why = f"inconclusive (budget: run {moving} moved 4.00 points between the last two fifths (> 1))"
    assert v["Samples of one GAN train a worse classifier than the real data (same #steps)"] == why
    assert v["Filtering by the pretrained classifier (t = 0.9) lowers the error against the unfiltered stream"] \
        == "reproduced"


def test_an_ecgan_claim_needs_every_run_it_compares_plateaued(tmp_path, smoke3):
    """Rule 1 holds for EC-GAN's claims too, not only for the classifier alone (rule 7): a shared ResNet
    discriminator whose accuracy still moves at its end leaves its claim inconclusive; the others keep theirs."""
    cfg = next(j.config for j in study.manifest("smoke", smoke3)
               if j.kind == "ecgan" and j.config.method == "shared-resnet" and j.config.seed == 1)
    moving = run_dir(cfg).name
    _store(tmp_path / "runs", smoke3, moving_run=moving)
    s = results.load(tmp_path / "runs", "smoke", smoke3)
    v = {c["claim"]: c["verdict"] for c in report.ecgan_claims(s)}
    assert v["EC-GAN beats the shared ResNet discriminator"] == \
        f"inconclusive (budget: run {moving} moved 4.00 points between the last two fifths (> 1))"
    assert v["EC-GAN beats the classifier alone"] == "reproduced"


def test_the_ecgan_figure_keeps_its_legend_off_the_bars():
    import pandas as pd

    d = pd.DataFrame([{"method": m, "fraction": f, "final_accuracy": 50.0 + 8 * i + s}
                      for i, m in enumerate(ex.METHODS) for f in (0.1, 0.3) for s in (0, 1, 2)])
    fig = report.ecgan_bars(d)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())  # outside the axes: it hides no bar
    labels = ax.get_xticklabels() + ax.get_yticklabels() + [ax.xaxis.label, ax.yaxis.label]
    assert not any(legend.overlaps(t.get_window_extent()) for t in labels)  # nor any label
    lo, hi = ax.get_ylim()
    assert lo == 0 and hi >= d["final_accuracy"].max() + 1  # bars from 0; every error bar shows
    from lab.ecgan_tables import METHOD_LABELS

    assert [t.get_text() for t in ax.get_legend().get_texts()] == [METHOD_LABELS[m] for m in ex.METHODS]


def test_the_cpu_time_table_sums_every_job_per_machine_in_a_fixed_column_order(tmp_path):
    """Hours per machine and kind (GAN, classifier, EC-GAN, then the GAN sets' metrics and acceptance jobs from
    their own records), the total last, whichever machine's runs came first; a metrics file that names no
    machine (a run store's cache) is not a ledger job."""
    from types import SimpleNamespace

    avx2 = {"cpu": "AMD EPYC", "cpu_kind": "AVX2", "torch_threads": 1, "gpu": None}
    zen4 = {**avx2, "cpu_kind": "AVX-512 BF16"}
    records = [("classifier", "c1", {"train_seconds": 1800.0, "machine": zen4}),
               ("gan", "g1", {"train_seconds": 3600.0, "machine": avx2}),
               ("classifier", "c2", {"train_seconds": 5400.0, "machine": avx2}),
               ("ecgan", "e1", {"train_seconds": 900.0, "machine": avx2})]
    for folder, name, rec in (("metrics", "m1", {"seconds": 720.0, "machine": zen4}),
                              ("acceptance", "a1", {"seconds": 180.0, "machine": zen4}),
                              ("metrics", "m2", None)):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.json").write_text(json.dumps({"gans": [name], **({"record": rec} if rec else {})}))
    table = report._cpu_time(SimpleNamespace(records=records, root=tmp_path)).splitlines()
    assert table[0] == "| machine | gan | classifier | ecgan | metrics | total (h) |"
    assert table[2] == ("| AMD EPYC, AVX-512 BF16 (1 thread(s) a job) | – | 1 runs, 0.50 h | – | 2 jobs, 0.25 h "
                        "| 0.75 |")
    assert table[3] == "| AMD EPYC, AVX2 (1 thread(s) a job) | 1 runs, 1.00 h | 1 runs, 1.50 h | 1 runs, 0.25 h | – | 2.75 |"
    assert report._cpu_time(SimpleNamespace(records=[], root=tmp_path)) == "(no records)"
