"""The scaffolding the three training loops share, so that each loop file keeps only its commented phases.

* `Runtime.for_run(cfg, run)`: the device, autocast context and memory format of a config's runtime fields,
  decided by the device's capability once per run (runtime.json), so that a resume never switches.
* One checkpoint schema, `{step, config, models, opts, rngs, samplers, extra}`: `save_checkpoint` writes it
  atomically, `restore` loads it into the loop's objects with one `CheckpointError` for a file of another
  architecture, and `read_checkpoint` gives it to the loaders (checkpoints of this lab's earlier layout are
  read too, so existing run stores stay usable).
* `LogWindow`: running means between log lines, the time per step (evaluation excluded), the NaN/inf check,
  the stats line in stats.jsonl, the progress bar and the `on_step(step, stats)` hook.
* `fixed_noise` and `save_grid`: the sample grids of a fixed noise batch.
"""
import copy
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data import save_image_grid
from ..errors import CheckpointError
from ..checkpoints import read_weights, rng_state, set_rng_state
from ..runs import RUNTIME_FIX, Run, _atomic_write_text, read_json
from .common import (Window, _forced, autocast, channels_last_crashes, check_finite, resolve_device, use_bf16,
                     use_channels_last)


@dataclass
class Runtime:
    device: torch.device
    amp: object  # a reusable context manager: bf16 autocast or nothing
    memory_format: torch.memory_format

    @classmethod
    def for_run(cls, cfg, run: Run) -> "Runtime":
        """The runtime of `cfg`'s device, precision and channels_last fields, decided once per run.

        "auto" follows the device's capability (`lab.train.common.cpu_bf16`, `cpu_channels_last`), the same in
        every process of one machine. The first process writes its answers to the run's runtime.json, and a
        later one on the same kind of device reads them back, so that a run resumed on another CPU (one with
        native bf16, say) keeps its arithmetic; a setting given explicitly ("fp32", "bf16", "on", "off", or
        $LAB_CPU_BF16 / $LAB_CPU_CHANNELS_LAST) still wins, and is written down in turn."""
        dev = resolve_device(cfg.device)
        path = Path(run.path) / "runtime.json"
        saved = read_json(path, RUNTIME_FIX) if path.exists() else {}
        same = saved.get("device") == dev.type
        keep_bf16 = same and cfg.precision == "auto" and _forced("LAB_CPU_BF16") is None and "bf16" in saved
        keep_cl = same and cfg.channels_last == "auto" and _forced("LAB_CPU_CHANNELS_LAST") is None \
            and "channels_last" in saved
        bf16 = saved["bf16"] if keep_bf16 else use_bf16(dev, cfg.precision)
        cl = saved["channels_last"] if keep_cl else use_channels_last(dev, cfg.channels_last)
        now = {"device": dev.type, "bf16": bf16, "channels_last": cl}
        if now != saved:
            _atomic_write_text(path, json.dumps(now))
        amp = autocast(dev, "bf16" if bf16 else "fp32")
        return cls(dev, amp, torch.channels_last if cl else torch.contiguous_format)

    def layout_for(self, *models) -> torch.memory_format:
        """The memory format to train `models` in: this runtime's, except the default layout where
        channels_last would crash on them (`channels_last_crashes`)."""
        if self.memory_format == torch.channels_last and channels_last_crashes(self.device, *models):
            return torch.contiguous_format
        return self.memory_format


# --- Checkpoints ---------------------------------------------------------------------------
def save_checkpoint(run: Run, step: int, cfg, models: dict, opts: dict, rngs: dict, samplers: dict, extra: dict):
    """Write the run's checkpoint: state dicts of `models` and `opts` (optimisers, schedules), the global RNG
    states and those of the torch.Generators in `rngs`, the `samplers`' states and `extra` (tensors and plain
    containers only), atomically."""
    run.save_checkpoint({
        "step": step, "config": cfg.to_dict(),
        "models": {k: m.state_dict() for k, m in models.items()},
        "opts": {k: o.state_dict() for k, o in opts.items()},
        "rngs": {"global": rng_state(), **{k: g.get_state() for k, g in rngs.items()}},
        "samplers": {k: s.state_dict() for k, s in samplers.items() if s is not None},
        "extra": extra,
    })


SCHEMA = ("step", "config", "models", "opts", "rngs", "samplers", "extra")


