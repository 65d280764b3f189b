"""Table I from a run store: rows, columns, the paper's values beside ours, markdown and LaTeX export."""
import json

import pandas as pd

from lab import tables as tb
from lab.config import GANConfig
from lab.presets import preset
from lab.runs import Run


def _store(root):
    """A run store with GANs (CIFAR-10 add x2, CIFAR-100 concat), their classifiers and one metrics record."""
    for name, cfg in {"c10-a": GANConfig(dataset="cifar10"), "c10-b": GANConfig(dataset="cifar10", seed=1),
                      "c100-c": GANConfig(dataset="cifar100", block="concat")}.items():
        Run(root / "gan" / name).init(cfg)
    base = preset("classifier-cifar10-paper")
    runs = [(("c10-a",), 0.9, 0, 12.0), (("c10-a",), 0.9, 1, 11.0), (("c10-a", "c10-b"), 0.9, 0, 10.0),
            (("c10-a",), None, 0, 20.0), (("c100-c",), 0.9, 0, 38.0)]
    for i, (gans, t, seed, err) in enumerate(runs):
        ds = "cifar100" if gans[0].startswith("c100") else "cifar10"
        cfg = base.replace(dataset=ds, source="gan", gans=gans, threshold=t, filter="f", augment=False, seed=seed)
        run = Run(root / "classifier" / f"run{i}")
        run.init(cfg)
        run.mark_done({"step": cfg.steps, "error": err})
    (root / "metrics").mkdir()
    (root / "metrics" / "1gan-x.json").write_text(json.dumps(
        {"gans": ["c10-a"], "filter": "f", "n": 1000, "G_MiB": 16.42, "feature_fd": 5.0, "IS": None, "IS_std": None,
         "FID": None}))


def _real():
    rows = []
    for match in ("steps", "epochs"):
        for frac, n, err in ((1.0, 50_000, 4.9), (0.2, 10_000, 11.5 if match == "steps" else 14.0)):
            rows.append({"dataset": "cifar10", "match": match, "fraction": frac, "n_real": n, "error": err})
    return pd.DataFrame(rows)


def test_table_i_rows_columns_and_paper_values(tmp_path):
    _store(tmp_path)
    results = pd.DataFrame(tb.classifier_results(tmp_path))
    t = tb.table_i(results, tmp_path, threshold=0.9, real=_real())
    assert list(t.columns) == ["dataset", "block", "rows", "size (MiB)", "IS", "FID", "feature FD", "error (%)",
                               "paper size (MB)", "paper IS", "paper FID", "paper error (%)", "paper dataset"]
    assert list(zip(t["dataset"], t["block"], t["rows"])) == [
        ("cifar10", "add", "1 GAN"), ("cifar10", "add", "2 GANs"), ("cifar100", "concat", "1 GAN"),
        ("cifar10", "real", "50,000 real, same #steps"), ("cifar10", "real", "10,000 real, same #steps"),
        ("cifar10", "real", "50,000 real, same #epochs"), ("cifar10", "real", "10,000 real, same #epochs"),
    ]
    one = t.iloc[0]
    assert one["error (%)"] == "11.50 ± 0.71 (2 runs)"  # the unfiltered run (threshold None) is not pooled in
    assert one["IS"] == "not computed" and one["FID"] == "not computed" and one["feature FD"] == 5.0
    assert one["size (MiB)"] == 16.42
    assert (one["paper size (MB)"], one["paper IS"], one["paper FID"], one["paper error (%)"]) == (
        16.6, "8.62 ± 0.13", "6.84 ± 0.69", "11.75 ± 0.23")
    assert t.iloc[1]["paper error (%)"] == "10.32 ± 0.50" and t.iloc[1]["error (%)"] == "10.00"
    assert t.iloc[2]["paper error (%)"] == "37.78 ± 0.28"
    assert t.iloc[3]["paper error (%)"] == 4.83 and t.iloc[3]["paper IS"] == 10.2 and t.iloc[3]["paper size (MB)"] == 153
    assert t.iloc[4]["paper error (%)"] == 11.09 and t.iloc[6]["paper error (%)"] == 13.76


def test_gan_set_rows_give_the_cas_and_correlations_need_three_sets(tmp_path):
    _store(tmp_path)
    sets = tb.gan_set_rows(pd.DataFrame(tb.classifier_results(tmp_path)), tmp_path, threshold=0.9)
    one = sets[sets["gan_names"] == ("c10-a",)].iloc[0]
    assert one["CAS"] == 80.0 and one["error"] == 11.5 and one["error_runs"] == 2
    corr = {r["metric"]: r for r in tb.correlations(sets)}
    assert corr["CAS"]["GAN sets"] == 1 and corr["CAS"]["spearman rho"] is None  # too few sets for a rank correlation


