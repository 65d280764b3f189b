"""Metrics: the Fréchet distance, classifier-feature FD and duplicates, model and dataset sizes, nearest
neighbours (memorisation check). IS/FID/KID/PR through torch-fidelity are in `lab.fidelity`."""
import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_float
from .errors import ConfigError
from .models import module_device, size_mb


# --- Fréchet distance ------------------------------------------------------------------------


def statistics(features):
    """Mean (D,) and covariance (D, D) of features (N, D), float64; the covariance divides by N - 1."""
    x = np.asarray(features.cpu() if torch.is_tensor(features) else features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ConfigError(f"statistics needs features of shape (N >= 2, D), got {x.shape}.")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def fid_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), with tr sqrt(S1 S2) = sum_i sqrt(lambda_i(S1 S2)).
    S1 S2 is not symmetric, so `eigvalsh` is wrong here (negative eigenvalues); `eigvals` may return
    a real array, so the eigenvalues are cast to complex before the square root and the real part is
    summed, otherwise tiny negative eigenvalues of rank-deficient covariances give NaN (torch-fidelity
    >= 0.4's formula, its commit 154062c).

    Args:
        mu1, mu2: means (D,).
        sigma1, sigma2: covariances (D, D).
    Returns:
        The distance as a Python float.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ConfigError(f"Statistics do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
                          f"sigma2 {s2.shape}; pass means (D,) and covariances (D, D) of the same feature size D.")
    diff = mu1 - mu2
    tr_covmean = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(np.complex128)).real.sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


# --- Sizes -----------------------------------------------------------------------------------


def model_size_mb(module: torch.nn.Module) -> float:
    """Float32 size of all parameters in MB (1e6 bytes), frozen ones included."""
    return size_mb(module, "MB")


# --- Inception weights -----------------------------------------------------------------------


# --- torch-fidelity inputs -------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(modules):
    """Modules in eval mode inside the block; their previous modes restored after."""
    modules = [m for m in modules if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


# --- In-domain metrics with a classifier -----------------------------------------------------


@torch.no_grad()
def features(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """`model.features(x)` of images in eval mode, float64 (N, D) on the CPU.

    Args:
        model: any module with `.features(x)` for x (B, 3, H, W) in [-1, 1] (e.g. the filter ResNet18).
        images: uint8 (N, 3, H, W) or float in [-1, 1].
        batch_size: images per forward pass.
    """
    dev = module_device(model)
    out = []
    with _eval_mode([model]):
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size]
            x = to_float(x) if x.dtype == torch.uint8 else x.float()
            out.append(model.features(x.to(dev)).double().cpu())
    return torch.cat(out)


def feature_fd(model, images_a: torch.Tensor, images_b: torch.Tensor, batch_size: int = 500) -> float:
    """Fréchet distance between the classifier features of two image sets (an in-domain FID).

    Args:
        model: module with `.features(x)`, see `features`.
        images_a, images_b: uint8 or [-1, 1] float (N, 3, H, W), at least 2 images each.
    """
    fa, fb = features(model, images_a, batch_size), features(model, images_b, batch_size)
    return fid_from_statistics(*statistics(fa), *statistics(fb))


def per_class_fd(model, images_a, labels_a, images_b, labels_b, batch_size: int = 500) -> list:
    """`feature_fd` within each class c = 0 .. max label: a list of floats, NaN where a set has < 2 images of c.

    Args:
        model: module with `.features(x)`, see `features`.
        images_a, images_b: uint8 or [-1, 1] float (N, 3, H, W).
        labels_a, labels_b: int (N,) labels of the images.
    """
    fa, fb = features(model, images_a, batch_size), features(model, images_b, batch_size)
    return per_class_fd_of_features(fa, labels_a, fb, labels_b)


def per_class_fd_of_features(fa, labels_a, fb, labels_b) -> list:
    """`per_class_fd` of features already computed: fa (N, D) with labels_a (N,), fb (M, D) with labels_b (M,)."""
    la, lb = torch.as_tensor(labels_a).cpu(), torch.as_tensor(labels_b).cpu()
    out = []
    for c in range(int(max(la.max(), lb.max())) + 1):
        a, b = fa[la == c], fb[lb == c]
        out.append(fid_from_statistics(*statistics(a), *statistics(b)) if min(len(a), len(b)) >= 2 else float("nan"))
    return out


@torch.no_grad()
def duplicate_rate(feats, labels, threshold: float = 0.99, chunk: int = 2048) -> dict:
    """The fraction of samples with a near-identical OTHER sample of the same class (Pham et al., IV-C-1).

    Near-identical: cosine similarity of the features > threshold. Within each class the similarities
    are computed `chunk` rows at a time, so memory is chunk x (class size), never N x N.

    Args:
        feats: (N, D) features (e.g. from `features`), tensor or array.
        labels: (N,) int class labels.
        threshold: cosine similarity above which two samples count as duplicates.
        chunk: rows per similarity block.
    Returns:
        dict: `overall` (fraction of all samples), `per_class` (list over 0 .. max label, NaN for an
        absent class), `count` (number of samples with a duplicate), `n`.
    """
    f = F.normalize(torch.as_tensor(feats).double(), dim=1)
    y = torch.as_tensor(labels).to(f.device)
    dup = torch.zeros(len(f), dtype=torch.bool, device=f.device)
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        fc = f[idx]  # (n_c, D)
        for s in range(0, len(idx), chunk):
            sim = fc[s : s + chunk] @ fc.T  # (rows, n_c)
            rows = torch.arange(len(sim), device=f.device)
            sim[rows, s + rows] = -2.0  # a sample is not its own duplicate
            dup[idx[s : s + chunk]] = (sim > threshold).any(dim=1)
    per_class = [dup[y == c].double().mean().item() if (y == c).any() else float("nan")
                 for c in range(int(y.max()) + 1 if len(y) else 0)]
    return {"overall": dup.double().mean().item(), "per_class": per_class, "count": int(dup.sum()), "n": len(f)}


# --- Memorisation check ----------------------------------------------------------------------


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 5, chunk: int = 4096):
    """The `k` images of `reference` closest to each query in pixel L2 (images in [-1, 1]).

    Args:
        queries: (Q, 3, H, W) float.
        reference: (N, 3, H, W) float or uint8 (converted to [-1, 1]).
    Returns:
        (distances (Q, k), indices (Q, k)), nearest first; distances are RMS per pixel.
    """
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
