"""Model builders and size helpers."""
from torch import nn

from ..config import GANConfig
from .biggan import Discriminator, Generator
from .dcgan import (
    ClassHead, DCGANDiscriminator, DCGANGenerator, SharedDCGANDiscriminator, SharedResNetDiscriminator, dcgan_init_,
)
from .resnet import ResNet18


def build_gan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """The BigGAN generator and projection discriminator described by `config`."""
    return Generator(config), Discriminator(config)


def param_count(module: nn.Module) -> int:
    """Number of parameters, frozen ones included (buffers such as BN statistics and SN vectors excluded)."""
    return sum(p.numel() for p in module.parameters())


def size_mb(module: nn.Module, unit: str = "MB") -> float:
    """Float32 size of the parameters, in MB (1e6 bytes) or MiB (2**20 bytes).

    Args:
        unit: "MB" (decimal) or "MiB" (binary).
    """
    scale = {"MB": 1e6, "MiB": 2**20}[unit]
    return 4 * param_count(module) / scale


def size_mib(module: nn.Module) -> float:
    """Float32 size of the trainable parameters in MiB (2**20 bytes)."""
    return size_mb(module, unit="MiB")


__all__ = [
    "Discriminator", "Generator", "ResNet18", "build_gan", "param_count", "size_mb", "size_mib",
    "ClassHead", "DCGANDiscriminator", "DCGANGenerator", "SharedDCGANDiscriminator", "SharedResNetDiscriminator",
    "dcgan_init_",
]


def module_device(module):
    """The device (torch.device) of a module's first parameter or buffer; the CPU for one without any, or for a
    non-module."""
    import itertools

    import torch

    if not isinstance(module, torch.nn.Module):
        return torch.device("cpu")
    t = next(itertools.chain(module.parameters(), module.buffers()), None)
    return t.device if t is not None else torch.device("cpu")
