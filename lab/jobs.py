"""The study's jobs one at a time: whether the ledger holds one, what a job costs on this machine (`estimate`,
from the ledger's own records), doing one (`run_job`: train or finish its run, or compute a GAN set's metrics,
and export it), and which jobs one call takes (`select` by kind, `plan` by budget). `lab.study` schedules them
on lanes or on `lab.grid`."""
import json
import os
import time
from pathlib import Path

from . import experiments as ex
from . import ledger as lg
from . import profiles
from .config import ClassifierConfig, ECGANConfig, GANConfig
from .errors import LabError
from .manifest import Job, needs
from .runs import Run, run_dir

# Seconds per step of one thread of an AVX2-only EPYC (fp32, channels_last), for runs of a kind the ledger has
# no record of yet: real classifier 0.1 (+ evaluations), GAN 0.45, stream classifier ~0.25, EC-GAN ~0.25.
DEFAULT_SEC_PER_STEP = {"gan": 0.5, "real": 0.12, "stream": 0.3, "ecgan": 0.3,
                        # Measured where the ledger has no run of the rule yet: the study's quantile stream (base
                        # 0.9 keeps the top 10 % of each class: 10 draws per image) took 1.55-1.8 s per step on the
                        # AVX2 EPYC beside a second lane (again 1.6-1.7 at 2c472b3), against 0.22 s for FreeMatch's
                        # (it keeps most draws). The study's streams are Algorithm 1 as written (not class-
                        # balanced): the fixed t = 0.9 draws 1.4 per image there (mean acceptance 72 %).
                        "stream:quantile": 1.7}
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


def check_kinds(only) -> tuple:
    """`only` as a tuple of `JOB_KINDS`; an unknown kind is a LabError (before any dataset is read)."""
    bad = sorted(set(only or ()) - set(JOB_KINDS))
    if bad:
        raise LabError(f"study --only: unknown kind(s) {', '.join(bad)}; choose from {', '.join(JOB_KINDS)}.")
    return tuple(only or ())


def select(jobs: list, only=None) -> list:
    """The jobs of the kinds in `only` (all when empty), in their order; an unknown kind is a LabError."""
    only = check_kinds(only)
    return [j for j in jobs if job_kind(j) in only] if only else list(jobs)


def _kind(cfg) -> str:
    if isinstance(cfg, GANConfig):
        return "gan"
    if isinstance(cfg, ECGANConfig):
        return "ecgan"
    return "real" if cfg.source == "real" else "stream"


def _method_key(cfg) -> str | None:
    """EC-GAN's methods differ in cost (C alone: about a quarter of EC-GAN's step): "ecgan:<method>"; so do a
    stream's rules (draws per image: the quantile rule at base 0.9 draws 10): "stream:<rule>" for the adaptive ones."""
    if isinstance(cfg, ECGANConfig):
        return f"ecgan:{cfg.method}"
    if isinstance(cfg, ClassifierConfig) and cfg.source == "gan" and cfg.threshold_mode != "fixed":
        return f"stream:{cfg.threshold_mode}"
    return None


RECENT = 5  # `rates` takes the median of this CPU's newest records of a kind: a faster code path shows in a few runs


