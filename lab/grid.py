"""Bring a grid of runs to done: one after another in this process (backend "local"), or as Ray tasks on this
machine or a Ray cluster (backend "ray"), through the same get-or-train path either way.

A grid is a list of run configs (GANConfig, ClassifierConfig, ECGANConfig). Classifiers of a GAN stream wait
for a first stage (GANs, real-data classifiers, EC-GAN runs) since they read those runs. A run directory is
written by one process at a time: `RunLock` holds an flock on `<run>/.lock` while a run trains, so a second
submission of the same config waits for the first and then finds the run finished. Ray retries a task whose
worker dies, and the run resumes from its last checkpoint. A run that raises is reported in its `Result`; the
others go on. The run store must be on a filesystem every worker sees (a shared mount on a cluster).
"""
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ClassifierConfig, Config, ECGANConfig, GANConfig
from .errors import ConfigError, LabError, NotInStore
from .runs import LOCK, Run, lock_holder, run_dir, run_lock, training  # noqa: F401 (LOCK, run_lock: API too)

KINDS = {c.KIND: c for c in (GANConfig, ClassifierConfig, ECGANConfig)}


@dataclass
class Result:
    """One config of a grid: its finished run, or the error it stopped with."""

    config: Config
    run: Run | None
    error: str | None = None
    trained: bool = False  # this call trained (or resumed) it; False: it was finished already, or failed
    machine: dict | None = None  # where it was got or trained (`lab.host.machine()` of the worker)
    seconds: float | None = None  # the task's wall time on its worker

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def missing(self) -> bool:
        """Not in the run store, with training off (`lab.runs.set_training`): nothing failed."""
        return (self.error or "").startswith(f"{NotInStore.__name__}:")


# --- One run, under its lock (`lab.runs.run_lock`) --------------------------------------------------
def train_one(kind: str, cfg: dict, root: str, threads: int = None) -> dict:
    """Get, resume or train one run (the body of a grid task); returns {"path", "trained", "machine" (the
    worker's CPU, GPU and commit: on a cluster, not the driver's), "seconds" (its wall time there)}."""
    from .experiments import train_config
    from .host import machine

    config = KINDS[kind].from_dict(cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)
    path, t0 = run_dir(config, root), time.perf_counter()
    with run_lock(path):
        trained = not Run(path).is_done(_steps(config))
        train_config(config, root)
    return {"path": str(path), "trained": trained, "machine": machine(), "seconds": round(time.perf_counter() - t0, 1)}


def _steps(cfg):
    return getattr(cfg, "steps", None) or None  # EC-GAN's 0 means "from epochs": any finished run then


# --- The grid ----------------------------------------------------------------------------------
def stage(cfg) -> int:
    """0: runs that need no other run; 1: classifiers of a GAN stream (they read GAN and filter runs)."""
    return 1 if isinstance(cfg, ClassifierConfig) and cfg.source == "gan" else 0


