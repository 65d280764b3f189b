"""BigGAN G and D: shapes, sizes, spectral norm, residual merges and projection vs their definitions."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from lab.config import GANConfig
from lab.presets import preset
from lab.errors import ConfigError
from lab.models import build_gan, param_count, size_mb, size_mib
from lab.models.biggan import DBlock, GBlock

PAPER = ["cifar10-paper", "cifar100-paper", "cifar10-concat-paper", "cifar100-concat-paper"]


def small(block="add", dataset="fashion", **kw):
    """The smoke GAN's widths on 32x32 images (Fashion-MNIST's config; no data is read), or on `dataset`'s."""
    return preset("digits-smoke").replace(block=block, dataset=dataset, **kw)


def inputs(cfg, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cfg.z_dim, generator=g), torch.randint(0, cfg.num_classes, (b,), generator=g)


# --- Shapes and sizes ------------------------------------------------------------------

@pytest.mark.parametrize("name,side", [("digits-smoke", 16), ("cifar100-concat-paper", 32)])
def test_shapes_and_ranges(name, side):
    cfg = preset(name)
    G, D = build_gan(cfg)
    assert (G.z_dim, G.num_classes, G.img_resolution, D.num_classes) == (128, cfg.num_classes, side, cfg.num_classes)
    assert len(G.blocks) == {16: 2, 32: 3}[side] and [b.down for b in D.blocks] == [True, side == 32, False, False]
    z, y = inputs(cfg, b=2)
    x = G(z, y)
    assert x.shape == (2, 3, side, side) and x.dtype == torch.float32
    assert x.abs().max() <= 1 and x.std() > 0
    out = D(x, y)
    assert out.shape == (2,) and torch.isfinite(out).all()


# Computed once from the built models; the hand formula below cross-checks two of them.
EXPECTED = {  # name: (G params, D params)
    "cifar10-paper": (4_304_387, 4_207_361),
    "cifar100-paper": (4_580_867, 4_230_401),
    "cifar10-concat-paper": (4_698_371, 4_732_673),
    "cifar100-concat-paper": (4_974_851, 4_755_713),
}


@pytest.mark.parametrize("name", PAPER)
def test_paper_param_counts(name):
    G, D = build_gan(preset(name))
    assert (param_count(G), param_count(D)) == EXPECTED[name]
    assert size_mb(G) == pytest.approx(4 * EXPECTED[name][0] / 1e6)
    assert size_mib(G) == pytest.approx(4 * EXPECTED[name][0] / 2**20)


def conv(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


def test_param_count_by_hand():
    C, z, n = 256, 128, 10  # cifar10-paper: 4 * g_ch channels, z_dim, classes
    cbn = 2 * n * C  # gain and bias embeddings, no affine BN parameters
    gblock = 2 * cbn + 2 * conv(C, C, 3) + conv(C, C, 1)
    g_add = (z * 16 * C + 16 * C) + 3 * gblock + 2 * C + conv(C, 3, 3)  # linear, blocks, BN, out conv
    assert g_add == EXPECTED["cifar10-paper"][0]
    # concat: one extra 1x1 conv from 2C to C channels in each of the 3 G blocks and 4 D blocks.
    assert EXPECTED["cifar10-concat-paper"][0] - g_add == 3 * conv(2 * C, C, 1)
    d_add = (conv(3, C, 3) + conv(C, C, 3) + conv(3, C, 1)) + (2 * conv(C, C, 3) + conv(C, C, 1)) \
        + 2 * (2 * conv(C, C, 3)) + (C + 1) + n * C  # 4 blocks, linear, projection embedding
    assert d_add == EXPECTED["cifar10-paper"][1]
    assert EXPECTED["cifar10-concat-paper"][1] - d_add == 4 * conv(2 * C, C, 1)


# --- Spectral norm ---------------------------------------------------------------------

def is_sn(m):
    return parametrize.is_parametrized(m, "weight") and \
        type(m.parametrizations.weight[0]).__name__ == "_SpectralNorm"


@pytest.mark.parametrize("kw", [{}, {"block": "concat", "attn": True}, {"shared_dim": 16}])
def test_spectral_norm_placement(kw):
    cfg = small(**kw)
    G, D = build_gan(cfg)
    for model in (G, D):
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert layers and all(is_sn(m) for m in layers)
        for m in layers:
            sn = m.parametrizations.weight[0]
            assert sn.n_power_iterations == 1 and sn.eps == cfg.sn_eps
    assert is_sn(D.embed)
    # Design choice (BigGAN-PyTorch): G's class embeddings stay plain.
    g_embeddings = [m for m in G.modules() if isinstance(m, nn.Embedding)]
    assert g_embeddings and not any(is_sn(m) for m in g_embeddings)


# --- Residual blocks against their definitions -----------------------------------------

def up2(x):  # nearest-neighbour x2, written independently of F.interpolate
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def pool2(x):  # 2x2 average pooling, written independently of F.avg_pool2d
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))


