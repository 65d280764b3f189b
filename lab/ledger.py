"""The study's ledger (results/ledger/, committed): every finished study run, as a run directory without its
checkpoint, so that `python -m lab results` and the notebooks read the study with no dataset and no training.

    <ledger>/<kind>/<run name>/   config.json, stats.jsonl, done.json, runtime.json (as in the run store),
                                  record.json (machine, wall seconds, commit, when), and for the runs that
                                  later steps load: weights.safetensors (a GAN's EMA generator, a classifier
                                  trained on the whole real split) and a GAN's last sample grid, samples.png
    <ledger>/metrics/<key>.json   GAN-set metrics (`lab.experiments.gan_set_metrics`) and their record
    <ledger>/datasets.json        per dataset: training-split size and class names

No optimiser states, no intermediate checkpoints: tens of MB for the whole study. A ledger directory is a run
store (`lab.runs.find_runs` reads it), and `restore` copies a ledger run back into a run store, where
`load_generator` and `load_classifier` read its safetensors as they read a checkpoint.
"""
import json
import os
import shutil
import time
from pathlib import Path

from .config import ClassifierConfig, ECGANConfig, GANConfig
from .errors import LabError
from .checkpoints import WEIGHTS
from .runs import CONFIG, DONE, STATS, Run

RECORD, SAMPLES = "record.json", "samples.png"
RUN_FILES = (CONFIG, STATS, DONE, "runtime.json")
CONFIGS = {c.KIND: c for c in (GANConfig, ClassifierConfig, ECGANConfig)}
KINDS = tuple(CONFIGS)
DEFAULT = Path(__file__).resolve().parent.parent / "results" / "ledger"


def weight_role(kind: str, cfg) -> str | None:
    """Which model of a run the ledger keeps: a GAN's EMA generator, a real-data classifier on the whole
    split (Algorithm 1's filter is one), nothing for the others."""
    if kind == "gan":
        return "G_ema"
    if kind == "classifier" and cfg.source == "real" and not cfg.subset and not cfg.train_folder:
        return "model"
    return None


def has(ledger, kind: str, name: str, steps: int = None) -> bool:
    """Whether the ledger holds the finished run `name` of `kind` (with at least `steps` steps)."""
    return Run(Path(ledger) / kind / name).is_done(steps)


def export(run: Run, ledger, seconds: float = None, machine: dict = None) -> Path:
    """Copy the finished `run` into the ledger (atomically: a folder renamed into place); returns its path."""
    run = Run(run.path if hasattr(run, "path") else run)
    done = run.done()
    if done is None:
        raise LabError(f"{run.path} is not finished; only finished runs go into the ledger.")
    kind = run.path.parent.name
    if kind not in KINDS:
        raise LabError(f"{run.path} is not in a run store (<root>/<gan|classifier|ecgan>/<run>).")
    cfg = run.config(CONFIGS[kind])
    dest = Path(ledger) / kind / run.path.name
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in RUN_FILES:
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, tmp / name)
    role = weight_role(kind, cfg)
    if role:
        _save_weights(run, role, tmp / WEIGHTS)
    grids = sorted((run.path / "samples").glob("step-*.png"))
    if kind == "gan" and grids:
        shutil.copyfile(grids[-1], tmp / SAMPLES)
    old = json.loads((dest / RECORD).read_text()) if (dest / RECORD).exists() else {}
    record = {"exported": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": seconds,
              "train_seconds": train_seconds(run), "machine": machine or {}}
    before = Run(dest).done() if old else None
    if before and before.get("step", 0) < done.get("step", 0):  # a longer budget continued the ledger's run
        record["continued"] = {"from_step": before["step"],
                               **{k: old[k] for k in ("exported", "seconds", "machine", "continued") if k in old}}
    (tmp / RECORD).write_text(json.dumps(old if old.get("seconds") and seconds is None else record, indent=1) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def train_seconds(run: Run) -> float:
    """A run's training time from its stats: each log line's seconds per step times the steps since the line
    before (evaluations and checkpoints excluded; the parts of a resumed run added up)."""
    total, last = 0.0, 0
    for s in run.stats():
        if "sec_per_step" in s:
            total += s["sec_per_step"] * (s["step"] - last)
        last = s.get("step", last)
    return round(total, 1)


def _save_weights(run: Run, role: str, path: Path) -> None:
    from safetensors.torch import save_file

    from .train.loop import read_checkpoint

    if (run.path / WEIGHTS).exists():  # a run restored from a ledger
        shutil.copyfile(run.path / WEIGHTS, path)
        return
    state = read_checkpoint(run)["models"][role]
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path), metadata={"role": role})


