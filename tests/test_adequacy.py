"""lab.adequacy: each rule on records that pass and records that fail, with the number it names."""
import numpy as np
import pytest

from lab import adequacy as aq


def _evals(values, steps=1000, every=100):
    return list(zip(range(every, steps + 1, every), values))


def test_plateau_compares_the_last_two_fifths():
    # Steps 700, 800 form the fifth before the last ((600, 800]); 900, 1000 the last.
    flat = _evals([30, 20, 15, 12, 11, 10, 9.0, 9.5, 9.2, 8.9])
    moved, why = aq.plateau(flat, 1000)
    assert why is None and moved == pytest.approx(abs(np.mean([9.2, 8.9]) - np.mean([9.0, 9.5])))
    falling = _evals([30, 25, 20, 18, 16, 14, 12.0, 11.0, 9.0, 8.5])
    moved, why = aq.plateau(falling, 1000)
    assert moved == pytest.approx(2.75) and why == "moved 2.75 points between the last two fifths (> 1)"
    assert aq.plateau(_evals([10.0, 11.0], 1000, 500), 1000)[1] == "has no evaluation in the fifth before the last of its 1,000 steps"
    assert aq.plateau([], 1000)[1] == "has no evaluation in the last fifth of its 1,000 steps"
    edge = [(800, 10.0), (1000, 11.0)]  # exactly 1 point: passes
    assert aq.plateau(edge, 1000)[1] is None


def test_plateaued_names_the_run_that_moved_most_and_counts_the_others():
    runs = [{"run": "a", "steps": 1000, "evals": _evals([9] * 10)},
            {"run": "b", "steps": 1000, "evals": _evals([20] * 7 + [18, 12, 11])},
            {"run": "c", "steps": 1000, "evals": _evals([40] * 7 + [30, 12, 10])},
            {"run": "d", "steps": 1000, "evals": [(1000, 9.0)]}]
    assert aq.plateaued(runs[:1], "run") is None
    assert aq.plateaued(runs[:2], "run") == "run b moved 7.50 points between the last two fifths (> 1)"
    assert aq.plateaued(runs[:3], "run") == \
        "2 of 3 runs failed it, the most: run c moved 24.00 points between the last two fifths (> 1)"
    assert aq.plateaued(runs, "classifier-alone run") == ("3 of 4 classifier-alone runs failed it, the most: "
                                                          "classifier-alone run d has no evaluation in the fifth before "
                                                          "the last of its 1,000 steps")


def test_real_baseline():
    assert aq.real_baseline([8.1, 8.3, 8.9], 60_000) is None
    assert aq.real_baseline([9.5, 9.0, 9.1], 60_000) == \
        "the 60,000-image real classifier reaches 9.20 % error (> 9 %, mean of 3 seeds)"
    assert aq.real_baseline([8.0, 8.0], 60_000) == "the 60,000-image real classifier has 2 seed(s) (< 3)"


def test_budget_in_epochs_of_the_largest_subset():
    assert aq.budget(4700, 64, 60_000) is None  # 5.01 epochs
    assert aq.budget(300, 64, 60_000) == \
        "the same-#steps budget is 0.32 epochs of the largest real subset (60,000 images; < 5)"


def test_gan_seeds_and_quality():
    assert aq.gan_seeds("concat", 3) is None
    assert aq.gan_seeds("concat", 1) == "the concat arm has 1 GAN seed(s) (< 3)"
    good = [0.997, 0.85, 0.183, 0.003, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5]
    assert aq.gan_quality({"g0": good}) is None  # mean 60.3 %
    bad = [0.374] * 10
    assert aq.gan_quality({"g0": good, "g1": bad, "g2": None}) == (
        "GAN g1: EMA samples accepted at 37.4 % on average over classes (< 50 %); GAN g2: acceptance not measured")
    assert aq.starved_classes(good, list("abcdefghij")) == ["d"]
    assert aq.starved_classes([float("nan"), 0.01], ["x", "y"]) == ["y"]


def test_fid_sets():
    ok = [{"FID": 50.0 + i, "fid_n": 2000, "fid_reference_n": 10_000} for i in range(8)]
    assert aq.fid_sets(ok) is None
    assert aq.fid_sets(ok[:4]) == "the correlation has 4 GAN set(s) with FID (< 8)"
    assert aq.fid_sets(ok[:7] + [{"FID": None}]) == "the correlation has 7 GAN set(s) with FID (< 8)"
    assert aq.fid_sets(ok[:7] + [{"FID": 1.0, "fid_n": 500, "fid_reference_n": 10_000}]) == "FID from 500 samples (< 2,000)"
    assert aq.fid_sets(ok[:7] + [{"FID": 1.0, "fid_n": 2000, "fid_reference_n": 1000}]) == \
        "FID against 1,000 real images (< 10,000)"


def test_same_iterations_and_the_verdict():
    assert aq.same_iterations([{"run": "a", "steps": 1500}, {"run": "b", "steps": 1500}]) is None
    assert aq.same_iterations([{"run": "a", "steps": 120}, {"run": "b", "steps": 1500}]) == \
        "the methods ran different numbers of iterations (120, 1500)"
    assert aq.verdict("reproduced", [None, None]) == "reproduced"
    assert aq.verdict("not reproduced", [None, "x (< 3)", "y"]) == "inconclusive (budget: x (< 3); y)"
    assert aq.verdict("missing runs", ["x"]) == "missing runs"
