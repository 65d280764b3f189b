"""Algorithm 1: `accept` against numpy, FilteredSampler against stubs whose every decision is known, the pool."""
import io
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lab.data import to_float
from lab.errors import ConfigError, LabError
from lab.algorithm1 import FilterStats, accept, pool_stats
from lab.data import to_uint8
from lab.generation import sample_pool
from lab.sampling import FilteredSampler

C = 4
NAMES = ["zero", "one", "two", "three"]


def accept_ref(p: np.ndarray, y: np.ndarray, t: float) -> np.ndarray:
    """Algorithm 1 in numpy; np.argmax, like torch.argmax, returns the first maximal index."""
    return (np.argmax(p, axis=1) == y) & (p[np.arange(len(y)), y] > t)


# --- accept ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_accept_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    n, c = 200, int(rng.integers(2, 12))
    p = rng.dirichlet(np.full(c, 0.3), size=n).astype(np.float32)
    y = rng.integers(0, c, n)
    for t in (0.0, 0.1, 0.5, 0.9, float(rng.random()), 1.0):
        got = accept(torch.from_numpy(p), torch.from_numpy(y), t)
        assert got.dtype == torch.bool and got.shape == (n,)
        np.testing.assert_array_equal(got.numpy(), accept_ref(p, y, t))


def test_accept_ties_first_index_wins():
    p = torch.tensor([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.2, 0.4, 0.4]])
    y = torch.tensor([0, 1, 1, 2])
    # Label 1 ties with class 0 (row 1) and label 2 ties with class 1 (row 3): wrong-class.
    assert accept(p, y, 0.3).tolist() == [True, False, True, False]
    assert accept_ref(p.numpy(), y.numpy(), 0.3).tolist() == [True, False, True, False]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_accept_boundary_is_strict(dtype):
    p = torch.tensor([[0.3, 0.7], [0.7, 0.3], [1.0, 0.0], [0.0, 0.0]], dtype=dtype)
    y = torch.tensor([1, 0, 0, 0])
    assert accept(p, y, 0.7).tolist() == [False, False, True, False]  # p[y] == threshold: rejected
    assert accept(p, y, 0.0).tolist() == [True, True, True, False]  # all-zero row: argmax 0 but p = 0
    assert accept(p, y, 1.0).tolist() == [False] * 4  # p[y] <= 1 always
    assert accept(p, y, 0.7).tolist() == accept_ref(p.numpy(), y.numpy(), 0.7).tolist()


# --- Stubs whose every decision is known ----------------------------------------------------

class StubG(nn.Module):
    """Writes its inputs into pixels: [0] tanh(z0) (the stub classifier's class), [1] tanh(z1) (its
    confidence), [2] y / C, [3] generator id / 10. Records every image it makes."""

    def __init__(self, gen_id=0, quantize=False):
        super().__init__()
        self.z_dim, self.num_classes, self.gen_id, self.quantize = 3, C, gen_id, quantize
        self.made = []

    def forward(self, z, y):
        x = torch.zeros(len(z), 3, 32, 32)
        x[:, 0, 0, 0], x[:, 0, 0, 1] = torch.tanh(z[:, 0]), torch.tanh(z[:, 1])
        x[:, 0, 0, 2], x[:, 0, 0, 3] = y / C, self.gen_id / 10
        x = to_float(to_uint8(x)) if self.quantize else x  # exactly on the uint8 grid
        self.made.append(x.clone())
        return x


def label_of(x):
    return (x[:, 0, 0, 2] * C).round().long()


def gen_of(x):
    return (x[:, 0, 0, 3] * 10).round().long()


def truth(x, reject=()):
    """(predicted class, confidence q) the stub classifier gives x, from the pixels."""
    y = label_of(x)
    pred = torch.where((x[:, 0, 0, 0] + 1) / 2 < 0.8, y, (y + 1) % C)
    for r in reject:
        pred[y == r] = (r + 1) % C
    q = 1 / C + (1 - 1 / C) * (x[:, 0, 0, 1].double() + 1) / 2  # in (1/C, 1): pred is the argmax
    return pred, q


