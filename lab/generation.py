"""Drawing images from class-conditional generators: batches, class grids, interpolations, a uniform mixture of
several GANs, and a pool of unfiltered samples with the filter's probabilities (the threshold explorer's);
Algorithm 1's filtered stream is `lab.sampling`."""
import contextlib

import torch

from .data import to_uint8
from .errors import LabError
from .models import module_device


@torch.no_grad()
def generate(G, y: torch.Tensor, z: torch.Tensor = None, generator: torch.Generator = None, batch_size: int = 500):
    """G(z, y) in batches, on G's device; z ~ N(0, I) from `generator` when not given. Returns (B, 3, R, R)."""
    dev = next(G.parameters()).device
    y = y.to(dev)
    if z is None:
        gdev = generator.device if generator is not None else dev
        z = torch.randn(len(y), G.z_dim, generator=generator, device=gdev).to(dev)
    return torch.cat([G(z[i : i + batch_size].to(dev), y[i : i + batch_size]).float() for i in range(0, len(y), batch_size)])


def class_grid_inputs(G, n_cols: int = 10, classes=None, seed: int = 0):
    """(z, y) for a grid with one row per class and the same noise down each column."""
    classes = list(range(min(G.num_classes, 10))) if classes is None else list(classes)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n_cols, G.z_dim, generator=g).repeat(len(classes), 1)  # (rows*cols, z_dim)
    y = torch.tensor(classes).repeat_interleave(n_cols)
    return z, y


def interpolate(G, y: int, steps: int = 8, n: int = 4, seed: int = 0):
    """`n` straight lines in z between two random points, within class `y`: (n*steps, 3, R, R)."""
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(2, n, 1, G.z_dim, generator=g)
    t = torch.linspace(0, 1, steps)[None, :, None]  # (1, steps, 1)
    z = ((1 - t) * z0 + t * z1).reshape(n * steps, G.z_dim)
    return generate(G, torch.full((n * steps,), y), z)




def autocast_context(autocast, device: torch.device):
    """A context factory: `autocast` itself when callable, bf16 autocast on `device` when true, else none."""
    if callable(autocast):
        return autocast
    if autocast:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def mixture(generators, y: torch.Tensor, gen_idx: torch.Tensor, rng: torch.Generator, device, amp) -> torch.Tensor:
    """x (n, 3, R, R) float32 on `device`, x[i] = G_{gen_idx[i]}(z_i, y[i]) with fresh z_i ~ N(0, I).

    `y` and `gen_idx` are host tensors, so each generator's share is a known-size slice (no sync).
    """
    order = torch.argsort(gen_idx, stable=True)
    sizes = torch.bincount(gen_idx, minlength=len(generators)).tolist()
    y_sorted = y[order].to(device)
    parts, start = [], 0
    with torch.no_grad(), amp():
        for G, n in zip(generators, sizes):
            if n:
                z = torch.randn(n, G.z_dim, generator=rng, device=device)
                parts.append(G(z, y_sorted[start : start + n]).float())
                start += n
    x_sorted = torch.cat(parts)
    x = torch.empty_like(x_sorted)
    x[order.to(device)] = x_sorted  # back to the order of y
    return x


def class_probs(classifier, x: torch.Tensor, num_classes: int, amp) -> torch.Tensor:
    """softmax(classifier(x)) (n, C) float32; logits of another shape are a LabError."""
    with torch.no_grad(), amp():
        logits = classifier(x).float()
    if logits.shape != (len(x), num_classes):
        raise LabError(f"The classifier returned logits of shape {tuple(logits.shape)} for {len(x)} images of "
                       f"{num_classes} classes; pass the filter classifier trained on the generators' dataset.")
    return logits.softmax(dim=1)


def sample_pool(generators, classifier, n_per_class: int, seed: int = 0, batch_size: int = 500, device=None,
                autocast=False) -> dict:
    """Exactly `n_per_class` unfiltered samples per class with their classifier probabilities, on the CPU.

    Each sample comes from a generator chosen uniformly at random, as in `FilteredSampler`.
    Returns a dict: `images` uint8 (N, 3, R, R) (rounded, see `to_uint8`), `labels` int64 (N,),
    class-major, `probs` float32 (N, C), `generator` int64 (N,) index of the generator that drew it.
    """
    generators = list(generators) if isinstance(generators, (list, tuple)) else [generators]
    device = torch.device(device) if device is not None else module_device(generators[0])
    C = generators[0].num_classes
    amp = autocast_context(autocast, device)
    rng, host_rng = torch.Generator(device).manual_seed(seed), torch.Generator().manual_seed(seed)
    labels = torch.arange(C).repeat_interleave(n_per_class)
    gen_idx = torch.randint(len(generators), (len(labels),), generator=host_rng)
    images, probs = [], []
    for i in range(0, len(labels), batch_size):
        x = mixture(generators, labels[i : i + batch_size], gen_idx[i : i + batch_size], rng, device, amp)
        probs.append(class_probs(classifier, x, C, amp).cpu())
        images.append(to_uint8(x).cpu())
    return {"images": torch.cat(images), "labels": labels, "probs": torch.cat(probs), "generator": gen_idx}