def test_metrics_records_of_one_set_are_told_apart_by_filter_and_size(tmp_path):
    """Records of the same GAN set with another filter or n do not overwrite each other: each classifier
    row takes the record of its own filter, the one of the most samples."""
    _store(tmp_path)
    for name, filt, n, fd in (("y", "f", 5000, 3.0), ("z", "another-filter", 9000, 7.0), ("w", "f", 200, 9.0)):
        (tmp_path / "metrics" / f"1gan-{name}.json").write_text(json.dumps(
            {"gans": ["c10-a"], "filter": filt, "n": n, "G_MiB": 16.42, "feature_fd": fd, "IS": None, "FID": None}))
    sets = tb.gan_set_rows(pd.DataFrame(tb.classifier_results(tmp_path)), tmp_path, threshold=0.9)
    assert sets[sets["gan_names"] == ("c10-a",)].iloc[0]["feature FD"] == 3.0


def test_paper_sizes_match_by_fraction_or_by_count():
    assert tb.paper_size(800, 4000) == 10_000 and tb.paper_size(4000, 4000) == 50_000  # digits: fractions
    assert tb.paper_size(10_000, 60_000) == 10_000 and tb.paper_size(50_000, 60_000) == 50_000  # Fashion: counts
    assert tb.paper_size(60_000, 60_000) == 50_000 and tb.paper_size(7_000, 60_000) is None


def test_export_writes_markdown_and_latex(tmp_path):
    _store(tmp_path)
    t = tb.table_i(pd.DataFrame(tb.classifier_results(tmp_path)), tmp_path, threshold=0.9, real=_real())
    md, tex = tb.export_table(t, "table_I", tmp_path / "out")
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| dataset | block | rows |") and len(lines) == 2 + len(t)
    assert "| cifar10 | add | 1 GAN | 16.42 | not computed |" in lines[2]
    latex = tex.read_text()
    assert latex.startswith("\\begin{tabular}") and "\\toprule" in latex and "11.75 ± 0.23" in latex


def test_of_gan_set_keeps_only_that_sets_classifiers(tmp_path):
    _store(tmp_path)
    results = pd.DataFrame(tb.classifier_results(tmp_path))
    a, b = Run(tmp_path / "gan" / "c10-a"), Run(tmp_path / "gan" / "c10-b")
    one = tb.of_gan_set(results, [a])
    assert sorted(one["error"]) == [11.0, 12.0, 20.0]  # not the 2-GAN set's, not the CIFAR-100 GAN's
    assert list(tb.of_gan_set(results, [b, a])["error"]) == [10.0]  # order of the set does not matter
    assert len(tb.of_gan_set(results, [a], Run(tmp_path / "classifier" / "f"))) == 3
    assert len(tb.of_gan_set(results, [a], Run(tmp_path / "classifier" / "another-filter"))) == 0
    assert len(tb.of_gan_set(results, [b])) == 0
    steps = preset("classifier-cifar10-paper").steps
    assert len(tb.of_gan_set(results, [a], steps=steps)) == 3 and len(tb.of_gan_set(results, [a], steps=steps + 1)) == 0
    assert len(tb.of_gan_set(pd.DataFrame([]), [a], steps=steps)) == 0  # a store without classifiers yet


def test_correlation_p_values_are_exact_for_few_sets():
    """Perfect rank order of n sets: exactly 2 of the n! pairings are as extreme, so p = 2 / n!."""
    import itertools
    import math

    import numpy as np
    from scipy.stats import spearmanr

    for n in (3, 4, 5):
        err = np.arange(n, dtype=float)
        sets = pd.DataFrame({"error": err, "CAS": 100 - 3 * err, "feature FD": err ** 2})
        corr = {r["metric"]: r for r in tb.correlations(sets)}
        assert corr["CAS"]["spearman rho"] == -1.0 and corr["feature FD"]["spearman rho"] == 1.0
        assert corr["CAS"]["p"] == float(f"{2 / math.factorial(n):.3g}") and corr["IS"]["GAN sets"] == 0
    # an imperfect order against brute-force enumeration of every pairing
    err, fd = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0]), np.array([2.0, 7.0, 1.0, 8.0, 2.5, 8.5])
    rho = spearmanr(err, fd).statistic
    perms = [spearmanr(err, np.array(q)).statistic for q in itertools.permutations(fd)]
    want = np.mean([abs(r) >= abs(rho) - 1e-12 for r in perms])
    got = tb.correlations(pd.DataFrame({"error": err, "feature FD": fd}))
    assert {r["metric"]: r for r in got}["feature FD"]["p"] == float(f"{want:.3g}")