def read_checkpoint(run: Run) -> dict:
    """The run's checkpoint in the current schema (checkpoints of the earlier per-loop layouts converted); a file
    of another layout (a bare state_dict, another program's checkpoint) is one CheckpointError."""
    s = run.load_checkpoint()
    try:
        out = _upgrade(s) if isinstance(s, dict) else None
    except KeyError:
        out = None
    if out is None or any(k not in out for k in SCHEMA):
        keys = ", ".join(sorted(map(str, s))[:6]) if isinstance(s, dict) else type(s).__name__
        raise CheckpointError(f"{run.checkpoint_path} is not a checkpoint of this lab's runs (it holds {keys}); it was "
                              f"not written here: delete it to restart the run, or restore the run's own.")
    return out


def model_states(run: Run, role: str) -> dict:
    """A finished run's model state dicts: from its checkpoint, else (a run of the study's ledger, `lab.ledger`)
    the `role` weights of its weights.safetensors."""
    if not run.has_checkpoint():
        weights = read_weights(run.path, role)
        if weights is not None:
            return {role: weights}
    return read_checkpoint(run)["models"]


def restore(run: Run, device, models: dict, opts: dict, rngs: dict, samplers: dict) -> tuple[int, dict]:
    """Load the run's checkpoint into the loop's objects; returns (step, extra), or (0, {}) without one (`Run.init`
    has checked that the checkpoint was written under the config asked for)."""
    if not run.has_checkpoint():
        return 0, {}
    s = read_checkpoint(run)
    load_models(models, s["models"], f"{run.checkpoint_path} was written by another architecture",
                "use a new run directory for this config")
    for k, o in opts.items():
        o.load_state_dict(s["opts"][k])
    set_rng_state(s["rngs"]["global"])
    for k, g in rngs.items():
        g.set_state(s["rngs"][k])
    for k, smp in samplers.items():
        if smp is not None and s["samplers"].get(k) is not None:
            smp.load_state_dict(to_device(s["samplers"][k], device))
    return s["step"], to_device(s["extra"], device)


def load_models(models: dict, states: dict, problem: str, fix: str = None) -> None:
    """Load each role's state dict; a missing role or a shape mismatch is one CheckpointError."""
    try:
        for k, m in models.items():
            m.load_state_dict(states[k])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{problem} ({str(e).splitlines()[0]})" + (f"; {fix}." if fix else ".")) from None


def _upgrade(s: dict) -> dict:
    """A checkpoint of the earlier layouts (one per loop) in the current schema."""
    if "rngs" in s:
        return s
    if "G_ema" in s:  # GAN
        return {"step": s["step"], "config": s.get("config"), "models": {k: s[k] for k in ("G", "D", "G_ema")},
                "opts": {"G": s["opt_G"], "D": s["opt_D"]}, "rngs": {"global": s["rng"], "gen": s["gen"]},
                "samplers": {"data": s["sampler"]}, "extra": {"window": s["window"]}}
    if "model" in s:  # classifier
        return {"step": s["step"], "config": s.get("config"), "models": {"model": s["model"]},
                "opts": {"opt": s["opt"], "sched": s["sched"]}, "rngs": {"global": s["rng"], "gen": s["gen"]},
                "samplers": {"source": s.get("source")}, "extra": {"window": s["window"]}}
    # EC-GAN
    rngs = {"global": s["rng"], "data": s["gen_data"], "z": s["gen_z"], **({"d": s["gen_d"]} if "gen_d" in s else {})}
    return {"step": s["step"], "config": s.get("config"), "models": s["models"], "opts": s["opts"], "rngs": rngs,
            "samplers": {"data": s["sampler"], "d": s.get("sampler_d")},
            "extra": {"window": s["window"], "labelled": s["labelled"], "best": s["best"]}}


