"""DCGAN generator and discriminator for 32x32 images (EC-GAN's GAN), and the two-head shared discriminators
of the paper's eq. 2 baseline on a DCGAN or a ResNet-18 body. For 16x16 images (the embedded digits) G and D
drop their 16x16 <-> 32x32 layer, the one of width ngf (ndf); the rest is unchanged."""
import torch
from torch import nn

from .resnet import ResNet18


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DCGAN's init (Radford et al. 2016, section 4): conv weights N(0, 0.02), BN gamma N(1, 0.02), beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, 3, R, R) in [-1, 1]: transposed convs (no bias), BN + ReLU, tanh.

    The EC-GAN notebook's 32x32 edit of the DCGAN tutorial generator: 4x4 with 4*ngf channels,
    then 8x8 (2*ngf), 16x16 (ngf), 32x32 (3). ngf=64 gives 1.07 M parameters. At R = 16: 4x4 (4*ngf),
    8x8 (2*ngf), 16x16 (3).

    Attributes:
        z_dim: latent size.
        num_classes: 0, the generator is unconditional (a `y` passed to forward is ignored).
        img_resolution: R, 32 or 16.
    """

    def __init__(self, z_dim: int = 100, ngf: int = 64, dcgan_init: bool = True, resolution: int = 32):
        super().__init__()
        self.z_dim, self.num_classes, self.img_resolution = z_dim, 0, _check_resolution(resolution)

        def up(c_in, c_out):  # doubles H and W
            return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        widths = (4 * ngf, 2 * ngf, ngf)[: 2 if resolution == 16 else 3]  # at 4x4, 8x8 (, 16x16)
        layers = [nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += up(c_in, c_out)
        self.net = nn.Sequential(*layers, nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False), nn.Tanh())
        if dcgan_init:
            dcgan_init_(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor = None) -> torch.Tensor:
        """Images (B, 3, R, R) for z (B, z_dim); `y` exists for the samplers' G(z, y) call and is unused."""
        return self.net(z[:, :, None, None])


def _check_resolution(resolution: int) -> int:
    if resolution not in (16, 32):
        raise ValueError(f"The DCGAN networks are built for 16x16 or 32x32 images, not {resolution}x{resolution}.")
    return resolution


def dcgan_body(ndf: int = 64, first_bn: bool = False, resolution: int = 32) -> nn.Sequential:
    """The DCGAN discriminator trunk: (B, 3, R, R) -> (B, 4*ndf, 4, 4), k4 s2 convs with LeakyReLU(0.2): three
    (ndf, 2*ndf, 4*ndf channels) for R = 32, two (2*ndf, 4*ndf) for R = 16.

    DCGAN puts no BN on the first layer; the EC-GAN notebook does (`first_bn=True`).
    """
    widths = (ndf, 2 * ndf, 4 * ndf)[1 if _check_resolution(resolution) == 16 else 0:]
    layers, c_in = [], 3
    for i, c_out in enumerate(widths):  # 32 -> 16 -> 8 -> 4
        layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
        if i > 0 or first_bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        c_in = c_out
    return nn.Sequential(*layers)


class DCGANDiscriminator(nn.Module):
    """x (B, 3, R, R) -> one real/fake LOGIT per image, (B,).

    The notebook ends in a Sigmoid and uses BCELoss; we return the logit and train with
    BCE-with-logits (`lab.losses.d_bce` / `g_bce`): the same loss, computed with log-sum-exp, so a
    saturated D gives a finite loss and gradient instead of log(0). ndf=64 gives 0.66 M parameters.
    """

    def __init__(self, ndf: int = 64, first_bn: bool = False, dcgan_init: bool = True, resolution: int = 32):
        super().__init__()
        self.body = dcgan_body(ndf, first_bn, resolution)
        self.head = nn.Conv2d(4 * ndf, 1, 4, 1, 0, bias=False)  # 4x4 -> 1x1, "valid"
        if dcgan_init:
            dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten()  # (B,)


class SharedDCGANDiscriminator(nn.Module):
    """The DCGAN discriminator body with two heads (EC-GAN eq. 2): real/fake logit (B,) and class logits (B, K).

    Both heads are k4 valid convs on the 4x4 feature map, so the real/fake path is exactly
    `DCGANDiscriminator`. Trained alone on labelled data (method "classifier-dcgan") it is the plain
    classifier of the same architecture that Table 1 compares against.
    """

    def __init__(self, num_classes: int, ndf: int = 64, first_bn: bool = False, dcgan_init: bool = True,
                 resolution: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.body = dcgan_body(ndf, first_bn, resolution)
        self.head = nn.Conv2d(4 * ndf, 1, 4, 1, 0, bias=False)
        self.class_head = nn.Conv2d(4 * ndf, num_classes, 4, 1, 0)
        if dcgan_init:
            dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logits (B,), class logits (B, K))."""
        h = self.body(x)  # (B, 4*ndf, 4, 4)
        return self.head(h).flatten(), self.class_head(h).flatten(1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_head(self.body(x)).flatten(1)


class SharedResNetDiscriminator(nn.Module):
    """A ResNet-18 (`lab.models.ResNet18`) whose pooled features feed two heads: its own K-way linear layer
    (class logits, (B, K)) and a linear real/fake head ((B,)). PyTorch's default init, as the classifier."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.num_classes = num_classes
        self.resnet = ResNet18(num_classes, width)  # its .linear is the class head
        self.head = nn.Linear(self.resnet.feature_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logits (B,), class logits (B, K))."""
        h = self.resnet.features(x)  # (B, 8*width)
        return self.head(h).flatten(), self.resnet.linear(h)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet(x)


class ClassHead(nn.Module):
    """A shared discriminator seen as a classifier: x -> class logits (B, K), e.g. for `evaluate`."""

    def __init__(self, shared: nn.Module):
        super().__init__()
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared.classify(x)
