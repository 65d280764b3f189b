"""Throughput benchmarks of the training loops, fp32 eager vs the fast path, in one process."""
import tempfile

from .config import preset
from .train.gan import train_gan

# name -> the runtime settings of one variant
GAN_VARIANTS = {
    "fp32 eager": dict(precision="fp32", channels_last="off", compile=False),
    "bf16 + channels_last": dict(precision="bf16", channels_last="on", compile=False),
    "bf16 + channels_last + compile": dict(precision="bf16", channels_last="on", compile=True),
}


def bench_gan(preset_name: str, steps: int = 20, warmup: int = 5, device: str = "auto", variants=None, **overrides) -> list:
    """G steps/s and real images/s through D of the real training loop, per variant.

    Each variant trains `warmup` steps (compilation, allocator warm-up) and then `steps` timed steps
    of `preset_name` in a throw-away run directory; the time is the loop's own logged sec_per_step.
    """
    rows = []
    for name in variants or GAN_VARIANTS:
        cfg = preset(preset_name).replace(device=device, **GAN_VARIANTS[name], **overrides)
        cfg = cfg.replace(steps=warmup + steps, log_every=warmup, ckpt_every=10**9, grid_every=10**9)
        with tempfile.TemporaryDirectory() as d:
            stats = train_gan(cfg, d).stats()
        # Each log line holds the mean time per step of its window; weight the timed windows by length.
        ends = [s["step"] for s in stats]
        timed = [(s["sec_per_step"], end - start) for s, start, end in zip(stats[1:], ends, ends[1:])]
        sec = sum(t * n for t, n in timed) / sum(n for _, n in timed)
        rows.append({
            "variant": name, "preset": preset_name, "device": _device_name(cfg.device),
            "G steps/s": round(1 / sec, 3), "real img/s through D": round(cfg.batch_size * cfg.d_steps / sec, 1),
            "ms per G step": round(1000 * sec, 1),
        })
    return rows


def _device_name(device: str) -> str:
    import torch

    from .train.common import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
