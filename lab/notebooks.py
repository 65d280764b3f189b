"""Execute the numbered notebooks headless (papermill), as `make demo` and the tests do."""
import json
import platform
import subprocess
import time
from pathlib import Path

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


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(repo=NOTEBOOK_DIR.parent) -> dict:
    """What a wall time was measured on: CPU, torch threads, GPU, torch version, and the commit of the
    checkout `repo` (this one by default; "+dirty" when tracked files have uncommitted changes; None outside
    a git checkout)."""
    import torch

    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "commit": commit}


def demo_parameters(out_dir, profile: str = "smoke") -> dict:
    """Parameters every notebook accepts: the profile, and where figures and runs go."""
    out_dir = Path(out_dir).resolve()
    return dict(PROFILE=profile, FIG_DIR=str(out_dir / "figures"), RUNS_DIR=str(out_dir / "runs"))


def run_all(out_dir="runs/demo", profile: str = "smoke", only=None) -> list:
    """Execute every notebook (or those whose name starts with one of `only`) in order; print a table of
    their wall times at the end and keep it in `<out_dir>/timings.json` (one entry per notebook, the
    latest execution of each, with the `machine` it ran on)."""
    params = demo_parameters(out_dir, profile)
    log = Path(out_dir) / "timings.json"
    timings = json.loads(log.read_text()) if log.exists() else {}
    done, times, where = [], {}, machine()
    for nb in notebooks():
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        t0 = time.perf_counter()
        done.append(execute(nb, out_dir, params))
        times[nb.name] = time.perf_counter() - t0
        print(f"{nb.name}: executed in {times[nb.name]:.1f} s -> {done[-1]}", flush=True)
        timings[nb.name] = {"seconds": round(times[nb.name], 1), "profile": profile,
                            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": where}
        log.write_text(json.dumps(timings, indent=1) + "\n")
    print(timing_table(times), flush=True)
    return done


def timing_table(times: dict) -> str:
    """A markdown table of {notebook: seconds}, with the total."""
    rows = [f"| {name} | {sec:.0f} s |" for name, sec in times.items()]
    total = sum(times.values())
    return "\n".join(["| notebook | wall time |", "|---|---|", *rows, f"| **total** | **{total:.0f} s ({total / 60:.1f} min)** |"])
