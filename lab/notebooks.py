"""Execute the numbered notebooks headless (papermill), as `make demo` and the tests do."""
import json
import os
import time
from pathlib import Path

from .host import machine

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def notebooks(folder=NOTEBOOK_DIR) -> list:
    """The notebooks `NN_*.ipynb` of `folder`, in order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def execute(notebook, out_dir, parameters: dict, timeout: int | None = None) -> Path:
    """Run `notebook` with `parameters` injected after its `parameters` cell; save it under `out_dir`.

    timeout: seconds any one cell may run (None: no limit; a demo cell trains for many minutes on a CPU)."""
    import papermill as pm

    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    pm.execute_notebook(
        str(notebook), str(out), parameters=parameters, cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False, execution_timeout=timeout,
    )
    return out


def demo_parameters(out_dir, profile: str = "smoke") -> dict:
    """Parameters every notebook accepts: the profile, and where figures and runs go."""
    out_dir = Path(out_dir).resolve()
    return dict(PROFILE=profile, FIG_DIR=str(out_dir / "figures"), RUNS_DIR=str(out_dir / "runs"))


def default_jobs() -> int:
    """Lanes of `run_all`: 2 on a CPU-only machine with 2 or more cores (the notebooks in one, a worker that
    trains the later notebooks' runs in the other, each with half the cores), else 1. On a 2-core Xeon two
    one-thread processes each ran a smoke G step about as fast as one process alone (0.41 s), against 0.28 s
    for one process with two threads: 1.4x the throughput. On a GPU the runs would share the device: 1."""
    import torch

    return 2 if (os.cpu_count() or 1) >= 2 and not torch.cuda.is_available() else 1


PREFETCHED = ("05", "06", "07")  # the notebooks whose grids the worker lane trains ahead


def prefetch_grid(profile: str, data_root, selected=PREFETCHED) -> list:
    """The runs a worker lane trains while the notebooks run in order: the grids of notebooks 05-07 among
    `selected`, their GANs first (notebooks 05 and 06 need them soonest), then 07's EC-GAN runs, then the
    rest (stage 1, the GAN-stream classifiers, follows stage 0 in `lab.grid.run`). The runs of notebook 04's
    grid (01's GAN, the filter, the real subsets) are left to the notebooks when 01-04 are selected: they
    need them first, and waiting for a one-thread worker to train them would leave their lane idle. A run
    both lanes ask for is trained once (`lab.runs.run_lock`)."""
    from .config import GANConfig
    from .notebook_grids import notebook_grid, unique
    from .runs import run_dir

    grids = [notebook_grid(nb, profile, str(data_root)) for nb in PREFETCHED if nb in selected]
    early = set()
    if any(nb in selected for nb in ("01", "02", "03", "04")):
        early = {run_dir(c).name for c in notebook_grid("04", profile, str(data_root))}
    flat = [c for c in unique([c for g in grids for c in g]) if run_dir(c).name not in early]
    return [c for c in flat if isinstance(c, GANConfig)] + [c for c in flat if not isinstance(c, GANConfig)]


def _prefetch(configs: list, root: str, threads: int, log: str, parent: int = None) -> None:
    """The worker lane (a separate process): bring `configs` (kind, dict) to done with `threads` torch threads,
    its output in `log`. A run that fails here is trained again by the notebook that needs it. It exits when
    the process `parent` (the demo's pid, passed by it: the demo may die before this process starts) ends."""
    import sys
    import threading

    import torch

    from . import grid

    parent = parent or os.getppid()

    def exit_with_parent():  # a demo killed by a signal takes its worker along (a run resumes next time)
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    torch.set_num_threads(threads)
    with open(log, "w", buffering=1) as f:
        sys.stdout = sys.stderr = f
        cfgs = [grid.KINDS[kind].from_dict(d) for kind, d in configs]
        t0 = time.perf_counter()
        results = grid.run(cfgs, "local", root=root, progress=True)
        for r in results:
            if not r.ok:
                print(f"failed: {r.error}")
        print(f"worker: {len(results)} runs in {time.perf_counter() - t0:.1f} s "
              f"({sum(r.trained for r in results)} trained here)")


def kernel_threads(worker, threads: int) -> int:
    """Torch threads of the next notebook kernel: the lane's share while the worker lane runs, every core once
    it has finished its runs (its process has exited), so the last notebooks do not leave half the CPU idle."""
    return threads if worker is not None and worker.is_alive() else os.cpu_count() or threads


def run_all(out_dir="runs/demo", profile: str = "smoke", only=None, jobs: int = None) -> list:
    """Execute every notebook (or those whose name starts with one of `only`) in order; print a table of
    their wall times at the end and keep it in `<out_dir>/timings.json` (one entry per notebook, the
    latest execution of each, with the `machine` it ran on). The profile "paper-rehearsal" writes its fixture
    datasets (`lab.fixtures.write_rehearsal_data`) to `<out_dir>/data` and reads them from there.

    jobs: lanes (None: `default_jobs()`). With 2, a worker process trains the runs of notebooks 05-07
    (`prefetch_grid`) while the notebooks execute, and each lane gets half of the CPU threads (a kernel started
    after the worker has exited gets them all, `kernel_threads`); the worker's output goes to
    `<out_dir>/worker.log`. The notebooks' results do not depend on it: every run is the same
    config trained by the same code, whichever process trains it.
    """
    import multiprocessing

    unknown = [o for o in only or [] if not any(nb.name.startswith(o) for nb in notebooks())]
    if unknown:  # before anything is written
        from .errors import LabError

        raise LabError(f"--only {' '.join(unknown)}: no notebook starts with that; the notebooks are "
                       f"{', '.join(nb.name[:2] for nb in notebooks())}.")
    params = demo_parameters(out_dir, profile)
    log = Path(out_dir) / "timings.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    timings = json.loads(log.read_text()) if log.exists() else {}
    selected = [nb for nb in notebooks() if not only or any(nb.name.startswith(o) for o in only)]
    jobs = default_jobs() if jobs is None else jobs
    if jobs not in (1, 2):
        from .errors import ConfigError

        raise ConfigError(f"jobs must be 1 (the notebooks alone) or 2 (the notebooks + a worker), got {jobs}.")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    data_root, saved = NOTEBOOK_DIR.parent / "data", {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "LAB_FIXTURE_CHECKSUMS")}
    worker, times, done = None, {}, []
    try:
        if profile == "paper-rehearsal":  # fixture files in the real formats, read through torchvision
            from .fixtures import write_rehearsal_data

            data_root = Path(params["RUNS_DIR"]).parent / "data"
            os.environ["LAB_FIXTURE_CHECKSUMS"] = str(write_rehearsal_data(data_root))
            params["DATA_ROOT"] = str(data_root)
        if jobs > 1:
            os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernels' torch threads (read at their start)
            todo = prefetch_grid(profile, data_root, [nb.name[:2] for nb in selected])
            if todo:
                worker = multiprocessing.get_context("spawn").Process(
                    target=_prefetch, args=([(c.kind, c.to_dict()) for c in todo], params["RUNS_DIR"], threads,
                                            str(Path(out_dir) / "worker.log"), os.getpid()), daemon=True)
                worker.start()
        where = {**machine(), "torch_threads": threads if jobs > 1 else None, "jobs": jobs}
        if where["torch_threads"] is None:
            import torch

            where["torch_threads"] = torch.get_num_threads()
        for nb in selected:
            if worker is not None:  # the kernels' torch threads, read at their start
                os.environ["OMP_NUM_THREADS"] = str(kernel_threads(worker, threads))
            t0 = time.perf_counter()
            done.append(execute(nb, out_dir, params))
            times[nb.name] = time.perf_counter() - t0
            print(f"{nb.name}: executed in {times[nb.name]:.1f} s -> {done[-1]}", flush=True)
            ran_on = {**where, "torch_threads": int(os.environ["OMP_NUM_THREADS"])} if worker is not None else where
            timings[nb.name] = {"seconds": round(times[nb.name], 1), "profile": profile,
                                "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": ran_on}
            log.write_text(json.dumps(timings, indent=1) + "\n")
    finally:
        if worker is not None:
            worker.join(timeout=5)  # the notebooks needed every run it trains: it is done or nearly so
            if worker.is_alive():
                worker.terminate()  # a run it had started resumes from its checkpoint next time
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    lanes = f" ({jobs} lanes of {threads} thread(s): notebooks + a worker, {Path(out_dir) / 'worker.log'})" if worker else ""
    print(timing_table(times) + lanes, flush=True)
    return done


def timing_table(times: dict) -> str:
    """A markdown table of {notebook: seconds}, with the total."""
    rows = [f"| {name} | {sec:.0f} s |" for name, sec in times.items()]
    total = sum(times.values())
    return "\n".join(["| notebook | wall time |", "|---|---|", *rows, f"| **total** | **{total:.0f} s ({total / 60:.1f} min)** |"])
