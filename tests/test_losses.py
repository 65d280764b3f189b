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


def test_filtered_pseudo_label_loss_is_algorithm_1_on_c():
    """Only fakes whose argmax is their conditioning class AND whose probability of it is > t contribute,
    labelled with that class; a confident fake of another class never does."""
    rng = np.random.default_rng(1)
    lr, y = rng.normal(size=(4, 3)), rng.integers(0, 3, 4)
    lf = np.array([[4.0, 0, 0], [0, 4.0, 0], [0.3, 0.2, 0], [0, 0, 4.0], [1.0, 1.0, 1.0]])
    yf = np.array([0, 0, 0, 2, 1])  # sample 1: confident but class 1 != 0; sample 4: a three-way tie
    t = torch.tensor
    p = _softmax(lf)
    sup = _ce(lr, y).mean()
    for thr in (0.0, 0.3, 0.5, p[0, 0], 0.99):
        keep = (p.argmax(1) == yf) & (p[np.arange(5), yf] > thr)
        assert not keep[1] and not keep[4]
        fake = _ce(lf, yf)[keep].mean() if keep.any() else 0.0
        for lam in (0.1, 0.5):
            got = losses.filtered_pseudo_label_loss(t(lr), t(y), t(lf), t(yf), lam, float(thr)).item()
            assert got == pytest.approx(sup + lam * fake, rel=1e-6)
    # the accepted set is exactly lab.algorithm1.accept's
    from lab.algorithm1 import accept

    assert accept(t(p), t(yf), 0.5).tolist() == [True, False, False, True, False]
    assert losses.filtered_pseudo_label_loss(t(lr), t(y), t(lf), t(yf), 0.1, 1.0).item() == pytest.approx(sup, rel=1e-6)