def conv_f(x, m):  # the module's own (spectrally normalised) weights, applied functionally
    return F.conv2d(x, m.weight, m.bias, padding=m.kernel_size[0] // 2)


def merge_f(block, h, s, merge):
    return h + s if block == "add" else conv_f(torch.cat([h, s], dim=1), merge.conv)


def cbn_f(x, y, cbn):
    bn = cbn.bn
    xn = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    return xn * (1 + cbn.gain.weight[y])[:, :, None, None] + cbn.bias.weight[y][:, :, None, None]


@pytest.mark.parametrize("block", ["add", "concat"])
def test_g_block_matches_definition(block):
    torch.manual_seed(0)
    cfg = small(block)
    G, _ = build_gan(cfg)
    z, y = inputs(cfg)
    G(z, y)  # a train-mode pass fills BN running statistics and moves SN's u
    G.eval()  # eval: BN uses running stats and SN's u stays fixed, so weights are reproducible
    gb = G.blocks[1]
    assert isinstance(gb, GBlock)
    x = torch.randn(3, 4 * cfg.g_ch, 8, 8)
    h = conv_f(up2(F.relu(cbn_f(x, y, gb.bn1))), gb.conv1)
    h = conv_f(F.relu(cbn_f(h, y, gb.bn2)), gb.conv2)
    s = conv_f(up2(x), gb.conv_sc)
    with torch.no_grad():
        torch.testing.assert_close(gb(x, y), merge_f(block, h, s, gb.merge), rtol=1e-4, atol=1e-5)
    assert (block == "concat") == (gb.merge.conv is not None)


@pytest.mark.parametrize("block,dataset", [("add", "fashion"), ("concat", "fashion"), ("concat", "digits")])
def test_d_blocks_match_definition(block, dataset):
    torch.manual_seed(0)
    cfg = small(block, dataset)
    side = cfg.resolution
    _, D = build_gan(cfg)
    D(torch.randn(3, 3, side, side), torch.zeros(3, dtype=torch.long))  # move SN's u once
    D.eval()
    x = torch.randn(3, 3, side, side)
    kinds = []
    for db in D.blocks:
        assert isinstance(db, DBlock)
        h = F.relu(x) if db.preact else x
        h = conv_f(F.relu(conv_f(h, db.conv1)), db.conv2)
        h = pool2(h) if db.down else h
        if db.conv_sc is None:
            s = x
        elif db.preact:
            s = pool2(conv_f(x, db.conv_sc)) if db.down else conv_f(x, db.conv_sc)
        else:
            s = conv_f(pool2(x), db.conv_sc)
        kinds.append((db.preact, db.down, db.conv_sc is not None))
        with torch.no_grad():
            out = db(x)
        torch.testing.assert_close(out, merge_f(block, h, s, db.merge), rtol=1e-4, atol=1e-5)
        x = out
    assert x.shape == (3, 4 * cfg.d_ch, 8, 8)
    # A 1x1 conv commutes with avg-pooling, so the numbers above cannot see the order; check it here.
    # First block pools then convolves; the second is pre-activated with conv-then-pool (at 32x32; at 16x16
    # it keeps 8x8 and the identity shortcut); the rest identity.
    second = (True, True, True) if side == 32 else (True, False, False)
    assert kinds == [(False, True, True), second, (True, False, False), (True, False, False)]


def test_projection_term():
    cfg = small()
    _, D = build_gan(cfg)
    D.eval()
    feats = []
    D.linear.register_forward_hook(lambda m, inp, out: feats.append(inp[0]))
    x = torch.randn(4, 3, 32, 32)
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 1, 9, 7])
    with torch.no_grad():
        d = D(x, y1) - D(x, y2)
        h = feats[0]
        E = D.embed.weight  # spectrally normalised embedding matrix (classes, C)
        expected = ((E[y1] - E[y2]) * h).sum(dim=1)
    torch.testing.assert_close(feats[0], feats[1])
    torch.testing.assert_close(d, expected, rtol=1e-4, atol=1e-5)
    assert d[1] == 0 and d.abs()[[0, 2, 3]].min() > 0


