"""lab.results: the verdict rule against scipy, and RESULTS.md written from a fabricated run store of the smoke
profile whose every number is known (the selection of the study's runs, the tables, the claims, the figures)."""
import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import ttest_ind

from lab import experiments as ex
from lab import profiles, results
from lab.runs import Run, run_dir

DATA = "data"


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


def _done(run: Run, cfg, **summary):
    run.init(cfg)
    run.mark_done(summary)
    return run


def _store(root, digits_train):
    """The smoke profile's notebooks' runs with made-up results: real errors fall with size; one GAN 20 %,
    two GANs 15 % (so the mixture claim holds), concat 30 % (so the concat claim fails), unfiltered 25 %."""
    P = profiles.get("smoke")
    n = len(digits_train)
    gans = {}
    for block, seeds in (("add", range(max(P.gan_counts))), ("concat", (0,))):
        for s in seeds:
            cfg = ex.gan_config("smoke", None, block, s, DATA)
            gans[(block, s)] = _done(Run(run_dir(cfg, root)), cfg, step=cfg.steps)
    filt_cfg = ex.filter_config("smoke", None, DATA)
    filt = _done(Run(run_dir(filt_cfg, root)), filt_cfg, step=filt_cfg.steps, error=3.0, train_images=n)
    base = ex.classifier_config("smoke", None, DATA)
    for match in ("steps", "epochs"):
        for cfg in ex.real_subset_configs(base, n, match, P.real_fractions):
            size = cfg.subset or n
            for s in (0, 1, 2):
                c = cfg.replace(seed=s)
                _done(Run(run_dir(c, root)), c, step=c.steps, error=2.0 + 8000 / size + 0.01 * s, train_images=size)
    add = [gans[("add", s)] for s in range(2)]
    for gan_runs, t, seeds, err in (
        (add[:1], 0.9, (0, 1, 2), 20.0), (add[:1], None, (0, 1, 2), 25.0), (add, 0.9, (0, 1, 2), 15.0),
        ([gans[("concat", 0)]], 0.9, (0, 1, 2), 30.0),
    ):
        for s in seeds:
            cfg = ex.gan_classifier_config(base.replace(seed=s), gan_runs, filt, t)
            _done(Run(run_dir(cfg, root)), cfg, step=cfg.steps, error=err + 0.1 * s)
    for k, fd in ((1, 9.0), (2, 4.0)):
        names = sorted(r.path.name for r in add[:k])
        (root / "metrics").mkdir(exist_ok=True)
        (root / "metrics" / f"{k}gan.json").write_text(json.dumps({
            "gans": names, "filter": filt.path.name, "n": 1000, "G_MiB": 0.5 * k, "feature_fd": fd, "IS": None,
            "IS_std": None, "FID": 50.0 / k, "per_class_fd": [], "duplicate_rate": 0.0}))
    ec_base = ex.ecgan_config("smoke", DATA, lam=0.1, threshold=0.7)
    acc = {"classifier": 90.0, "ecgan": 92.0, "shared-resnet": 92.1, "classifier-dcgan": 80.0, "shared-dcgan": 79.0,
           "ecgan-biggan": 93.0}
    for cfg in ex.ecgan_grid(ec_base, P.ecgan_fractions, ex.METHODS, (0, 1, 2)):
        a = acc[cfg.method] + 0.2 * cfg.seed
        _done(Run(run_dir(cfg, root)), cfg, step=cfg.steps, epochs=1.0, final_accuracy=a, best_accuracy=a,
              n_labelled=1000)
    for cfg in ex.ecgan_table_grid("smoke", DATA, 0.1, 0.7):  # the BN ablation: 1.5 points above EC-GAN
        if cfg.bn_stats == "real":
            a = acc["ecgan"] + 1.5 + 0.2 * cfg.seed
            _done(Run(run_dir(cfg, root)), cfg, step=cfg.steps, epochs=1.0, final_accuracy=a, best_accuracy=a,
                  n_labelled=1000)
    return gans


def test_results_md_from_a_known_store(tmp_path, digits_train, monkeypatch):
    smoke = profiles.get("smoke")  # with three seeds everywhere, as the study has
    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(smoke, ecgan_seeds=(0, 1, 2),
                                                                        classifier_seeds=(0, 1, 2)))
    root = tmp_path / "runs"
    _store(root, digits_train)
    # A run of another config in the same store must not leak into the study's rows.
    stray = ex.classifier_config("smoke", None, DATA, lr=0.5)
    _done(Run(run_dir(stray, root)), stray, step=stray.steps, error=99.0, train_images=len(digits_train))
    # The demo's timings.json (written beside the run store) with the machine it ran on.
    where = {"cpu": "Test CPU 9000", "torch_threads": 2, "gpu": None, "torch": "2.99", "commit": "abc1234"}
    (tmp_path / "timings.json").write_text(json.dumps(
        {"00_data.ipynb": {"seconds": 12.0, "machine": where}, "01_biggan_training.ipynb": {"seconds": 348.0, "machine": where}}))
    md = results.write(root, tmp_path / "RESULTS.md", tmp_path / "results", "smoke", DATA)
    text = md.read_text()
    assert "Test CPU 9000, 2 torch threads, torch 2.99, commit abc1234" in text
    assert "| 01_biggan_training.ipynb | 5.8 min |" in text and "| **total** | **0.10 h** |" in text
    verdicts = {line.split(" | ")[1]: line.split("**")[-2] for line in text.splitlines() if line.startswith("| Pham")
                or line.startswith("| EC-GAN |")}
    assert verdicts["Samples of one GAN train a worse classifier than the real data (same #steps)"] == "reproduced"
    assert verdicts["Filtering by the pretrained classifier (t = 0.9) lowers the error against the unfiltered stream"] \
        == "reproduced"
    assert verdicts["A uniform mixture of 2 GANs lowers the error against one GAN"] == "reproduced"
    assert verdicts["The concat residual block lowers the error against the add block"] == "not reproduced"
    assert verdicts["EC-GAN beats the classifier alone"] == "reproduced"
    assert verdicts["EC-GAN beats the shared ResNet discriminator"] == "inconclusive"
    assert verdicts["The shared DCGAN discriminator beats its classifier alone"] == "not reproduced"
    bn = next(line for line in text.splitlines() if "BatchNorm running statistics" in line)
    assert "25 %: 93.70 ± 0.20 (n=3) vs 92.20 ± 0.20 (n=3)" in bn and bn.endswith("**reproduced** |")
    assert f"| {results._p(ttest_ind([93.5, 93.7, 93.9], [92.0, 92.2, 92.4], equal_var=False).pvalue)} |" in bn
    # 2 GANs (1 MiB) reach 15.1 %, worse than the smallest real subset (800 images, 12 %): not reproduced.
    assert verdicts["A GAN set is smaller than the real data that trains an equally good classifier (same #steps)"] \
        == "not reproduced"
    assert "20.10 ± 0.10 (n=3) vs 4.01 ± 0.01 (n=3)" in text  # one GAN vs all 4,000 real images
    assert "99.0" not in text  # the stray run is not the study's
    assert "| 2 GANs |" in text and "11.75 ± 0.23" in text  # Table I with the paper's CIFAR-10 values
    assert "## EC-GAN Table 1 analogue" in text and "88.63" in text
    pngs = sorted(p.name for p in (tmp_path / "results").glob("*.png"))
    assert {"error_vs_real_size.png", "threshold_sweep.png", "compression.png", "metric_correlations.png",
            "ecgan_accuracy.png"} <= set(pngs)
    for p in pngs:
        assert f"results/{p}" in text
