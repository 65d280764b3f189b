import json

import pytest

from lab.config import ClassifierConfig, GANConfig
from lab.presets import PRESETS, preset
from lab.errors import ConfigError, LabError


def test_round_trip_through_json():
    for name in PRESETS:
        cfg = preset(name)
        again = type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    gan_src = preset("classifier-digits-smoke").replace(source="gan", gans=("a", "b"), threshold=0.9, filter="f")
    again = ClassifierConfig.from_dict(json.loads(json.dumps(gan_src.to_dict())))
    assert again == gan_src and again.gans == ("a", "b")


def test_classifier_config_checks_its_source_fields():
    base = preset("classifier-digits-smoke")
    with pytest.raises(ConfigError, match=r"threshold must lie in \[0, 1\]"):
        base.replace(source="gan", gans=("a",), threshold=1.5)
    with pytest.raises(ConfigError, match="gans must name at least one GAN run"):
        base.replace(source="gan")
    with pytest.raises(ConfigError, match=r"gans must be of type"):
        base.replace(source="gan", gans=("a", 3))
    assert base.replace(source="gan", gans=("a",), threshold=None).threshold is None
    assert preset("classifier-cifar10-paper").steps == 156_250
    assert preset("classifier-cifar10-paper").batch_size * 156_250 == 200 * 50_000  # the paper's 200 epochs


def test_unknown_key_is_named():
    d = GANConfig().to_dict() | {"blokc": "add"}
    with pytest.raises(ConfigError, match="'blokc'"):
        GANConfig.from_dict(d)
    with pytest.raises(ConfigError, match="'lr'"):
        GANConfig().replace(lr=0.1)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ema_decay", 1.5, r"ema_decay must lie in \[0, 1\]"),
        ("ema_decay", -0.1, r"ema_decay must lie in \[0, 1\]"),
        ("beta1", 1.0, r"beta1 must lie in \[0, 1\)"),
        ("g_lr", 0.0, r"g_lr must lie in \(0, inf\]"),
        ("batch_size", 0, r"batch_size must lie in \[1, inf\]"),
        ("block", "sum", r"block must be one of \['add', 'concat'\]"),
        ("dataset", "mnist", r"dataset must be one of"),
        ("batch_size", 2.5, r"batch_size must be of type int"),
        ("hflip", 1, r"hflip must be of type bool"),
    ],
)
def test_bad_values_rejected(field, value, message):
    with pytest.raises(ConfigError, match=message):
        GANConfig(**{field: value})
    with pytest.raises(ConfigError, match=message):
        GANConfig().replace(**{field: value})


def test_boundaries_accepted():
    GANConfig(ema_decay=0.0)
    GANConfig(ema_decay=1.0)
    GANConfig(beta1=0.0, g_lr=1e-12, batch_size=1)
    GANConfig(g_lr=1)  # an int is a valid float


def test_preset_returns_fresh_copies_and_unknown_name_lists_choices():
    a, b = preset("digits-smoke"), preset("digits-smoke")
    assert a == b and a is not b
    with pytest.raises(LabError, match="digits-smoke"):
        preset("cifar10-papr")


def test_identity_excludes_budget_and_runtime():
    cfg = preset("cifar10-paper")
    ident = cfg.identity()
    assert "steps" not in ident and "device" not in ident and "log_every" not in ident
    assert ident["block"] == "add" and ident["seed"] == 0


def test_paper_presets_match_biggan_pytorch_cifar_script():
    # BigGAN-PyTorch scripts/launch_cifar_ema.sh (see shared/reference/biggan.md, section 1)
    cfg = preset("cifar10-paper")
    assert (cfg.g_ch, cfg.d_ch, cfg.z_dim, cfg.batch_size, cfg.d_steps) == (64, 64, 128, 50, 4)
    assert (cfg.g_lr, cfg.d_lr, cfg.beta1, cfg.beta2) == (2e-4, 2e-4, 0.0, 0.999)
    assert (cfg.ema_decay, cfg.ema_start, cfg.shared_dim, cfg.attn, cfg.init) == (0.9999, 1000, 0, False, "N02")
    assert cfg.steps == 500 * 50_000 // (50 * 4)  # 500 epochs, 200 real images per G step
    assert preset("cifar100-concat-paper").block == "concat"
    assert preset("cifar100-paper").num_classes == 100
