"""`python -m lab study --minutes N`: grow the study's committed ledger.

The manifest is the union of the study notebooks' grids (04-07, `lab.experiments`), every run once, in
priority order: the headline runs first (Algorithm 1's filter, the first add GAN, its stream at the headline
threshold and unfiltered, the real split), then the real subsets, EC-GAN's table, the other GANs, their
streams, and the rest; the GAN-set metrics (FID, per-class acceptance) last. `study` skips what the ledger
holds, restores ledger runs that a new run depends on into the run store, trains the rest in lanes (one
process of one thread each: two 2-thread processes on 2 cores starve each other), exports each finished run to
the ledger and rewrites RESULTS.md. A lane starts a run only when its estimated time (from the ledger's own
records, else `DEFAULT_SEC_PER_STEP`) fits before the deadline, so a run never dies with the session.
"""
import json
import os
import time
from pathlib import Path

from . import experiments as ex
from . import ledger as lg
from . import profiles
from .config import ECGANConfig, GANConfig
from .errors import LabError
from .manifest import Job, manifest, needs  # noqa: F401 (Job: the study's API too)
from .runs import Run, lock_holder, run_dir

# Seconds per step of one thread of an AVX2-only EPYC (fp32, channels_last), for runs of a kind the ledger has
# no record of yet: real classifier 0.1 (+ evaluations), GAN 0.45, stream classifier ~0.25, EC-GAN ~0.25.
DEFAULT_SEC_PER_STEP = {"gan": 0.5, "real": 0.12, "stream": 0.3, "ecgan": 0.3}
IMAGES_PER_SECOND = 4  # the FID network on one CPU thread (BENCHMARKS.md: 7.6-9.8 images/s on 2 threads)


def _metrics_path(job: Job, ledger) -> Path | None:
    if job.what == "acceptance":
        p = Path(ledger) / "acceptance" / f"{job.gans[0]}.json"
        return p if p.exists() else None
    for p in sorted((Path(ledger) / "metrics").glob("*.json")):
        m = json.loads(p.read_text())
        if tuple(sorted(m["gans"])) == job.gans and m["filter"] == job.filter:
            return p
    return None


def in_ledger(job: Job, ledger) -> bool:
    if job.config is None:
        return _metrics_path(job, ledger) is not None
    return lg.has(ledger, job.kind, run_dir(job.config).name, _steps(job.config))


def _steps(cfg):
    return getattr(cfg, "steps", None) or None


JOB_KINDS = ("gan", "real", "stream", "ecgan", "metrics", "acceptance")


def job_kind(job: Job) -> str:
    """One of `JOB_KINDS`: what `study --only` selects by."""
    return job.what if job.config is None else _kind(job.config)


def select(jobs: list, only=None) -> list:
    """The jobs of the kinds in `only` (all when empty), in their order; an unknown kind is a LabError."""
    if not only:
        return list(jobs)
    bad = sorted(set(only) - set(JOB_KINDS))
    if bad:
        raise LabError(f"study --only: unknown kind(s) {', '.join(bad)}; choose from {', '.join(JOB_KINDS)}.")
    return [j for j in jobs if job_kind(j) in only]


def _kind(cfg) -> str:
    if isinstance(cfg, GANConfig):
        return "gan"
    if isinstance(cfg, ECGANConfig):
        return "ecgan"
    return "real" if cfg.source == "real" else "stream"


