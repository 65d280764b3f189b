"""Metrics: the Fréchet distance against scipy's sqrtm, the torch-fidelity path with a random Inception,
the generator wrapper's labels and rounding, the missing-weights error, classifier FD and duplicates.

The real Inception weights cannot be downloaded here, so torch-fidelity runs on a randomly
initialised FeatureExtractorInceptionV3 saved to a temp file. To fit a busy 2-core CPU, the fast
tests resize to 75 px (Inception's smallest input) instead of 299 and take FID/KID on the 64-d
pool features instead of the 2048-d ones (whose 2048 x 2048 eigendecomposition alone takes
~10-20 s here); the code path through torch-fidelity is otherwise the real one. The `slow` test
runs the unpatched network and layer.
"""
import math
import os
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch_fidelity import feature_extractor_inceptionv3 as tfi

from lab import fidelity, inception, metrics
from lab.presets import preset
from lab.data import subset
from lab.errors import ConfigError, LabError
from lab.models import build_gan, size_mb
from lab.data import to_uint8


def spd(rng, d, scale=1.0):
    a = rng.standard_normal((d, d + 3))
    return scale * a @ a.T / d


def fid_sqrtm(mu1, s1, mu2, s2):
    """The pre-0.4 torch-fidelity / pytorch-fid formula with scipy's matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# --- fid_from_statistics ---------------------------------------------------------------------

@pytest.mark.parametrize("d,seed", [(1, 0), (2, 1), (5, 2), (16, 3), (64, 4), (96, 5)])
def test_fid_matches_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = spd(rng, d), spd(rng, d, scale=3.0)
    got, want = metrics.fid_from_statistics(mu1, s1, mu2, s2), fid_sqrtm(mu1, s1, mu2, s2)
    assert isinstance(got, float) and got >= 0
    assert abs(got - want) < 1e-6 * abs(want)
    assert metrics.fid_from_statistics(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)  # symmetric


@pytest.mark.parametrize("seed", range(3))
def test_fid_of_a_distribution_with_itself_is_zero(seed):
    rng = np.random.default_rng(seed)
    mu, s = rng.standard_normal(32), spd(rng, 32)
    assert abs(metrics.fid_from_statistics(mu, s, mu, s)) < 1e-6 * np.trace(s)


def test_fid_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.1, 4, 20), rng.uniform(0.1, 4, 20)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert metrics.fid_from_statistics(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("seed", range(8))
def test_fid_rank_deficient_is_finite_not_nan(seed):
    # Fewer samples than dimensions: singular covariances. Then eigvals(S1 S2) is often a REAL array
    # with tiny negative entries (about half of these seeds), whose square roots are NaN unless
    # cast to complex first (torch-fidelity's NaN regression).
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((3, 6)), rng.standard_normal((3, 6)) + 0.5
    fid = metrics.fid_from_statistics(*metrics.statistics(x), *metrics.statistics(y))
    assert math.isfinite(fid) and fid > 0


def test_statistics_and_shape_errors():
    x = np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32)
    mu, sigma = metrics.statistics(torch.from_numpy(x))
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)  # N - 1
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    with pytest.raises(ConfigError, match="do not match"):
        metrics.fid_from_statistics(mu, sigma, mu[:3], sigma[:3, :3])
    with pytest.raises(ConfigError, match="do not match"):
        metrics.fid_from_statistics(mu, sigma, mu, sigma[:3])


def test_model_size_mb_counts_frozen_parameters():
    G, _ = build_gan(preset("digits-smoke"))
    assert metrics.model_size_mb(G) == pytest.approx(size_mb(G))
    n_params = sum(p.numel() for p in G.parameters())
    assert metrics.model_size_mb(G.requires_grad_(False)) == pytest.approx(4 * n_params / 1e6)


# --- The generator wrapper --------------------------------------------------------------------

class Recorder(nn.Module):
    """A stub generator: returns the value `fill` (or per-sample values) and records the labels it got."""

    def __init__(self, fill=0.0, num_classes=10, z_dim=8):
        super().__init__()
        self.fill, self.num_classes, self.z_dim, self.labels = fill, num_classes, z_dim, []

    def forward(self, z, y):
        assert z.shape[1] == self.z_dim
        self.labels.append(y.clone())
        x = torch.as_tensor(self.fill, dtype=torch.float32)
        return x.expand(len(z), 3, 2, 2) if x.dim() == 0 else x[: len(z)]


@pytest.mark.parametrize("n,C", [(100, 10), (103, 10), (7, 3)])
def test_wrapper_draws_exactly_balanced_labels(n, C):
    G = Recorder(num_classes=C)
    wrapped = fidelity.FidelityGenerator(G, n, seed=1)
    for s in range(0, n, 32):  # torch-fidelity's loop: batches, the last one shorter
        wrapped(torch.randn(min(32, n - s), wrapped.z_size))
    counts = torch.bincount(torch.cat(G.labels), minlength=C)
    assert counts.sum() == n and counts.max() - counts.min() <= (n % C > 0)
    assert set(counts.tolist()) <= {n // C, n // C + 1}
    assert wrapped.num_classes == 0  # torch-fidelity's own (np.int) label path stays off
    with pytest.raises(LabError, match="more than"):
        wrapped(torch.randn(1, wrapped.z_size))


def test_wrapper_rounds_like_to_uint8():
    # -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128 (round half to even), out of range clamped; truncation gives 127.
    edge = torch.tensor([-1.0, 1.0, 0.0, -1.5, 2.0, 1 / 255, -0.999])
    values = torch.cat([edge, torch.rand(25) * 2 - 1]).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    wrapped = fidelity.FidelityGenerator(Recorder(fill=values), len(values))
    out = wrapped(torch.randn(len(values), 8))
    assert out.dtype == torch.uint8
    assert out[:5, 0, 0, 0].tolist() == [0, 255, 128, 0, 255]
    assert torch.equal(out, to_uint8(values))


def test_wrapper_mixture_uses_every_generator():
    gens = [Recorder(fill=-1.0, z_dim=4), Recorder(fill=1.0, z_dim=8)]
    wrapped = fidelity.FidelityGenerator(gens, 400, seed=3)
    assert wrapped.z_size == 8
    out = wrapped(torch.randn(400, 8))[:, 0, 0, 0]
    assert 150 < (out == 0).sum() < 250 and (out == 0).sum() + (out == 255).sum() == 400
    assert torch.equal(out == 255, wrapped.choice == 1)


# --- torch-fidelity end to end with a random Inception ---------------------------------------

@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """A FeatureExtractorInceptionV3 with random (Kaiming) weights, saved like the real file."""
    with pytest.MonkeyPatch.context() as mp:  # construct it without any weights to load
        mp.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for m in net.modules():  # PyTorch's default init shrinks activations to ~1e-8 over 90 layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.normal_(net.fc.weight, std=0.05)
    path = tmp_path_factory.mktemp("inception") / fidelity.INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture
def fast_inception(monkeypatch):
    """75 px input and FID/KID/PR on the 64-d features (see the module doc); counts images seen."""
    monkeypatch.setattr(tfi.FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
    monkeypatch.setattr(tfi.FeatureExtractorInceptionV3, "get_default_feature_layer_for_metric",
                        staticmethod(lambda metric: "logits_unbiased" if metric == "isc" else "64"))
    seen = []
    forward = tfi.FeatureExtractorInceptionV3.forward

    def counting(self, x):
        seen.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(tfi.FeatureExtractorInceptionV3, "forward", counting)
    return seen


@pytest.fixture(scope="module")
def tiny_digits(digits_train):
    return subset(digits_train, 20)


def test_inception_metrics_end_to_end(random_inception, fast_inception, tiny_digits, tmp_path):
    G, _ = build_gan(preset("digits-smoke"))
    kw = dict(batch_size=50, device="cpu", cache_root=str(tmp_path), weights=random_inception)
    # A generator against the reference: every number finite (20 samples in 64-d or 2048-d give
    # singular covariances, which is fine for a finiteness check); the reference stats get cached.
    out = fidelity.inception_metrics(G, tiny_digits, n=20, kid=True, prc=True, **kw)
    assert set(out) == {"IS", "IS_std", "FID", "KID", "KID_std", "precision", "recall", "n", "network"} and out["n"] == 20
    assert out.pop("network") == "inception-v3-compat"  # the weights file given wins over the TorchScript port
    assert all(math.isfinite(v) for v in out.values())
    assert out["IS"] >= 1 - 1e-9 and out["FID"] > 0
    assert G.training  # evaluated in eval mode, the mode restored
    assert sum(fast_inception) == 20 + 20
    stats = [f for f in os.listdir(tmp_path) if "stat-fid" in f]
    assert len(stats) == 1 and stats[0].startswith("lab-digits-n20-")
    # The reference against itself: its statistics come from the cache (only the source's 20 images
    # go through Inception), and the FID is 0 up to round-off: the features are bit-identical, so
    # |mu1 - mu2| = 0 exactly, and what is left is the eigenvalue error of the singular S @ S,
    # about sqrt(eps) * |S| per null eigenvalue (the covariance is float64 of float32 features).
    fast_inception.clear()
    mtime = os.path.getmtime(tmp_path / stats[0])
    same = fidelity.inception_metrics(tiny_digits, tiny_digits, n=100, isc=False, **kw)
    assert fast_inception == [20] and os.path.getmtime(tmp_path / stats[0]) == mtime
    sigma = torch.load(tmp_path / stats[0], weights_only=False)["sigma"]
    assert set(same) == {"FID", "n", "network"} and same["n"] == 20
    assert abs(same["FID"]) < 1e-5 * np.trace(sigma)


@pytest.mark.slow
def test_inception_metrics_full_size(random_inception, tiny_digits, tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):  # `make test` does not deselect it
        pytest.skip("299 px and the 2048-d FID take minutes on a small CPU; run with -m slow")
    G, _ = build_gan(preset("digits-smoke"))
    out = fidelity.inception_metrics(G.eval(), tiny_digits, n=20, batch_size=50, device="cpu",
                                    cache_root=str(tmp_path), weights=random_inception)
    assert math.isfinite(out["IS"]) and math.isfinite(out["FID"]) and out["FID"] > 0


def test_missing_weights_error(monkeypatch, tmp_path, no_network, tiny_digits):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS", raising=False)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(inception, "torchscript_path", lambda: None)  # nor the offline TorchScript network
    hub = os.path.join(str(tmp_path / "torch"), "hub", "checkpoints", fidelity.INCEPTION_FILE)
    assert not fidelity.inception_available()
    with pytest.raises(LabError) as info:
        fidelity.inception_metrics(tiny_digits, tiny_digits, n=20, device="cpu", cache_root=str(tmp_path))
    msg = str(info.value)
    assert type(info.value).__name__ == "WeightsNotFoundError" and info.value.__suppress_context__
    assert "LAB_INCEPTION_WEIGHTS" in msg and hub in msg and msg.count(". ") == 0
    assert not os.listdir(tmp_path / "torch" / "hub" / "checkpoints")  # nothing half-written
    monkeypatch.setenv("LAB_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    assert not fidelity.inception_available()
    with pytest.raises(LabError, match="nope.pth is not a file"):
        fidelity.inception_metrics(tiny_digits, tiny_digits, n=20, device="cpu")


def test_inception_available_finds_each_location(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(inception, "torchscript_path", lambda: None)  # its own test: test_inception.py
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    assert fidelity.inception_available(str(f)) and not fidelity.inception_available()
    monkeypatch.setenv("LAB_INCEPTION_WEIGHTS", str(f))
    assert fidelity.inception_available()
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / fidelity.INCEPTION_FILE).write_bytes(b"x")
    assert fidelity.inception_available()


# --- Classifier features: FD and duplicates ---------------------------------------------------

class Flatten(nn.Module):
    """A stub classifier whose features are a fixed linear map of the pixels; records its mode."""

    def __init__(self, d=6):
        super().__init__()
        self.proj = nn.Linear(3 * 4 * 4, d)
        self.modes = []

    def features(self, x):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.proj(x.flatten(1))


def test_feature_fd_and_per_class_fd_match_numpy():
    torch.manual_seed(0)
    model = Flatten()
    a = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8)
    b = torch.rand(30, 3, 4, 4) * 1.6 - 0.9
    ya, yb = torch.arange(40) % 3, torch.arange(30) % 3
    with torch.no_grad():
        fa = model.proj((a.double() / 127.5 - 1).flatten(1).float()).double().numpy()
        fb = model.proj(b.flatten(1)).double().numpy()

    def fd(x, y):
        return fid_sqrtm(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))

    feats = metrics.features(model, a, batch_size=16)
    assert feats.dtype == torch.float64 and feats.shape == (40, 6)
    np.testing.assert_allclose(feats.numpy(), fa, rtol=1e-5, atol=1e-6)
    assert model.modes and all(m == (False, False) for m in model.modes) and model.training
    assert metrics.feature_fd(model, a, b, batch_size=16) == pytest.approx(fd(fa, fb), rel=1e-5)
    per = metrics.per_class_fd(model, a, ya, b, yb)
    want = [fd(fa[ya.numpy() == c], fb[yb.numpy() == c]) for c in range(3)]
    np.testing.assert_allclose(per, want, rtol=1e-5)
    per = metrics.per_class_fd(model, a, ya, b[:1], torch.tensor([4]))  # class 4: one image only
    assert len(per) == 5 and all(math.isnan(v) for v in per)


def test_duplicate_rate_counts_only_same_class_near_copies():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(8, 64, generator=g)  # random 64-d directions: pairwise cosine ~ N(0, 1/64)
    feats = torch.cat([base, base[:2] * 3.0, base[2:3] + 1e-4, base[3:4]])  # copies of 0, 1, 2, 3
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2] + [0, 0, 1, 2])  # the copy of 3 is in another class
    out = metrics.duplicate_rate(feats, labels, threshold=0.99, chunk=3)
    dup = {0, 1, 2, 8, 9, 10}  # 0, 1 and their scaled copies; 2 and its perturbed copy
    assert out["count"] == len(dup) and out["n"] == 12
    assert out["overall"] == pytest.approx(len(dup) / 12)
    assert out["per_class"] == pytest.approx([4 / 4, 2 / 3, 0 / 5])
    assert metrics.duplicate_rate(base, torch.zeros(8, dtype=torch.int64))["count"] == 0
    assert metrics.duplicate_rate(feats, labels, threshold=0.99, chunk=100) == out
