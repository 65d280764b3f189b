"""ResNet-18 for 32x32 images (the CIFAR variant: 3x3 stride-1 stem, no max-pool), the classifier of both papers;
16x16 images (the embedded digits) pass the same network, ending at 2x2 instead of 4x4 before the pooling."""
import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)  # BN follows: no bias


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut (1x1 conv + BN when the shape changes), -> ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = _conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s)
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with stage widths (w, 2w, 4w, 8w): w=64 is the standard 11.17 M model, w=16 EC-GAN's narrow one.

    Initialisation is PyTorch's default (Kaiming-uniform with a=sqrt(5) for convs and the linear
    layer, BN weight 1 and bias 0), as in the reference CIFAR ResNet-18 implementations.

    Attributes:
        num_classes: number of logits.
        width: channels of the first stage.
        feature_dim: size of the pooled penultimate features, 8 * width.
    """

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.num_classes, self.width, self.feature_dim = num_classes, width, 8 * width
        self.stem = nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width), nn.ReLU())
        stages, c_in = [], width
        for i, stride in enumerate((1, 2, 2, 2)):  # 32 -> 32 -> 16 -> 8 -> 4
            c_out = width * 2**i
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features of the last stage, (B, 8 * width)."""
        h = self.stages(self.stem(x))  # (B, 8w, R/8, R/8)
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for images x (B, 3, R, R) in [-1, 1] (R = 32, or 16)."""
        return self.linear(self.features(x))
