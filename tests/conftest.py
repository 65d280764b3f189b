"""Shared data fixtures.

``cifar10_data``, ``cifar100_data``, ``svhn_data``: tiny files in the real on-disk formats, written
under a fresh temp root, with torchvision's expected checksums patched to theirs (see
``tests/fixtures.py``); each yields a ``FakeData`` (``.root``, ``.pixels(split)``,
``.labels(split)``, ``.classes``). ``digits_train`` / ``digits_test``: the embedded digits, loaded once.
"""
import dataclasses
import os

# Under pytest-xdist (`-n auto` in pyproject.toml) every worker process gets an equal share of the cores, set
# before torch is imported (the notebook kernels and other subprocesses of a test inherit it): two workers of
# two threads on a 2-core machine would oversubscribe it.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import socket
import urllib.error
import urllib.request

import pytest

# precision="auto" and channels_last="auto" on a CPU follow the CPU's flags (lab.train.common); the tests pin fp32
# in the default layout so that their numbers do not depend on the machine (tests/test_runtime.py tests every
# branch).
os.environ.setdefault("LAB_CPU_BF16", "0")
os.environ.setdefault("LAB_CPU_CHANNELS_LAST", "0")

from fixtures import FakeData, patch_checksums, write_cifar10, write_cifar100, write_svhn  # tests/ is on sys.path

# The slowest modules first. pytest-xdist (`--dist loadfile --no-loadscope-reorder` in pyproject.toml) hands
# whole modules to its workers in collection order; these took 563, 184, 160, 114, 96 and 82 s on a 2-core AMD
# EPYC (AVX2 only), 1,469 s of work in all. In file order the notebooks' module (563 s, its tests in sequence on
# one run store) started after a third of the run and ended alone (839 s of wall time); started first, the other
# worker fills the other core meanwhile (longest first).
SLOWEST_MODULES = ("test_project.py", "test_rehearsal.py", "test_grid.py", "test_share.py", "test_inception.py", "test_study.py",
                   "test_browser.py", "test_ecgan_biggan.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module keeps its own order


def _fake(monkeypatch, tmp_path_factory, writer) -> FakeData:
    fake = writer(tmp_path_factory.mktemp("data"))
    patch_checksums(monkeypatch, fake)
    return fake


@pytest.fixture
def cifar10_data(monkeypatch, tmp_path_factory) -> FakeData:
    return _fake(monkeypatch, tmp_path_factory, write_cifar10)


@pytest.fixture
def cifar100_data(monkeypatch, tmp_path_factory) -> FakeData:
    return _fake(monkeypatch, tmp_path_factory, write_cifar100)


@pytest.fixture
def svhn_data(monkeypatch, tmp_path_factory) -> FakeData:
    return _fake(monkeypatch, tmp_path_factory, write_svhn)


@pytest.fixture
def fake_data(request):
    """Indirect fixture: ``@pytest.mark.parametrize("fake_data", ["cifar10", ...], indirect=True)``."""
    return request.getfixturevalue(f"{request.param}_data")


@pytest.fixture
def no_network(monkeypatch):
    """Every way out fails like an unplugged machine: urllib raises URLError, sockets refuse to connect."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable (blocked by the no_network fixture)"))

    def refuse_socket(*args, **kwargs):
        raise OSError(101, "Network is unreachable (blocked by the no_network fixture)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse_socket)
    monkeypatch.setattr(socket, "create_connection", refuse_socket)
    try:
        import torch.hub

        if hasattr(torch.hub, "urlopen"):
            monkeypatch.setattr(torch.hub, "urlopen", refuse)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    return tmp_path_factory.mktemp("digits_root")


@pytest.fixture(scope="session")
def digits_train(digits_root):
    from lab.data import load_dataset

    return load_dataset("digits", "train", root=str(digits_root), download=False)


@pytest.fixture(scope="session")
def digits_test(digits_root):
    from lab.data import load_dataset

    return load_dataset("digits", "test", root=str(digits_root), download=False)


@pytest.fixture(autouse=True)
def _same_random_state():
    """Every test starts from one global RNG state (torch, numpy, random), whatever ran before it on its worker:
    xdist hands modules to workers in an order that varies, and a test's unseeded random inputs must not vary
    with it (CI once failed on bytes from os.urandom)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_thread")`): on a busy
    2-core machine, 2 intra-op threads are ~20x slower than 1."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny(monkeypatch):
    """The smoke profile with a threshold every untrained GAN meets (t = 0: the filter's argmax is the class),
    one sweep point and one seed everywhere: every job of its manifest runs in seconds."""
    from lab import profiles

    smoke = profiles.get("smoke")
    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(
        smoke, threshold=0.0, sweep=(None, 0.0), classifier_seeds=(0,), lambda_sweep=(0.1,), t_sweep=(0.7,),
        n_metrics=100, real_fractions=(0.5, 1.0)))
    return "smoke"