def test_rule_table_keeps_each_rules_runs_apart():
    import pandas as pd

    from lab.charts import per_class_accuracy
    from lab.tables import rule_table

    rows = [{"source": "gan", "threshold": 0.9, "threshold_mode": m, "seed": s, "error": e + s, "per_class": [a, 100 - a]}
            for m, e, a in (("fixed", 20.0, 90.0), ("freematch", 18.0, 70.0)) for s in (0, 1)]
    rows.append({"source": "gan", "threshold": None, "threshold_mode": "fixed", "seed": 0, "error": 30.0,
                 "per_class": [50.0, 50.0]})
    t = rule_table(pd.DataFrame(rows), 0.9, ("freematch", "quantile"))
    assert list(t["rule"]) == ["fixed", "freematch", "quantile"] and list(t["runs"]) == [2, 2, 0]
    assert t.loc[0, "error (%)"] == "20.50 ± 0.71 (2 seeds)" and t.loc[1, "per_class"] == [70.0, 30.0]
    assert t.loc[2, "per_class"] is None and t.loc[2, "error (%)"] == "–"
    fig = per_class_accuracy(t, ["a", "b"])
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # two rules with runs, two classes
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()  # clear of the bars and of every label
    assert not legend.overlaps(ax.get_window_extent())
    assert not any(legend.overlaps(t.get_window_extent()) for t in ax.get_xticklabels() + [ax.xaxis.label, ax.yaxis.label])


def test_ecgan_rule_table_and_the_papers_table_keep_the_rules_apart():
    import pandas as pd

    from lab.ecgan_tables import ecgan_rule_table, ecgan_table

    rows = [{"method": "ecgan", "fraction": f, "threshold_mode": m, "seed": s, "final_accuracy": a + s}
            for f in (0.1, 0.3) for m, a in (("fixed", 80.0), ("freematch", 85.0)) for s in (0, 1)]
    t = ecgan_rule_table(pd.DataFrame(rows), ("freematch", "flexmatch"))
    assert list(t.columns) == ["EC-GAN (fixed t)", "EC-GAN, freematch", "EC-GAN, flexmatch"]
    assert t.loc["10%", "EC-GAN (fixed t)"] == "80.50 ± 0.71 (2 seeds)" and t.loc["30%", "EC-GAN, freematch"] == \
        "85.50 ± 0.71 (2 seeds)" and t.loc["10%", "EC-GAN, flexmatch"] == "–"
    paper = ecgan_table(pd.DataFrame(rows))
    assert paper.loc["10%", "EC-GAN"] == "80.50 ± 0.71 (2 seeds)"  # the fixed rule's runs only


def test_the_metric_scatter_titles_fit_their_panels():
    """One panel per metric, ρ, n and p in its title on two lines; a metric with too few sets reads "–"; no title
    runs into its neighbour's."""
    import pandas as pd

    from lab.charts import metric_scatter

    sets = pd.DataFrame({"error": [30.0, 25.0, 20.0], "IS": [None] * 3, "FID": [50.0, 40.0, 30.0],
                         "feature FD": [9.0, 8.0, 7.0], "CAS": [60.0, 61.0, 62.0], "GANs": [1, 2, 4]})
    corr = [{"metric": "FID", "spearman rho": 1.0, "GAN sets": 3, "p": 0.3333},
            {"metric": "IS", "spearman rho": None, "GAN sets": 0, "p": None}]
    fig = metric_scatter(sets, corr)
    fig.canvas.draw()
    titles = [ax.title for ax in fig.axes[:4]]
    assert titles[1].get_text() == "ρ = 1\n(n = 3, p = 0.33)" and titles[0].get_text() == "ρ = –\n(n = 0, p = –)"
    boxes = [t.get_window_extent() for t in titles]
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def test_the_metric_scatter_colours_a_set_size_alike_in_every_panel():
    """A panel that lacks the largest set (no unfiltered stream of it: no CAS) colours the 2-GAN set as the
    others do; the legend names each size and lies beside the panels, over no point."""
    import numpy as np
    import pandas as pd

    from lab.charts import metric_scatter

    sets = pd.DataFrame({"error": [30.0, 25.0, 20.0], "IS": [None] * 3, "FID": [50.0, 40.0, 30.0],
                         "feature FD": [9.0, 8.0, 7.0], "CAS": [60.0, 61.0, None], "GANs": [1, 2, 4]})
    fig = metric_scatter(sets, [])
    fig.canvas.draw()

    def colours(ax):
        return {tuple(np.round(c.get_offsets()[0], 3)): tuple(c.get_facecolor()[0]) for c in ax.collections}

    fid, cas = colours(fig.axes[1]), colours(fig.axes[3])
    assert len(fid) == 3 and len(cas) == 2 and len(set(fid.values())) == 3
    assert cas[(61.0, 25.0)] == fid[(40.0, 25.0)] and cas[(60.0, 30.0)] == fid[(50.0, 30.0)]
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["1 GAN", "2 GANs", "4 GANs"]
    assert not any(legend.get_window_extent().overlaps(ax.get_window_extent()) for ax in fig.axes)