def to_device(tree, device):
    """Every tensor of a nested dict/list moved to `device` (RNG states stay on the CPU: they are byte tensors)."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_device(v, device) for v in tree)
    return tree


# --- The log window --------------------------------------------------------------------------
class LogWindow:
    """Running sums of the loop's scalars between log lines (no host sync per step) and everything a log line does.

    Args:
        run: the run whose stats.jsonl gets the lines.
        total, step: the run's last step and the step it starts (or resumes) at.
        every: steps between log lines (and the last step).
        desc: the progress bar's label.
        postfix: stats -> {name: text} shown on the progress bar.
        on_step: the caller's hook, `on_step(step, stats)` after every line.
    """

    def __init__(self, run: Run, total: int, step: int, every: int, desc: str, postfix, on_step=None):
        self.run, self.total, self.every, self.postfix, self.on_step = run, total, every, postfix, on_step
        self.window, self.last_good = Window(), step
        self.t_last, self.steps_timed = time.perf_counter(), 0
        self.bar = tqdm(total=total, initial=step, desc=desc, mininterval=1.0)

    def add(self, **values) -> None:
        """The scalars (tensors) of one step."""
        self.window.add(**values)
        self.steps_timed += 1

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total

    def log(self, step: int, first: dict = None, evaluate=None) -> dict:
        """Write the line of `step`: {"step", `first`, the window's means, "sec_per_step", `evaluate()`}.

        The NaN/inf check raises before anything is written; `evaluate` (e.g. the test split) is not timed.
        """
        stats = {"step": step, **(first or {}), **self.window.means()}
        check_finite(stats, step, self.last_good, self.run.path)
        now = time.perf_counter()
        stats["sec_per_step"], self.t_last, self.steps_timed = (now - self.t_last) / self.steps_timed, now, 0
        if evaluate is not None:
            stats.update(evaluate())
            self.t_last = time.perf_counter()  # evaluation time is not training time
        self.window.reset()
        self.run.log(stats)
        self._warn_if_exploding(stats)
        self.bar.set_postfix(self.postfix(stats))
        if self.on_step is not None:
            self.on_step(step, stats)
        return stats

    EXPLODED = 1e4  # |a logged loss| above this: the losses of these models are O(1) while they train

    def _warn_if_exploding(self, stats: dict) -> None:
        """One warning per process when a loss explodes without becoming NaN (e.g. a learning rate far too high)."""
        big = {k: v for k, v in stats.items() if k.startswith("loss") and isinstance(v, float) and abs(v) > self.EXPLODED}
        if big and not getattr(self, "warned", False):
            self.warned = True
            k, v = next(iter(big.items()))
            warnings.warn(f"{self.run.path}: {k} = {v:.3g} at step {stats['step']}: the losses are exploding without "
                          f"becoming NaN, so the run is probably diverging; check it before using it, and try a new run "
                          f"with lower learning rates (a new run directory: the rates are part of a run's identity).",
                          RuntimeWarning, stacklevel=2)

    def check(self, step: int) -> None:
        """The NaN/inf check of the means accumulated since the last line (before a checkpoint)."""
        check_finite({"step": step, **self.window.means()}, step, self.last_good, self.run.path)

    def checkpointed(self, step: int) -> None:
        self.last_good = step

    def state_dict(self) -> dict:
        return self.window.state_dict()

    def load_state_dict(self, s: dict) -> None:
        self.window.load_state_dict(s)

    def update(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# --- Sample grids ------------------------------------------------------------------------------
def fixed_noise(z_dim: int, seed: int, device, num_classes: int = None, per_class: int = 10, n: int = 64):
    """The fixed (z, y) of a run's sample grids, the same at every step and on resume (its own generator).

    Conditional (num_classes given): `per_class` columns for each of the first 10 classes, one row per class;
    else `n` noise vectors and y None."""
    g = torch.Generator().manual_seed(10_000 + seed)
    if num_classes is None:
        return torch.randn(n, z_dim, generator=g).to(device), None
    rows = min(num_classes, 10)
    z = torch.randn(rows * per_class, z_dim, generator=g)
    return z.to(device), torch.arange(rows).repeat_interleave(per_class).to(device)


@torch.no_grad()
def save_grid(G, z, path, y=None, nrow: int = 10, batch_stats: bool = False) -> None:
    """A PNG grid of G(z) (or G(z, y)), `nrow` per row, in [-1, 1].

    batch_stats: run a copy of G in train mode (BatchNorm on the grid's own statistics, as EC-GAN's classifier
    sees fakes); else G in eval mode (its mode restored after). G's weights and buffers are never changed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if batch_stats:
        net = copy.deepcopy(G).train()
    else:
        net, was_training = G, G.training
        G.eval()
    x = (net(z) if y is None else net(z, y)).float()
    if not batch_stats:
        G.train(was_training)
    save_image_grid(x, path, nrow=nrow, padding=1)
