import numpy as np
import pytest
import torch

from lab import losses


def _softmax(a):
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _ce(a, y):
    return -np.log(_softmax(a)[np.arange(len(y)), y])


def test_hinge_against_definition():
    r, f = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.3])
    lr, lf = losses.d_hinge(r, f)
    assert lr.item() == pytest.approx(np.mean([0, 0.5, 2.0]))
    assert lf.item() == pytest.approx(np.mean([0, 1.0, 1.3]))
    assert losses.g_hinge(f).item() == pytest.approx(-np.mean([-2.0, 0.0, 0.3]))


def test_bce_against_definition():
    r, f = torch.tensor([2.0, -0.5]), torch.tensor([0.1, -3.0])
    sig = lambda v: 1 / (1 + np.exp(-v.numpy().astype(np.float64)))
    lr, lf = losses.d_bce(r, f)
    assert lr.item() == pytest.approx(-np.mean(np.log(sig(r))), rel=1e-6)
    assert lf.item() == pytest.approx(-np.mean(np.log(1 - sig(f))), rel=1e-6)
    assert losses.g_bce(f).item() == pytest.approx(-np.mean(np.log(sig(f))), rel=1e-6)


def test_ecgan_classifier_loss_mask_lambda_and_threshold():
    rng = np.random.default_rng(0)
    lr, y = rng.normal(size=(5, 4)), rng.integers(0, 4, 5)
    # fakes: two confident (max softmax ~0.97 and ~0.88), two not
    lf = np.array([[5.0, 0, 0, 1], [0, 3.0, 0, 0], [0.1, 0, 0.2, 0], [1, 1, 1, 1.0]])
    t = torch.tensor
    sup = _ce(lr, y).mean()
    conf = _softmax(lf).max(1)
    for thr in (0.5, 0.9, conf[1]):  # conf[1] itself: strictly above, so sample 1 is dropped
        keep = conf > thr
        fake = _ce(lf, lf.argmax(1))[keep].mean() if keep.any() else 0.0
        for lam in (0.1, 0.7):
            got = losses.ecgan_classifier_loss(t(lr), t(y), t(lf), lam, float(thr)).item()
            assert got == pytest.approx(sup + lam * fake, rel=1e-6)
    # t = 1: nothing passes, the supervised loss alone
    got = losses.ecgan_classifier_loss(t(lr), t(y), t(lf), 0.1, 1.0).item()
    assert got == pytest.approx(sup, rel=1e-6)
