"""Metrics: nearest neighbours (memorisation check), model and dataset sizes."""
import torch

from .models import param_count, size_mb  # noqa: F401  (model sizes are metrics too)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 5, chunk: int = 4096):
    """The `k` images of `reference` closest to each query in pixel L2 (images in [-1, 1]).

    Args:
        queries: (Q, 3, H, W) float.
        reference: (N, 3, H, W) float or uint8 (converted to [-1, 1]).
    Returns:
        (distances (Q, k), indices (Q, k)), nearest first; distances are RMS per pixel.
    """
    from .data import to_float

    q = queries.float().flatten(1)
    best_d = torch.full((len(q), k), float("inf"))
    best_i = torch.zeros((len(q), k), dtype=torch.int64)
    for start in range(0, len(reference), chunk):
        r = reference[start : start + chunk]
        r = (to_float(r) if r.dtype == torch.uint8 else r.float()).flatten(1).to(q.device)
        d = torch.cdist(q, r).cpu()  # (Q, chunk)
        d_all = torch.cat([best_d, d], dim=1)
        i_all = torch.cat([best_i, torch.arange(start, start + len(r)).expand(len(q), -1)], dim=1)
        best_d, pos = d_all.topk(k, dim=1, largest=False)
        best_i = i_all.gather(1, pos)
    return best_d / q.shape[1] ** 0.5, best_i


def dataset_size_mb(n: int, shape=(3, 32, 32)) -> float:
    """Raw storage of n uint8 images in MB (1e6 bytes): 10k CIFAR images = 30.7 MB (the paper's "30 MB")."""
    return n * torch.Size(shape).numel() / 1e6
