"""The repository itself: environment files agree, notebooks are clean and execute headless."""
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from lab.host import machine
from lab.notebooks import NOTEBOOK_DIR, demo_parameters, execute, notebooks

ROOT = Path(__file__).resolve().parent.parent


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in proj["dependencies"] + proj["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_norm(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted
    assert "-e .[dev]" in pip
    assert "python=3.11" in env["dependencies"]
    assert not any("+cpu" in r for r in wanted | listed)  # the registry's default torch build


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def _parameters_source(path) -> str:
    nb = json.loads(Path(path).read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{Path(path).name} needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


def test_every_notebook_is_committed_without_outputs_and_has_a_parameters_cell():
    nbs = notebooks()
    assert nbs, "no notebooks found"
    for p in nbs:
        nb = json.loads(p.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{p.name} has outputs"
        src = _parameters_source(p)
        for name in demo_parameters(ROOT):
            assert re.search(rf"^{name}\s*=", src, re.M), f"{p.name}: parameter {name} missing"


def test_papermill_reads_every_parameter_with_its_help():
    """`papermill --help-notebook` lists each parameter (a comment papermill cannot parse is a warning per run)."""
    from papermill.translators import PythonTranslator

    for p in notebooks():
        lines = [line for line in _parameters_source(p).splitlines() if line.strip()]
        parsed = PythonTranslator.inspect({"source": "\n".join(lines)})
        assert [q.name for q in parsed] == [line.split("=")[0].strip() for line in lines], p.name
        assert all(q.help for q in parsed), p.name


# The tests shorten every run of the smoke profile to 30 steps (where a notebook takes STEPS). A 30-step
# GAN and filter classifier cannot supply accepted samples of every class, so the notebooks run their
# classifier-on-samples cells unfiltered here; the filtered stream is tested in test_sampling.py and
# test_classifier.py, and runs in `make demo`.
TEST_OVERRIDES = {"STEPS": 30, "THRESHOLD": None, "SWEEP": [None], "N_METRICS": 200, "POOL_PER_CLASS": 50,
                  "LAMBDA_SWEEP": [0.0, 0.1], "T_SWEEP": [0.7], "N_SYNTH": 100}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One folder all notebooks execute into, in order, sharing one run store (as `make demo` does)."""
    return tmp_path_factory.mktemp("demo")


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_executes_headless_with_the_smoke_profile(notebook, demo_dir):
    params = demo_parameters(demo_dir, "smoke")
    src = _parameters_source(notebook)
    params.update({k: v for k, v in TEST_OVERRIDES.items() if re.search(rf"^{k}\s*=", src, re.M)})
    out = execute(notebook, demo_dir, params, timeout=600)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    figs = list(Path(params["FIG_DIR"]).glob(f"{notebook.stem[:2]}_*.pdf"))
    assert figs, f"{notebook.name} exported no figure"
    for pdf in figs:
        assert pdf.with_suffix(".png").exists()
    assert NOTEBOOK_DIR in notebook.parents


def test_machine_records_the_commit_and_whether_the_tree_was_dirty(tmp_path):
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], capture_output=True, text=True, check=True)
    assert machine(tmp_path)["commit"] is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD").stdout.strip()
    m = machine(tmp_path)
    assert m["commit"] == head
    (tmp_path / "b.py").write_text("untracked\n")  # untracked files do not change what ran
    assert machine(tmp_path)["commit"] == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert machine(tmp_path)["commit"] == head + "+dirty"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "model name" in cpuinfo.read_text():
        assert m["cpu"] in cpuinfo.read_text() and m["cpu"]
    assert m["torch_threads"] >= 1 and m["torch"]


def test_the_worker_lane_trains_the_later_notebooks_runs_gans_first():
    from lab import notebook_grids
    from lab.config import GANConfig
    from lab.notebooks import prefetch_grid
    from lab.runs import run_dir

    grid = lambda nb: {run_dir(c).name for c in notebook_grids.notebook_grid(nb, "smoke", "data")}
    later = grid("05") | grid("06") | grid("07")
    alone = prefetch_grid("smoke", "data")  # 05-07 selected without 01-04: the worker trains all their runs
    assert [run_dir(c).name for c in alone] and {run_dir(c).name for c in alone} == later
    todo = prefetch_grid("smoke", "data", selected=["00", "01", "02", "03", "04", "05", "06", "07", "08"])
    names = [run_dir(c).name for c in todo]
    assert len(names) == len(set(names)) and set(names) == later - grid("04")  # 01-04's runs: the notebooks'
    kinds = [isinstance(c, GANConfig) for c in todo]
    assert kinds == sorted(kinds, reverse=True) and sum(kinds) == 2  # concat s0 and add s1, first
    assert prefetch_grid("smoke", "data", selected=["00", "01"]) == []
    only_07 = prefetch_grid("smoke", "data", selected=["07"])
    assert only_07 and all(c.kind == "ecgan" for c in only_07)


def test_kernels_get_every_core_once_the_worker_lane_has_exited():
    """While the worker runs a kernel gets its lane's threads, after it every core; the kernels' torch takes its
    thread count from OMP_NUM_THREADS, which is how `run_all` passes it on."""
    import multiprocessing
    import subprocess
    import sys
    import time

    from lab.notebooks import kernel_threads

    cores = os.cpu_count()
    worker = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
    worker.start()
    try:
        assert kernel_threads(worker, 1) == 1
    finally:
        worker.terminate()
        worker.join()
    assert kernel_threads(worker, 1) == cores and kernel_threads(None, 1) == cores
    for n in {1, cores}:  # (torch caps the count at the cores)
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], check=True,
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(n)}).stdout
        assert int(out) == n


def test_the_worker_lane_runs_in_its_own_process_and_logs(tmp_path):
    import multiprocessing

    from lab.notebooks import _prefetch
    from lab.presets import preset
    from lab.runs import Run, run_dir

    cfgs = [preset("digits-smoke").replace(g_ch=4, d_ch=4, steps=3, log_every=1, ckpt_every=3, grid_every=3, seed=s)
            for s in (0, 1)]
    p = multiprocessing.get_context("spawn").Process(
        target=_prefetch, args=([(c.kind, c.to_dict()) for c in cfgs], str(tmp_path / "runs"), 1, str(tmp_path / "w.log")))
    p.start()
    p.join(timeout=300)
    assert p.exitcode == 0
    assert all(Run(run_dir(c, tmp_path / "runs")).is_done(3) for c in cfgs)
    assert "worker: 2 runs in" in (tmp_path / "w.log").read_text() and "2 trained here" in (tmp_path / "w.log").read_text()


def test_the_worker_lane_exits_when_the_demo_is_killed(tmp_path):
    import os
    import signal
    import sys
    import time

    from lab.presets import preset

    cfg = preset("digits-smoke").replace(steps=10_000)  # far longer than the test waits
    script = tmp_path / "demo.py"
    script.write_text(
        "import multiprocessing, os, sys\n"
        "from lab.notebooks import _prefetch\n"
        "from lab.config import GANConfig\n"
        "if __name__ == '__main__':\n"
        f"    cfg = GANConfig.from_dict({cfg.to_dict()!r})\n"
        "    p = multiprocessing.get_context('spawn').Process(target=_prefetch, daemon=True,\n"
        f"        args=([(cfg.kind, cfg.to_dict())], {str(tmp_path / 'runs')!r}, 1, {str(tmp_path / 'w.log')!r}, os.getpid()))\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
        "    p.join()\n")
    demo = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(demo.stdout.readline())
    time.sleep(1)
    os.kill(demo.pid, signal.SIGKILL)  # no cleanup runs in the parent, possibly before the worker is up
    demo.wait()
    deadline = time.time() + 30
    while time.time() < deadline and Path(f"/proc/{worker}").exists() and "zombie" not in _state(worker):
        time.sleep(0.2)
    assert not Path(f"/proc/{worker}").exists() or "zombie" in _state(worker), "the worker outlived the demo"


def _state(pid) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"
