"""The machine a run or a timing was measured on: CPU model and vector capability, torch threads, GPU, torch
version, and the commit of the code (`machine()`: every ledger record and demo timing names it)."""
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kind() -> str:
    """The CPU's vector capability, which decides its speed and runtime here: "AVX-512 BF16", "AVX-512", "AVX2"."""
    from .train.common import cpu_flags

    flags = cpu_flags()
    if {"avx512_bf16", "amx_bf16"} & flags:
        return "AVX-512 BF16"
    return "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "other")


def machine(repo=REPO) -> dict:
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
    return {"cpu": cpu_model(), "cpu_kind": cpu_kind(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "commit": commit}
