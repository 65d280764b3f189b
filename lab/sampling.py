"""Algorithm 1's classifier-filtered, class-balanced stream over one or several GANs (Pham et al.); plain drawing
(batches, grids, interpolations, a pool of unfiltered samples) is `lab.generation`."""
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .algorithm1 import FilterStats, unfiltered
from .errors import ConfigError, LabError
from .generation import autocast_context, class_probs, mixture
from .models import module_device
from .thresholds import rule


# Pham et al., section III-A: y ~ U(0, C), z ~ N(0, I), x = G(z, y); keep x iff
# argmax(p) == y and p[y] > thresh, where p = softmax(classifier(x)). Section III-C: with
# several GANs, each sample comes from one of them chosen uniformly at random.


def _rank_in_class(y: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For each i, how many j < i have mask[j] and y[j] == y[i] (B,), without a host sync."""
    oh = F.one_hot(y, num_classes) * mask[:, None]  # (B, C)
    return (oh.cumsum(0) - oh).gather(1, y[:, None]).squeeze(1)


def _first_true(mask: torch.Tensor, n: int):
    """Indices of the True entries (there are exactly n, known on the host) and of the rest, in order."""
    order = torch.argsort((~mask).to(torch.uint8), stable=True)
    return order[:n], order[n:]


class FilteredSampler:
    """An endless stream of `(x, y)` batches of Algorithm-1-accepted generator samples.

    Each batch has exactly `batch_size` samples on the device, x float32 (B, 3, R, R) in [-1, 1],
    y int64 (B,), in random order. With `balanced=False`, Algorithm 1 as written: labels y ~ U(0, C),
    the accepted samples in the order they come, so each class appears in proportion to its acceptance
    rate (a class the filter never accepts never appears). With `balanced=True`, every class gets
    batch_size // C samples or one more, the extra slots rotating over the classes so that over
    C / gcd(C, batch_size % C) batches all are equal; a hard class then costs draws in inverse proportion
    to its acceptance rate.

    Per draw round: labels (balanced: for the classes still short for the next batch), a generator per sample
    (uniform over `generators`, from a CPU generator seeded with `seed`), z ~ N(0, I) from the
    sampler's own device generator (seeded with `seed`), x = G(z, y), the classifier's softmax,
    `accept`; accepted images go to per-class buffers on the device (first in, first out, capped at
    `buffer_per_class`). Only the per-class accepted counts are read back, once per round.

    Generators and classifier run under `torch.no_grad()` in the mode they are given: pass
    eval-mode modules (a train-mode BigGAN normalises with the statistics of each draw batch).

    Args:
        generators: one generator or a list of them (each with `z_dim`, the same `num_classes`;
            G(z, y) -> (B, 3, R, R) in [-1, 1]), on `device`.
        classifier: module returning logits (B, C) for images in [-1, 1]; not called (may be None)
            when unfiltered.
        threshold: float in [0, 1]; None is the unfiltered baseline ("before filtering"): every sample
            is accepted and stats show accepted == drawn. 0 keeps every sample of the right class.
        batch_size: samples per yielded batch.
        draw_batch: at most this many samples per draw round (default 4 * batch_size: one round usually
            fills a batch; a round draws only about what the short classes need, so a large cap wastes nothing).
        max_draws_per_class: a class that gets this many draws in a row without an accepted sample is
            starved: Algorithm 1 would never yield it. With `starved="drop"` (default) a warning names it
            and the batches are balanced over the other classes from then on (`starved_classes`), as the
            literal loop of Algorithm 1 would contain none of it; with "raise" a LabError stops the stream.
        seed: seeds both random streams; the same seed gives the same batches.
        device: where everything happens (default: the first generator's device).
        buffer_per_class: cap on buffered accepted samples per class (default 4 * ceil(batch_size / C));
            accepted samples beyond it are dropped and counted in `overflow`.
        class_names: names for error messages and `stats.to_rows`.
        autocast: True for bf16 autocast on the device, or a context-manager factory.
        starved: "drop" or "raise", see `max_draws_per_class` (balanced streams only; an unbalanced stream
            stops with a LabError only when no class at all is accepted in that many draws of each).
        balanced: class-balanced batches (True) or Algorithm 1's class marginal (False).
        threshold_mode: "fixed" (the paper's rule, the default) or a class-adaptive rule of `lab.thresholds`
            ("quantile", "freematch", "flexmatch"), with `threshold` as its base level.

    Attributes:
        stats: cumulative FilterStats on the device.
        overflow: accepted samples dropped because their class buffer was full.
        starved_classes: the classes dropped from the balance, in the order they starved.
        rule: the threshold rule (`lab.thresholds`), None unfiltered; `rule.thresholds()` are the per-class
            thresholds now.
        threshold_history: [(samples drawn so far, per-class thresholds)] every `HISTORY_EVERY` draw rounds of
            an adaptive rule (and its first round).
    """

    MARGIN = 1.2  # draw 20% more than the estimated need when filtering, to save a round
    HISTORY_EVERY = 50  # draw rounds between two entries of `threshold_history`

    def __init__(self, generators, classifier, threshold, batch_size: int, *, draw_batch: int = None,
                 max_draws_per_class: int = 10_000, seed: int = 0, device=None, buffer_per_class: int = None,
                 class_names=None, autocast=False, starved: str = "drop", balanced: bool = True,
                 threshold_mode: str = "fixed"):
        self.generators = list(generators) if isinstance(generators, (list, tuple)) else [generators]
        classes = {G.num_classes for G in self.generators}
        if len(classes) != 1:
            raise ConfigError(f"The generators have {sorted(classes)} classes; pass GANs of one dataset.")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must be None or in [0, 1], got {threshold}.")
        if not unfiltered(threshold) and classifier is None:
            raise ConfigError(f"threshold {threshold} needs a classifier; pass one or use threshold=None.")
        if starved not in ("drop", "raise"):
            raise ConfigError(f"starved must be 'drop' or 'raise', got {starved!r}.")
        self.on_starved, self.starved_classes, self.balanced = starved, [], balanced
        self.C = C = classes.pop()
        if unfiltered(threshold) and threshold_mode != "fixed":
            raise ConfigError(f"threshold_mode {threshold_mode!r} needs a threshold (its base level); the unfiltered "
                              f"stream (threshold None) has no rule.")
        self.rule = None if unfiltered(threshold) else rule(threshold_mode, C, threshold)
        self.threshold_history, self._rounds = [], 0
        self.classifier, self.threshold, self.batch_size = classifier, threshold, batch_size
        self.draw_batch = draw_batch or 4 * batch_size
        self.max_draws_per_class, self.class_names = max_draws_per_class, class_names
        self.buffer_per_class = buffer_per_class or 4 * -(-batch_size // C)
        if self.buffer_per_class < -(-batch_size // C):  # a batch could never be filled
            raise ConfigError(f"buffer_per_class must be at least ceil(batch_size / C) = {-(-batch_size // C)}.")
        self.device = torch.device(device) if device is not None else module_device(self.generators[0])
        self._amp = autocast_context(autocast, self.device)
        self._rng = torch.Generator(self.device).manual_seed(seed)  # z, batch shuffles
        self._host_rng = torch.Generator().manual_seed(seed)  # which generator draws each sample
        self.stats = FilterStats.zeros(C, self.device)
        self.overflow = 0
        # Host mirrors of small counts, so that allocation needs no device reads.
        self._held = np.zeros(C, np.int64)  # buffered per class
        self._drawn = np.zeros(C, np.int64)
        self._accepted = np.zeros(C, np.int64)
        self._dry = np.zeros(C, np.int64)  # draws since the last round with an acceptance
        self._offset = 0  # first class of this batch's extra slots
        self._pool_x = self._pool_y = None  # the buffers: accepted (x, y) in arrival order

    @property
    def buffered(self) -> list:
        """Accepted samples waiting in the buffers, per class."""
        return self._held.tolist()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next_batch()

    def next_batch(self):
        """The next batch `(x, y)`."""
        B = self.batch_size
        if not self.balanced:  # the oldest B accepted samples, whatever their classes
            while (short := B - self._held.sum()) > 0:
                self._draw_round(short)
            x, y = self._pool_x[:B], self._pool_y[:B]
            self._pool_x, self._pool_y = self._pool_x[B:], self._pool_y[B:]
            self._held -= np.bincount(y.cpu().numpy(), minlength=self.C)
        else:
            while (short := (quota := self._quota()) - self._held).max() > 0:
                self._draw_round(np.maximum(short, 0))
            # Take the oldest quota[c] of each class; the rest stays buffered.
            y_pool = self._pool_y
            rank = _rank_in_class(y_pool, torch.ones_like(y_pool, dtype=torch.bool), self.C)
            take = rank < torch.from_numpy(quota).to(self.device)[y_pool]
            idx, rest = _first_true(take, B)
            x, y = self._pool_x[idx], y_pool[idx]
            self._pool_x, self._pool_y = self._pool_x[rest], y_pool[rest]
            self._held -= quota
            self._offset += B % (self.C - len(self.starved_classes))
        perm = torch.randperm(B, generator=self._rng, device=self.device)
        return x[perm], y[perm]

    def _quota(self) -> np.ndarray:
        """Samples per class in the next batch: B // K for each of the K classes not starved, and one more for
        B % K of them, rotating, so that over a few batches all are equal."""
        active = np.setdiff1d(np.arange(self.C), self.starved_classes)
        K, B = len(active), self.batch_size
        quota = np.zeros(self.C, np.int64)
        quota[active] = B // K
        quota[active[(self._offset + np.arange(B % K)) % K]] += 1
        return quota

    def _allocate(self, short):
        """Draws for this round: the shortfall over an (optimistic) acceptance-rate estimate, per class
        (balanced; `short` per class) or in all (`short` a count), at most `draw_batch`."""
        if not self.balanced:
            rate = 1.0 if unfiltered(self.threshold) else (self._accepted.sum() + 1) / (self._drawn.sum() + 1)
            return int(min(self.draw_batch, max(1, np.ceil(self.MARGIN * short / rate))))
        if unfiltered(self.threshold):
            want = short
        else:
            rate = (self._accepted + 1) / (self._drawn + 1)
            want = np.ceil(self.MARGIN * short / rate).astype(np.int64)
        total = want.sum()
        if total > self.draw_batch:  # scale down; every short class keeps at least one draw
            want = np.where(want > 0, np.maximum(1, want * self.draw_batch // total), 0)
        return want

    def _draw_round(self, short) -> None:
        # Balanced: only the labels of short classes are drawn. This leaves p(x | y, accepted)
        # unchanged: the schedule depends only on past outcomes, each draw's z is fresh and independent
        # of it, so the accepted samples of class c are i.i.d. from p(x | y=c, accepted) whatever the
        # number of draws of c. It changes only the class marginal: the literal loop of Algorithm 1
        # (y ~ U(0, C), balanced=False) yields classes in proportion to their acceptance rates.
        C, dev = self.C, self.device
        if self.balanced:
            n_c = self._allocate(short)
            y_host = torch.repeat_interleave(torch.arange(C), torch.from_numpy(n_c))
        else:
            y_host = torch.randint(C, (self._allocate(short),), generator=self._host_rng)
            n_c = np.bincount(y_host.numpy(), minlength=C)
        gen_idx = torch.randint(len(self.generators), (len(y_host),), generator=self._host_rng)
        x = mixture(self.generators, y_host, gen_idx, self._rng, dev, self._amp)
        y = y_host.to(dev)
        if unfiltered(self.threshold):
            keep = torch.ones(len(y), dtype=torch.bool, device=dev)
            wrong = ~keep
        else:
            keep, wrong = self.rule.judge(class_probs(self.classifier, x, C, self._amp), y)
            if self.rule.mode != "fixed" and self._rounds % self.HISTORY_EVERY == 0:
                self.threshold_history.append((int(self._drawn.sum() + len(y)), self.rule.thresholds().tolist()))
        self._rounds += 1
        self.stats.count(y, keep, wrong)

        # Buffer what fits: the first `room[c]` accepted samples of each class in this round (or the first
        # `room` of all, unbalanced); dropping by arrival order, never by content, keeps the kept ones
        # i.i.d. from p(x | y, accepted).
        if self.balanced:
            # A class's quota grows as others starve (B / K for K fed classes): the cap grows with it.
            cap = max(self.buffer_per_class, -(-self.batch_size // (C - len(self.starved_classes))))
            room = np.maximum(cap - self._held, 0)
            store = keep & (_rank_in_class(y, keep, C) < torch.from_numpy(room).to(dev)[y])
        else:
            store = keep & (keep.long().cumsum(0) <= max(self.buffer_per_class * C - int(self._held.sum()), 0))
        if unfiltered(self.threshold) and self.balanced:
            acc = stored = n_c
        else:  # the one device -> host read of the round
            counts = torch.zeros(2, C, dtype=torch.int64, device=dev)
            counts[0].index_add_(0, y, keep.long())
            counts[1].index_add_(0, y, store.long())
            acc, stored = counts.cpu().numpy()
        idx, _ = _first_true(store, int(stored.sum()))
        x_new, y_new = x[idx], y[idx]
        self._pool_x = x_new if self._pool_x is None else torch.cat([self._pool_x, x_new])
        self._pool_y = y_new if self._pool_y is None else torch.cat([self._pool_y, y_new])
        self._held += stored
        self.overflow += int((acc - stored).sum())
        self._drawn += n_c
        self._accepted += acc
        self._dry = np.where(acc > 0, 0, self._dry + n_c)
        self._check_dry()

    def _check_dry(self) -> None:
        if not self.balanced:
            if (self._dry >= self.max_draws_per_class).all():
                raise LabError(f"No class got an accepted sample in its last {self.max_draws_per_class} draws at "
                               f"threshold {self.threshold}; lower the threshold or check the generators and classifier.")
            return
        for c in np.flatnonzero(self._dry >= self.max_draws_per_class):
            if c in self.starved_classes:
                continue
            name = f" ({self.class_names[c]})" if self.class_names else ""
            rate = self._accepted[c] / self._drawn[c]
            what = (f"Class {c}{name} got no accepted sample in its last {self._dry[c]} draws (acceptance rate so far "
                    f"{rate:.2%} = {self._accepted[c]}/{self._drawn[c]})")
            if self.on_starved == "raise" or len(self.starved_classes) + 1 == self.C:
                raise LabError(f"{what}; lower the threshold or check this class's generator and classifier, or "
                               f"raise max_draws_per_class.")
            self.starved_classes.append(int(c))
            warnings.warn(f"{what} at threshold {self.threshold}: it is dropped from the stream's batches, which are "
                          f"balanced over the other classes from now on.", stacklevel=2)

    def state_dict(self) -> dict:
        """Everything needed to continue the stream exactly (tensors and plain lists only)."""
        return {
            "rng": self._rng.get_state(), "host_rng": self._host_rng.get_state(), "offset": self._offset,
            "held": self._held.tolist(), "drawn": self._drawn.tolist(), "accepted": self._accepted.tolist(),
            "dry": self._dry.tolist(), "overflow": self.overflow, "pool_x": self._pool_x, "pool_y": self._pool_y,
            "stats": list(self.stats._tensors()), "starved": list(self.starved_classes),
            "rule": self.rule.state_dict() if self.rule else {}, "rounds": self._rounds,
            "threshold_history": [[n, list(t)] for n, t in self.threshold_history],
        }

    def load_state_dict(self, state: dict) -> None:
        self._rng.set_state(state["rng"].cpu())  # RNG states are CPU byte tensors even for a CUDA generator
        self._host_rng.set_state(state["host_rng"].cpu())
        self._offset, self.overflow = state["offset"], state["overflow"]
        self.starved_classes = list(state.get("starved", []))
        for k in ("held", "drawn", "accepted", "dry"):
            setattr(self, f"_{k}", np.array(state[k], np.int64))
        to = (lambda t: None if t is None else t.to(self.device))
        self._pool_x, self._pool_y = to(state["pool_x"]), to(state["pool_y"])
        self.stats = FilterStats(*(to(t) for t in state["stats"]))
        if self.rule is not None and state.get("rule"):
            self.rule.load_state_dict(state["rule"])
        self._rounds = state.get("rounds", 0)
        self.threshold_history = [(n, list(t)) for n, t in state.get("threshold_history", [])]
