"""Class-conditional BigGAN for 32x32 images (BigGAN-PyTorch's CIFAR configuration), with
the residual merge chosen by `config.block`: "add" (BigGAN) or "concat" (Pham et al. 2019).
For 16x16 images (the embedded digits) G has one up-block fewer (4 -> 8 -> 16) and D's first block alone
downsamples (16 -> 8 -> 8 -> 8 -> 8): the same widths, D's same 8x8 features.

G's class embeddings inside conditional BN are deliberately NOT spectrally normalised:
BigGAN-PyTorch leaves them plain because "applying SN to G's embedding seems to randomly
cripple G". Every conv and linear layer of G and D, and D's projection embedding, are.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..config import GANConfig
from .layers import SN, ConditionalBN, ResidualMerge, SelfAttention, init_weights


class GBlock(nn.Module):
    """cBN -> ReLU -> up x2 -> conv3x3 -> cBN -> ReLU -> conv3x3, merged with up x2 -> conv1x1."""

    def __init__(self, c_in: int, c_out: int, make_bn, sn: SN, block: str, concat_init: str = "identity"):
        super().__init__()
        self.bn1, self.bn2 = make_bn(c_in), make_bn(c_out)
        self.conv1, self.conv2 = sn.conv(c_in, c_out), sn.conv(c_out, c_out)
        self.conv_sc = sn.conv(c_in, c_out, kernel=1)  # learnable: the block changes resolution
        self.merge = ResidualMerge(c_out, block, sn, concat_init)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x, c))  # (B, C_in, H, W)
        h = self.conv1(F.interpolate(h, scale_factor=2, mode="nearest"))  # (B, C_out, 2H, 2W)
        h = self.conv2(F.relu(self.bn2(h, c)))
        s = self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))  # (B, C_out, 2H, 2W)
        return self.merge(h, s)


class DBlock(nn.Module):
    """[ReLU] -> conv3x3 -> ReLU -> conv3x3 -> [avgpool], merged with the (learnable) shortcut."""

    def __init__(self, c_in: int, c_out: int, sn: SN, block: str, preact: bool, down: bool,
                 concat_init: str = "identity"):
        super().__init__()
        self.preact, self.down = preact, down
        self.conv1, self.conv2 = sn.conv(c_in, c_out), sn.conv(c_out, c_out)
        self.conv_sc = sn.conv(c_in, c_out, kernel=1) if (c_in != c_out or down) else None
        self.merge = ResidualMerge(c_out, block, sn, concat_init)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_sc is None:
            return x
        # Pre-activated blocks (wide) convolve first; the first block (3 channels) pools first,
        # which is cheaper and is what BigGAN-PyTorch does.
        return self._pool(self.conv_sc(x)) if self.preact else self.conv_sc(self._pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preact else x  # not in place: the shortcut needs x
        h = self.conv2(F.relu(self.conv1(h)))  # (B, C_out, H, W)
        return self.merge(self._pool(h), self.shortcut(x))


class Generator(nn.Module):
    """G(z, y) -> images (B, 3, R, R) in [-1, 1]; z (B, z_dim), y (B,) int64 labels; R = config.resolution."""

    bottom = 4  # spatial size of the first feature map

    def __init__(self, config: GANConfig):
        super().__init__()
        self.z_dim, self.num_classes, self.img_resolution = config.z_dim, config.num_classes, config.resolution
        self.num_blocks = config.g_blocks  # 4 -> 8 -> 16 (-> 32)
        self.ch = ch = 4 * config.g_ch
        sn = SN(config.init, config.sn_eps, config.init_start)
        self.shared_dim = config.shared_dim
        if self.shared_dim > 0:
            # Hierarchical z: one chunk for the input layer, one per block (GANConfig checks z_dim % 4).
            self.z_chunk = config.z_dim // (self.num_blocks + 1)
            self.shared = init_weights(nn.Embedding(self.num_classes, self.shared_dim), config.init)  # plain, see module doc
            cond_dim = self.shared_dim + self.z_chunk

            def make_bn(c):
                return ConditionalBN(c, sn.linear(cond_dim, c, bias=False), sn.linear(cond_dim, c, bias=False), config.bn_eps)
        else:
            self.z_chunk = config.z_dim

            def make_bn(c):  # per-layer class embeddings, plain (no SN), see module doc
                gain, bias = (init_weights(nn.Embedding(self.num_classes, c), config.init) for _ in range(2))
                return ConditionalBN(c, gain, bias, config.bn_eps)

        self.linear = sn.linear(self.z_chunk, ch * self.bottom**2)
        self.blocks = nn.ModuleList(GBlock(ch, ch, make_bn, sn, config.block, config.concat_init) for _ in range(self.num_blocks))
        self.attn = SelfAttention(ch, sn) if config.attn else None  # after block 2 (16x16; GANConfig: 32x32 only)
        self.out_bn = nn.BatchNorm2d(ch, eps=config.bn_eps)
        self.out_conv = sn.conv(ch, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.shared_dim > 0:
            z0, *zs = z.split(self.z_chunk, dim=1)
            e = self.shared(y)  # (B, shared_dim)
            conds = [torch.cat([e, zi], dim=1) for zi in zs]  # each (B, shared_dim + z_chunk)
        else:
            z0, conds = z, [y] * self.num_blocks
        h = self.linear(z0).view(z.shape[0], self.ch, self.bottom, self.bottom)  # (B, C, 4, 4)
        for i, (block, c) in enumerate(zip(self.blocks, conds)):
            h = block(h, c)  # (B, C, 2H, 2W)
            if i == 1 and self.attn is not None:
                h = self.attn(h)
        h = F.relu(self.out_bn(h))
        return torch.tanh(self.out_conv(h))  # (B, 3, R, R)


class Discriminator(nn.Module):
    """Projection discriminator D(x, y) -> logits (B,); x (B, 3, R, R), y (B,) int64 labels; R = config.resolution."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.num_classes, self.img_resolution = config.num_classes, config.resolution
        ch = 4 * config.d_ch
        sn = SN(config.init, config.sn_eps, config.init_start)
        # 32 -> 16 -> 8 -> 8 -> 8: the first two blocks downsample (16 -> 8 -> 8 -> 8 -> 8: the first alone).
        down = (True, True, False, False) if config.resolution == 32 else (True, False, False, False)
        self.blocks = nn.ModuleList(
            DBlock(3 if i == 0 else ch, ch, sn, config.block, preact=i > 0, down=d, concat_init=config.concat_init)
            for i, d in enumerate(down))
        self.attn = SelfAttention(ch, sn) if config.attn else None  # after block 1 (16x16)
        self.linear = sn.linear(ch, 1)
        self.embed = sn.embedding(self.num_classes, ch)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features h (B, C) that both the linear head and the projection read."""
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == 0 and self.attn is not None:
                h = self.attn(h)
        return F.relu(h).sum(dim=(2, 3))  # sum pooling over H, W as in BigGAN

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C)
        # Projection (Miyato & Koyama 2018): unconditional logit + <embed(y), h>.
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
