"""Layers shared by the GANs: spectrally normalised conv/linear/embedding, conditional BN,
the residual merge ("add" or "concat"), and BigGAN's self-attention block."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def init_weights(module: nn.Module, init: str, zero_bias: bool = True) -> nn.Module:
    """Initialise `module.weight` in place ("N02": N(0, 0.02), "ortho": orthogonal); zero its bias, or keep
    PyTorch's default bias (BigGAN-PyTorch initialises weights only)."""
    if init == "N02":
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif init == "ortho":
        nn.init.orthogonal_(module.weight)
    else:
        raise ValueError(f"unknown init {init!r}")
    if zero_bias and getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


class SN:
    """Factory of spectrally normalised layers sharing one init scheme and SN epsilon.

    start="reference" (BigGAN-PyTorch): biases keep PyTorch's default init and the power iteration starts
    from random vectors. start="lab": biases zero, and the vectors are the result of the 15 power iterations
    torch runs when SN is registered (so the raw weight is initialised before registering).
    """

    def __init__(self, init: str = "N02", eps: float = 1e-8, start: str = "reference"):
        if start not in ("reference", "lab"):
            raise ValueError(f"unknown start {start!r}")
        self.init, self.eps, self.start = init, eps, start

    def _wrap(self, module: nn.Module) -> nn.Module:
        init_weights(module, self.init, zero_bias=self.start == "lab")
        return self.wrap(module)

    def wrap(self, module: nn.Module) -> nn.Module:
        """Spectral normalisation of `module` as it is (no re-initialisation)."""
        module = spectral_norm(module, n_power_iterations=1, eps=self.eps)
        if self.start == "reference":  # forget torch's 15 warm-up iterations: random unit vectors, as BigGAN-PyTorch
            sn = module.parametrizations.weight[0]
            with torch.no_grad():
                sn._u.copy_(F.normalize(torch.randn_like(sn._u), dim=0, eps=self.eps))
                sn._v.copy_(F.normalize(torch.randn_like(sn._v), dim=0, eps=self.eps))
        return module

    def conv(self, c_in: int, c_out: int, kernel: int = 3, bias: bool = True) -> nn.Conv2d:
        return self._wrap(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias))

    def linear(self, d_in: int, d_out: int, bias: bool = True) -> nn.Linear:
        return self._wrap(nn.Linear(d_in, d_out, bias=bias))

    def embedding(self, num: int, dim: int) -> nn.Embedding:
        return self._wrap(nn.Embedding(num, dim))


class ConditionalBN(nn.Module):
    """BatchNorm without affine parameters, then a per-sample gain (1 + gain(c)) and bias(c).

    `gain` and `bias` map the condition `c` to (B, C): nn.Embedding when `c` holds class
    labels (per-layer embeddings), a linear layer when `c` is a shared embedding + z chunk.
    """

    def __init__(self, num_features: int, gain: nn.Module, bias: nn.Module, eps: float = 1e-5):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, affine=False)
        self.gain, self.bias = gain, bias

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(c)[:, :, None, None]  # (B, C, 1, 1); starts near identity
        bias = self.bias(c)[:, :, None, None]  # (B, C, 1, 1)
        return self.bn(x) * gain + bias


class ResidualMerge(nn.Module):
    """Joins a residual block's branch F(x) and shortcut s(x), both (B, C, H, W).

    "add": F(x) + s(x) (BigGAN). "concat": Conv1x1(concat([F(x), s(x)])) from 2C back to C
    channels (the concat residual block of Pham et al. 2019, section III-B), spectrally normalised.

    concat_init: "identity" starts the 1x1 conv at [I | I], whose spectral norm is sqrt(2), so the
    block begins as (F(x) + s(x)) / sqrt(2) and learns its mixing from there; "init" uses the network's
    weight init (N(0, 0.02) or orthogonal). The paper does not say; with "init" the smoke concat GAN
    did not learn class-conditional digits in its 800 steps (docs/pham.md, Deviations).
    """

    def __init__(self, channels: int, block: str, sn: SN, concat_init: str = "identity"):
        super().__init__()
        if block not in ("add", "concat"):
            raise ValueError(f"unknown residual block {block!r}")
        if concat_init not in ("identity", "init"):
            raise ValueError(f"unknown concat_init {concat_init!r}")
        self.block = block
        self.conv = None
        if block == "concat" and concat_init == "init":
            self.conv = sn.conv(2 * channels, channels, kernel=1)
        elif block == "concat":
            conv = nn.Conv2d(2 * channels, channels, 1)
            with torch.no_grad():
                eye = torch.eye(channels)[:, :, None, None]  # (C, C, 1, 1)
                conv.weight.copy_(torch.cat([eye, eye], dim=1))  # (C, 2C, 1, 1): branch + shortcut
                conv.bias.zero_()
            self.conv = sn.wrap(conv)

    def forward(self, branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return branch + shortcut
        return self.conv(torch.cat([branch, shortcut], dim=1))  # (B, 2C, H, W) -> (B, C, H, W)


class SelfAttention(nn.Module):
    """BigGAN's non-local block: x + gamma * attention(x), with gamma starting at 0."""

    def __init__(self, channels: int, sn: SN):
        super().__init__()
        self.theta = sn.conv(channels, channels // 8, kernel=1, bias=False)
        self.phi = sn.conv(channels, channels // 8, kernel=1, bias=False)
        self.g = sn.conv(channels, channels // 2, kernel=1, bias=False)
        self.out = sn.conv(channels // 2, channels, kernel=1, bias=False)
        # A zero gain makes the block the identity at init; the network learns how much to use it.
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (B, C/8, HW)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (B, C/8, HW/4); pooling cuts the cost 4x
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # (B, C/2, HW/4)
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (B, HW, HW/4)
        o = (g @ attn.transpose(1, 2)).view(b, c // 2, h, w)  # (B, C/2, H, W)
        return x + self.gamma * self.out(o)
