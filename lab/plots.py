"""Figures for the notebooks and `export(fig, name)` to write them at paper size."""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

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
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=1, normalize=True, value_range=(-1, 1))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def class_grid(dataset, per_class: int = 8, max_classes: int = 10, seed: int = 0):
    """One row per class (the first `max_classes`), `per_class` random images of it per row."""
    g = torch.Generator().manual_seed(seed)
    rows, names = [], dataset.classes[:max_classes]
    for c in range(len(names)):
        idx = torch.nonzero(dataset.targets == c).flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        rows.append(torch.stack([dataset[int(i)][0] for i in pick]))
    fig, ax = plt.subplots(figsize=(per_class * 0.45, len(names) * 0.45))
    show_images(ax, torch.cat(rows), nrow=per_class)
    side = dataset.images.shape[-1]  # make_grid puts 1 px of padding before every image
    ax.set_yticks([1 + i * (side + 1) + side / 2 for i in range(len(names))], names)
    ax.set_axis_on()
    ax.set_xticks([])
    ax.tick_params(length=0, labelsize=7)
    for s in ax.spines.values():
        s.set_visible(False)
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
