"""lab.thresholds: each rule's masks on hand-made probability batches against a direct numpy transcription of its
paper's equations, over several batches (the state carried between them); `fixed` bit-identical to Algorithm 1;
state_dict round trips that continue exactly."""
import numpy as np
import pytest
import torch

from lab import thresholds as th
from lab.algorithm1 import _judge

C = 4


def batches(n=6, B=50, seed=0):
    """Probability batches that grow more confident, with conditioning classes y."""
    g = np.random.default_rng(seed)
    out = []
    for k in range(n):
        logits = g.normal(size=(B, C)) * (1 + k)
        logits[np.arange(B), g.integers(0, C, B)] += 1.5 * k
        p = np.exp(logits - logits.max(1, keepdims=True))
        out.append((p / p.sum(1, keepdims=True), g.integers(0, C, B)))
    return out


def test_fixed_is_algorithm_1_bit_for_bit():
    r = th.rule("fixed", C, 0.7)
    for p, y in batches():
        probs, y = torch.tensor(p, dtype=torch.float32), torch.tensor(y)
        keep, wrong = r.judge(probs, y)
        ref_keep, ref_wrong = _judge(probs, y, 0.7)
        assert torch.equal(keep, ref_keep) and torch.equal(wrong, ref_wrong)
        mask, labels = r.pseudo_labels(probs)
        assert torch.equal(mask, probs.max(1).values > 0.7) and torch.equal(labels, probs.argmax(1))
    assert torch.equal(r.thresholds(), torch.full((C,), 0.7, dtype=torch.float64))


def test_freematch_against_its_equations():
    m, r = 0.9, th.FreeMatch(C, None, momentum=0.9)
    tau, p_tilde = 1 / C, np.full(C, 1 / C)
    for p, y in batches():
        tau = m * tau + (1 - m) * p.max(1).mean()  # the EMAs take the batch first
        p_tilde = m * p_tilde + (1 - m) * p.mean(0)
        level = tau * p_tilde / p_tilde.max()
        ref = (p.argmax(1) == y) & (p[np.arange(len(y)), y] >= level[y])
        keep, _ = r.judge(torch.tensor(p), torch.tensor(y))
        assert np.array_equal(keep.numpy(), ref)
        assert np.allclose(r.thresholds().numpy(), level)
    # EC-GAN: the class is the argmax
    r2, tau, p_tilde = th.FreeMatch(C, None, momentum=0.9), 1 / C, np.full(C, 1 / C)
    for p, _ in batches(seed=1):
        tau = m * tau + (1 - m) * p.max(1).mean()
        p_tilde = m * p_tilde + (1 - m) * p.mean(0)
        level = tau * p_tilde / p_tilde.max()
        mask, labels = r2.pseudo_labels(torch.tensor(p))
        assert np.array_equal(mask.numpy(), p.max(1) >= level[p.argmax(1)]) and np.array_equal(labels, p.argmax(1))


def test_flexmatch_against_its_equations():
    t, W = 0.8, 120
    r = th.FlexMatch(C, t, window=W)
    selected, pos, beta = np.full(W, -1), 0, np.zeros(C)
    for p, y in batches(n=8, B=50):
        level = t * beta / (2 - beta)  # the draws before the batch judge it
        ref = (p.argmax(1) == y) & (p[np.arange(len(y)), y] >= level[y])
        keep, _ = r.judge(torch.tensor(p), torch.tensor(y))
        assert np.array_equal(keep.numpy(), ref)
        for s in np.where(p.max(1) >= t, p.argmax(1), -1):  # then the window takes the batch
            selected[pos] = s
            pos = (pos + 1) % W
        counts = {v: int((selected == v).sum()) for v in range(-1, C)}
        if max(counts.values()) < W:  # unless one value fills the window
            sigma = np.array([counts[c] for c in range(C)], float)
            beta = sigma / max(sigma.max(), counts[-1])  # warm-up: the unused draws count
    assert beta.max() > 0  # the batches did move it


def test_flexmatch_starts_with_every_threshold_at_zero():
    r = th.FlexMatch(C, 0.95, window=1000)
    assert torch.equal(r.thresholds(), torch.zeros(C, dtype=torch.float64))


def test_quantile_accepts_every_class_at_about_one_rate():
    r = th.Quantile(C, 0.75, window=10_000)
    g = torch.Generator().manual_seed(0)
    kept, drawn = torch.zeros(C), torch.zeros(C)
    for _ in range(40):
        y = torch.randint(C, (400,), generator=g)
        conf = 0.5 + 0.5 * torch.rand(400, generator=g) ** (1 + y.double())  # class 3 much less confident
        probs = torch.full((400, C), 0.0, dtype=torch.float64)
        probs[torch.arange(400), y] = conf
        probs[torch.arange(400), (y + 1) % C] = 1 - conf
        keep, _ = r.judge(probs, y)
        kept += torch.bincount(y[keep], minlength=C)
        drawn += torch.bincount(y, minlength=C)
        recent = [np.quantile(np.concatenate([np.array(v) for v in [r.recent[c].numpy()]]), 0.75) for c in range(C)]
        assert np.allclose(r.thresholds().numpy(), recent)
    rate = kept / drawn
    assert torch.all((rate - 0.25).abs() < 0.03), rate  # while a fixed t would accept class 3 least


@pytest.mark.parametrize("mode", th.MODES)
def test_state_dict_continues_exactly(mode):
    data = batches(n=8)
    a = th.rule(mode, C, 0.6)
    for p, y in data[:4]:
        a.judge(torch.tensor(p), torch.tensor(y))
    b = th.rule(mode, C, 0.6)
    b.load_state_dict(a.state_dict())
    for p, y in data[4:]:
        ka, _ = a.judge(torch.tensor(p), torch.tensor(y))
        kb, _ = b.judge(torch.tensor(p), torch.tensor(y))
        assert torch.equal(ka, kb)
    assert torch.equal(a.thresholds(), b.thresholds())


def test_unknown_mode_is_one_error():
    from lab.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown threshold mode 'adaptive'; choose one of: fixed, quantile"):
        th.rule("adaptive", C, 0.9)
