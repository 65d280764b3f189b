"""Safe files of a run: atomic checkpoint writes, loads that never unpickle code (weights_only, safetensors),
the global RNG states a checkpoint carries, and file digests."""
import hashlib
import os
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError

WEIGHTS = "weights.safetensors"  # a finished run's model weights without its checkpoint (the study's ledger)


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- Safe checkpoint I/O ---------------------------------------------------------------
def atomic_save(obj, path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over `path`.

    A crash or error mid-write leaves the previous file untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise CheckpointError(f"Could not write {path} ({type(e).__name__}: {e}); the previous file is intact.") from e
        raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def safe_load(path, map_location="cpu") -> dict:
    """torch.load with weights_only=True: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}.")
    damaged = "delete it to restart the run from scratch, or restore a copy"
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (0 bytes): {damaged}.")
    try:
        with warnings.catch_warnings():  # a damaged file's first byte reads as a pickle protocol: say it once, below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        code = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if code:  # a pickle that names a class or function: never loaded (do not set weights_only=False)
            raise CheckpointError(f"Refusing to load {path}: it names Python code ({code.group(1)}), which a checkpoint "
                                  f"of this lab never holds; it was not written here. Delete it or restore a copy.") from None
        raise CheckpointError(f"Checkpoint {path} is not a torch checkpoint or is damaged: {damaged}.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"Checkpoint {path} is corrupt or truncated ({type(e).__name__}: {_first_line(e)}); "
                              f"{damaged}.") from None
    except Exception:  # random bytes fail the unpickler anywhere (IndexError, KeyError, struct.error, ...)
        raise CheckpointError(f"Checkpoint {path} is not a torch checkpoint or is damaged: {damaged}.") from None


# --- RNG state -------------------------------------------------------------------------
def rng_state() -> dict:
    """Every global RNG state a training step may touch (CPU, CUDA, Python)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):  # a saved random.getstate() may come back with lists for tuples
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def read_weights(run_dir, role: str) -> dict | None:
    """The `role` state dict of a run's weights.safetensors (a run of the study's ledger, `lab.ledger`), or None
    when it has none."""
    path = Path(run_dir) / WEIGHTS
    if not path.exists():
        return None
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        saved = (f.metadata() or {}).get("role")
    if saved != role:
        raise CheckpointError(f"{path} holds the weights of {saved!r} only, not of {role!r}: a run of the study's ledger "
                              f"keeps what later runs read (a GAN its EMA generator), and this file may belong to another "
                              f"kind of run.")
    return load_file(str(path))