def run(configs, backend: str = "local", address: str = None, root=None, num_cpus: float = 1, num_gpus: float = None,
        max_retries: int = 3, progress: bool = True, dedupe: bool = True) -> list:
    """Bring every config to a finished run; returns one `Result` per config, in order. With training off
    (`lab.runs.set_training(False)`: a study notebook) nothing is trained and no backend starts: a run the store
    lacks is a `Result` whose `missing` is True.

    Args:
        configs: run configs (GANConfig, ClassifierConfig, ECGANConfig), any mix.
        backend: "local" (this process, one run after another) or "ray".
        address: ray only: None starts a local Ray instance; "auto" or "ray://host:port" joins a cluster.
        root: the run store (a filesystem every Ray worker sees).
        num_cpus, num_gpus: ray only: resources of each task (default: 1 CPU; 1 GPU per task when CUDA is
            available here); a task's torch uses `num_cpus` threads.
        max_retries: ray only: retries of a task whose worker died (its run resumes from its checkpoint).
        progress: show the live table (a widget in notebooks, lines on a terminal).
        dedupe: submit each distinct run once (configs that name the same run directory share its result).
    """
    from .runs import default_root

    root = str(Path(root or default_root()).resolve())
    configs = list(configs)
    for c in configs:
        if not isinstance(c, tuple(KINDS.values())):
            raise ConfigError(f"A grid holds run configs (GANConfig, ClassifierConfig, ECGANConfig), got {type(c).__name__}.")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}.")
    paths = [run_dir(c, root) for c in configs]
    if not training():  # read the store only, on any backend: what it lacks is reported, nothing is trained
        done = [Run(p).is_done(_steps(c)) for c, p in zip(configs, paths)]
        return [Result(c, Run(p) if ok else None,
                       None if ok else f"{NotInStore.__name__}: {NotInStore(f'the {c.kind} run {p.name}', root)}")
                for c, p, ok in zip(configs, paths, done)]
    jobs = {}  # run path -> (index of its first config, config); in submission order
    for i, (c, p) in enumerate(zip(configs, paths)):
        key = p if dedupe else i
        jobs.setdefault(key, (i, c))
    board = Board(configs, paths, progress)
    outcome = {}  # index -> (trained, error, what train_one returned)
    for s in (0, 1):
        todo = [(i, c) for i, c in jobs.values() if stage(c) == s]
        if backend == "local":
            while todo:
                # A run another process is training now (a second notebook, a worker) comes last: by then it
                # is finished, or this process waits on its lock; the free ones are trained meanwhile.
                i, c = next(((i, c) for i, c in todo if not lock_holder(paths[i])), todo[0])
                todo.remove((i, c))
                board.started(i)
                outcome[i] = _attempt(lambda: train_one(c.kind, c.to_dict(), root))
                board.finished(i, outcome[i])
        else:
            outcome.update(_ray_stage(todo, root, address, num_cpus, num_gpus, max_retries, board))
    board.close()
    results = []
    for i, (c, p) in enumerate(zip(configs, paths)):
        trained, error, out = outcome[jobs[p if dedupe else i][0]]
        ok = error is None and Run(p).is_done(_steps(c))
        results.append(Result(c, Run(p) if ok else None, error if error or ok else "the run did not finish", trained,
                              (out or {}).get("machine"), (out or {}).get("seconds")))
    return results


def _attempt(fn):
    """(trained, None, train_one's dict) or (False, "ErrorType: message", None): whatever one run raises (a
    LabError, a bug, a lost worker) must not stop the others. Ray wraps a task's exception; the run's own one is
    its `cause`."""
    try:
        out = fn()
        return out["trained"], None, out
    except Exception as e:
        cause = getattr(e, "cause", None) or e
        return False, f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}", None


def _ray_init(address) -> None:
    import ray

    if not ray.is_initialized():
        init = dict(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        if address is None:
            init.update(num_cpus=max(os.cpu_count() or 1, 1), object_store_memory=200 * 2**20)
        ray.init(**init)


def _gpus(num_gpus) -> float:
    if num_gpus is None:
        import torch

        return 1 if torch.cuda.is_available() else 0
    return num_gpus


def slots(backend: str, address: str = None, num_cpus: float = 1, num_gpus: float = None) -> int:
    """How many runs `backend` trains at once: 1 locally; on Ray, the cluster's GPUs (or CPUs) over each task's
    share (starting or joining Ray as `run` would)."""
    if backend == "local":
        return 1
    import ray

    _ray_init(address)
    res, gpus = ray.cluster_resources(), _gpus(num_gpus)
    n = res.get("GPU", 0) / gpus if gpus else res.get("CPU", 1) / max(num_cpus, 1e-9)
    return max(1, int(n))


def _ray_stage(todo, root, address, num_cpus, num_gpus, max_retries, board) -> dict:
    import ray

    _ray_init(address)
    num_gpus = _gpus(num_gpus)
    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(train_one)
    refs = {}
    for i, c in todo:
        refs[task.remote(c.kind, c.to_dict(), root, max(1, int(num_cpus)))] = i
        board.queued(i)
    out, pending = {}, list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=2.0)
        for ref in ready:
            i = refs[ref]
            out[i] = _attempt(lambda: ray.get(ref))
            board.finished(i, out[i])
        board.refresh()
    return out