# --- Variants ---------------------------------------------------------------------------

def test_shared_embedding_and_hierarchical_z():
    cfg = small(shared_dim=16)
    G, _ = build_gan(cfg)
    G.eval()
    z, y = inputs(cfg)
    assert G.shared.weight.shape == (10, 16) and G.z_chunk == 32
    cbn = G.blocks[0].bn1
    assert isinstance(cbn.gain, nn.Linear) and cbn.gain.in_features == 16 + 32 and cbn.gain.bias is None
    with torch.no_grad():
        base = G(z, y)
        for i in range(4):  # every chunk of z (input layer and each block) reaches the image
            z2 = z.clone()
            z2[:, 32 * i:32 * (i + 1)] += 1
            assert not torch.allclose(G(z2, y), base)
    with pytest.raises(ConfigError):
        build_gan(small(shared_dim=16, z_dim=30))


def test_16x16_generator():
    """On the 16x16 digits G has two up-blocks, so hierarchical z comes in 3 chunks; attention (at 16x16 inside a
    32x32 network) is refused with the reason."""
    G, D = build_gan(small(dataset="digits", shared_dim=16, z_dim=96))
    assert len(G.blocks) == 2 and G.z_chunk == 32
    z, y = torch.randn(2, 96), torch.tensor([3, 4])
    assert G(z, y).shape == (2, 3, 16, 16) and D(G(z, y), y).shape == (2,)
    with pytest.raises(ConfigError, match="divisible by 3"):
        small(dataset="digits", shared_dim=16, z_dim=128)
    with pytest.raises(ConfigError, match="attn=False"):
        small(dataset="digits", attn=True)


def test_attention_variant():
    cfg = small(attn=True)
    G, D = build_gan(cfg)
    z, y = inputs(cfg)
    assert G.attn.gamma.item() == 0 and D.attn.gamma.item() == 0
    ch = 4 * cfg.g_ch
    assert G.attn.theta.out_channels == ch // 8 and G.attn.g.out_channels == ch // 2
    with torch.no_grad():
        G.attn.gamma.fill_(1.0)
        D.attn.gamma.fill_(1.0)
    x = G(z, y)
    D(x, y).sum().backward()
    assert G.attn.gamma.grad is not None and D.attn.gamma.grad.abs() > 0


def test_ortho_init():
    G, D = build_gan(small(init="ortho"))
    w = G.blocks[0].conv2.parametrizations.weight.original.flatten(1)  # raw weight (C, 9C)
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), rtol=0, atol=1e-4)
    assert G.blocks[0].conv2.parametrizations.weight.original.std() > 0.02  # not N(0, 0.02)
    z, y = inputs(small())
    assert torch.isfinite(D(G(z, y), y)).all()


# --- Mixed precision and memory format ----------------------------------------------------

@pytest.mark.parametrize("block", ["add", "concat"])
def test_bf16_autocast_and_channels_last(block):
    cfg = small(block, attn=True)
    G, D = build_gan(cfg)
    z, y = inputs(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = G(z, y)
        out = D(x, y)
    assert x.dtype == torch.bfloat16 and torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)

    # channels_last models and inputs compute the same function (fp32, eval mode).
    G.eval(), D.eval()
    x = x.detach().float()
    with torch.no_grad():
        x_ref, out_ref = G(z, y), D(x, y)
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        x_cl = G(z, y)
        out_cl = D(x.contiguous(memory_format=torch.channels_last), y)
    torch.testing.assert_close(x_cl, x_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_cl, out_ref, rtol=1e-4, atol=1e-4)


