"""The tests' tiny CIFAR-10, CIFAR-100 and SVHN files (`lab.fixtures` writes the formats; see its docstring).

Each writer here puts a few images per split, of the labels below, under a root; :func:`patch_checksums`
puts their md5s on the torchvision classes through pytest's ``monkeypatch`` (restored after the test).
"""
from __future__ import annotations


from lab import fixtures as _fx
from lab.fixtures import (CIFAR10_CLASSES, CIFAR100_COARSE, CIFAR100_FINE, SVHN_CLASSES, FakeData,  # noqa: F401
                          dump_py2_pickle, fake_pixels, md5_of)

# Labels written per split. Each split has images of several classes; some classes are absent.
# CIFAR-10 test holds only classes 2 and 7 (three of class 2), so a balanced subset of all 4 of its
# images is impossible, while a balanced subset of 2 (one of each) is possible.
CIFAR10_TRAIN_LABELS = [3, 7, 0, 9, 1, 5, 2, 8, 4, 6]  # 2 per data_batch_1..5
CIFAR10_TEST_LABELS = [2, 7, 2, 2]
CIFAR100_TRAIN_LABELS = [0, 99, 42, 17, 3, 58]
CIFAR100_TEST_LABELS = [99, 0, 61]
SVHN_TRAIN_DIGITS = [0, 1, 5, 9, 0]  # written to the .mat as 10, 1, 5, 9, 10
SVHN_TEST_DIGITS = [3, 0, 7]




def write_cifar10(root) -> FakeData:
    """``<root>/cifar-10-batches-py``: 5 train batches of 2 images, a test batch of 4, meta."""
    return _fx.write_cifar10(root, CIFAR10_TRAIN_LABELS, CIFAR10_TEST_LABELS)


def write_cifar100(root) -> FakeData:
    """``<root>/cifar-100-python/{train, test, meta}`` (6 train, 3 test images)."""
    return _fx.write_cifar100(root, CIFAR100_TRAIN_LABELS, CIFAR100_TEST_LABELS)


def write_svhn(root) -> FakeData:
    """``<root>/{train,test}_32x32.mat`` (5 train, 3 test images)."""
    return _fx.write_svhn(root, SVHN_TRAIN_DIGITS, SVHN_TEST_DIGITS)


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "svhn": write_svhn}


def patch_checksums(monkeypatch, fake: FakeData) -> None:
    """Make torchvision's dataset classes expect the md5s of the fake files (restored after the test)."""
    import torchvision.datasets as tvd

    for name, attrs in _fx.expected_checksums(fake.md5).items():
        for attr, value in attrs.items():
            monkeypatch.setattr(getattr(tvd, name), attr, value)
