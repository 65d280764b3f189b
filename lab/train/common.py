"""Pieces every training loop shares: device and precision, EMA, batches, window stats, NaN guard."""
import contextlib
import functools
import math
import os

import torch

from ..errors import DivergenceError


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        from ..errors import ConfigError

        raise ConfigError(f"device={name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        from ..errors import ConfigError

        raise ConfigError(f"device={name!r} was asked for but CUDA is not available; use device='auto' or 'cpu'.")
    return dev


def use_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast for precision "bf16", and for "auto" on CUDA and on a CPU with native bf16 instructions
    (`cpu_bf16`); plain fp32 otherwise."""
    return precision == "bf16" or (precision == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16())))


def autocast(device: torch.device, precision: str):
    """The autocast context of `use_bf16`: bf16 autocast, or nothing (fp32)."""
    if not use_bf16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def use_channels_last(device: torch.device, setting: str) -> bool:
    """channels_last for "on", and for "auto" on CUDA and on a CPU (`cpu_channels_last`)."""
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda" or (device.type == "cpu" and cpu_channels_last())


def channels_last_crashes(device: torch.device, *models) -> bool:
    """Whether a model has a layer whose channels_last backward crashes on a CPU: a strided 1x1 convolution
    with fewer than 8 input channels (a ResNet-18 shortcut at width 4 or 6). oneDNN's AVX2 kernel for its
    weight gradient (jit_avx2_1x1_convolution_bwd_weights) segfaulted, or corrupted the heap, on an AVX2-only
    AMD EPYC (torch 2.14.1); 8 and more input channels ran. Checked on every CPU: those models are too small
    for the layout to matter."""
    if device.type != "cpu":
        return False
    return any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels < 8
               for model in models for m in model.modules())


@functools.cache
def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _forced(name: str):
    """True/False when the environment variable `name` is "1"/"0", else None."""
    value = os.environ.get(name)
    return value == "1" if value in ("0", "1") else None


def cpu_bf16() -> bool:
    """precision="auto" on a CPU: bf16 autocast exactly where the CPU has native bf16 instructions. Decided by
    capability, never by a timing, so every process on one machine computes the same numbers (a half-second
    timing came out either way on a loaded machine). Measured: on an AVX2-only AMD EPYC a bf16 step took ~9x
    longer than fp32; with AVX-512 BF16, bf16 + channels_last ran at 0.7-1.1x fp32's speed on a Xeon
    (BENCHMARKS.md) and made a 3,000-step study GAN take 7.6 min on a Zen 4 EPYC.
    $LAB_CPU_BF16=1/0 forces the answer."""
    forced = _forced("LAB_CPU_BF16")
    return cpu_has_native_bf16() if forced is None else forced


def cpu_channels_last() -> bool:
    """channels_last="auto" on a CPU: on, on every CPU (fp32 steps of the smoke GAN ran 1.2-1.35x faster in
    channels_last on a 2-core AVX-512 Xeon and 1.15-1.2x on an AVX2-only EPYC; models it would crash on keep
    the default layout, `channels_last_crashes`). A rule, not a timing. $LAB_CPU_CHANNELS_LAST=1/0 forces it."""
    forced = _forced("LAB_CPU_CHANNELS_LAST")
    return True if forced is None else forced


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model over parameters and float buffers (BN stats, SN vectors).

    decay = 0 copies the model, which is what BigGAN does before its EMA start step.
    """
    pairs = list(zip(ema.state_dict().values(), model.state_dict().values()))
    floats = [(e, m) for e, m in pairs if e.dtype.is_floating_point]
    torch._foreach_lerp_([e for e, _ in floats], [m for _, m in floats], 1.0 - decay)
    for e, m in pairs:
        if not e.dtype.is_floating_point:
            e.copy_(m)


class EpochSampler:
    """Random batches of a uint8 image tensor on the device, one shuffled epoch after another.

    Every image is seen once per epoch; the last incomplete batch of an epoch is dropped.
    Its state (order and position) goes into checkpoints, so a resumed run sees the same batches.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < batch_size:
            from ..errors import ConfigError

            raise ConfigError(f"batch_size {batch_size} is larger than the training set ({n} images).")
        self.n, self.batch_size, self.gen = n, batch_size, generator
        self.order, self.pos, self.epoch = None, n, -1

    def next(self) -> torch.Tensor:
        """Indices `(batch_size,)` of the next batch, on the generator's device."""
        if self.pos + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.gen, device=self.gen.device)
            self.pos, self.epoch = 0, self.epoch + 1
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"order": self.order, "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, s: dict) -> None:
        self.order, self.pos, self.epoch = s["order"], s["pos"], s["epoch"]


class Window:
    """Running sums of scalar tensors on the device between two log lines (no host sync per step)."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, **values: torch.Tensor) -> None:
        for k, v in values.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def means(self) -> dict:
        """Means since the last reset, as Python floats (the one host sync)."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        vals = (torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        return dict(zip(keys, vals))

    def reset(self) -> None:
        self.sums, self.count = {}, 0

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, s: dict) -> None:
        self.sums, self.count = dict(s["sums"]), s["count"]


def divergence(what: str, step: int, last_good: int, run_dir) -> DivergenceError:
    """The one error a diverged run stops with; its last good checkpoint stays on disk."""
    kept = (f"the checkpoint of step {last_good} in {run_dir} is kept" if last_good
            else f"no checkpoint had been written to {run_dir} yet")
    return DivergenceError(
        f"Training diverged by step {step} ({what} is NaN or inf); {kept}. The learning rates and the seed are part "
        f"of a run's identity, so this directory cannot take new ones: start a new run with a lower learning rate "
        f"or another seed (e.g. `--set lr=...` or `--seed N`: without --run-dir it gets its own directory; with "
        f"--run-dir, name a new one)."
    )


@torch.no_grad()
def all_finite(*modules) -> bool:
    """Whether every parameter of `modules` is finite (one host sync)."""
    return bool(torch.stack([p.isfinite().all() for m in modules for p in m.parameters()]).all())


def check_finite(stats: dict, step: int, last_good: int, run_dir) -> None:
    """Raise `divergence` if any logged value is NaN or inf."""
    bad = [k for k, v in stats.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise divergence(", ".join(bad), step, last_good, run_dir)