def test_concat_merge_starts_as_scaled_add_or_from_the_init():
    """concat_init="identity": Conv1x1 = [I | I] / sigma with sigma = sqrt(2), i.e. (F(x) + s(x)) / sqrt(2)
    at init, still spectrally normalised; "init": the network's own weight init (a different map)."""
    from lab.models.layers import SN, ResidualMerge

    torch.manual_seed(0)
    f, s = torch.randn(2, 6, 5, 5), torch.randn(2, 6, 5, 5)
    m = ResidualMerge(6, "concat", SN("N02"), "identity")
    assert parametrize.is_parametrized(m.conv, "weight")
    with torch.no_grad():
        torch.testing.assert_close(m(f, s), (f + s) / 2**0.5, rtol=1e-5, atol=1e-5)
        w = m.conv.weight.flatten(1)
        torch.testing.assert_close(torch.linalg.matrix_norm(w, ord=2), torch.tensor(1.0), rtol=1e-5, atol=1e-5)
    r = ResidualMerge(6, "concat", SN("N02"), "init")
    with torch.no_grad():
        assert not torch.allclose(r(f, s), (f + s) / 2**0.5, atol=1e-2)
    for block, init in (("concat", "ortho"), ("dense", "identity")):
        with pytest.raises(ValueError):
            ResidualMerge(6, block, SN(), init)
    cfg = small("concat")
    G, D = build_gan(cfg)
    G2, D2 = build_gan(cfg.replace(concat_init="init"))
    assert param_count(G) == param_count(G2) and param_count(D) == param_count(D2)
    assert all(b.merge.conv is not None for b in G.blocks)


def test_reference_start_is_biggan_pytorchs_and_lab_start_keeps_old_runs_hashes():
    """init_start="reference" (default): biases keep PyTorch's uniform(±1/sqrt(fan_in)) and the spectral norm's
    vectors are random (its first estimate of sigma is not the top singular value); "lab": zero biases and
    15 warm-up iterations (sigma estimate converged). A "lab" config hashes as configs did before the field."""
    from lab.runs import config_hash

    torch.manual_seed(0)
    ref = build_gan(GANConfig(g_ch=4, d_ch=4))[1]
    torch.manual_seed(0)
    lab = build_gan(GANConfig(g_ch=4, d_ch=4, init_start="lab"))[1]
    conv_r, conv_l = ref.blocks[1].conv1, lab.blocks[1].conv1
    bound = 1 / (conv_r.parametrizations.weight.original[0].numel()) ** 0.5
    b = conv_r.bias.detach()
    assert b.abs().max() <= bound and b.abs().max() > bound / 4  # PyTorch's default bias, not zero
    assert (conv_l.bias == 0).all()
    for conv, warm in ((conv_r, False), (conv_l, True)):
        sn = conv.parametrizations.weight[0]
        W = conv.parametrizations.weight.original.detach().flatten(1)
        est = abs(torch.dot(sn._u, W @ sn._v).item())  # sigma as the stored vectors estimate it
        top = torch.linalg.svdvals(W)[0].item()
        assert (est > 0.9 * top) if warm else (est < 0.5 * top), (est, top)
    a = GANConfig(dataset="digits", init_start="lab").identity()
    assert "init_start" not in a and "init_start" in GANConfig(dataset="digits").identity()
    # Runs made before the field existed keep their hashes: the smoke and study presets as they then stood.
    smoke = dict(dataset="digits", g_ch=8, d_ch=8, batch_size=32, d_steps=2, g_lr=5e-4, d_lr=5e-4,
                 init_start="lab", ema_start=200, ema_decay=0.995, steps=800, log_every=20, ckpt_every=200,
                 grid_every=200)
    study = {**smoke, "dataset": "fashion", "ema_start": 500, "ema_decay": 0.999, "steps": 2000, "log_every": 50,
             "ckpt_every": 500, "grid_every": 500}
    assert [config_hash(GANConfig(**c)) for c in (study, {**study, "block": "concat"})] == [
        "06251be2bf2b", "7b846bc0160c"]
    # ... except the digits' (the hash "6053c33bb537" then): they became 16x16, and a 32x32 run must not load.
    assert GANConfig(**smoke).identity()["resolution"] == 16 and config_hash(GANConfig(**smoke)) != "6053c33bb537"
