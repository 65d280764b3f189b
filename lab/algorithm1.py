"""Algorithm 1 of Pham et al. (section III-A) as a rule: `accept` (keep a sample iff the classifier's argmax is
its class and that class's probability is above the threshold), its per-class counts (`FilterStats`), and the
statistics of a cached pool of samples at any threshold (the threshold explorer, notebook 03). The stream that
applies it while training is `lab.sampling.FilteredSampler`."""
from dataclasses import dataclass

import torch

from .data import to_float


def _judge(probs: torch.Tensor, y: torch.Tensor, threshold: float):
    """(keep, wrong_class) masks (B,) of Algorithm 1's rule."""
    y = y.to(probs.device)
    right = probs.argmax(dim=1) == y  # ties: torch.argmax returns the FIRST maximal index
    p_y = probs.gather(1, y[:, None]).squeeze(1)
    return right & (p_y > threshold), ~right


def accept(probs: torch.Tensor, y: torch.Tensor, threshold: float) -> torch.Tensor:
    """Algorithm 1's rule: keep sample i iff argmax(probs[i]) == y[i] and probs[i, y[i]] > threshold (strict).

    On ties the first maximal index is the argmax (torch.argmax's documented behaviour), so a
    sample whose label ties with a smaller class index is rejected as wrong-class. The threshold
    is compared in `probs`' dtype (a float32 0.3 equals the threshold 0.3 and is rejected).
    This is the bare rule; `FilteredSampler` and `pool_stats` treat threshold None as "no filtering"
    (the paper's "before filtering" row) and do not call it. Threshold 0 still filters: it drops every
    sample of the wrong class and keeps the right-class ones (whose probability is > 0).

    Args:
        probs: (B, C) softmax probabilities.
        y: (B,) int labels.
        threshold: float in [0, 1].
    Returns:
        bool mask (B,).
    """
    return _judge(probs, y, threshold)[0]


@dataclass
class FilterStats:
    """Per-class int64 counts of Algorithm 1: drawn == accepted + wrong_class + low_confidence."""

    drawn: torch.Tensor  # (C,) samples generated with label c
    accepted: torch.Tensor  # (C,) kept by the rule
    wrong_class: torch.Tensor  # (C,) rejected because argmax(p) != c
    low_confidence: torch.Tensor  # (C,) argmax(p) == c but p[c] <= threshold

    @classmethod
    def zeros(cls, num_classes: int, device=None) -> "FilterStats":
        return cls(*(torch.zeros(num_classes, dtype=torch.int64, device=device) for _ in range(4)))

    @property
    def num_classes(self) -> int:
        return len(self.drawn)

    def _tensors(self):
        return (self.drawn, self.accepted, self.wrong_class, self.low_confidence)

    def count(self, y: torch.Tensor, keep: torch.Tensor, wrong: torch.Tensor) -> "FilterStats":
        """Add one round of draws: labels y, rule outcome `keep`, `wrong` class masks (all (B,))."""
        low = ~keep & ~wrong
        for total, mask in zip(self._tensors(), (torch.ones_like(keep), keep, wrong, low)):
            total.index_add_(0, y.to(total.device), mask.to(total.device, torch.int64))
        return self

    def add(self, other: "FilterStats") -> "FilterStats":
        """In place: self += other (e.g. to merge the stats of several samplers)."""
        for a, b in zip(self._tensors(), other._tensors()):
            a += b.to(a.device)
        return self

    def reset(self) -> "FilterStats":
        for a in self._tensors():
            a.zero_()
        return self

    def acceptance_rate(self) -> torch.Tensor:
        """accepted / drawn per class, float64 (C,); NaN for a class never drawn."""
        return self.accepted.double() / self.drawn.double()

    def to_rows(self, class_names=None) -> list:
        """One dict per class (for `pandas.DataFrame`): class, name, the four counts, acceptance_rate."""
        cols = [t.tolist() for t in self._tensors()] + [self.acceptance_rate().tolist()]
        keys = ("drawn", "accepted", "wrong_class", "low_confidence", "acceptance_rate")
        rows = []
        for c in range(self.num_classes):
            row = {"class": c, "name": class_names[c] if class_names else str(c)}
            rows.append(row | {k: col[c] for k, col in zip(keys, cols)})
        return rows


def unfiltered(threshold) -> bool:
    """Only None means no filtering; threshold 0 still drops wrong-class samples."""
    return threshold is None


def pool_stats(pool: dict, threshold) -> FilterStats:
    """FilterStats of `pool` (from `sample_pool`) at `threshold`; None accepts everything, as the sampler."""
    y, probs = pool["labels"], pool["probs"]
    if unfiltered(threshold):
        keep = torch.ones(len(y), dtype=torch.bool)
        wrong = ~keep
    else:
        keep, wrong = _judge(probs, y, threshold)
    return FilterStats.zeros(probs.shape[1]).count(y, keep, wrong)


def acceptance_table(pool: dict, thresholds) -> list:
    """Overall fractions of the pool accepted / wrong class / below threshold, one row per threshold."""
    rows = []
    for t in thresholds:
        s = pool_stats(pool, t)
        n = int(s.drawn.sum())
        rows.append({"threshold": t, "acceptance": int(s.accepted.sum()) / n,
                     "wrong_class": int(s.wrong_class.sum()) / n, "low_confidence": int(s.low_confidence.sum()) / n,
                     "classes_below_10pct": int((s.acceptance_rate() < 0.1).sum())})
    return rows


def acceptance_matrix(pool: dict, thresholds) -> torch.Tensor:
    """Per-class acceptance rates of the pool at each threshold, float64 (C, len(thresholds))."""
    return torch.stack([pool_stats(pool, t).acceptance_rate() for t in thresholds], dim=1)


def pool_examples(pool: dict, threshold, per_class: int = 8, max_classes: int = 10):
    """The first `per_class` samples of each class (of the first `max_classes`) that `threshold` keeps
    (all samples for None): (x float (N, 3, R, R) in [-1, 1], y (N,)), classes with too few skipped."""
    y = pool["labels"]
    keep = torch.ones_like(y, dtype=torch.bool) if unfiltered(threshold) else accept(pool["probs"], y, threshold)
    idx = []
    for c in range(min(int(y.max()) + 1, max_classes)):
        hits = torch.nonzero(keep & (y == c)).flatten()[:per_class]
        if len(hits) == per_class:
            idx.append(hits)
    idx = torch.cat(idx) if idx else torch.zeros(0, dtype=torch.int64)
    return to_float(pool["images"][idx]), y[idx]
