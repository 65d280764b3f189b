"""Small CIFAR-10, CIFAR-100 and SVHN files in the exact on-disk formats torchvision reads.

The real datasets cannot be downloaded on the build machines, so the tests and the paper profile's rehearsal
(`lab.profiles`, PROFILE = "paper-rehearsal") write a few images per split in the original formats and load
them through the real torchvision loaders:

- CIFAR-10: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
- CIFAR-100: ``<root>/cifar-100-python/{train, test, meta}``
- SVHN: ``<root>/{train,test}_32x32.mat`` (MATLAB v5; X ``(32, 32, 3, N)`` uint8, y ``(N, 1)``, 10 = digit 0)

The CIFAR pickles are written the way the originals were (Python 2 pickles, protocol 2, whose
dict keys and names are Python 2 byte strings): ``pickle.load(f, encoding="latin1")`` (torchvision)
sees ``str`` keys such as ``"data"``, ``pickle.load(f, encoding="bytes")`` (the CIFAR web page's
recipe) sees ``b"data"``.

torchvision checks each file's md5 against the real dataset's checksum before it reads anything; every
writer therefore returns the md5 of the files it wrote. The tests put them on the torchvision classes with
pytest's monkeypatch; a rehearsal writes them to ``<root>/fixture-checksums.json``, and a process whose
environment names that file in ``LAB_FIXTURE_CHECKSUMS`` loads through torchvision with them
(`checksums_from`, around `lab.data`'s torchvision calls). Never set it for real data.

Each writer returns a :class:`FakeData` with the exact uint8 pixels ``(N, 3, 32, 32)`` and labels
(in torchvision's convention: SVHN digit 0 is label 0) it wrote per split.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]

CIFAR100_FINE = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]

CIFAR100_COARSE = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]

SVHN_CLASSES = [str(d) for d in range(10)]

@dataclass
class FakeData:
    """What a writer put on disk: exact pixels/labels per split, class names and file checksums."""

    name: str
    root: Path
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 (N, 3, 32, 32), int64 (N,))
    classes: list[str]
    md5: dict[str, str] = field(default_factory=dict)  # path relative to root -> md5 hex digest

    def pixels(self, split: str) -> np.ndarray:
        return self.splits[split][0]

    def labels(self, split: str) -> np.ndarray:
        return self.splits[split][1]


def fake_pixels(n: int, seed: int) -> np.ndarray:
    """``n`` uint8 images ``(n, 3, 32, 32)``: seeded noise, with 0 and 255 always present.

    Image 0 starts with pixel values 0, 255; the last image has a channel of all 255 and one of
    all 0, so range errors and channel mix-ups both show. No image is left-right symmetric.
    """
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    px[0, 0, 0, 0], px[0, 0, 0, 1], px[0, 2, 31, 31] = 0, 255, 128
    if n > 1:
        px[-1, 0] = 255
        px[-1, 2] = 0
        px[-1, 1, :, :16] = 17  # keep a visible left/right difference in the last image
    return px


# --- Python 2 style pickles ---------------------------------------------------------------
class _Py2Str(bytes):
    """A Python 2 ``str``: pickled with the (SHORT_)BINSTRING opcode, as CIFAR's files were."""


def _py2(obj):
    """Recursively turn ``str`` (dict keys, names) into Python 2 byte strings."""
    if isinstance(obj, str):
        return _Py2Str(obj.encode("latin1"))
    if isinstance(obj, dict):
        return {_py2(k): _py2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2(v) for v in obj]
    return obj


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add one opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def dump_py2_pickle(obj, path: Path) -> None:
    """Write ``obj`` as CIFAR's Python 2 pickles are: protocol 2, strings as byte strings."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_py2(obj))
    Path(path).write_bytes(buf.getvalue())


def md5_of(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _cifar_rows(px: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) -> CIFAR's (N, 3072) rows: 1024 red, 1024 green, 1024 blue, each row-major."""
    return np.ascontiguousarray(px.reshape(len(px), 3 * 32 * 32))