def rates(ledger) -> dict:
    """{"gan" | "real" | "stream" | "ecgan" | "ecgan:<method>": median seconds per step of the newest `RECENT`
    ledger runs of that kind (and EC-GAN method) trained on this CPU}: a run's wall time from its record
    (evaluations, export) where that covers its training, else its training seconds (from its stats: a resumed
    run whole). The newest, because the code gets faster (the streams drawing in channels_last took half the
    time of the many runs before): the median of all would overestimate, and a lane would leave time unused.
    This CPU: the same model name and vector capability (the AVX2 and the Zen 4 EPYC both call themselves
    "AMD EPYC", and the same demo took 462-597 s on the one, 158 s on the other)."""
    from .host import cpu_kind, cpu_model

    per, here = {}, (cpu_model(), cpu_kind())
    for k, name, rec in lg.records(ledger):
        m = rec.get("machine", {})
        if (m.get("cpu"), m.get("cpu_kind")) != here:
            continue
        run = Run(Path(ledger) / k / name)
        cfg = run.config({"gan": GANConfig, "classifier": ClassifierConfig, "ecgan": ECGANConfig}[k])
        seconds = max(rec.get("train_seconds") or lg.train_seconds(run), rec.get("seconds") or 0)
        if seconds and cfg.steps:
            for key in (_kind(cfg), _method_key(cfg)):
                if key:
                    per.setdefault(key, []).append((rec.get("exported") or "", seconds / cfg.steps))
    newest = {k: [r for _, r in sorted(v, key=lambda e: e[0])[-RECENT:]] for k, v in per.items()}
    return {k: sorted(v)[len(v) // 2] for k, v in newest.items()}


def estimate(job: Job, ledger, profile: str = "study", known: dict = None, root=None, cached: bool = None) -> float:
    """Seconds a job should take on this machine: its steps times the median seconds per step of the ledger's
    runs of its kind on this CPU (`rates`, or `known` when given; an EC-GAN run: of its method where the ledger
    has one, else of the slowest method it has: a lane then rather leaves a run for later than starts one that
    overruns), else `DEFAULT_SEC_PER_STEP`; a GAN set's
    metrics: its FID samples through the FID network (with the reference images where this machine's cache lacks
    their statistics, `cached` None: look, False / True: the caller knows; the first set computes them; its other
    metrics read the filter, seconds). Only the steps
    left count where the run store `root` holds the run finished (at fewer steps: a longer budget continues it
    from its last checkpoint; at its length: only its export is left)."""
    if job.config is None:
        P = profiles.get(profile)
        if job.what == "acceptance":
            return 60
        from .fidelity import reference_cached

        cached = reference_cached(P.dataset, P.n_fid_reference) if cached is None else cached
        reference = P.n_fid_reference if P.n_fid and not cached else 0
        return 60 + (P.n_fid + reference) / IMAGES_PER_SECOND
    kind = _kind(job.config)
    known = rates(ledger) if known is None else known
    rate = known.get(_method_key(job.config))
    if rate is None and isinstance(job.config, ECGANConfig):  # a method with no record of its own: the slowest
        rate = max((v for k, v in known.items() if k.startswith("ecgan:")), default=None)  # known (rather wait)
    steps = job.config.steps or 1
    done = Run(Path(root) / job.config.kind / run_dir(job.config).name).done() if root is not None else None
    if done and done.get("step", 0) > 0:
        steps = max(steps - done["step"], 0)  # finished at its length: only its export is left
    rate = rate or DEFAULT_SEC_PER_STEP.get(_method_key(job.config))  # a rule of its own cost, not yet in the ledger
    return (rate or known.get(kind, DEFAULT_SEC_PER_STEP[kind])) * steps


# --- Doing one job ------------------------------------------------------------------------------
def run_job(job: Job, root, ledger, profile: str, data_root: str, where: dict = None) -> Path:
    """Train (or finish) the job's run in the store `root`, or compute its metrics; export it to the ledger with
    `where` (`lab.host.machine()` taken when the lane started: the commit whose code trains the run)."""
    from .host import machine

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
        record_dataset(job.config, ledger)
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


def record_dataset(cfg, ledger) -> None:
    """The dataset's training size and class names into the ledger (`lab results` reads them, no dataset needed)."""
    from .data import load_dataset

    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    lg.write_dataset(ledger, cfg.dataset, ex.train_size(cfg.dataset, cfg.data_root), test.classes)


def ready(job: Job, root, ledger) -> bool:
    """Every run the job reads is in the ledger or finished in the run store."""
    return all(lg.has(ledger, k, n) or Run(Path(root) / k / n).is_done() for k, n in needs(job))


def plan(jobs: list, ledger, root, seconds: float, profile: str = "study", known: dict = None) -> list:
    """The jobs (in priority order) that one call on a grid takes: those the ledger lacks whose estimated
    seconds add up to at most `seconds` (the budget times the grid's slots), each with what it reads: in the
    ledger, finished in the store, or taken before it."""
    known = rates(ledger) if known is None else known
    taken, names, used, reference = [], set(), 0.0, False
    for j in jobs:
        if in_ledger(j, ledger):
            continue
        e = estimate(j, ledger, profile, known, root, cached=True if reference else None)  # FID's reference: once
        ready = all(lg.has(ledger, k, n) or Run(Path(root) / k / n).is_done() or f"{k}/{n}" in names for k, n in needs(j))
        if ready and used + e <= seconds:
            taken.append(j)
            used += e
            reference |= j.kind == "metrics"
            if j.config is not None:
                names.add(f"{j.config.kind}/{run_dir(j.config).name}")
    return taken
