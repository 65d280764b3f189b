import json
import os
import pickle
import random
import subprocess
import sys

import pytest
import torch

from lab import checkpoints, runs
from lab.config import GANConfig
from lab.presets import preset
from lab.errors import CheckpointError, ConfigError, NotInStore


def test_config_hash_is_stable_across_processes_and_ignores_budget():
    cfg = preset("digits-smoke")
    h = runs.config_hash(cfg)
    assert len(h) == 12 and int(h, 16) >= 0
    code = "from lab.presets import preset; from lab.runs import config_hash; print(config_hash(preset('digits-smoke')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == h
    assert runs.config_hash(cfg.replace(steps=10_000, device="cpu", log_every=1)) == h
    assert runs.config_hash(cfg.replace(seed=1)) != h
    assert runs.config_hash(cfg.replace(block="concat")) != h


def test_run_dir_names_dataset_seed_and_hash(tmp_path):
    cfg = preset("digits-smoke").replace(seed=3)
    d = runs.run_dir(cfg, tmp_path)
    assert d.parent == tmp_path / "gan"
    assert d.name == f"digits-s3-{runs.config_hash(cfg)}"


def test_atomic_save_survives_a_crash_mid_write(tmp_path, monkeypatch):
    run = runs.Run(tmp_path)
    run.save_checkpoint({"step": 1, "w": torch.arange(4.0)})

    def crashing_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the process dies
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(CheckpointError, match="previous file is intact"):
        run.save_checkpoint({"step": 2, "w": torch.zeros(4)})
    monkeypatch.undo()
    state = run.load_checkpoint()
    assert state["step"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left


def test_truncated_checkpoint_names_the_file(tmp_path):
    run = runs.Run(tmp_path)
    run.save_checkpoint({"w": torch.randn(1000)})
    data = run.checkpoint_path.read_bytes()
    run.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{run.checkpoint_path}.*corrupt or truncated"):
        run.load_checkpoint()


def test_any_damaged_bytes_give_one_checkpoint_error(tmp_path):
    # random bytes fail torch's unpickler in many ways (IndexError, KeyError, struct.error, UnicodeDecodeError ...):
    # every one must come out as the lab's one-line CheckpointError (CI once met an IndexError here)
    path = tmp_path / "checkpoint.pt"
    for seed in range(400):
        rng = random.Random(seed)
        path.write_bytes(rng.randbytes(rng.choice([1, 2, 5, 40, 3000])))
        with pytest.raises(CheckpointError, match=f"{path}.*(damaged|corrupt or truncated|Refusing)"):
            checkpoints.safe_load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        runs.Run(tmp_path).load_checkpoint()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_a_pickle_that_would_execute_code_is_refused(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as f:  # a checkpoint with a code-executing object inside
        torch.save({"model": {"w": torch.ones(1)}, "payload": _Evil()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="Refusing to load"):
        checkpoints.safe_load(path)
    assert not _Evil.marker.exists()
    # the same file does run code when unpickled without the guard: the test is not vacuous
    torch.load(path, weights_only=False)
    assert _Evil.marker.exists()


def test_checkpoint_keeps_rng_state_and_optimizer_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(5)
    run = runs.Run(tmp_path)
    run.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(), "rng": checkpoints.rng_state(), "gen": g.get_state()})
    expected = (torch.rand(3), torch.rand(3, generator=g))
    state = run.load_checkpoint()
    checkpoints.set_rng_state(state["rng"])
    g2 = torch.Generator()
    g2.set_state(state["gen"])
    assert torch.equal(torch.rand(3), expected[0]) and torch.equal(torch.rand(3, generator=g2), expected[1])
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(state["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_stats_append_read_and_truncate(tmp_path):
    run = runs.Run(tmp_path)
    for step in (10, 20, 30):
        run.log({"step": step, "loss": step / 10})
    assert [s["step"] for s in run.stats()] == [10, 20, 30]
    run.truncate_stats(20)
    assert [s["step"] for s in run.stats()] == [10, 20]
    assert list(run.stats_frame().columns) == ["step", "loss"]


def test_init_refuses_a_directory_of_another_config(tmp_path):
    cfg = preset("digits-smoke")
    run = runs.Run(tmp_path / "r")
    run.init(cfg)
    run.init(cfg.replace(steps=999))  # a longer budget is the same run
    assert run.config(GANConfig).steps == 999
    with pytest.raises(ConfigError, match="differs in block"):
        run.init(cfg.replace(block="concat"))
    assert run.config(GANConfig).block == "add"  # nothing overwritten


def _marking_done(calls: list):
    """A training function that only marks its run finished at its steps, recording each call in `calls`."""
    def train(cfg, path):
        calls.append(path)
        run = runs.Run(path)
        run.init(cfg)
        run.mark_done({"step": cfg.steps})
    return train


def test_get_or_train_trains_once_then_returns(tmp_path):
    calls = []
    train = _marking_done(calls)

    cfg = preset("digits-smoke")
    r1 = runs.get_or_train(cfg, train, root=tmp_path)
    r2 = runs.get_or_train(cfg, train, root=tmp_path)
    assert r1.path == r2.path and len(calls) == 1 and r1.is_done()
    runs.get_or_train(cfg.replace(steps=cfg.steps + 1), train, root=tmp_path)  # asks for more: trains on
    assert len(calls) == 2
    assert [r.path for r in runs.find_runs("gan", tmp_path)] == [r1.path]
    assert json.loads((r1.path / "done.json").read_text())["step"] == cfg.steps + 1


@pytest.fixture
def training_off():
    runs.set_training(False)
    yield
    runs.set_training(True)


def test_with_training_off_a_run_the_store_lacks_is_one_error_naming_it_and_nothing_is_written(tmp_path):
    calls = []
    train = _marking_done(calls)

    cfg, other = preset("digits-smoke"), preset("digits-smoke").replace(seed=1)
    done = runs.get_or_train(cfg, train, root=tmp_path)
    runs.set_training(False)
    try:
        assert runs.get_or_train(cfg, train, root=tmp_path).path == done.path  # a finished run is read as is
        with pytest.raises(NotInStore, match=rf"^the gan run {runs.run_dir(other).name} is not in the run store "
                                             rf"{tmp_path}, and training is off .*`python -m lab study`"):
            runs.get_or_train(other, train, root=tmp_path)
        with pytest.raises(NotInStore):  # more steps of a finished run would train too
            runs.get_or_train(cfg.replace(steps=cfg.steps + 1), train, root=tmp_path)
    finally:
        runs.set_training(True)
    assert len(calls) == 1 and not runs.run_dir(other, tmp_path).exists() and runs.training()
    with pytest.raises(ConfigError, match="training is True or False"):
        runs.set_training("no")


def test_with_training_off_a_gan_sets_metrics_are_read_not_computed(tmp_path, training_off):
    from lab import experiments as ex

    gan, filt = runs.Run(tmp_path / "gan" / "g0"), runs.Run(tmp_path / "classifier" / "f")
    with pytest.raises(NotInStore, match=r"^the metrics of the GAN set g0 is not in the run store"):
        ex.gan_set_metrics([gan], filt, 10, tmp_path, n_fid=0, threshold=0.9)
    assert not (tmp_path / "metrics").exists()


def test_if_stored_names_what_the_store_lacks_in_one_line_and_gives_none(tmp_path, training_off, capsys):
    from lab import experiments as ex

    assert runs.if_stored(lambda a, b=0: a + b, 1, b=2) == 3  # anything else passes through
    gan, filt = runs.Run(tmp_path / "gan" / "g0"), runs.Run(tmp_path / "classifier" / "f")
    assert runs.if_stored(ex.gan_set_metrics, [gan], filt, 10, tmp_path, n_fid=0, threshold=0.9) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "the metrics of the GAN set g0" in out and "TRAIN = True computes it" in out
    with pytest.raises(ConfigError):  # only a missing run is turned into None
        runs.if_stored(runs.set_training, "no")


def test_a_gan_pool_with_training_off_is_the_leading_seeds_the_store_holds(tmp_path, capsys):
    from lab import experiments as ex

    calls = []
    cfg = preset("digits-smoke")
    for seed in (0, 1, 3):  # seed 2 missing: a set of k GANs uses seeds 0 .. k-1, so the pool stops at 1
        runs.get_or_train(cfg.replace(seed=seed), _marking_done(calls), root=tmp_path)
    runs.set_training(False)
    try:
        pool = ex.gan_pool(cfg, range(4), tmp_path)
        assert [r.path.name for r in pool] == [runs.run_dir(cfg.replace(seed=s)).name for s in (0, 1)]
        assert runs.run_dir(cfg.replace(seed=2)).name in capsys.readouterr().out
        with pytest.raises(NotInStore, match=runs.run_dir(cfg.replace(seed=2)).name):  # none to show: the error
            ex.gan_pool(cfg, range(2, 4), tmp_path)
    finally:
        runs.set_training(True)
    assert len(calls) == 3 and not runs.run_dir(cfg.replace(seed=2), tmp_path).exists()


def test_get_or_train_waits_for_another_trainer_of_the_same_run_and_does_not_train_it_again(tmp_path):
    import threading
    import time

    calls = []

    def train(cfg, path):
        calls.append(path)
        runs.Run(path).init(cfg)
        runs.Run(path).mark_done({"step": cfg.steps})

    cfg = preset("digits-smoke")
    path = runs.run_dir(cfg, tmp_path)
    got = []
    with runs.run_lock(path):  # another trainer (here: this thread) holds the run
        assert runs.lock_holder(path) == os.getpid()
        waiter = threading.Thread(target=lambda: got.append(runs.get_or_train(cfg, train, root=tmp_path)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not calls  # blocked on the lock, not training
        train(cfg, path)  # the holder finishes the run
    waiter.join(timeout=10)
    assert not waiter.is_alive() and got[0].is_done()
    assert calls == [path]  # trained once, by the holder
    assert runs.lock_holder(path) is None


def test_run_lock_is_reentrant_within_a_thread(tmp_path):
    with runs.run_lock(tmp_path / "r"):
        with runs.run_lock(tmp_path / "r"):  # e.g. a grid task whose train function calls get_or_train
            assert runs.lock_holder(tmp_path / "r") == os.getpid()
        assert runs.lock_holder(tmp_path / "r") == os.getpid()  # the outer block still holds it
    assert runs.lock_holder(tmp_path / "r") is None
