"""Run directories (config.json, stats.jsonl, checkpoint.pt, done.json), config hashing, safe checkpoints."""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from .checkpoints import atomic_save, safe_load
from .errors import CheckpointError, ConfigError, NotInStore, RunFileError

CONFIG, STATS, CHECKPOINT, DONE, LOCK = "config.json", "stats.jsonl", "checkpoint.pt", "done.json", ".lock"


def default_root() -> Path:
    """Where runs live unless told otherwise: $LAB_RUNS, else ./runs."""
    return Path(os.environ.get("LAB_RUNS", "runs"))


def config_hash(cfg) -> str:
    """Stable 12-hex-digit hash of what a run computes (its kind and identity fields).

    Budget and runtime fields (steps, device, logging) are left out, so a longer run of the
    same config, or the same run on another machine, lands in the same directory.
    """
    blob = json.dumps({"kind": cfg.kind, **cfg.identity()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_dir(cfg, root=None) -> Path:
    """The directory of the run of `cfg`: `<root>/<kind>/<dataset>-s<seed>-<hash>`."""
    parts = [str(getattr(cfg, "dataset", cfg.kind))]
    if hasattr(cfg, "seed"):
        parts.append(f"s{cfg.seed}")
    parts.append(config_hash(cfg))
    return Path(root or default_root()) / cfg.kind / "-".join(parts)


def read_json(path, fix: str):
    """The JSON file at `path`; a damaged one (truncated, empty, not JSON) is one LabError naming the file and `fix`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path} is damaged ({'empty' if not path.read_bytes().strip() else 'not valid JSON: ' + str(e)}); "
                           f"{fix}.") from None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- A run directory -------------------------------------------------------------------
RUNTIME, RUNTIME_FIX = "runtime.json", "delete it: the run decides its runtime again, by this machine's capability"
_CONFIG_FIX = ("restore it; or, where the run has a checkpoint.pt (which holds its config), delete config.json and run "
               "the same command again")

class Run:
    """One run's directory: its config, append-only stats, checkpoint and completion marker."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    # Config
    def init(self, cfg) -> None:
        """Create the directory for `cfg`, or check that an existing one holds the same run: its config.json and
        the config its checkpoint was written with (whatever config.json says now); nothing is written when
        either differs."""
        if self.has_checkpoint():
            state = self.load_checkpoint()
            if not (isinstance(state, dict) and "step" in state and {"models", "G_ema", "model"} & set(state)):
                keys = ", ".join(sorted(map(str, state))[:6]) if isinstance(state, dict) else type(state).__name__
                raise CheckpointError(f"{self.checkpoint_path} is not a checkpoint of this lab's runs (it holds {keys}); "
                                      f"it was not written here: delete it to restart the run, or restore the run's own.")
            if state.get("config"):
                check_resume(cfg, state["config"], self.checkpoint_path)
        if (self.path / RUNTIME).exists():
            read_json(self.path / RUNTIME, RUNTIME_FIX)
        self.done()
        self.stats()  # a damaged line is an error here; a torn last one is dropped (the resume rewrites the file)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / CONFIG).exists():
            old = read_json(self.path / CONFIG, _CONFIG_FIX)
            old_cfg = type(cfg).from_dict(old)
            if old_cfg.identity() != cfg.identity():
                diff = sorted(k for k, v in cfg.identity().items() if old_cfg.identity().get(k) != v)
                raise ConfigError(
                    f"{self.path} holds a run of another config (differs in {', '.join(diff)}); "
                    f"choose another run directory."
                )
        _atomic_write_text(self.path / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")

    def config(self, cls):
        """The run's config as an instance of `cls`."""
        return cls.from_dict(read_json(self.path / CONFIG, _CONFIG_FIX))

    # Stats
    def log(self, stats: dict) -> None:
        """Append one JSON line to stats.jsonl."""
        with open(self.path / STATS, "a") as f:
            f.write(json.dumps(stats) + "\n")

    def stats(self) -> list:
        """All logged lines, in order."""
        p = self.path / STATS
        if not p.exists():
            return []
        lines = [line for line in p.read_text().splitlines() if line.strip()]
        out = []
        for i, line in enumerate(lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # a line torn by a crash mid-write: dropped (a resume rewrites the file)
                    break
                raise RunFileError(f"{p} is damaged at line {i + 1} of {len(lines)} (not JSON); restore a copy, or delete "
                                   f"the run directory to train it again.") from None
        return out

    def stats_frame(self):
        """stats.jsonl as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.stats())

    def truncate_stats(self, step: int) -> None:
        """Drop lines logged after `step` (written after the checkpoint a resumed run restarts from)."""
        keep = [s for s in self.stats() if s.get("step", 0) <= step]
        _atomic_write_text(self.path / STATS, "".join(json.dumps(s) + "\n" for s in keep))

    # Checkpoint
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def save_checkpoint(self, state: dict) -> None:
        atomic_save(state, self.checkpoint_path)

    def load_checkpoint(self, map_location="cpu") -> dict:
        return safe_load(self.checkpoint_path, map_location)

    # Completion
    def mark_done(self, summary: dict) -> None:
        _atomic_write_text(self.path / DONE, json.dumps(summary, indent=2) + "\n")

    def done(self) -> dict | None:
        """The completion summary, or None while the run is unfinished."""
        p = self.path / DONE
        return read_json(p, "delete it and run the same command again: the run finishes from its checkpoint and "
                            "writes it anew") if p.exists() else None

    def is_done(self, steps: int | None = None) -> bool:
        """Finished, and (if `steps` is given) finished with at least that many steps."""
        d = self.done()
        return d is not None and (steps is None or d.get("step", 0) >= steps)


def check_resume(cfg, saved: dict, where) -> None:
    """Refuse to resume under a config whose identity differs from the one a checkpoint was written with."""
    try:
        before = type(cfg).from_dict(saved).identity()
    except ConfigError as e:  # a checkpoint of another kind of run, or of fields this version does not know
        raise CheckpointError(f"{where} holds the config of another kind of run ({e}); use a new run directory.") from None
    now = cfg.identity()
    diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if diff:
        k = diff[0]
        raise ConfigError(f"{where} was written with {k} = {before.get(k)!r}, and {k} = {now.get(k)!r} is asked for "
                          f"({len(diff)} field(s) differ: {', '.join(diff)}); a run keeps its settings: resume it "
                          f"with them, or start the new settings in a new run directory.")


def get_or_train(cfg, train_fn, root=None, **kwargs) -> Run:
    """The run of `cfg`: returned as is when finished, else resumed or started by `train_fn` under the run's
    lock (`run_lock`), so that two processes asking for the same run (two notebooks, a notebook and a grid
    worker) train it once: the second waits for the first and then finds it finished.

    `train_fn(cfg, run_dir, **kwargs)` must resume from the run's checkpoint when there is one,
    so re-running a notebook never retrains what is already on disk.
    """
    run = Run(run_dir(cfg, root))
    steps = getattr(cfg, "steps", None) or None  # EC-GAN's 0 means "from epochs": any finished run then
    if run.is_done(steps):
        return run
    if not training():
        raise NotInStore(f"the {cfg.kind} run {run.path.name}", run.path.parent.parent)
    holder = lock_holder(run.path)
    if holder and holder != os.getpid():
        print(f"waiting for {run.path.name}: process {holder} is training it", flush=True)
    with run_lock(run.path):
        if not run.is_done(steps):
            train_fn(cfg, run.path, **kwargs)
    return run


# --- Training on or off ------------------------------------------------------------------------
_training = {"on": True}


def set_training(on: bool) -> None:
    """Whether this process may train what its run store lacks (`get_or_train`, `lab.grid.run`, a GAN set's
    metrics). Off, it only reads the store: a notebook of the study profile then shows the committed ledger's
    runs, and each run it lacks is one `NotInStore` error naming it, not hours of training in a kernel."""
    if not isinstance(on, bool):
        raise ConfigError(f"training is True or False, got {on!r}.")
    _training["on"] = on


def training() -> bool:
    """Whether this process may train (`set_training`; on by default)."""
    return _training["on"]


def if_stored(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, or None where training is off and the store lacks a run (or metrics) it needs, with
    one printed line naming it: a study notebook shows what the ledger has and says what it does not."""
    try:
        return fn(*args, **kwargs)
    except NotInStore as e:
        print(f"Not in the run store: {e.what}. TRAIN = True computes it here; `python -m lab study` adds the "
              f"study's own runs to its ledger.")
        return None


# --- One writer per run directory --------------------------------------------------------------
_held = threading.local()  # the run directories this thread holds the lock of (the lock is re-entrant)


@contextlib.contextmanager
def run_lock(path):
    """Hold `<path>/.lock` (flock, exclusive) while the block runs, with this process's pid in it; waits while
    another process (or thread) holds it, and is re-entrant within one thread. The lock goes with the process:
    a killed worker leaves no stale lock."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    key, held = str(path.resolve()), getattr(_held, "paths", None)
    if held is None:
        held = _held.paths = set()
    if key in held:
        yield
        return
    with open(path / LOCK, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        held.add(key)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            held.discard(key)
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def locked(train_fn):
    """A training function (with a `run_dir` argument) that holds its run's lock (`run_lock`) while it trains, so
    every path that trains a run (CLI, API, notebooks, grid workers) is one process per run: a second call on
    the same directory waits for the first (the lock is re-entrant within a thread)."""
    import functools
    import inspect

    sig = inspect.signature(train_fn)

    @functools.wraps(train_fn)
    def wrapper(*args, **kwargs):
        path = Path(sig.bind(*args, **kwargs).arguments["run_dir"])
        new = not path.exists()
        try:
            with run_lock(path):
                return train_fn(*args, **kwargs)
        except BaseException:
            if new and path.is_dir() and {p.name for p in path.iterdir()} <= {LOCK}:  # refused before writing:
                shutil.rmtree(path, ignore_errors=True)  # leave no folder behind for the lock alone
            raise
    return wrapper


def lock_holder(path) -> int | None:
    """The pid training the run at `path` now (-1 when unknown), or None (nobody holds its lock)."""
    lock = Path(path) / LOCK
    if not lock.exists():
        return None
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def find_runs(kind: str, root=None) -> list:
    """Every run directory of `kind` under `root` that has a config."""
    base = Path(root or default_root()) / kind
    if not base.exists():
        return []
    return [Run(p) for p in sorted(base.iterdir()) if (p / CONFIG).exists()]


def finished_runs(cls, root=None, dataset: str = None):
    """(run, config, done) of every finished run of config class `cls` under `root`, optionally of one dataset."""
    for run in find_runs(cls.KIND, root):
        done = run.done()
        if done is None:
            continue
        cfg = run.config(cls)
        if dataset and cfg.dataset != dataset:
            continue
        yield run, cfg, done