def restore(ledger, kind: str, name: str, root) -> Run:
    """Copy the ledger run `name` into the run store `root` (when the store lacks it), so that runs which
    depend on it (a stream classifier on a ledger GAN) train in a new session; returns the store's run."""
    src, dest = Path(ledger) / kind / name, Path(root) / kind / name
    if Run(dest).is_done() or not Run(src).is_done():
        return Run(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():  # an unfinished copy of the run: the ledger's finished one replaces it
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return Run(dest)


def open_in(root, ledger=DEFAULT) -> int:
    """Restore every finished run of the ledger (and its GAN-set metrics) that the run store `root` lacks, so that
    the notebooks find the study's runs there and train nothing the ledger holds (weights from safetensors, no
    dataset needed for them); returns how many runs were copied. The ledger itself is never written."""
    root, ledger, copied = Path(root), Path(ledger), 0
    if not (ledger / "datasets.json").exists():
        raise LabError(f"{ledger} is not the study's ledger (no datasets.json); `python -m lab study` grows it.")
    for kind in KINDS:
        for src in sorted((ledger / kind).glob("*")) if (ledger / kind).is_dir() else []:
            if Run(src).is_done() and not Run(root / kind / src.name).is_done():
                restore(ledger, kind, src.name, root)
                copied += 1
    for src in sorted((ledger / "metrics").glob("*.json")) if (ledger / "metrics").is_dir() else []:
        dest = root / "metrics" / src.name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    return copied


def store_for(profile: str, runs_dir, ledger=DEFAULT):
    """A notebook's run store: for the study profile, `runs_dir` with the committed ledger's runs restored into
    it (`open_in`), so the notebooks open on the study without training what it holds; else `runs_dir` as is."""
    if profile == "study":
        n = open_in(runs_dir, ledger)
        if n:
            print(f"{n} run(s) of the study's ledger restored into {runs_dir}")
    return runs_dir


def export_metrics(record: dict, path: Path, ledger) -> Path:
    """Copy a GAN-set metrics record (a file of `<root>/metrics/`) into the ledger."""
    dest = Path(ledger) / "metrics" / Path(path).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, dest)
    return dest


def write_dataset(ledger, name: str, n_train: int, classes: list) -> None:
    """Record a dataset's training-split size and class names (what `lab results` needs of it)."""
    path = Path(ledger) / "datasets.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    entry = {"n_train": int(n_train), "classes": list(classes)}
    if known.get(name) != entry:
        known[name] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)


def dataset_info(ledger, name: str) -> dict:
    """{"n_train", "classes"} of `name` as the ledger recorded it."""
    path = Path(ledger) / "datasets.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if name not in known:
        raise LabError(f"The ledger {ledger} has no record of the dataset {name!r} (datasets.json); "
                       f"`python -m lab study` writes it with the first run it exports.")
    return known[name]


def records(ledger) -> list:
    """(kind, run name, record) of every ledger run, sorted."""
    out = []
    for kind in KINDS:
        for p in sorted((Path(ledger) / kind).glob("*/" + RECORD)):
            out.append((kind, p.parent.name, json.loads(p.read_text())))
    return out
