"""Batched training-time augmentation of image tensors (random crop with padding, horizontal flip)."""
import torch
import torch.nn.functional as F

class Augment:
    """Batched training-time augmentation on any device: random crop with padding, optional h-flip.

    Works on float batches `(B, 3, H, W)` in [-1, 1]; the padding is -1 (black), which is what
    torchvision's RandomCrop(32, padding=4) does on uint8 images.
    """

    def __init__(self, flip: bool, pad: int = 4):
        self.flip, self.pad = flip, pad

    def __call__(self, x: torch.Tensor, generator: torch.Generator = None) -> torch.Tensor:
        B, _, H, W = x.shape
        gdev = generator.device if generator is not None else x.device
        if self.pad:
            p = self.pad
            xp = F.pad(x, (p, p, p, p), value=-1.0)  # (B, C, H+2p, W+2p)
            dy, dx = torch.randint(0, 2 * p + 1, (2, B), generator=generator, device=gdev).to(x.device)
            rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
            cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
            b = torch.arange(B, device=x.device)[:, None, None]
            x = xp[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if self.flip:
            mask = (torch.rand(B, generator=generator, device=gdev) < 0.5).to(x.device)
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x

    def __repr__(self) -> str:
        return f"Augment(flip={self.flip}, pad={self.pad})"


def augment_for(dataset) -> Augment:
    """The standard augmentation of a dataset (a `lab.data.ImageDataset`): random crop with padding of 1/8 of the side (4 pixels at 32x32, 2
    at 16x16) + flip, but no flip for digits (SVHN, MNIST).

    Fashion-MNIST gets flips: a mirrored garment is the same garment (the usual Fashion-MNIST recipe)."""
    return Augment(flip=dataset.name in ("cifar10", "cifar100", "fashion"), pad=dataset.resolution // 8)
