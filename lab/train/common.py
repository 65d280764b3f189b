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


def use_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast for precision "bf16", and for "auto" on CUDA and on a CPU where bf16 (with channels_last)
    is measured faster than its best fp32 path (`cpu_bf16_is_faster`); plain fp32 otherwise."""
    return precision == "bf16" or (precision == "auto" and _auto_bf16(device))


def autocast(device: torch.device, precision: str):
    """The autocast context of `use_bf16`: bf16 autocast, or nothing (fp32)."""
    if not use_bf16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _auto_bf16(device: torch.device) -> bool:
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_is_faster())


def use_channels_last(device: torch.device, setting: str) -> bool:
    """channels_last for "on", and for "auto" on CUDA and on a CPU where it is measured faster, in fp32
    (`cpu_channels_last_is_faster`) or as part of the bf16 path (`cpu_bf16_is_faster`)."""
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda" or (device.type == "cpu" and (cpu_channels_last_is_faster() or cpu_bf16_is_faster()))


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


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16; Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _forced(name: str):
    """True/False when the environment variable `name` is "1"/"0", else None."""
    value = os.environ.get(name)
    return value == "1" if value in ("0", "1") else None


@functools.cache
def cpu_channels_last_is_faster(min_speedup: float = 1.1) -> bool:
    """Whether channels_last pays for fp32 training on this CPU, decided once per process by timing a small
    conv net (`_channels_last_speedup`, ~0.5 s): only if it is `min_speedup` times faster than the default
    layout. On a 2-core Xeon with AVX-512 a smoke G step was 1.2-1.4x faster in channels_last (avg-pooling
    and the convolutions' backward gain most). $LAB_CPU_CHANNELS_LAST=1/0 forces the answer."""
    forced = _forced("LAB_CPU_CHANNELS_LAST")
    if forced is not None:
        return forced
    return _channels_last_speedup() >= min_speedup


@functools.cache
def cpu_bf16_is_faster(min_speedup: float = 1.2) -> bool:
    """Whether bf16 autocast (with channels_last) pays on this CPU, decided once per process: never without
    native bf16 (on an AVX2-only AMD EPYC one bf16 step took ~9x longer than fp32); else by timing a small
    conv net's training step against fp32 in the layout `cpu_channels_last_is_faster` picks (~0.5 s): only if
    it is `min_speedup` times faster. $LAB_CPU_BF16=1/0 forces the answer."""
    forced = _forced("LAB_CPU_BF16")
    if forced is not None:
        return forced
    if not cpu_has_native_bf16():
        return False
    return _bf16_speedup() >= min_speedup


def _probe_step_ms(variants, steps: int = 5) -> list:
    """Best time in ms of a training step of a small conv net shaped like the smoke models' layers (3x3 convs
    of 32 channels at 32x32, batch norm, ReLU, 2x average pooling and nearest upsampling; batch 32), for each
    (bf16, channels_last) variant. The variants take turns step by step, so that a slow spell of a shared
    machine hits all of them, and the least disturbed step of each counts (others only ever add time)."""
    nn = torch.nn
    nets, times = [], []
    for bf16, channels_last in variants:
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(32, 32, 3, padding=1))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(32, 32, 32, 32, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=fmt)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        nets.append((net.to(memory_format=fmt), x, ctx))
        times.append([])
    for i in range(steps + 1):  # the first step warms up (kernel selection)
        for (net, x, ctx), t in zip(nets, times):
            t0 = time.perf_counter()
            with ctx:
                loss = net(x).float().square().mean()
            loss.backward()
            if i:
                t.append(time.perf_counter() - t0)
    return [1000 * min(t) for t in times]


def _channels_last_speedup(steps: int = 5) -> float:
    """fp32 step time in the default layout / in channels_last (`_probe_step_ms`)."""
    default, cl = _probe_step_ms([(False, False), (False, True)], steps)
    return default / cl


def _bf16_speedup(steps: int = 5) -> float:
    """fp32 step time (in the layout `cpu_channels_last_is_faster` picks) / bf16 + channels_last step time."""
    fp32, bf16 = _probe_step_ms([(False, cpu_channels_last_is_faster()), (True, True)], steps)
    return fp32 / bf16


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
