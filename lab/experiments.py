"""The papers' numbers and the tables that put ours beside them."""
from .config import preset
from .models import build_gan, param_count, size_mb

# Pham et al. 2019, Table I, "Size (MB)" of one generator.
PAPER_GENERATOR_MB = {"cifar10-paper": 16.6, "cifar100-paper": 17.7, "cifar100-concat-paper": 18.8}


def gan_size_table(extra: dict = None) -> list:
    """Rows of G/D parameter counts and float32 sizes for the paper presets (and `extra` configs).

    Args:
        extra: {label: GANConfig} to add, e.g. the notebook's own config.
    """
    configs = {name: preset(name) for name in ("cifar10-paper", "cifar10-concat-paper", "cifar100-paper", "cifar100-concat-paper")}
    configs.update(extra or {})
    rows = []
    for name, cfg in configs.items():
        G, D = build_gan(cfg)
        rows.append({
            "config": name, "G params": param_count(G), "D params": param_count(D),
            "G MB": round(size_mb(G), 2), "G MiB": round(size_mb(G, "MiB"), 2),
            "paper G MB": PAPER_GENERATOR_MB.get(name),
        })
    return rows
