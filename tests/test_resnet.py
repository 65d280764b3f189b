"""ResNet-18 (CIFAR variant): parameter counts against a by-hand formula, shapes, bf16 autocast and channels_last."""
import pytest
import torch
from torch import nn

from lab.models import ResNet18, param_count


def resnet18_params(width: int, num_classes: int) -> int:
    """Count by hand: 3x3 convs without bias, BN (weight + bias), 1x1 projections where the shape changes."""
    conv3, bn = (lambda a, b: 9 * a * b), (lambda c: 2 * c)
    total = conv3(3, width) + bn(width)  # stem
    c_in = width
    for c in (width, 2 * width, 4 * width, 8 * width):
        total += conv3(c_in, c) + bn(c) + conv3(c, c) + bn(c)  # first block
        if c != c_in:  # stages 2-4 change shape (stride 2, more channels)
            total += c_in * c + bn(c)
        total += 2 * (conv3(c, c) + bn(c))  # second block
        c_in = c
    return total + 8 * width * num_classes + num_classes  # linear


def test_param_count_standard():
    assert resnet18_params(64, 10) == 11_173_962  # the widely quoted CIFAR ResNet-18 size
    assert param_count(ResNet18(10)) == resnet18_params(64, 10)
    assert param_count(ResNet18(100)) == resnet18_params(64, 100)


def test_param_count_ecgan_narrow():
    m = ResNet18(10, width=16)  # EC-GAN's narrow classifier: widths 16/32/64/128
    assert param_count(m) == resnet18_params(16, 10)
    assert abs(param_count(m) / 1e6 - 0.70) < 0.01
    assert (m.width, m.feature_dim, m.num_classes) == (16, 128, 10)


def test_architecture_has_cifar_stem_and_four_stages():
    m = ResNet18(10, width=8)
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    stem_conv = m.stem[0]
    assert (stem_conv.kernel_size, stem_conv.stride) == ((3, 3), (1, 1))
    h = m.stages(m.stem(torch.randn(2, 3, 32, 32)))
    assert h.shape == (2, 64, 4, 4)  # 32 -> 32 -> 16 -> 8 -> 4
    projections = [b for b in m.stages if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 3  # first block of stages 2, 3, 4


@pytest.mark.parametrize("num_classes", [10, 100])
def test_shapes(num_classes):
    m = ResNet18(num_classes, width=8).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    f = m.features(x)
    assert f.shape == (3, 64) and m.feature_dim == 64
    out = m(x)
    assert out.shape == (3, num_classes)
    torch.testing.assert_close(out, m.linear(f))


def test_bf16_autocast_and_channels_last():
    torch.manual_seed(0)
    m = ResNet18(10, width=8).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ref = m(x)
    m_cl = m.to(memory_format=torch.channels_last)
    torch.testing.assert_close(m_cl(x.to(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m_cl(x.to(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05