# --- The live table ------------------------------------------------------------------------------
class Board:
    """Runs pending / running (with their step) / done / failed, refreshed while a grid runs: an ipywidgets
    table in a notebook, a line per change on a terminal."""

    def __init__(self, configs, paths, show: bool = True):
        self.configs, self.paths, self.show = configs, paths, show
        self.state = {i: "done" if Run(p).is_done(_steps(c)) else "pending" for i, (c, p) in enumerate(zip(configs, paths))}
        self.errors, self.widget, self.last = {}, None, None
        if show and _in_notebook():
            import ipywidgets as W
            from IPython.display import display

            self.widget = W.HTML()
            display(self.widget)
        self.refresh()

    def queued(self, i):
        self.refresh()

    def started(self, i):
        self.state[i] = "running"
        self.refresh()

    def finished(self, i, outcome):
        error = outcome[1]
        self.state[i] = "failed" if error else "done"
        if error:
            self.errors[i] = error
        self.refresh()

    def rows(self) -> list:
        """One dict per config: run, kind, state, step (of a running run, from its stats.jsonl), error."""
        out = []
        for i, (c, p) in enumerate(zip(self.configs, self.paths)):
            state = self.state[i]
            if state == "pending" and lock_holder(p):
                state = "running"
            out.append({"run": p.name, "kind": c.kind, "state": state, "step": _last_step(p) if state == "running" else None,
                        "error": self.errors.get(i)})
        return out

    def counts(self) -> dict:
        rows = self.rows()
        return {s: sum(r["state"] == s for r in rows) for s in ("pending", "running", "done", "failed")}

    def refresh(self):
        if not self.show:
            return
        counts = self.counts()
        if self.widget is not None:
            head = " · ".join(f"{k} {v}" for k, v in counts.items())
            body = "".join(f"<tr><td>{r['run']}</td><td>{r['kind']}</td><td>{r['state']}</td><td>{r['step'] or ''}</td>"
                           f"<td>{r['error'] or ''}</td></tr>" for r in self.rows())
            self.widget.value = (f"<b>grid: {head}</b><table><tr><th>run</th><th>kind</th><th>state</th><th>step</th>"
                                 f"<th>error</th></tr>{body}</table>")
        elif counts != self.last:
            print("grid: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        self.last = counts

    def close(self):
        self.refresh()
        for i, e in sorted(self.errors.items()):
            if self.widget is None and self.show:
                print(f"grid: {self.paths[i].name} failed: {e}", flush=True)


def _last_step(path):
    stats = Path(path) / "stats.jsonl"
    try:
        lines = stats.read_text().splitlines()
        return json.loads(lines[-1]).get("step") if lines else 0
    except (OSError, ValueError):
        return None


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except ImportError:
        return False


def wall_time(configs, backend, **kw) -> float:
    """Seconds to bring `configs` to done with `backend` (for `python -m lab bench grid`)."""
    t0 = time.perf_counter()
    results = run(configs, backend, progress=False, **kw)
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise LabError(f"{len(bad)} run(s) of the grid failed: {bad[0]}")
    return time.perf_counter() - t0


def check(results: list) -> list:
    """The finished runs of a grid's results, in order; one LabError naming every failed run otherwise. A run
    missing from the store with training off (`Result.missing`) is None, and one printed line names them all."""
    bad = [r for r in results if not r.ok and not r.missing]
    if bad:
        lines = "; ".join(f"{run_dir(r.config).name}: {r.error}" for r in bad[:3])
        raise LabError(f"{len(bad)} of {len(results)} runs of the grid failed ({lines}{'; ...' if len(bad) > 3 else ''}); "
                       f"fix their cause and run the grid again: the finished runs are kept.")
    missing = sorted({run_dir(r.config).name for r in results if r.missing})
    if missing:
        print(f"{len(missing)} of {len({run_dir(r.config).name for r in results})} runs of this grid are not in the "
              f"run store, and training is off: {', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}. What "
              f"follows shows the others; `python -m lab study` adds the study's runs to its ledger, TRAIN = True "
              f"trains them here.", flush=True)
    return [r.run for r in results]
