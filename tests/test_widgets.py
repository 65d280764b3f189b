"""The threshold explorer, driven headless: the counts it shows are Algorithm 1's."""
import pandas as pd
import pytest
import torch

from lab.algorithm1 import accept
from lab.widgets import ThresholdExplorer


@pytest.fixture
def pool():
    g = torch.Generator().manual_seed(0)
    C, per = 3, 20
    labels = torch.arange(C).repeat_interleave(per)
    probs = torch.distributions.Dirichlet(torch.full((C,), 0.7)).sample((C * per,))
    probs[labels == 1] = 0.1 * probs[labels == 1] + 0.9 * torch.tensor([0.0, 1.0, 0.0])  # class 1: confident
    images = torch.randint(0, 256, (C * per, 3, 32, 32), generator=g, dtype=torch.uint8)
    return {"images": images, "labels": labels, "probs": probs, "generator": torch.zeros(C * per, dtype=torch.int64)}


def test_slider_updates_counts_to_what_accept_gives(pool, tmp_path):
    ex = ThresholdExplorer(pool, ["a", "b", "c"], threshold=0.5, fig_dir=tmp_path)
    for t in (0.3, 0.7, 0.95):
        ex.slider.value = t
        keep = accept(pool["probs"], pool["labels"], t)
        right = pool["probs"].argmax(1) == pool["labels"]
        for c in range(3):
            m = pool["labels"] == c
            assert ex.counts["accepted"][c] == int((keep & m).sum())
            assert ex.counts["wrong_class"][c] == int((~right & m).sum())
            assert ex.counts["low_confidence"][c] == int((right & ~keep & m).sum())
        assert f"accepted {int(keep.sum())} / 60" in ex.rate.value
    ex.slider.value = 0.0  # threshold 0 still drops every wrong-class sample
    right = pool["probs"].argmax(1) == pool["labels"]
    assert ex.counts["accepted"] == [int((right & (pool["labels"] == c)).sum()) for c in range(3)]
    assert sum(ex.counts["accepted"]) < 60 and "at threshold 0.00" in ex.rate.value
    ex.filter.value = False  # the unfiltered stream: an explicit state, not a slider position
    assert ex.counts["accepted"] == [20, 20, 20] and ex.threshold is None
    assert "unfiltered" in ex.rate.value and ex.slider.disabled
    assert [p.name for p in ex.export()] == ["threshold_explorer_unfiltered.pdf", "threshold_explorer_unfiltered.png"]
    ex.filter.value = True
    assert ex.threshold == 0.0 and not ex.slider.disabled


def test_explorer_can_start_unfiltered(pool, tmp_path):
    ex = ThresholdExplorer(pool, ["a", "b", "c"], threshold=None, fig_dir=tmp_path)
    assert not ex.filter.value and ex.threshold is None and ex.counts["accepted"] == [20, 20, 20]


def test_class_selector_and_export(pool, tmp_path):
    results = pd.DataFrame([{"source": "gan", "gans": 1, "threshold": t, "error": e} for t, e in ((None, 9.0), (0.5, 7.0))])
    ex = ThresholdExplorer(pool, ["a", "b", "c"], results=results, threshold=0.5, fig_dir=tmp_path, name="ex")
    ex.klass.value = 1
    keep = accept(pool["probs"], pool["labels"], 0.5)
    n1 = int((keep & (pool["labels"] == 1)).sum())
    assert f"class b: {n1} / 20" in ex.rate.value
    paths = ex.export()
    assert [p.name for p in paths] == ["ex_t0.50.pdf", "ex_t0.50.png"] and all(p.exists() for p in paths)
    assert "saved" in ex.saved.value


def test_the_picture_is_the_whole_current_figure_and_pyplot_keeps_none(pool, tmp_path):
    """Each update swaps in one PNG of the complete figure (the bars' three layers, the error panel, both grids),
    and no figure is left with pyplot, whose inline backend would show it again under the widget."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    before = plt.get_fignums()
    ex = ThresholdExplorer(pool, ["a", "b", "c"], threshold=0.5, fig_dir=tmp_path)
    first = ex.image.value
    ex.klass.value = 2
    assert ex.image.value != first and ex.image.value == ex.png()  # the shown picture is the current figure's
    assert plt.get_fignums() == before
    bars = ex.fig.axes[0]
    assert len(bars.containers) == 3 and len(ex.fig.axes) == 5  # accepted / wrong class / below; 2x3 panels
    assert ex.fig.axes[2].get_title().startswith("accepted") and ex.fig.axes[3].get_title().startswith("rejected")
    assert ex.fig.axes[4].get_title() == "c: p[y]"  # the chosen class's confidence histogram
    w, h = Image.open(io.BytesIO(ex.image.value)).size
    fw, fh = ex.fig.get_size_inches() * 100
    assert 0.8 * fw < w < 1.3 * fw and 0.8 * fh < h < 1.3 * fh  # the whole figure (tight bbox at 100 dpi)


@pytest.mark.parametrize("mode", ["quantile", "freematch", "flexmatch"])
def test_the_rule_dropdown_replays_the_pool_through_the_rule(pool, tmp_path, mode):
    from lab.widgets import adaptive_mask

    ex = ThresholdExplorer(pool, ["a", "b", "c"], threshold=0.5, fig_dir=tmp_path)
    ex.mode.value = mode
    keep, wrong, levels = adaptive_mask(pool, mode, 0.5)
    for c in range(3):
        m = pool["labels"] == c
        assert ex.counts["accepted"][c] == int((keep & m).sum())
        assert ex.counts["wrong_class"][c] == int((wrong & m).sum())
    assert torch.equal(ex.class_thresholds, levels) and f"with the {mode} rule at base 0.50" in ex.rate.value
    for c in range(3):  # the histogram of the chosen class shows the threshold that class is judged by
        ex.klass.value = c
        hist = ex.fig.axes[4]
        assert hist.get_title() == f"{'abc'[c]}: p[y]" and hist.get_lines()[0].get_xdata()[0] == pytest.approx(float(levels[c]))
        m = pool["labels"] == c
        assert sum(p.get_height() for p in hist.patches) == int(m.sum())  # every sample of the class, once
    assert ex.export()[0].name == f"threshold_explorer_t0.50_{mode}.pdf"
    ex.mode.value = "fixed"
    assert ex.class_thresholds is None and "at threshold 0.50" in ex.rate.value
    assert ex.fig.axes[4].get_lines()[0].get_xdata()[0] == 0.5
    ex.filter.value = False  # unfiltered: no threshold to draw
    assert not ex.fig.axes[4].get_lines()
