"""Helpers for tests that check which network an optimiser step changed."""
import torch


def snapshot(module) -> list:
    """Detached copies of `module`'s parameters."""
    return [p.detach().clone() for p in module.parameters()]


def same(a: list, b: list) -> bool:
    """Whether two snapshots are exactly equal."""
    return all(torch.equal(x, y) for x, y in zip(a, b))
