"""Interactive explorers for notebooks (ipywidgets), drivable headless for tests."""
import io
import threading

import ipywidgets as W
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import charts, plots
from .data import to_float
from .algorithm1 import FilterStats, accept, pool_stats
from .profiles import HEADLINE_THRESHOLD
from .thresholds import MODES, rule


def adaptive_mask(pool: dict, mode: str, t: float, batch: int = 256, seed: int = 0):
    """A class-adaptive rule (`lab.thresholds`) on a cached pool: the pool replayed as a stream (a seeded order,
    batches of `batch`), each batch judged by the rule with the state the batches before it left. Returns
    (keep, wrong_class) masks in the pool's order and the rule's per-class thresholds at the end."""
    r = rule(mode, pool["probs"].shape[1], t)
    order = torch.randperm(len(pool["labels"]), generator=torch.Generator().manual_seed(seed))
    keep = torch.zeros(len(order), dtype=torch.bool)
    wrong = torch.zeros(len(order), dtype=torch.bool)
    for i in range(0, len(order), batch):
        idx = order[i: i + batch]
        keep[idx], wrong[idx] = r.judge(pool["probs"][idx], pool["labels"][idx])
    return keep, wrong, r.thresholds()


class ThresholdExplorer(W.VBox):
    """Algorithm 1's threshold on a cached pool of generated samples and their classifier probabilities.

    Moving the slider (or choosing a class) recomputes, without re-running the GAN: the per-class
    accepted / wrong class / below threshold bars, the overall acceptance rate, grids of accepted and
    rejected samples of the chosen class, and (when `results` holds GAN-sample classifier runs) their
    measured test error against the threshold. The "filter" checkbox switches Algorithm 1 off (the
    unfiltered stream, threshold None); on, threshold 0 still rejects every wrong-class sample. The "rule"
    dropdown picks the paper's fixed threshold or a class-adaptive rule (`lab.thresholds`; the slider is then
    its base level, the pool is replayed through it as a stream, `adaptive_mask`), and the text gives the
    per-class thresholds it reached; the chosen class's p[y] histogram shows the threshold it is judged by.

    Args:
        pool: `lab.generation.sample_pool(...)` output (images, labels, probs).
        class_names: names of the classes.
        results: DataFrame of `lab.experiments.classifier_results`, or None.
        threshold: the slider's start, or None to start unfiltered (the slider then starts at the papers' 0.9,
            `lab.profiles.HEADLINE_THRESHOLD`).
        fig_dir, name: where and under which name the export button writes the figure.
    """

    def __init__(self, pool: dict, class_names, results=None, threshold: float | None = HEADLINE_THRESHOLD,
                 fig_dir=None, name: str = "threshold_explorer", grid: int = 16):
        self.pool, self.class_names, self.fig_dir, self.name, self.grid = pool, list(class_names), fig_dir, name, grid
        self.results = None
        if results is not None and len(results):
            self.results = results[(results["source"] == "gan") & (results["gans"] == 1)]
        start = HEADLINE_THRESHOLD if threshold is None else threshold
        self.slider = W.FloatSlider(value=start, min=0.0, max=0.99, step=0.01,
                                    description="threshold", continuous_update=False, readout_format=".2f")
        self.filter = W.Checkbox(value=threshold is not None, description="filter", indent=False)
        self.klass = W.Dropdown(options=[(f"{i}: {n}", i) for i, n in enumerate(self.class_names)], value=0,
                                description="class")
        self.mode = W.Dropdown(options=list(MODES), value="fixed", description="rule")
        self.class_thresholds = None  # the adaptive rule's per-class thresholds (None: fixed or unfiltered)
        self.rate = W.HTML()
        self.button = W.Button(description="Export figure", icon="download")
        self.saved = W.HTML()
        # The figure is drawn outside pyplot (no figure manager: the inline backend does not show it again at the
        # end of the cell) and shown as one PNG, swapped in whole by each update; a lock serialises updates.
        self.image = W.Image(format="png")
        self.fig = None
        self._lock = threading.Lock()
        super().__init__([W.HBox([self.filter, self.slider, self.mode, self.klass, self.button]), self.rate, self.saved,
                          self.image])
        self.mode.observe(lambda _: self.update(), names="value")
        self.filter.observe(lambda _: self.update(), names="value")
        self.slider.observe(lambda _: self.update(), names="value")
        self.klass.observe(lambda _: self.update(), names="value")
        self.button.on_click(lambda _: self.export())
        self.update()

    @property
    def threshold(self) -> float | None:
        """The threshold shown: the slider's value, or None when the filter is off."""
        return self.slider.value if self.filter.value else None

    def update(self) -> None:
        """Recompute the counts for the current threshold and class, and redraw."""
        with self._lock:
            t, c = self.threshold, self.klass.value
            self.slider.disabled = t is None
            labels, mode = self.pool["labels"], self.mode.value
            self.class_thresholds = None
            if t is None or mode == "fixed":
                self.stats = pool_stats(self.pool, t)
                self.mask = torch.ones_like(labels, dtype=torch.bool) if t is None else accept(self.pool["probs"], labels, t)
            else:
                self.mask, wrong, self.class_thresholds = adaptive_mask(self.pool, mode, t)
                self.stats = FilterStats.zeros(len(self.class_names)).count(labels, self.mask, wrong)
            drawn, acc = int(self.stats.drawn.sum()), int(self.stats.accepted.sum())
            where = "unfiltered" if t is None else f"at threshold {t:.2f}" if mode == "fixed" else (
                f"with the {mode} rule at base {t:.2f}; per-class thresholds "
                + ", ".join(f"{n} {v:.2f}" for n, v in zip(self.class_names, self.class_thresholds.tolist())))
            self._draw(t, c)  # the picture first: the text is the sign that an update is complete
            self.rate.value = (
                f"<b>accepted {acc:,} / {drawn:,} = {acc / drawn:.1%}</b> {where}; "
                f"class {self.class_names[c]}: {int(self.stats.accepted[c])} / {int(self.stats.drawn[c])} "
                f"(wrong class {int(self.stats.wrong_class[c])}, below threshold {int(self.stats.low_confidence[c])})"
            )

    def class_threshold(self, c: int) -> float | None:
        """The threshold class `c` is judged by now: the slider's (fixed rule), the adaptive rule's, None unfiltered."""
        if self.threshold is None:
            return None
        return self.threshold if self.class_thresholds is None else float(self.class_thresholds[c])

    @property
    def counts(self) -> dict:
        """Per-class counts currently shown: {"accepted": [...], "wrong_class": [...], "low_confidence": [...]}."""
        return {k: getattr(self.stats, k).tolist() for k in ("drawn", "accepted", "wrong_class", "low_confidence")}

    def _draw(self, t: float, c: int) -> None:
        fig = Figure(figsize=(plots.PAGE_WIDTH_IN, 4.2))
        FigureCanvasAgg(fig)
        gs = fig.add_gridspec(2, 3, height_ratios=[1, 1.1])
        charts.filter_bars(self.stats, self.class_names, ax=fig.add_subplot(gs[0, :2]))
        self._draw_errors(fig.add_subplot(gs[0, 2]), t)
        in_class = self.pool["labels"] == c
        for col, (title, sel) in enumerate((("accepted", self.mask & in_class), ("rejected", ~self.mask & in_class))):
            ax = fig.add_subplot(gs[1, col])
            idx = torch.nonzero(sel).flatten()[: self.grid]
            if len(idx):
                plots.show_images(ax, to_float(self.pool["images"][idx]), nrow=4, title=f"{title} ({int(sel.sum())})")
            else:
                ax.set_axis_off()
                ax.set_title(f"{title} (none)", fontsize=8)
        probs = self.pool["probs"][in_class]
        charts.class_confidence(probs[:, c], probs.argmax(dim=1) == c, self.class_threshold(c), self.class_names[c],
                                fig.add_subplot(gs[1, 2]))
        fig.tight_layout()
        self.fig = fig
        self.image.value = self.png()

    def png(self) -> bytes:
        """The current figure as the PNG the widget shows (100 dpi)."""
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    def _draw_errors(self, ax, t) -> None:
        ax.axvline(charts.UNFILTERED_X if t is None else t, color="0.5", lw=1, ls="--")
        results = self.results
        if results is not None and "threshold_mode" in results:  # the runs of the rule shown (unfiltered: any)
            results = results[(results["threshold_mode"] == self.mode.value) | results["threshold"].isna()]
        if results is not None and len(results):
            d = results.assign(t=results["threshold"].fillna(charts.UNFILTERED_X).astype(float))
            g = d.groupby("t")["error"].mean()
            ax.plot(g.index, g.values, marker="o", ms=4, lw=1)
        else:
            ax.text(0.5, 0.5, "no GAN-sample\nclassifier runs yet", ha="center", va="center", fontsize=7,
                    transform=ax.transAxes)
        ax.set(xlim=(charts.UNFILTERED_X - 0.03, 1.0), xlabel="threshold (left of 0: unfiltered)", ylabel="test error (%)")
        ax.tick_params(labelsize=7)

    def export(self) -> list:
        """Write the current figure (PDF + PNG) via `lab.plots.export`."""
        with self._lock:
            t = self.threshold
            rule_tag = "" if self.mode.value == "fixed" or t is None else f"_{self.mode.value}"
            paths = plots.export(self.fig, f"{self.name}_{'unfiltered' if t is None else f't{t:.2f}'}{rule_tag}",
                                 self.fig_dir, width=plots.PAGE_WIDTH_IN)
            self.saved.value = "saved " + ", ".join(str(p) for p in paths)
            return paths
