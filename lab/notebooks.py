"""Execute the numbered notebooks headless (papermill), as `make demo` and the tests do."""
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


def demo_parameters(out_dir, profile: str = "smoke") -> dict:
    """Parameters every notebook accepts: the profile, and where figures and runs go."""
    out_dir = Path(out_dir).resolve()
    return dict(PROFILE=profile, FIG_DIR=str(out_dir / "figures"), RUNS_DIR=str(out_dir / "runs"))


def run_all(out_dir="runs/demo", profile: str = "smoke", only=None) -> list:
    """Execute every notebook (or those whose name starts with one of `only`) in order."""
    params = demo_parameters(out_dir, profile)
    done = []
    for nb in notebooks():
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        t0 = time.perf_counter()
        done.append(execute(nb, out_dir, params))
        print(f"{nb.name}: executed in {time.perf_counter() - t0:.1f} s -> {done[-1]}", flush=True)
    return done
