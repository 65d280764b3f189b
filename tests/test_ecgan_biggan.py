"""EC-GAN with the class-conditional BigGAN and Algorithm 1 as the pseudo-label source (method "ecgan-biggan",
this lab's extension of Haque 2021): phases, exact resume, the shared classifier init and batches, config."""
import pytest
import torch

import lab.train.ecgan as ec
import lab.train.ecgan_phases as phases
from lab.config import ECGANConfig, GANConfig
from lab.presets import biggan_config, check, preset
from lab.errors import ConfigError
from lab.ecgan_tables import ecgan_table as table
from lab.data import to_float
from lab.algorithm1 import accept
from lab.train.common import EpochSampler, autocast
from nets import same, snapshot  # tests/ is on sys.path

CPU = torch.device("cpu")
AMP = autocast(CPU, "fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (conftest)


def tiny(**kw):
    """digits-ecgan-smoke (its BigGAN: the digits-smoke preset) with a width-2 classifier on 2 % of the digits."""
    base = dict(method="ecgan-biggan", classifier_width=2, batch_size=16, fraction=0.02, steps=4, log_every=1,
                eval_every=100, ckpt_every=4, device="cpu")
    return preset("digits-ecgan-smoke").replace(**{**base, **kw})


def test_biggan_config_takes_architecture_and_optimiser_from_the_preset():
    cfg = tiny()
    big, ref = biggan_config(cfg), preset("digits-smoke")
    assert isinstance(big, GANConfig) and big.dataset == "digits" and big.batch_size == 16
    assert (big.g_ch, big.d_ch, big.z_dim, big.d_steps, big.g_lr, big.block) == \
        (ref.g_ch, ref.d_ch, ref.z_dim, ref.d_steps, ref.g_lr, ref.block)
    m = phases.build_models(cfg)
    assert list(m) == ["C", "G", "D"]
    assert m["G"](torch.randn(4, big.z_dim), torch.arange(4)).shape == (4, 3, 16, 16)
    with pytest.raises(ConfigError, match="must name a GAN preset"):
        check(tiny(biggan="classifier-digits-smoke"))
    assert biggan_config(preset("svhn-ecgan-paper").replace(method="ecgan-biggan")).g_ch == 64


def test_each_phase_changes_only_its_own_network(digits_train):
    cfg = tiny(batch_size=8)
    big = biggan_config(cfg)
    torch.manual_seed(0)
    m = phases.build_models(cfg)
    opts = {k: torch.optim.Adam(v.parameters(), lr=1e-2) for k, v in m.items()}
    images, labels = digits_train.images[:32], digits_train.targets[:32]
    gen = torch.Generator().manual_seed(0)
    sampler_d = EpochSampler(32, 8, torch.Generator().manual_seed(1))

    g0, d0, c0 = snapshot(m["G"]), snapshot(m["D"]), snapshot(m["C"])
    # D steps change D only; the G step changes G only.
    out = phases.biggan_phases(m, m, {"D": opts["D"], "G": torch.optim.SGD(m["G"].parameters(), lr=0.0)}, big, images,
                           labels, sampler_d, gen, AMP, torch.contiguous_format)
    assert not same(snapshot(m["D"]), d0) and same(snapshot(m["G"]), g0) and same(snapshot(m["C"]), c0)
    d0 = snapshot(m["D"])
    out = phases.biggan_phases(m, m, {"D": torch.optim.SGD(m["D"].parameters(), lr=0.0), "G": opts["G"]}, big, images,
                           labels, sampler_d, gen, AMP, torch.contiguous_format)
    assert not same(snapshot(m["G"]), g0) and same(snapshot(m["D"]), d0) and same(snapshot(m["C"]), c0)
    assert out["x_fake"].shape == (8, 3, 16, 16) and out["y_fake"].shape == (8,)

    # The C step changes C only, and its loss never reaches G (the fakes are detached).
    g0 = snapshot(m["G"])
    for p in m["G"].parameters():
        p.grad = None
    x, y = to_float(images[:8]), labels[:8]
    with torch.no_grad():  # train mode, as in the C step (batch statistics)
        want = accept(m["C"](out["x_fake"]).softmax(1), out["y_fake"], 0.0).float().mean().item()
    res = phases.c_phase(m["C"], opts["C"], x, y, out["x_fake"], 0.1, 0.0, 1, AMP, y_fake=out["y_fake"])
    assert not same(snapshot(m["C"]), c0) and same(snapshot(m["G"]), g0) and same(snapshot(m["D"]), d0)
    assert all(p.grad is None for p in m["G"].parameters())
    # "kept" is the fraction Algorithm 1 accepts (C's argmax is the conditioning class), not C's confidence
    assert res["kept"].item() == pytest.approx(want)


def test_lambda_0_trains_c_exactly_like_the_classifier(tmp_path, digits_train):
    """Same C init, same real batches (D draws its own), same optimiser: with λ = 0 C ends identical."""
    cfg = tiny(lam=0.0, steps=3, bn_stats="real")
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a").load_checkpoint()["models"]["C"]
    b = ec.train_ecgan(cfg.replace(method="classifier"), labelled, tmp_path / "b").load_checkpoint()["models"]["C"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bn_stats="real": the running statistics too


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, digits_train):
    cfg = tiny(steps=7, eval_every=5, log_every=3)
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_5(step, stats):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        ec.train_ecgan(cfg, labelled, tmp_path / "b", on_step=crash_at_5)
    b = ec.train_ecgan(cfg, labelled, tmp_path / "b")  # from the checkpoint of step 4
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    for role in ("C", "G", "D"):
        for k in sa["models"][role]:
            assert torch.equal(sa["models"][role][k], sb["models"][role][k]), (role, k)
    assert torch.equal(sa["rngs"]["d"], sb["rngs"]["d"]) and torch.equal(sa["rngs"]["z"], sb["rngs"]["z"])
    strip = lambda st: [{k: v for k, v in s.items() if k != "sec_per_step"} for s in st]
    assert strip(a.stats()) == strip(b.stats()) and a.done() == b.done()
    assert {"loss_d", "loss_g", "loss_c", "kept", "d_real", "d_fake", "train_acc"} <= set(a.stats()[-1])
    from PIL import Image

    grid = Image.open(a.path / "samples" / "step-0000007.png")
    assert grid.size[1] > grid.size[0]  # 10 class rows of 8


def test_short_run_beats_chance_and_fills_its_table_column(tmp_path):
    import pandas as pd

    from lab.experiments import ecgan_run
    from lab.ecgan_tables import ecgan_results as results

    cfg = preset("digits-ecgan-smoke").replace(method="ecgan-biggan", classifier_width=4, lr=2e-3, steps=40,
                                              bn_stats="real", eval_every=100, log_every=20, device="cpu")
    run = ecgan_run(cfg, tmp_path)
    done = run.done()
    assert done["method"] == "ecgan-biggan" and done["final_accuracy"] > 30, done  # chance: 10 %
    df = pd.DataFrame(results(tmp_path))
    assert list(df["biggan"]) == ["digits-smoke"]
    t = table(df)
    assert t.loc["25%", "EC-GAN, BigGAN + Alg. 1"] == f"{done['final_accuracy']:.2f}"
    assert "EC-GAN, BigGAN + Alg. 1 (paper)" not in t.columns and "EC-GAN (paper)" in t.columns
    assert ECGANConfig.from_dict(cfg.to_dict()) == cfg


def test_an_ecgan_biggan_preset_builds_without_recursion(monkeypatch):
    """The presets check an ECGANConfig of method ecgan-biggan (its `biggan` preset); with an EC-GAN preset of
    that method among the presets, the check must not build it again (it once recursed without end)."""
    from lab.config import ECGANConfig
    from lab.presets import PRESETS, preset
    from lab.errors import ConfigError

    monkeypatch.setitem(PRESETS, "x-ecgan-biggan", lambda: ECGANConfig(method="ecgan-biggan", biggan="digits-smoke"))
    assert biggan_config(preset("x-ecgan-biggan")).g_ch == 8
    assert biggan_config(preset("fashion-ecgan-study").replace(method="ecgan-biggan")).dataset == "fashion"
    with pytest.raises(ConfigError, match="must name a GAN preset.*fashion-study"):
        check(ECGANConfig(method="ecgan-biggan", biggan="x-ecgan-biggan"))