# --- Writers ----------------------------------------------------------------------------------
def write_cifar10(root, train_labels, test_labels) -> FakeData:
    """Write ``<root>/cifar-10-batches-py``: the train labels split over data_batch_1..5 in order (their count
    a multiple of 5), a test batch, meta. Pixels: `fake_pixels` of seeds 10 (train) and 11 (test)."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    if len(train_labels) % 5:
        raise ValueError(f"CIFAR-10 has 5 train batches: {len(train_labels)} train labels do not split evenly")
    per = len(train_labels) // 5
    train_px = fake_pixels(len(train_labels), seed=10)
    test_px = fake_pixels(len(test_labels), seed=11)
    for b in range(5):
        sl = slice(per * b, per * b + per)
        batch = {
            "batch_label": f"training batch {b + 1} of 5",
            "labels": [int(v) for v in train_labels[sl]],
            "data": _cifar_rows(train_px[sl]),
            "filenames": [f"fake_{per * b + i}.png" for i in range(per)],
        }
        dump_py2_pickle(batch, folder / f"data_batch_{b + 1}")
    dump_py2_pickle(
        {
            "batch_label": "testing batch 1 of 1",
            "labels": [int(v) for v in test_labels],
            "data": _cifar_rows(test_px),
            "filenames": [f"fake_test_{i}.png" for i in range(len(test_px))],
        },
        folder / "test_batch",
    )
    dump_py2_pickle({"num_cases_per_batch": per, "label_names": CIFAR10_CLASSES, "num_vis": 3072},
                    folder / "batches.meta")
    md5 = {str(f.relative_to(root)): md5_of(f) for f in sorted(folder.iterdir())}
    splits = {"train": (train_px, np.array(train_labels, dtype=np.int64)),
              "test": (test_px, np.array(test_labels, dtype=np.int64))}
    return FakeData("cifar10", root, splits, list(CIFAR10_CLASSES), md5)


def write_cifar100(root, train_labels, test_labels) -> FakeData:
    """Write ``<root>/cifar-100-python/{train, test, meta}`` with these fine labels.

    The coarse labels are written too (``fine % 20``; not CIFAR-100's real fine->coarse map).
    """
    root = Path(root)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, labels, seed in (("train", train_labels, 100), ("test", test_labels, 101)):
        px = fake_pixels(len(labels), seed=seed)
        dump_py2_pickle(
            {
                "filenames": [f"fake_{split}_{i}.png" for i in range(len(px))],
                "batch_label": f"{split}ing batch 1 of 1",
                "fine_labels": [int(v) for v in labels],
                "coarse_labels": [int(v) % 20 for v in labels],
                "data": _cifar_rows(px),
            },
            folder / split,
        )
        splits[split] = (px, np.array(labels, dtype=np.int64))
    dump_py2_pickle({"fine_label_names": CIFAR100_FINE, "coarse_label_names": CIFAR100_COARSE}, folder / "meta")
    md5 = {str(f.relative_to(root)): md5_of(f) for f in sorted(folder.iterdir())}
    return FakeData("cifar100", root, splits, list(CIFAR100_FINE), md5)


def write_svhn(root, train_digits, test_digits) -> FakeData:
    """Write ``<root>/{train,test}_32x32.mat``; digit 0 stored as label 10."""
    import scipy.io

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits, md5 = {}, {}
    for split, digits, seed in (("train", train_digits, 200), ("test", test_digits, 201)):
        px = fake_pixels(len(digits), seed=seed)
        X = np.ascontiguousarray(px.transpose(2, 3, 1, 0))  # (N, C, H, W) -> (H, W, C, N)
        y = np.array([[10 if d == 0 else d] for d in digits], dtype=np.uint8)  # (N, 1)
        path = root / f"{split}_32x32.mat"
        scipy.io.savemat(str(path), {"X": X, "y": y})
        md5[path.name] = md5_of(path)
        splits[split] = (px, np.array(digits, dtype=np.int64))
    return FakeData("svhn", root, splits, list(SVHN_CLASSES), md5)


# --- The paper profile's rehearsal -------------------------------------------------------------
# Images per class of each split: enough for every real fraction of the paper profile (20 % of CIFAR-100's
# train split is then one image per class, balanced), for EC-GAN's 10 % of SVHN (10 images) and for a batch of
# the rehearsal presets (4); few enough to write in a second.
REHEARSAL_PER_CLASS = {"cifar10": (10, 2), "cifar100": (5, 1), "svhn": (10, 2)}
CHECKSUMS_FILE = "fixture-checksums.json"


def _labels(n_classes: int, per_class: int) -> list:
    """Every class `per_class` times, interleaved (0, 1, ..., C-1, 0, 1, ...)."""
    return [c for _ in range(per_class) for c in range(n_classes)]


def write_rehearsal_data(root) -> Path:
    """CIFAR-10, CIFAR-100 and SVHN under `root` (`REHEARSAL_PER_CLASS` images per class) and the md5s of every
    file in `root/fixture-checksums.json`; returns that file (for ``LAB_FIXTURE_CHECKSUMS``)."""
    root = Path(root)
    n_classes = {"cifar10": len(CIFAR10_CLASSES), "cifar100": len(CIFAR100_FINE), "svhn": len(SVHN_CLASSES)}
    writers = {"cifar10": write_cifar10, "cifar100": write_cifar100, "svhn": write_svhn}
    md5 = {}
    for name, (train, test) in REHEARSAL_PER_CLASS.items():
        fake = writers[name](root, _labels(n_classes[name], train), _labels(n_classes[name], test))
        md5.update(fake.md5)
    path = root / CHECKSUMS_FILE
    path.write_text(json.dumps(md5, indent=1, sort_keys=True) + "\n")
    return path


def expected_checksums(md5: dict) -> dict:
    """{torchvision class name: {attribute: value}}: the checksum attributes of torchvision's CIFAR10, CIFAR100
    and SVHN classes with every file named in `md5` (path relative to the data root -> md5) expecting that md5."""
    import torchvision.datasets as tvd

    out = {}
    for cls in (tvd.CIFAR10, tvd.CIFAR100):
        pick = lambda f, old: md5.get(os.path.join(cls.base_folder, f), old)
        out[cls.__name__] = {"train_list": [[f, pick(f, m)] for f, m in cls.train_list],
                             "test_list": [[f, pick(f, m)] for f, m in cls.test_list],
                             "meta": {**cls.meta, "md5": pick(cls.meta["filename"], cls.meta["md5"])}}
    out["SVHN"] = {"split_list": {k: [v[0], v[1], md5.get(v[1], v[2])] for k, v in tvd.SVHN.split_list.items()}}
    return out


@contextlib.contextmanager
def checksums_from(path):
    """While active, torchvision's dataset classes expect the md5s of the JSON file `path` (written by
    `write_rehearsal_data`) instead of the real datasets'; their own checksums are back afterwards. Only those
    class attributes change; the loaders run unmodified. `path` None or empty: nothing changes."""
    import torchvision.datasets as tvd

    if not path:
        yield
        return
    try:
        md5 = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"LAB_FIXTURE_CHECKSUMS={path}: not a readable checksum file ({e}); it is written by "
                         f"`lab.fixtures.write_rehearsal_data`; unset it for real data.") from None
    changes = [(getattr(tvd, name), attr, value) for name, attrs in expected_checksums(md5).items()
               for attr, value in attrs.items()]
    saved = [(cls, attr, cls.__dict__[attr]) for cls, attr, _ in changes]
    try:
        for cls, attr, value in changes:
            setattr(cls, attr, value)
        yield
    finally:
        for cls, attr, value in saved:
            setattr(cls, attr, value)