class StubClassifier(nn.Module):
    """Logits log(p) with p[pred] = q and the rest (1 - q) / (C - 1)."""

    def __init__(self, reject=()):
        super().__init__()
        self.reject, self.calls = reject, 0

    def forward(self, x):
        self.calls += 1
        pred, q = truth(x, self.reject)
        p = ((1 - q) / (C - 1))[:, None].repeat(1, C)
        p[torch.arange(len(x)), pred] = q
        return p.log().float()


class Forbidden(nn.Module):
    def forward(self, x):
        raise AssertionError("the classifier must not be called without a threshold")


def key(x):
    return list(map(tuple, x[:, 0, 0, :4].tolist()))


def take(sampler, n):
    return list(itertools.islice(sampler, n))


# --- FilteredSampler ------------------------------------------------------------------------

@pytest.mark.parametrize("draw_batch,buffer", [(None, None), (64, 3), (5, None)])
def test_sampler_keeps_exactly_the_accepted_draws(draw_batch, buffer):
    G, clf, t, B = StubG(), StubClassifier(), 0.5, 10
    s = FilteredSampler([G], clf, t, B, draw_batch=draw_batch, buffer_per_class=buffer, seed=3)
    batches = take(s, 12)

    # Recompute every draw's fate from the generator's log.
    made = torch.cat(G.made)
    y_all = label_of(made)
    pred, q = truth(made)
    right = pred == y_all
    ok, wrong, low = right & (q > t), ~right, right & (q <= t)
    count = lambda m: torch.bincount(y_all[m], minlength=C)
    assert torch.equal(s.stats.drawn, count(torch.ones_like(ok)))
    assert torch.equal(s.stats.accepted, count(ok))
    assert torch.equal(s.stats.wrong_class, count(wrong))
    assert torch.equal(s.stats.low_confidence, count(low))
    assert torch.equal(s.stats.drawn, s.stats.accepted + s.stats.wrong_class + s.stats.low_confidence)
    assert wrong.any() and low.any()  # both reasons occur

    accepted_keys = set(key(made[ok]))
    yielded = []
    for x, y in batches:
        assert x.shape == (B, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(y, label_of(x))  # images stay with their labels
        counts = torch.bincount(y, minlength=C)
        assert counts.sum() == B and set(counts.tolist()) <= {B // C, B // C + 1}
        yielded += key(x)
    assert len(set(yielded)) == len(yielded)  # no sample twice
    assert set(yielded) <= accepted_keys  # every yielded sample obeys the rule
    assert len(accepted_keys) == len(yielded) + sum(s.buffered) + s.overflow  # none lost
    if buffer is None:
        assert s.overflow == 0
    else:
        assert s.overflow > 0 and max(s.buffered) <= buffer


@pytest.mark.parametrize("buffer", [None, 3])
def test_unbalanced_stream_is_algorithm_1_as_written(buffer):
    """balanced=False: labels ~ U(0, C), every accepted draw yielded in the order drawn (nothing else), so the
    classes come in proportion to their acceptance rates; a never-accepted class simply never appears."""
    G, t, B = StubG(), 0.5, 10
    s = FilteredSampler([G], StubClassifier(reject=(2,)), t, B, balanced=False, seed=5, buffer_per_class=buffer)
    batches = take(s, 30)
    made = torch.cat(G.made)
    y_all = label_of(made)
    pred, q = truth(made, reject=(2,))
    ok = (pred == y_all) & (q > t)
    assert torch.equal(s.stats.drawn, torch.bincount(y_all, minlength=C))
    assert torch.equal(s.stats.accepted, torch.bincount(y_all[ok], minlength=C))
    drawn = s.stats.drawn.double()
    assert (drawn / drawn.sum() - 0.25).abs().max() < 0.06  # uniform labels (about 500 draws)
    yielded = [k for x, y in batches for k in key(x)]
    assert all(torch.equal(y, label_of(x)) and len(y) == B for x, y in batches)
    accepted_in_order = key(made[ok])
    if buffer is None:  # every accepted sample, in the order it was drawn (each batch is shuffled)
        assert sorted(yielded) == sorted(accepted_in_order[: len(yielded)]) and s.overflow == 0
        firsts = set(key(batches[0][0]))
        assert firsts == set(accepted_in_order[:B])
    else:
        assert set(yielded) <= set(accepted_in_order) and s.overflow > 0
    ys = torch.cat([y for _, y in batches])
    counts = torch.bincount(ys, minlength=C)
    assert counts[2] == 0 and counts.sum() == 30 * B
    rate = s.stats.acceptance_rate()
    share = counts.double() / counts.sum()
    assert (share - rate / rate.sum()).abs().max() < 0.08  # classes in proportion to acceptance


def test_unbalanced_stream_resumes_exactly_and_raises_when_nothing_passes():
    make = lambda: FilteredSampler([StubG(k) for k in range(2)], StubClassifier(), 0.5, 10, seed=1, balanced=False)
    s = make()
    take(s, 3)
    t = make()
    t.load_state_dict(s.state_dict())
    for (xa, ya), (xb, yb) in zip(take(s, 4), take(t, 4)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    dead = FilteredSampler(StubG(), StubClassifier(reject=(0, 1, 2, 3)), 0.3, 8, max_draws_per_class=40,
                           balanced=False)
    with pytest.raises(LabError, match="No class got an accepted sample"):
        take(dead, 5)


def test_sampler_extra_slots_rotate():
    s = FilteredSampler(StubG(), None, None, 10, seed=0)  # 10 = 2 * 4 + 2: two extra slots per batch
    totals = sum(torch.bincount(y, minlength=C) for _, y in take(s, 6))
    assert totals.tolist() == [15] * C


def test_threshold_zero_still_drops_the_wrong_class():
    """Only None is unfiltered: at t = 0 Algorithm 1 keeps exactly the right-class draws."""
    G = StubG()
    s = FilteredSampler([G], StubClassifier(), 0.0, 8, seed=0)
    take(s, 5)
    made = torch.cat(G.made)
    pred, _ = truth(made)
    right = pred == label_of(made)
    assert not right.all()
    assert torch.equal(s.stats.accepted, torch.bincount(label_of(made)[right], minlength=C))
    assert torch.equal(s.stats.wrong_class, torch.bincount(label_of(made)[~right], minlength=C))
    assert s.stats.low_confidence.sum() == 0


@pytest.mark.parametrize("threshold", [None])
def test_unfiltered_accepts_everything_without_the_classifier(threshold):
    G = StubG()
    s = FilteredSampler([G], Forbidden(), threshold, 8, seed=0)
    ys = torch.cat([y for _, y in take(s, 5)])
    assert torch.equal(s.stats.accepted, s.stats.drawn)
    assert s.stats.wrong_class.sum() == 0 and s.stats.low_confidence.sum() == 0
    assert torch.equal(s.stats.drawn, torch.bincount(label_of(torch.cat(G.made)), minlength=C))
    assert torch.equal(s.stats.drawn, torch.bincount(ys, minlength=C))  # nothing wasted


def test_rejected_class_raises_instead_of_hanging():
    s = FilteredSampler(StubG(), StubClassifier(reject=(2,)), 0.3, 8, max_draws_per_class=300, class_names=NAMES,
                        starved="raise")
    with pytest.raises(LabError, match=r"Class 2 \(two\).*0\.00%"):
        take(s, 100)
    assert s.stats.drawn[2] >= 300 and s.stats.accepted[2] == 0
    assert (s.stats.accepted[[0, 1, 3]] > 0).all()


def test_a_starved_class_is_dropped_with_a_warning_and_the_rest_stay_balanced():
    s = FilteredSampler(StubG(), StubClassifier(reject=(2,)), 0.3, 9, max_draws_per_class=300, class_names=NAMES)
    with pytest.warns(UserWarning, match=r"Class 2 \(two\) got no accepted sample.*dropped"):
        batches = take(s, 40)
    assert s.starved_classes == [2]
    late = torch.cat([y for _, y in batches[-30:]])
    counts = torch.bincount(late, minlength=4)
    assert counts[2] == 0 and counts[[0, 1, 3]].tolist() == [90, 90, 90]  # 9 per batch over 3 classes
    assert all(len(y) == 9 for _, y in batches)
    # The starved set is part of the stream's state: a resumed stream keeps the class out.
    t = FilteredSampler(StubG(), StubClassifier(reject=(2,)), 0.3, 9, max_draws_per_class=300)
    t.load_state_dict(s.state_dict())
    assert t.starved_classes == [2] and torch.equal(next(t)[1], next(s)[1])


def test_one_class_left_fills_whole_batches_beyond_the_buffer_cap():
    # 3 of 4 classes starve: the last one's quota (the whole batch of 9) exceeds buffer_per_class (4 * 3 / 4 = 3
    # by default, here 4); the cap must grow with the quota or the stream never yields (it looped forever).
    s = FilteredSampler(StubG(), StubClassifier(reject=(0, 2, 3)), 0.3, 9, max_draws_per_class=100, buffer_per_class=4)
    with pytest.warns(UserWarning, match="dropped"):
        batches = take(s, 5)
    assert sorted(s.starved_classes) == [0, 2, 3]
    assert all(y.tolist() == [1] * 9 for _, y in batches[-3:])


def test_every_class_starved_raises():
    s = FilteredSampler(StubG(), StubClassifier(reject=(0, 1, 2, 3)), 0.3, 8, max_draws_per_class=50)
    with pytest.raises(LabError, match="got no accepted sample"), pytest.warns(UserWarning):
        take(s, 50)


@pytest.mark.parametrize("n_gens", [1, 3])
def test_same_seed_same_batches(n_gens):
    make = lambda seed: FilteredSampler([StubG(k) for k in range(n_gens)], StubClassifier(), 0.5, 12, seed=seed)
    a, b, c = take(make(7), 5), take(make(7), 5), take(make(8), 5)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_resume_from_state_dict_continues_the_stream():
    make = lambda: FilteredSampler([StubG(k) for k in range(2)], StubClassifier(), 0.5, 10, seed=1)
    s = make()
    take(s, 3)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    rest = take(s, 4)
    r = make()
    r.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for (xa, ya), (xb, yb) in zip(rest, take(r, 4)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert all(torch.equal(a, b) for a, b in zip(s.stats._tensors(), r.stats._tensors()))


def test_generators_are_mixed_uniformly():
    gens = [StubG(k) for k in range(3)]
    s = FilteredSampler(gens, None, None, 100, seed=0)
    ids = torch.cat([gen_of(x) for x, _ in take(s, 30)])  # 3000 samples
    n, p = len(ids), 1 / 3
    tol = 4 * math.sqrt(n * p * (1 - p))  # 4 binomial standard deviations
    for k, G in enumerate(gens):
        assert abs((ids == k).sum().item() - n * p) < tol
        assert (gen_of(torch.cat(G.made)) == k).all()


def test_bad_arguments():
    with pytest.raises(ConfigError):
        FilteredSampler(StubG(), StubClassifier(), 1.5, 8)
    with pytest.raises(ConfigError):
        FilteredSampler(StubG(), None, 0.5, 8)
    with pytest.raises(ConfigError, match="buffer_per_class"):
        FilteredSampler(StubG(), None, None, 9, buffer_per_class=2)  # a class needs 3 per batch
    other = StubG()
    other.num_classes = 5
    with pytest.raises(ConfigError):
        FilteredSampler([StubG(), other], StubClassifier(), 0.5, 8)
    wide = nn.Sequential(nn.Flatten(), nn.LazyLinear(7))
    with pytest.raises(LabError, match="logits"):
        next(FilteredSampler(StubG(), wide, 0.5, 8))


def test_filter_stats_helpers():
    s = FilterStats(*(torch.tensor(v) for v in ([4, 0], [1, 0], [2, 0], [1, 0])))
    rate = s.acceptance_rate()
    assert rate[0] == 0.25 and torch.isnan(rate[1])
    rows = s.to_rows(["a", "b"])
    assert rows[0] == {"class": 0, "name": "a", "drawn": 4, "accepted": 1, "wrong_class": 2,
                       "low_confidence": 1, "acceptance_rate": 0.25}
    s.add(s)
    assert s.drawn.tolist() == [8, 0]
    assert s.reset().drawn.tolist() == [0, 0]


# --- Pool for the threshold explorer --------------------------------------------------------

def test_to_uint8_rounds_half_to_even_and_clamps():
    k = torch.arange(256)
    assert torch.equal(to_uint8(to_float(k.to(torch.uint8))), k.to(torch.uint8))  # exact round trip
    v = torch.tensor([0.0, 254.7 / 127.5 - 1, 0.3, -1.0, 1.0, 1.5, -3.0], dtype=torch.float32)
    ref = np.clip(np.round((v.numpy() + 1) * np.float32(127.5)), 0, 255)  # numpy rounds half to even too
    assert to_uint8(v).tolist() == ref.astype(np.uint8).tolist()
    assert to_uint8(v).tolist()[:2] == [128, 255]  # 127.5 -> 128 (even); 254.7 -> 255, not truncated to 254


class PatternG(nn.Module):
    """Every image is the same fixed pattern of pixel values."""

    values = torch.tensor([0.0, 254.7 / 127.5 - 1, -1.0, 1.0, 1.2, -0.5])

    def __init__(self):
        super().__init__()
        self.z_dim, self.num_classes = 2, C

    def forward(self, z, y):
        return self.values.repeat(3 * 32 * 32 // 6 + 1)[: 3 * 32 * 32].view(1, 3, 32, 32).repeat(len(z), 1, 1, 1)


def test_sample_pool_rounds_images():
    pool = sample_pool(PatternG(), StubClassifier(), 3, batch_size=5)
    expected = to_uint8(PatternG()(torch.zeros(1, 2), None))[0]
    assert (pool["images"] == expected).all()
    assert pool["images"][0, 0, 0, :2].tolist() == [128, 255]


def test_sample_pool_contents_and_stats():
    gens, clf = [StubG(k, quantize=True) for k in range(3)], StubClassifier()
    pool = sample_pool(gens, clf, 7, seed=2, batch_size=5)
    N = 7 * C
    assert pool["images"].shape == (N, 3, 32, 32) and pool["images"].dtype == torch.uint8
    assert pool["probs"].shape == (N, C) and pool["probs"].dtype == torch.float32
    assert torch.equal(pool["labels"], torch.arange(C).repeat_interleave(7))
    x = to_float(pool["images"])  # the stubs draw on the uint8 grid, so these are the exact images
    assert torch.equal(label_of(x), pool["labels"]) and torch.equal(gen_of(x), pool["generator"])
    assert set(pool["generator"].tolist()) == {0, 1, 2}
    torch.testing.assert_close(pool["probs"], clf(x).softmax(1))
    again = sample_pool(gens, clf, 7, seed=2, batch_size=5)
    assert all(torch.equal(pool[k], again[k]) for k in pool)

    p, y = pool["probs"].numpy(), pool["labels"].numpy()
    for t in (None, 0, 0.3, 0.5, 0.9):
        st = pool_stats(pool, t)
        drawn = np.bincount(y, minlength=C)
        if t is None:  # only None is unfiltered; t = 0 drops the wrong class
            ok, wrong = np.ones(N, bool), np.zeros(N, bool)
        else:
            ok, wrong = accept_ref(p, y, t), np.argmax(p, 1) != y
        assert st.drawn.tolist() == drawn.tolist()
        assert st.accepted.tolist() == np.bincount(y[ok], minlength=C).tolist()
        assert st.wrong_class.tolist() == np.bincount(y[wrong], minlength=C).tolist()
        assert st.low_confidence.tolist() == np.bincount(y[~ok & ~wrong], minlength=C).tolist()


def test_acceptance_matrix_is_pool_stats_per_threshold():
    from lab.algorithm1 import acceptance_matrix

    probs = torch.distributions.Dirichlet(torch.full((C,), 0.5)).sample((80,))
    pool = {"labels": torch.arange(C).repeat_interleave(20), "probs": probs}
    ts = [None, 0.0, 0.5, 0.9]
    m = acceptance_matrix(pool, ts)
    assert m.shape == (C, 4) and (m[:, 0] == 1).all()
    for j, t in enumerate(ts[1:], start=1):
        keep = accept(probs, pool["labels"], t)
        want = torch.stack([keep[pool["labels"] == c].double().mean() for c in range(C)])
        assert torch.allclose(m[:, j], want)
    assert (m[:, 1] >= m[:, 2]).all() and (m[:, 2] >= m[:, 3]).all()  # monotone in the threshold


# --- Class-adaptive threshold rules (lab.thresholds) in the stream -------------------------------------

@pytest.mark.parametrize("mode", ["quantile", "freematch", "flexmatch"])
@pytest.mark.parametrize("balanced", [True, False])
def test_an_adaptive_stream_resumes_exactly_with_its_rules_state(mode, balanced):
    make = lambda: FilteredSampler([StubG(k) for k in range(2)], StubClassifier(), 0.5, 10, seed=1,
                                   threshold_mode=mode, balanced=balanced)
    s = make()
    s.HISTORY_EVERY = 1
    take(s, 3)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    rest = take(s, 4)
    r = make()
    r.HISTORY_EVERY = 1
    r.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for (xa, ya), (xb, yb) in zip(rest, take(r, 4)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(s.rule.thresholds(), r.rule.thresholds()) and s.threshold_history == r.threshold_history
    assert len(s.threshold_history) >= 2 and all(len(t) == C for _, t in s.threshold_history)


def test_the_fixed_rule_is_todays_stream():
    """threshold_mode="fixed" is the default, and its batches are those of Algorithm 1's own rule."""
    a = take(FilteredSampler([StubG(0)], StubClassifier(), 0.5, 10, seed=3), 5)
    b = take(FilteredSampler([StubG(0)], StubClassifier(), 0.5, 10, seed=3, threshold_mode="fixed"), 5)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_an_adaptive_rule_needs_a_threshold():
    with pytest.raises(ConfigError, match="needs a threshold"):
        FilteredSampler(StubG(), StubClassifier(), None, 8, threshold_mode="freematch")
    from lab.presets import preset

    with pytest.raises(ConfigError, match="needs a threshold"):
        preset("classifier-digits-smoke").replace(source="gan", gans=("g",), filter="f", threshold_mode="quantile")
    with pytest.raises(ConfigError, match="only apply to source='gan'"):
        preset("classifier-digits-smoke").replace(threshold_mode="quantile")
    base = preset("classifier-digits-smoke").replace(source="gan", gans=("g",), filter="f", threshold=0.9)
    from lab.runs import config_hash

    assert config_hash(base) == config_hash(base.replace(threshold_mode="fixed"))  # "fixed": the hash of before
    assert config_hash(base) != config_hash(base.replace(threshold_mode="freematch"))
