"""Image figures for the notebooks (sample grids, losses, neighbours) and `export(fig, name)` to write any figure
at paper size; the charts of numbers (errors, acceptance, metrics) are `lab.charts`'."""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .data import image_grid, to_float

# IEEE two-column conference format (CBMI): one column is 3.5 in wide, the page 7.16 in.
COLUMN_WIDTH_IN = 3.5
PAGE_WIDTH_IN = 7.16


def figure_dir(out_dir=None) -> Path:
    """Where figures go: `out_dir`, else $LAB_FIGURES, else ./figures."""
    return Path(out_dir or os.environ.get("LAB_FIGURES", "figures"))


def export(fig, name: str, out_dir=None, width: float = COLUMN_WIDTH_IN) -> list:
    """Save `fig` as `<name>.pdf` and `<name>.png` (300 dpi), resized to `width` inches.

    The aspect ratio is kept; pass `width=PAGE_WIDTH_IN` for a figure spanning both columns.
    Returns the written paths.
    """
    out = figure_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, h = fig.get_size_inches()
    fig.set_size_inches(width, width * h / w)
    paths = [out / f"{name}.{ext}" for ext in ("pdf", "png")]
    for p in paths:
        fig.savefig(p, dpi=300, bbox_inches="tight")
    return paths


def show_images(ax, images: torch.Tensor, nrow: int, title: str = None) -> None:
    """Draw a grid of images in [-1, 1] `(B, 3, H, W)` on `ax`."""
    grid = image_grid(images, nrow=nrow, padding=1)
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def labelled_rows(images: torch.Tensor, ncols: int, row_labels=None, title: str = None):
    """A grid of images in [-1, 1], `ncols` per row, each row labelled on the left; with no images, a panel that
    says so (e.g. no class has `ncols` samples above a threshold)."""
    if len(images) == 0:
        fig, ax = plt.subplots(figsize=(ncols * 0.45, 0.9))
        ax.text(0.5, 0.5, "no images (no class has enough samples)", ha="center", va="center", fontsize=7)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=8)
        return fig
    nrows = -(-len(images) // ncols)
    fig, ax = plt.subplots(figsize=(ncols * 0.45, nrows * 0.45 + (0.3 if title else 0)))
    show_images(ax, images, nrow=ncols, title=title)
    if row_labels is not None:
        side = images.shape[-2]  # image_grid puts 1 px of padding before every image
        ax.set_axis_on()
        ax.set_yticks([1 + i * (side + 1) + side / 2 for i in range(nrows)], row_labels)
        ax.set_xticks([])
        ax.tick_params(length=0, labelsize=7)
        for sp in ax.spines.values():
            sp.set_visible(False)
    return fig


def class_grid(dataset, per_class: int = 8, max_classes: int = 10, seed: int = 0):
    """One row per class (the first `max_classes`), `per_class` random images of it per row; a class with fewer
    images (a synthetic set whose filter starved it) has its row filled with black."""
    g = torch.Generator().manual_seed(seed)
    names = dataset.classes[:max_classes]
    blank = -torch.ones(1, *dataset.images.shape[1:])
    rows = []
    for c in range(len(names)):
        idx = torch.nonzero(dataset.targets == c).flatten()
        x = to_float(dataset.images[idx[torch.randperm(len(idx), generator=g)[:per_class]]])
        rows.append(torch.cat([x, blank.expand(per_class - len(x), -1, -1, -1)]))
    return labelled_rows(torch.cat(rows), per_class, names)


def side_by_side(panels: dict, ncols: int):
    """Image grids next to each other, e.g. {"EMA G": x1, "raw G": x2}, each (B, 3, H, W)."""
    nrows = -(-len(next(iter(panels.values()))) // ncols)
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * ncols * 0.4, nrows * 0.4 + 0.3))
    for ax, (title, images) in zip(list(getattr(axes, "flat", [axes])), panels.items()):
        show_images(ax, images, nrow=ncols, title=title)
    fig.tight_layout()
    return fig


def gan_losses(stats):
    """GAN training curves from a run's stats (DataFrame): hinge losses, and D's mean outputs."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 2.2))
    for k, label in (("loss_d_real", "D real"), ("loss_d_fake", "D fake"), ("loss_g", "G")):
        a.plot(stats["step"], stats[k], label=label, lw=1)
    for k, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        b.plot(stats["step"], stats[k], label=label, lw=1)
    a.set(xlabel="G step", ylabel="hinge loss")
    b.set(xlabel="G step", ylabel="mean logit")
    for ax in (a, b):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


class LiveLosses:
    """An `on_step(step, stats)` hook that redraws the GAN curves in the notebook while training."""

    def __init__(self, every: int = 5):
        self.rows, self.every = [], every

    def __call__(self, step: int, stats: dict) -> None:
        import pandas as pd
        from IPython.display import clear_output, display

        self.rows.append(stats)
        if len(self.rows) % self.every == 0:
            fig = gan_losses(pd.DataFrame(self.rows))
            clear_output(wait=True)
            display(fig)
            plt.close(fig)


def nearest_neighbours(queries: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor):
    """Each query (first column) beside its nearest training images, with their RMS distances.

    Args:
        queries: (Q, 3, H, W); neighbours: (Q, k, 3, H, W); distances: (Q, k).
    """
    q, k = neighbours.shape[:2]
    fig, axes = plt.subplots(q, k + 1, figsize=((k + 1) * 0.6, q * 0.7))
    for i in range(q):
        show_images(axes[i, 0], queries[i : i + 1], nrow=1, title="sample" if i == 0 else None)
        for j in range(k):
            show_images(axes[i, j + 1], neighbours[i, j : j + 1], nrow=1)
            axes[i, j + 1].set_title(f"{distances[i, j]:.2f}", fontsize=6, pad=1)
    fig.tight_layout(pad=0.2)
    return fig


def distance_histograms(named: dict, xlabel: str = "RMS pixel distance to the nearest training image"):
    """Overlaid histograms, e.g. {"generated": d1, "real test": d2}."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    for label, d in named.items():
        ax.hist(torch.as_tensor(d).flatten().numpy(), bins=40, alpha=0.6, label=label, density=True)
    ax.set(xlabel=xlabel, ylabel="density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def class_counts(datasets: dict):
    """Bar chart of images per class for each named split, e.g. {"train": ds, "test": ds2}."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
    n = len(datasets)
    for i, (label, ds) in enumerate(datasets.items()):
        counts = ds.class_counts().numpy()
        x = [c + (i - (n - 1) / 2) * 0.8 / n for c in range(len(counts))]
        ax.bar(x, counts, width=0.8 / n, label=f"{label} ({len(ds):,})")
    names = next(iter(datasets.values())).classes
    if len(names) <= 20:
        ax.set_xticks(range(len(names)), names, rotation=45 if max(map(len, names)) > 2 else 0, fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=n, frameon=False)
    fig.tight_layout()
    return fig


def last_grids(named: dict, width: float = 3.0):
    """The last sample grid (samples/step-*.png) of each named run, side by side, titled with its step."""
    fig, axes = plt.subplots(1, len(named), figsize=(width * len(named), width + 0.4), squeeze=False)
    for ax, (label, run) in zip(axes[0], named.items()):
        grids = sorted((run.path / "samples").glob("step-*.png"))
        ax.set_axis_off()
        if grids:
            ax.imshow(plt.imread(grids[-1]))
            ax.set_title(f"{label}, {grids[-1].stem}", fontsize=8)
        else:
            ax.set_title(f"{label}: no sample grid", fontsize=8)
    fig.tight_layout()
    return fig
