"""Pieces every training loop shares: device and precision, EMA, batches, window stats, NaN guard."""
import contextlib
import functools
import math
import os
import time

import torch

from ..errors import DivergenceError


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from ..errors import ConfigError

        raise ConfigError(f"device={name!r} was asked for but CUDA is not available; use device='auto' or 'cpu'.")
    return dev


def autocast(device: torch.device, precision: str):
    """bf16 autocast for precision "bf16", and for "auto" on CUDA and on a CPU where the fast path (bf16 with
    channels_last) is measured faster (`cpu_bf16_is_faster`); plain fp32 otherwise."""
    if not (precision == "bf16" or (precision == "auto" and fast_path(device))):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def fast_path(device: torch.device) -> bool:
    """Whether "auto" means bf16 autocast + channels_last here: on CUDA, and on a CPU where it is measured faster."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_is_faster())


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16; Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def cpu_bf16_is_faster(min_speedup: float = 1.2) -> bool:
    """Whether the fast path (bf16 autocast + channels_last) pays on this CPU, decided once per process: never
    without native bf16 (on an AVX2-only AMD EPYC one bf16 step took ~9x longer than fp32); else by timing a
    small conv net's training step both ways (~1 s): only if it is `min_speedup` times faster than fp32.
    $LAB_CPU_BF16=1/0 forces the answer."""
    forced = os.environ.get("LAB_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if not cpu_has_native_bf16():
        return False
    return _bf16_speedup() >= min_speedup


def _bf16_speedup(steps: int = 3) -> float:
    """fp32 time / (bf16 + channels_last) time of a few training steps of 3 convs (32 channels, 32x32,
    batch 32) on the CPU."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(*[m for _ in range(3) for m in (torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU())])
    x = torch.randn(32, 32, 32, 32, generator=g)
    times = {}
    for bf16 in (False, True):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        net, x = net.to(memory_format=fmt), x.contiguous(memory_format=fmt)
        for i in range(steps + 1):  # the first step warms up (kernel selection)
            if i == 1:
                t0 = time.perf_counter()
            with ctx:
                loss = net(x).float().square().mean()
            loss.backward()
        times[bf16] = time.perf_counter() - t0
    return times[False] / times[True]


def use_channels_last(device: torch.device, setting: str) -> bool:
    """channels_last for "on", and for "auto" where the fast path runs: CUDA, or a CPU where it is measured
    faster (`cpu_bf16_is_faster`, which times bf16 together with channels_last)."""
    return setting == "on" or (setting == "auto" and fast_path(device))


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
        f"Training diverged by step {step} ({what} is NaN or inf); {kept}: lower the learning rates or change "
        f"the seed, then resume."
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
