"""Drawing images from class-conditional generators: batches, class grids, interpolations."""
import torch


@torch.no_grad()
def generate(G, y: torch.Tensor, z: torch.Tensor = None, generator: torch.Generator = None, batch_size: int = 500):
    """G(z, y) in batches, on G's device; z ~ N(0, I) from `generator` when not given. Returns (B, 3, 32, 32)."""
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
    """`n` straight lines in z between two random points, within class `y`: (n*steps, 3, 32, 32)."""
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(2, n, 1, G.z_dim, generator=g)
    t = torch.linspace(0, 1, steps)[None, :, None]  # (1, steps, 1)
    z = ((1 - t) * z0 + t * z1).reshape(n * steps, G.z_dim)
    return generate(G, torch.full((n * steps,), y), z)
