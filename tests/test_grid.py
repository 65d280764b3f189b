"""lab.grid on a local Ray with 2 workers: the same runs as the local backend, a SIGKILLed worker retried and its
run resumed bit for bit, one training for a config submitted twice, a failing run reported while the others
finish, and the stages (a GAN-stream classifier after its GANs)."""
import json
import os
import signal
import threading
import time

import pytest
import torch

from lab import grid, study
from lab import jobs as jobs_
from lab.config import ClassifierConfig
from lab.errors import LabError
from lab.presets import preset
from lab.runs import Run, run_dir

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e .[dev] installs it)")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
             ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture
def one_thread_here():
    """The local backend trains in this process: one torch thread, as each Ray task (num_cpus=1) has."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gan(seed=0, steps=6, **kw):
    return preset("digits-smoke").replace(**{**dict(g_ch=4, d_ch=4, seed=seed, steps=steps, log_every=2, ckpt_every=3,
                                                    grid_every=steps, device="cpu"), **kw})


def _clf(**kw):
    return preset("classifier-digits-smoke").replace(**{**dict(width=4, steps=6, log_every=2, eval_every=6, ckpt_every=3,
                                                               subset=400, device="cpu"), **kw})


def _ecgan():
    return preset("digits-ecgan-smoke").replace(method="classifier-dcgan", classifier_width=2, ngf=4, ndf=4, fraction=0.05,
                                                steps=6, log_every=2, eval_every=6, ckpt_every=3, device="cpu")


def _state(run: Run) -> dict:
    s = run.load_checkpoint()
    stats = [{k: v for k, v in line.items() if k != "sec_per_step"} for line in run.stats()]
    done = {k: v for k, v in run.done().items() if k != "last"}
    return {"models": s["models"], "stats": stats, "done": done}


def _same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def test_ray_gives_the_runs_of_the_local_backend(tmp_path, local_ray, one_thread_here):
    cfgs = [_gan(), _clf(), _ecgan()]
    here = grid.run(cfgs, "local", root=tmp_path / "local", progress=False)
    there = grid.run(cfgs, "ray", root=tmp_path / "ray", num_cpus=1, progress=False)
    assert all(r.ok and r.trained for r in here + there), [r.error for r in here + there]
    for a, b in zip(grid.check(here), grid.check(there)):
        assert a.path.name == b.path.name
        _same(_state(a), _state(b))
    again = grid.run(cfgs, "ray", root=tmp_path / "ray", progress=False)  # finished: found, not trained
    assert all(r.ok and not r.trained for r in again)


def test_a_killed_worker_is_retried_and_resumes_bit_for_bit(tmp_path, local_ray, one_thread_here):
    cfg = _gan(steps=60, ckpt_every=10, log_every=5)
    ref = grid.run([cfg], "local", root=tmp_path / "ref", progress=False)
    path = run_dir(cfg, tmp_path / "ray")
    killed = []

    def kill_after_a_checkpoint():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            pid = grid.lock_holder(path)
            if pid and pid > 0 and (path / "checkpoint.pt").exists() and len(Run(path).stats()) >= 3:
                os.kill(pid, signal.SIGKILL)  # the worker dies mid-run, as on a lost node
                killed.append(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_a_checkpoint)
    watcher.start()
    res = grid.run([cfg], "ray", root=tmp_path / "ray", num_cpus=1, max_retries=2, progress=False)
    watcher.join()
    assert killed, "the worker was never killed (the run finished too fast to catch)"
    assert res[0].ok, res[0].error
    assert grid.lock_holder(path) is None
    _same(_state(ref[0].run), _state(res[0].run))


def test_the_same_config_twice_trains_once(tmp_path, local_ray):
    cfg = _gan(steps=12)
    res = grid.run([cfg, cfg], "ray", root=tmp_path, num_cpus=1, dedupe=False, progress=False)
    assert all(r.ok for r in res) and sorted(r.trained for r in res) == [False, True]
    steps = [line["step"] for line in res[0].run.stats()]
    assert steps == sorted(set(steps)) == list(range(2, 13, 2))  # one run's lines, none twice
    deduped = grid.run([cfg, cfg], "local", root=tmp_path / "d", progress=False)
    assert [r.trained for r in deduped] == [True, True] and deduped[0].run.path == deduped[1].run.path


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, local_ray, backend):
    bad = ClassifierConfig(dataset="cifar10", data_root=str(tmp_path / "no-data"), width=4, steps=4, device="cpu")
    res = grid.run([_gan(seed=1), bad, _clf(seed=1)], backend, root=tmp_path, progress=False)
    assert res[0].ok and res[2].ok
    assert not res[1].ok and res[1].run is None and "DataNotFoundError" in res[1].error and "cifar10" in res[1].error
    with pytest.raises(LabError, match=rf"1 of 3 runs of the grid failed \({run_dir(bad).name}: DataNotFoundError"):
        grid.check(res)


def test_with_training_off_a_grid_trains_nothing_on_any_backend_and_names_what_the_store_lacks(tmp_path, capsys,
                                                                                              one_thread_here, monkeypatch):
    from lab import runs

    first = grid.run([_clf(seed=1)], "local", root=tmp_path, progress=False)[0]
    runs.set_training(False)
    try:
        monkeypatch.setattr(grid, "_ray_init", lambda address: pytest.fail("started Ray"))  # the store is read only
        res = grid.run([_clf(seed=1), _gan(seed=1), _clf(seed=2)], "ray", root=tmp_path, progress=False)
        assert res[0].ok and not res[0].trained and res[0].run.path == first.run.path
        assert [r.missing for r in res] == [False, True, True] and res[1].run is None
        assert not run_dir(_gan(seed=1), tmp_path).exists() and not run_dir(_clf(seed=2), tmp_path).exists()
        assert [r and r.path for r in grid.check(res)] == [first.run.path, None, None]
        out = capsys.readouterr().out
        assert f"2 of 3 runs of this grid are not in the run store, and training is off: {run_dir(_gan(seed=1)).name}" in out
        failed = grid.Result(_clf(seed=3), None, "DataNotFoundError: no data")  # a failure is still one
        with pytest.raises(LabError, match=r"1 of 2 runs of the grid failed"):
            grid.check([res[1], failed])
    finally:
        runs.set_training(True)


def test_a_stream_classifier_waits_for_its_gans_and_filter(tmp_path):
    from lab import experiments as ex

    gan, filt = _gan(steps=4), _clf(steps=4, subset=0)
    stream = ex.gan_classifier_config(_clf(steps=4, subset=0), [Run(run_dir(gan))], Run(run_dir(filt)), None)
    alone = grid.run([stream], "local", root=tmp_path / "a", progress=False)
    assert "is not finished" in alone[0].error
    res = grid.run([stream, gan, filt], "local", root=tmp_path / "b", progress=False)  # stage 1 after stage 0
    assert all(r.ok for r in res), [r.error for r in res]
    assert json.loads((res[0].run.path / "config.json").read_text())["source"] == "gan"


@pytest.mark.parametrize("layout", ["on", "off"])
def test_a_stream_draws_in_its_runs_memory_format(tmp_path, monkeypatch, layout):
    """The GANs and the filter of a stream classifier run in the layout its runtime.json records."""
    from lab import experiments as ex
    from lab import sampling

    gan, filt = _gan(steps=4), _clf(steps=4, subset=0)
    res = grid.run([gan, filt], "local", root=tmp_path, progress=False)
    assert all(r.ok for r in res), [r.error for r in res]
    seen = []

    class Spy(sampling.FilteredSampler):
        def __init__(self, generators, classifier, *a, **kw):
            seen.extend(p for m in [*generators, classifier] for p in m.parameters() if p.dim() == 4)
            super().__init__(generators, classifier, *a, **kw)

    monkeypatch.setattr(sampling, "FilteredSampler", Spy)
    stream = ex.gan_classifier_config(_clf(steps=2, subset=0, channels_last=layout), [Run(run_dir(gan, tmp_path))],
                                      Run(run_dir(filt, tmp_path)), None)
    run = ex.stream_classifier(stream, root=tmp_path)
    want = torch.channels_last if layout == "on" else torch.contiguous_format
    assert seen and all(p.is_contiguous(memory_format=want) for p in seen)
    assert json.loads((run.path / "runtime.json").read_text())["channels_last"] == (layout == "on")


def test_the_board_counts_states(tmp_path):
    cfgs = [_gan(steps=4), _gan(seed=1, steps=4)]
    grid.run(cfgs[:1], "local", root=tmp_path, progress=False)
    board = grid.Board(cfgs, [run_dir(c, tmp_path) for c in cfgs], show=False)
    assert board.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 0}
    with grid.run_lock(run_dir(cfgs[1], tmp_path)):
        assert grid.lock_holder(run_dir(cfgs[1], tmp_path)) == os.getpid()
        assert board.counts()["running"] == 1


def test_the_local_backend_trains_the_free_runs_before_one_another_process_is_training(tmp_path):
    cfgs = [_gan(steps=2), _gan(seed=1, steps=2)]
    paths = [run_dir(c, tmp_path) for c in cfgs]
    held, release, out = threading.Event(), threading.Event(), []

    def other_trainer():  # holds the first run's lock, as a second notebook or the demo's worker would
        with grid.run_lock(paths[0]):
            held.set()
            release.wait(120)

    holder = threading.Thread(target=other_trainer)
    holder.start()
    held.wait(10)
    runner = threading.Thread(target=lambda: out.extend(grid.run(cfgs, "local", root=tmp_path, progress=False)))
    runner.start()
    deadline = time.time() + 120
    while time.time() < deadline and not Run(paths[1]).is_done():
        time.sleep(0.05)
    assert Run(paths[1]).is_done() and not Run(paths[0]).is_done()  # the free run first, the held one waits
    release.set()
    holder.join()
    runner.join(120)
    assert [r.ok for r in out] == [True, True] and Run(paths[0]).is_done()


def test_the_study_on_a_ray_grid_fills_the_ledger_as_the_lanes_do(tmp_path, local_ray, tiny, digits_root):
    KINDS = ("real", "gan", "stream", "acceptance")  # GANs and the filter before the streams that read them
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    out = study.study_on_grid(30, "ray", None, 1, 0, tiny, root, ledger, str(digits_root), results=False,
                              steps=4, only=KINDS, progress=False)
    jobs = jobs_.select(study.manifest(tiny, str(digits_root), steps=4), KINDS)
    assert len(out) == len(jobs) and all(jobs_.in_ledger(j, ledger) for j in jobs)
    assert (ledger / "datasets.json").exists()  # what `lab results` reads with no dataset on disk
    for j in jobs:
        if j.config is not None:  # each run's record names the worker that trained it
            rec = json.loads((ledger / j.config.kind / j.name() / "record.json").read_text())
            assert rec["machine"]["cpu"] and rec["machine"]["torch_threads"] == 1 and rec["seconds"] > 0
    # A second call finds everything in the ledger: nothing planned, nothing trained.
    assert study.study_on_grid(30, "local", profile=tiny, root=root, ledger=ledger, data_root=str(digits_root),
                               results=False, steps=4, only=KINDS, progress=False) == []
