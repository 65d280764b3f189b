"""`python -m lab study --minutes N`: grow the study's committed ledger.

The manifest is the union of the study notebooks' grids (04-07, `lab.experiments`), every run once, in
priority order: the headline runs first (Algorithm 1's filter, the first add GAN, its stream at the headline
threshold and unfiltered, the real split), then the real subsets, EC-GAN's table, the other GANs, their
streams, and the rest; the GAN-set metrics (FID, per-class acceptance) last. `study` skips what the ledger
holds, restores ledger runs that a new run depends on into the run store, trains the rest in lanes (one
process of one thread each: two 2-thread processes on 2 cores starve each other), exports each finished run to
the ledger and rewrites RESULTS.md. A lane starts a run only when its estimated time (from the ledger's own
records, else `lab.jobs.DEFAULT_SEC_PER_STEP`) fits before the deadline, so a run never dies with the session.
`study_on_grid` hands the same jobs to `lab.grid` instead (a local Ray, a Ray cluster, a GPU machine).
"""
import json
import os
import time
from pathlib import Path

from . import ledger as lg
from .errors import LabError
from .jobs import check_kinds, estimate, in_ledger, plan, rates, ready, record_dataset, run_job, select
from .manifest import Job, manifest, needs  # noqa: F401 (Job: the study's API too)
from .runs import lock_holder


# --- Lanes --------------------------------------------------------------------------------------
def _claim(name: str, root):
    """An exclusive claim on the job named `name` (a run's name, a metrics job's own), or None when another lane
    holds it."""
    import fcntl

    path = Path(root) / ".study-claims" / (name.replace(":", "-").replace("+", "_")[:200] + ".lock")
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
    With nothing to take, waits while a job that fits reads a run another lane (or process) is training, and
    returns otherwise: a job another lane holds is not waited for, unless a job here reads its run."""
    from .host import machine

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
        fits = [j for j in todo if estimate(j, ledger, profile, known, root) <= left]
        if not fits:
            return done
        picked = None
        for j in fits:
            if not ready(j, root, ledger):
                continue
            claim = _claim(j.name(root), root)
            if claim is None:
                continue
            if in_ledger(j, ledger):  # finished by another lane meanwhile
                claim.close()
                continue
            picked = (j, claim)
            break
        if picked is None:
            if not any(_training(k, n, root) for j in fits if not ready(j, root, ledger) for k, n in needs(j)):
                return done  # no job here reads a run in training: the rest waits on a later session
            time.sleep(5)
            continue
        j, claim = picked
        t0 = time.time()
        log(f"study: {j.name(root)} (tier {j.priority}, about {estimate(j, ledger, profile, known, root) / 60:.0f} min) ...")
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


def _training(kind: str, name: str, root) -> bool:
    """Whether a lane holds the claim on the run `<root>/<kind>/<name>` or a process its lock (trains it now)."""
    f = _claim(name, root)
    if f is None:
        return True
    f.close()
    return lock_holder(Path(root) / kind / name) is not None


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
    check_kinds(only)
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


def study_on_grid(minutes: float, backend: str = "ray", address: str = None, num_cpus: float = 1,
                  num_gpus: float = None, profile: str = "study", root="runs/study", ledger=lg.DEFAULT,
                  data_root: str = "data", results: bool = True, steps: int = None, only=(), progress: bool = True,
                  out=lg.DEFAULT.parent.parent / "RESULTS.md", fig_dir=lg.DEFAULT.parent) -> list:
    """`study` through `lab.grid` (a local Ray, a Ray cluster with `address`, or "local"): the runs `plan`
    takes for `minutes` times the grid's slots go to `grid.run` in one call (GANs and real classifiers first,
    then the streams that read them); each finished run is exported with the machine that trained it (a GPU
    names itself); then the metrics and acceptance jobs run here. A run that fails is reported and the others
    go on; then RESULTS.md (`out`) and its figures are rewritten unless `results` is false. Returns the
    exported paths."""
    from . import grid
    from .host import machine

    if not minutes or minutes <= 0:
        raise LabError(f"--minutes must be a positive number of minutes, got {minutes!r}.")
    check_kinds(only)
    root, ledger = Path(root).resolve(), Path(ledger).resolve()
    n = grid.slots(backend, address, num_cpus, num_gpus)
    jobs = plan(select(manifest(profile, data_root, steps), only), ledger, root, 60 * minutes * n, profile)
    runs = [j for j in jobs if j.config is not None]
    for j in runs:
        for kind, name in needs(j):
            lg.restore(ledger, kind, name, root)
    print(f"study: {len(jobs)} job(s) on {n} slot(s) of the {backend} grid", flush=True)
    exported = []
    for r in grid.run([j.config for j in runs], backend, address, root, num_cpus, num_gpus, progress=progress):
        if r.ok:
            exported.append(lg.export(r.run, ledger, r.seconds, r.machine))
            if r.config.kind == "classifier" and r.config.source == "real" and not r.config.subset:
                record_dataset(r.config, ledger)  # the class names and size `lab results` reads
    where = machine()
    for j in jobs:
        if j.config is None and ready(j, root, ledger):
            try:
                exported.append(run_job(j, root, ledger, profile, data_root, where))
            except Exception as e:  # as in a lane: one failed metrics job must not stop the others
                print(f"study: {j.name(root)} FAILED: {type(e).__name__}: {e}", flush=True)
    if results:
        from .report import write

        write(ledger, out, fig_dir, profile, data_root, steps)
    return exported


def status(profile: str = "study", ledger=lg.DEFAULT, data_root: str = "data", only=(), root=None) -> dict:
    """Jobs of the manifest (of the kinds in `only`) by tier: how many the ledger holds, how many remain, and the
    hours of one thread on this CPU the rest should take (`lab.jobs.estimate`; FID's reference once; the steps
    left of a run the store `root` holds finished at fewer)."""
    out, only, known, reference = {}, check_kinds(only), rates(ledger), False
    for j in select(manifest(profile, data_root), only):
        t = out.setdefault(j.priority, {"done": 0, "todo": 0, "hours": 0.0})
        if in_ledger(j, ledger):
            t["done"] += 1
            continue
        t["todo"] += 1
        t["hours"] += estimate(j, ledger, profile, known, root, cached=True if reference else None) / 3600
        reference |= j.kind == "metrics"
    return out