def rates(ledger) -> dict:
    """{"gan" | "real" | "stream" | "ecgan": median seconds per step of the ledger's runs of that kind trained on
    this CPU} (a run's training seconds from its record, else from its stats: resumed runs whole)."""
    from .config import ClassifierConfig
    from .notebooks import cpu_model

    per, cpu = {}, cpu_model()
    for k, name, rec in lg.records(ledger):
        if rec.get("machine", {}).get("cpu") != cpu:
            continue
        run = Run(Path(ledger) / k / name)
        cfg = run.config({"gan": GANConfig, "classifier": ClassifierConfig, "ecgan": ECGANConfig}[k])
        seconds = rec.get("train_seconds") or lg.train_seconds(run)
        if seconds and cfg.steps:
            per.setdefault(_kind(cfg), []).append(seconds / cfg.steps)
    return {k: sorted(v)[len(v) // 2] for k, v in per.items()}


def estimate(job: Job, ledger, profile: str = "study", known: dict = None) -> float:
    """Seconds a job should take on this machine: its steps times the median seconds per step of the ledger's
    runs of its kind on this CPU (`rates`, or `known` when given), else `DEFAULT_SEC_PER_STEP`; a GAN set's
    metrics: its images through the FID network (with the reference images, which the first set of a machine
    computes)."""
    if job.config is None:
        P = profiles.get(profile)
        if job.what == "acceptance":
            return 60
        return 60 + (P.n_fid + P.n_metrics + (P.n_fid_reference if P.n_fid else 0)) / IMAGES_PER_SECOND
    kind = _kind(job.config)
    known = rates(ledger) if known is None else known
    return known.get(kind, DEFAULT_SEC_PER_STEP[kind]) * (job.config.steps or 1)


# --- Doing one job ------------------------------------------------------------------------------
def run_job(job: Job, root, ledger, profile: str, data_root: str, where: dict = None) -> Path:
    """Train (or finish) the job's run in the store `root`, or compute its metrics; export it to the ledger with
    `where` (`lab.notebooks.machine()` taken when the lane started: the commit whose code trains the run)."""
    from .notebooks import machine

    where = where or machine()
    for kind, name in needs(job):
        lg.restore(ledger, kind, name, root)
    t0 = time.perf_counter()
    if job.what == "acceptance" and job.config is None:
        return _acceptance(job, root, ledger, profiles.get(profile), where, t0)
    if job.config is None:
        P = profiles.get(profile)
        gans = [Run(Path(root) / "gan" / g) for g in job.gans]
        m = ex.gan_set_metrics(gans, Run(Path(root) / "classifier" / job.filter), P.n_metrics, root,
                               n_fid=P.n_fid, n_reference=P.n_fid_reference, threshold=P.threshold)
        m["record"] = {"seconds": round(time.perf_counter() - t0, 1), "machine": where}
        cached = next(p for p in sorted((Path(root) / "metrics").glob("*.json"))
                      if json.loads(p.read_text())["gans"] == m["gans"] and json.loads(p.read_text())["filter"] == job.filter)
        return lg.export_metrics(m, cached, ledger)
    path = run_dir(job.config, root)
    if not Run(path).is_done(_steps(job.config)):
        ex.train_config(job.config, root)
    if job.config.kind == "classifier" and job.config.source == "real" and not job.config.subset:
        _record_dataset(job.config, ledger)
    return lg.export(Run(path), ledger, round(time.perf_counter() - t0, 1), where)


def _acceptance(job: Job, root, ledger, P, where: dict, t0: float) -> Path:
    """The per-class share of one GAN's EMA samples that Algorithm 1 accepts at the profile's threshold with the
    filter (`P.n_metrics` samples, class-balanced), into `<ledger>/acceptance/<GAN>.json`."""
    from .algorithm1 import pool_stats
    from .generation import sample_pool
    from .train.classifier import load_classifier
    from .train.gan import load_generator

    G = load_generator(Path(root) / "gan" / job.gans[0])
    clf = load_classifier(Path(root) / "classifier" / job.filter)
    pool = sample_pool([G], clf, max(1, P.n_metrics // G.num_classes), seed=0)
    out = {"gans": list(job.gans), "filter": job.filter, "n": len(pool["labels"]),
           "acceptance": {"threshold": P.threshold, "per_class": pool_stats(pool, P.threshold).acceptance_rate().tolist()},
           "record": {"seconds": round(time.perf_counter() - t0, 1), "machine": where}}
    dest = Path(ledger) / "acceptance" / f"{job.gans[0]}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, dest)
    return dest


def _record_dataset(cfg, ledger) -> None:
    from .data import load_dataset

    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    lg.write_dataset(ledger, cfg.dataset, ex.train_size(cfg.dataset, cfg.data_root), test.classes)


# --- Lanes --------------------------------------------------------------------------------------
def _ready(job: Job, root, ledger) -> bool:
    return all(lg.has(ledger, k, n) or Run(Path(root) / k / n).is_done() for k, n in needs(job))


def _claim(job: Job, root, ledger):
    """An exclusive claim on the job (the run's lock file, a metrics job's own), or None when another lane
    holds it."""
    import fcntl

    path = Path(root) / ".study-claims" / (job.name(root).replace(":", "-").replace("+", "_")[:200] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def lane(jobs: list, root, ledger, deadline: float, profile: str, data_root: str, log=print) -> list:
    """Take the first ready, unclaimed job that fits before `deadline`, do it, repeat; returns what it did.
    Waits while every remaining job waits on a run another lane is training."""
    from .notebooks import machine

    where = machine()  # now, before any job: the code this process runs
    if where.get("commit", "").endswith("+dirty"):
        log(f"study: warning: the checkout has uncommitted changes ({where['commit']}); the ledger records say so")
    done = []
    while True:
        failed = _failed(root, deadline)
        todo = [j for j in jobs if not in_ledger(j, ledger) and j.name(root) not in failed
                and not any(f"{k}/{n}" in failed for k, n in needs(j))]
        if not todo:
            return done
        left = deadline - time.time()
        known = rates(ledger)  # once per pick: the ledger's records are read once, not once per job
        fits = [j for j in todo if estimate(j, ledger, profile, known) <= left]
        if not fits:
            return done
        picked = None
        for j in fits:
            if not _ready(j, root, ledger):
                continue
            claim = _claim(j, root, ledger)
            if claim is None:
                continue
            if in_ledger(j, ledger):  # finished by another lane meanwhile
                claim.close()
                continue
            picked = (j, claim)
            break
        if picked is None:
            if not any(_claim_busy(j, root) for j in todo) and not any(lock_holder(run_dir(j.config, root))
                                                                         for j in todo if j.config is not None):
                return done  # nothing runs anywhere and nothing is ready: the rest waits on a later session
            time.sleep(5)
            continue
        j, claim = picked
        t0 = time.time()
        log(f"study: {j.name(root)} (tier {j.priority}, about {estimate(j, ledger, profile, known) / 60:.0f} min) ...")
        try:
            out = run_job(j, root, ledger, profile, data_root, where)
            log(f"study: {j.name(root)} -> {out} in {(time.time() - t0) / 60:.1f} min")
            done.append(out)
        except Exception as e:  # one failed run (a starved stream, a divergence) must not stop the others
            log(f"study: {j.name(root)} FAILED after {(time.time() - t0) / 60:.1f} min: {type(e).__name__}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            with open(Path(root) / "study-failures.jsonl", "a") as f:
                f.write(json.dumps({"job": j.name(root), "kind": j.kind, "error": f"{type(e).__name__}: {e}",
                                    "when": time.strftime("%Y-%m-%d %H:%M:%S"), "study": deadline}) + "\n")
        finally:
            claim.close()


def _failed(root, deadline) -> set:
    """The jobs that failed in this call of `study` (any lane; its deadline names the call): "name" and
    "kind/name", so that the jobs reading a failed run are skipped too. A later call tries them again."""
    path = Path(root) / "study-failures.jsonl"
    out = set()
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        if rec.get("study") == deadline:
            out |= {rec["job"], f"{rec['kind']}/{rec['job']}"}
    return out


def _claim_busy(job: Job, root) -> bool:
    f = _claim(job, root, None)
    if f is None:
        return True
    f.close()
    return False


def _exit_with_parent() -> None:
    """A lane whose `study` process died (killed, or its session ended) stops too: a run resumes next time."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _lane_main(args) -> list:
    jobs, root, ledger, deadline, profile, data_root, index = args
    import torch

    torch.set_num_threads(1)
    _exit_with_parent()
    log_path = Path(root) / f"study-lane{index}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")
    return [str(p) for p in lane(jobs, root, ledger, deadline, profile, data_root, log)]


def study(minutes: float, lanes: int = None, profile: str = "study", root="runs/study", ledger=lg.DEFAULT,
          data_root: str = "data", results: bool = True, steps: int = None, out=lg.DEFAULT.parent.parent / "RESULTS.md",
          fig_dir=lg.DEFAULT.parent, only=()) -> list:
    """Grow the ledger for `minutes`: train what it lacks in `lanes` processes of one thread each (default:
    one per core), export each finished run, then rewrite RESULTS.md (`out`) and its figures (`fig_dir`).
    `only`: the job kinds to take (`JOB_KINDS`; default all), e.g. ("ecgan",) to finish EC-GAN's claims before
    the GANs. Returns the exported paths."""
    import multiprocessing as mp

    if not minutes or minutes <= 0:
        raise LabError(f"--minutes must be a positive number of minutes, got {minutes!r}.")
    lanes = lanes or max(1, os.cpu_count() or 1)
    root, ledger = Path(root).resolve(), Path(ledger).resolve()
    jobs = select(manifest(profile, data_root, steps), only)
    deadline = time.time() + 60 * minutes
    os.environ["OMP_NUM_THREADS"] = "1"  # every lane one thread, inherited by the spawned processes
    args = [(jobs, str(root), str(ledger), deadline, profile, data_root, i) for i in range(lanes)]
    if lanes == 1:
        exported = _lane_main(args[0])
    else:
        with mp.get_context("spawn").Pool(lanes) as pool:
            exported = [p for part in pool.map(_lane_main, args) for p in part]
    if results:
        from .report import write

        write(ledger, out, fig_dir, profile, data_root, steps)
    return exported


def status(profile: str = "study", ledger=lg.DEFAULT, data_root: str = "data", only=()) -> dict:
    """Jobs of the manifest (of the kinds in `only`) by tier: how many the ledger holds and how many remain."""
    out = {}
    for j in select(manifest(profile, data_root), only):
        t = out.setdefault(j.priority, {"done": 0, "todo": 0})
        t["done" if in_ledger(j, ledger) else "todo"] += 1
    return out
