"""Throughput benchmarks of the training loops, fp32 eager vs the fast path, in one process."""
import tempfile

from .presets import preset
from .train.gan import train_gan

# name -> the runtime settings of one variant (of every benchmark)
VARIANTS = {
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
    for name in variants or VARIANTS:
        cfg = preset(preset_name).replace(device=device, **VARIANTS[name], **overrides)
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


# --- Algorithm 1's stream and the classifier trained on it ---------------------------------
def _stream_models(gan_preset, classifier_preset, gan_run, filter_run, dev, variant: dict):
    """Trained models from run directories when given, else freshly initialised ones of the presets;
    in channels_last and compiled as the variant says."""
    import torch

    from .models import ResNet18, build_gan
    from .train.classifier import load_classifier
    from .train.gan import load_generator

    torch.manual_seed(0)
    G = load_generator(gan_run, device=dev) if gan_run else build_gan(preset(gan_preset))[0].to(dev).eval()
    if filter_run:
        clf = load_classifier(filter_run, device=dev)
    else:
        c = preset(classifier_preset)
        clf = ResNet18(c.num_classes, c.width).to(dev).eval()
    if variant["channels_last"] == "on":
        G, clf = G.to(memory_format=torch.channels_last), clf.to(memory_format=torch.channels_last)
    if variant["compile"]:
        G, clf = torch.compile(G), torch.compile(clf)  # attribute reads (z_dim, ...) pass through
    return G, clf


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_sampler(gan_preset="digits-smoke", classifier_preset="classifier-digits-smoke", threshold=0.9,
                  batches=20, warmup=3, batch_size=128, draw_batch=None, device="auto", variants=None,
                  gan_run=None, filter_run=None) -> list:
    """Accepted images/s of `FilteredSampler` per variant.

    With `gan_run` / `filter_run` (run directories) the trained models are used; without them the
    models are freshly initialised and the stream is unfiltered (threshold None: an untrained
    classifier predicts nearly one class, so Algorithm 1 would starve the others); the rows say which.
    """
    import time

    from .sampling import FilteredSampler
    from .train.common import resolve_device

    dev = resolve_device(device)
    trained = bool(gan_run and filter_run)
    t = threshold if trained else None
    rows = []
    for name in variants or VARIANTS:
        v = VARIANTS[name]
        G, clf = _stream_models(gan_preset, classifier_preset, gan_run, filter_run, dev, v)
        s = FilteredSampler([G], clf, t, batch_size, draw_batch=draw_batch or 8 * batch_size, seed=0, device=dev,
                            autocast=v["precision"] == "bf16")
        for _ in range(warmup):
            next(s)
        _sync(dev)
        drawn0, t0 = int(s.stats.drawn.sum()), time.perf_counter()
        for _ in range(batches):
            next(s)
        _sync(dev)
        sec = time.perf_counter() - t0
        drawn = int(s.stats.drawn.sum()) - drawn0
        rows.append({
            "variant": name, "device": _device_name(str(dev)), "models": "trained runs" if trained else "untrained",
            "threshold": t, "accepted img/s": round(batches * batch_size / sec, 1),
            "drawn img/s": round(drawn / sec, 1), "acceptance": round(batches * batch_size / max(drawn, 1), 3),
        })
    return rows


def bench_classifier(gan_preset="digits-smoke", classifier_preset="classifier-digits-smoke", threshold=0.9,
                     steps=20, warmup=3, device="auto", variants=None, gan_run=None, filter_run=None, **overrides) -> list:
    """Training images/s of the classifier on the live filtered stream, per variant (the real loop).

    Models as in `bench_sampler` (untrained: an unfiltered stream).
    """
    import tempfile

    from .sampling import FilteredSampler
    from .train.classifier import train_classifier
    from .train.common import resolve_device

    dev = resolve_device(device)
    trained = bool(gan_run and filter_run)
    t = threshold if trained else None
    rows = []
    for name in variants or VARIANTS:
        v = VARIANTS[name]
        cfg = preset(classifier_preset).replace(
            source="gan", gans=("bench",), threshold=t, filter="bench", augment=False, device=str(dev),
            steps=warmup + steps, log_every=warmup, eval_every=10**9, ckpt_every=10**9, **v, **overrides)
        G, clf = _stream_models(gan_preset, classifier_preset, gan_run, filter_run, dev, v)  # the stream's models too
        stream = FilteredSampler([G], clf, t, cfg.batch_size, draw_batch=8 * cfg.batch_size, seed=0, device=dev,
                                 autocast=v["precision"] == "bf16")
        with tempfile.TemporaryDirectory() as d:
            stats = train_classifier(cfg, stream, d).stats()
        ends = [s["step"] for s in stats]
        timed = [(s["sec_per_step"], b - a) for s, a, b in zip(stats[1:], ends, ends[1:]) if "sec_per_step" in s]
        sec = sum(x * n for x, n in timed) / sum(n for _, n in timed)
        rows.append({
            "variant": name, "device": _device_name(str(dev)), "models": "trained runs" if trained else "untrained",
            "threshold": t, "train img/s": round(cfg.batch_size / sec, 1), "ms per step": round(1000 * sec, 1),
            "156,250 steps (h)": round(156_250 * sec / 3600, 2),
        })
    return rows


def bench_metrics(n: int = 2000, batch_size: int = 200, device: str = "auto", weights=None,
                  gan_preset: str = "digits-smoke", gan_run=None, data_root: str = "data", reference_n: int = None) -> list:
    """Images/s of the IS + FID pipeline (torch-fidelity, generation included) with cached reference statistics.

    A first call loads the FID network and caches the reference statistics of `reference_n` training images
    (default n); the timed call then generates and scores `n` samples. With the TorchScript port (no
    torch-fidelity weights on disk) only FID is computed.
    """
    import time

    from .data import load_dataset
    from .fidelity import inception_metrics
    from .models import build_gan
    from .train.common import resolve_device
    from .train.gan import load_generator

    dev = resolve_device(device)
    cfg = preset(gan_preset)
    G = load_generator(gan_run, device=dev) if gan_run else build_gan(cfg)[0].to(dev).eval()
    reference = load_dataset(cfg.dataset, "train", data_root)
    kw = dict(batch_size=batch_size, device=str(dev), weights=weights, reference_n=reference_n or n)
    inception_metrics(G, reference, n=min(batch_size, n), **kw)  # warm-up: weights, reference statistics cache
    _sync(dev)
    t0 = time.perf_counter()
    m = inception_metrics(G, reference, n=n, **kw)
    _sync(dev)
    rate = n / (time.perf_counter() - t0)
    return [{"device": _device_name(str(dev)), "network": m["network"], "n": n, "reference n": kw["reference_n"],
             "IS + FID img/s": round(rate, 1), "FID-50k estimate (s)": round(50_000 / rate, 1),
             "IS": "not computed" if m["IS"] is None else round(m["IS"], 3), "FID": round(m["FID"], 3),
             "models": "trained run" if gan_run else "untrained"}]


def bench_grid(gan_preset: str = "digits-smoke", steps: int = 20, runs: int = 4) -> list:
    """Wall time of a grid of `runs` short GAN runs (seeds 0..runs-1), local backend vs Ray, each in a fresh
    run store: what Ray costs (start-up, one process per task) or gains (runs side by side) on this machine."""
    import os

    from . import grid

    cfgs = [preset(gan_preset).replace(seed=s, steps=steps, log_every=steps, ckpt_every=steps, grid_every=steps)
            for s in range(runs)]
    rows = []
    for backend in ("local", "ray"):
        with tempfile.TemporaryDirectory() as d:
            sec = grid.wall_time(cfgs, backend, root=d)
        rows.append({"backend": backend, "runs": runs, "G steps each": steps, "CPUs": os.cpu_count(),
                     "wall time (s)": round(sec, 1), "s per run": round(sec / runs, 1)})
    return rows
