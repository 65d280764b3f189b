"""Fashion-MNIST: torchvision's layout under root, else Debian's gzipped IDX files (fixtures written here in the
exact IDX format), pixel-exact and label-exact; one clear error when neither is there."""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import lab.data as data
import lab.fashion_idx as fashion_idx
from lab.data import load_dataset
from lab.errors import DataNotFoundError

SIZES = {"train": 12, "t10k": 6}


def _idx_images(px: np.ndarray) -> bytes:
    return struct.pack(">IIII", 0x00000803, *px.shape) + px.astype(np.uint8).tobytes()


def _idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(y)) + y.astype(np.uint8).tobytes()


def _fake(seed: int):
    """{prefix: (pixels (N, 28, 28), labels (N,))}, pixel 0 and 255 present."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in SIZES.items():
        px = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        px[0, 0, 0], px[0, 0, 1] = 0, 255
        out[prefix] = (px, rng.integers(0, 10, n).astype(np.uint8))
    return out


def _write(folder: Path, fake: dict, gz: bool):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, (px, y) in fake.items():
        for name, blob in ((f"{prefix}-images-idx3-ubyte", _idx_images(px)), (f"{prefix}-labels-idx1-ubyte", _idx_labels(y))):
            if gz:
                with gzip.open(folder / f"{name}.gz", "wb") as f:
                    f.write(blob)
            else:
                (folder / name).write_bytes(blob)


@pytest.fixture
def idx_dir(tmp_path, monkeypatch):
    """Debian's package layout (gzipped IDX files in one folder), pointed at by $LAB_FASHION_IDX."""
    fake = _fake(0)
    d = tmp_path / "debian" / "fashion-mnist"
    _write(d, fake, gz=True)
    monkeypatch.setenv("LAB_FASHION_IDX", str(d))
    monkeypatch.setattr(data, "_LOADED", {})
    return d, fake


def _expected(px: np.ndarray) -> torch.Tensor:
    """28x28 grey -> 32x32 with a 2-pixel black border, grey repeated to 3 channels, by hand."""
    out = np.zeros((len(px), 3, 32, 32), np.uint8)
    out[:, :, 2:30, 2:30] = px[:, None]
    return torch.from_numpy(out)


@pytest.mark.parametrize("split,prefix", [("train", "train"), ("test", "t10k")])
def test_debian_idx_files_load_pixel_and_label_exact(idx_dir, tmp_path, split, prefix):
    d, fake = idx_dir
    root = tmp_path / "root"
    ds = load_dataset("fashion", split, root=str(root), download=False)
    px, y = fake[prefix]
    assert ds.name == "fashion" and len(ds) == SIZES[prefix]
    assert torch.equal(ds.images, _expected(px))
    assert ds.targets.dtype == torch.int64 and ds.targets.tolist() == y.tolist()
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot" and len(ds.classes) == 10
    x, label = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    assert torch.equal(x, _expected(px)[0].float() / 127.5 - 1) and label == int(y[0])
    assert x[0, 2, 2].item() == -1.0 and x[0, 2, 3].item() == 1.0  # pixels 0 and 255 of the 28x28 image
    # Unpacked once into torchvision's own layout, which is read from then on (the package may go away).
    raw = root / "FashionMNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(fashion_idx.FASHION_IDX_FILES)
    assert sorted(os.listdir(root)) == ["FashionMNIST"]  # no temp folder left
    for f in d.iterdir():
        f.unlink()
    data._LOADED.clear()
    again = load_dataset("fashion", split, root=str(root), download=False)
    assert torch.equal(again.images, ds.images) and torch.equal(again.targets, ds.targets)


def test_torchvision_layout_under_root_comes_first(idx_dir, tmp_path):
    other = _fake(1)
    root = tmp_path / "root"
    _write(root / "FashionMNIST" / "raw", other, gz=False)
    ds = load_dataset("fashion", "train", root=str(root), download=False)
    assert torch.equal(ds.images, _expected(other["train"][0]))


def test_missing_everywhere_is_one_actionable_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("LAB_FASHION_IDX", str(tmp_path / "no-package"))
    monkeypatch.setattr(data, "_LOADED", {})
    root = tmp_path / "root"
    root.mkdir()
    for download in (False, True):
        with pytest.raises(DataNotFoundError) as err:
            load_dataset("fashion", "test", root=str(root), download=download)
        msg = str(err.value)
        assert str(root / "FashionMNIST" / "raw") in msg and str(tmp_path / "no-package") in msg
        assert "apt-get install dataset-fashion-mnist" in msg and "t10k-images-idx3-ubyte" in msg
        assert [p for p in root.rglob("*") if p.is_file()] == []  # nothing half-written


def test_a_corrupt_package_file_is_one_error_and_leaves_nothing(idx_dir, tmp_path):
    d, _ = idx_dir
    (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    root = tmp_path / "root"
    with pytest.raises(DataNotFoundError, match="could not be read.*--reinstall dataset-fashion-mnist"):
        load_dataset("fashion", "train", root=str(root), download=False)
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.skipif(not os.path.isfile(os.path.join(fashion_idx.FASHION_IDX_DIR, "t10k-labels-idx1-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_the_installed_debian_package(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_FASHION_IDX", raising=False)
    monkeypatch.setattr(data, "_LOADED", {})
    test = load_dataset("fashion", "test", root=str(tmp_path))
    assert len(test) == 10_000 and test.class_counts().tolist() == [1000] * 10
    assert test.images.shape == (10_000, 3, 32, 32) and int(test.images[:, :, :2].max()) == 0
