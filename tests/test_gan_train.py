"""The BigGAN training loop: updates, EMA, exact resume, NaN guard, CLI."""
import json
import subprocess
import sys

import pytest
import torch

import lab.train.gan as gan
from lab.presets import preset
from lab.errors import ConfigError, DivergenceError
from lab.checkpoints import safe_load
from lab.runs import Run


def tiny(**kw):
    """digits-smoke at the smallest width: a step takes milliseconds."""
    base = dict(g_ch=2, d_ch=2, batch_size=8, d_steps=2, steps=4, log_every=2, ckpt_every=2, grid_every=2,
                ema_start=3, ema_decay=0.9, device="cpu")
    return preset("digits-smoke").replace(**{**base, **kw})


def _flat(sd):
    return torch.cat([v.flatten().double() for v in sd.values() if v.dtype.is_floating_point])


def _timeless(stats):
    return [{k: v for k, v in s.items() if k != "sec_per_step"} for s in stats]


def test_steps_change_g_and_d_and_ema_follows_then_lags(tmp_path):
    cfg = tiny(steps=1)
    torch.manual_seed(cfg.seed)
    G0, D0 = gan.build_gan(cfg)
    run = gan.train_gan(cfg, tmp_path / "r")
    s = run.load_checkpoint()
    assert not torch.equal(_flat(s["models"]["G"]), _flat(G0.state_dict()))
    assert not torch.equal(_flat(s["models"]["D"]), _flat(D0.state_dict()))
    assert torch.equal(_flat(s["models"]["G_ema"]), _flat(s["models"]["G"]))  # before ema_start the EMA is a copy of G
    st = run.stats()[0]
    assert all(torch.isfinite(torch.tensor(st[k])) for k in ("loss_d_real", "loss_d_fake", "loss_g", "d_real", "d_fake"))
    assert st["sec_per_step"] > 0

    run = gan.train_gan(cfg.replace(steps=5), tmp_path / "r")  # EMA averages from step 3 on
    s = run.load_checkpoint()
    g, ema = s["models"]["G"], s["models"]["G_ema"]
    w = "blocks.0.conv1.parametrizations.weight.original"
    assert not torch.equal(g[w], ema[w])  # from step 3 on the EMA lags behind G
    assert s["step"] == 5 and run.is_done(5)


def test_ema_update_matches_definition():
    from lab.train.common import ema_update

    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(1.0), b.weight.fill_(3.0), a.running_mean.fill_(0.0), b.running_mean.fill_(2.0)
    b.num_batches_tracked.fill_(7)
    ema_update(a, b, 0.75)
    assert torch.allclose(a.weight, torch.full((3,), 0.75 * 1 + 0.25 * 3))
    assert torch.allclose(a.running_mean, torch.full((3,), 0.25 * 2))
    assert int(a.num_batches_tracked) == 7
    ema_update(a, b, 0.0)
    assert torch.equal(a.weight, b.weight)


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path):
    cfg = tiny(steps=7, log_every=2, ckpt_every=3, ema_start=2, hflip=True)
    straight = gan.train_gan(cfg, tmp_path / "straight")
    part = gan.train_gan(cfg.replace(steps=4), tmp_path / "split")  # stops at 4 (mid log window)
    assert part.load_checkpoint()["step"] == 4
    resumed = gan.train_gan(cfg, tmp_path / "split")
    a, b = straight.load_checkpoint(), resumed.load_checkpoint()
    for key in ("G", "D", "G_ema"):
        for k in a["models"][key]:
            assert torch.equal(a["models"][key][k], b["models"][key][k]), (key, k)
    assert torch.equal(a["opts"]["G"]["state"][0]["exp_avg"], b["opts"]["G"]["state"][0]["exp_avg"])
    assert _timeless(straight.stats()) == _timeless(resumed.stats())
    assert [s["step"] for s in resumed.stats()] == [2, 4, 6, 7]


def test_interrupted_run_drops_stats_after_its_checkpoint(tmp_path):
    cfg = tiny(steps=6, log_every=1, ckpt_every=4)
    gan.train_gan(cfg.replace(steps=5), tmp_path / "r")  # checkpoints at 4 and 5
    run = Run(tmp_path / "r")
    run.log({"step": 6, "loss_g": 123.0})  # a line written after the last checkpoint, then a crash
    gan.train_gan(cfg, tmp_path / "r")
    steps = [s["step"] for s in run.stats()]
    assert steps == [1, 2, 3, 4, 5, 6] and run.stats()[-1]["loss_g"] != 123.0


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny(steps=8, log_every=2, ckpt_every=2)
    calls = {"n": 0}
    real = gan.d_hinge

    def poisoned(d_real, d_fake):
        calls["n"] += 1
        lr, lf = real(d_real, d_fake)
        return (lr * float("nan"), lf) if calls["n"] > 2 * 5 else (lr, lf)  # NaN from G step 6 on

    monkeypatch.setattr(gan, "d_hinge", poisoned)
    with pytest.raises(DivergenceError, match=r"diverged by step 6 .*checkpoint of step 4"):
        gan.train_gan(cfg, tmp_path / "r")
    run = Run(tmp_path / "r")
    state = run.load_checkpoint()
    assert state["step"] == 4 and torch.isfinite(_flat(state["models"]["G"])).all()
    assert not run.is_done()
    assert [s["step"] for s in run.stats()] == [2, 4]


def test_a_run_dir_of_another_config_is_refused(tmp_path):
    gan.train_gan(tiny(steps=1), tmp_path / "r")
    with pytest.raises(ConfigError, match="block = .add., and block = .concat. is asked for"):
        gan.train_gan(tiny(steps=2, block="concat"), tmp_path / "r")


def test_sample_grids_and_generator_loading(tmp_path):
    run = gan.train_gan(tiny(steps=2, grid_every=1), tmp_path / "r")
    assert sorted(p.name for p in (run.path / "samples").iterdir()) == ["step-0000001.png", "step-0000002.png"]
    G = gan.load_generator(run.path)
    x = G(torch.randn(3, G.z_dim), torch.tensor([0, 1, 2]))
    assert x.shape == (3, 3, 16, 16) and not G.training


def test_cli_trains_continues_and_reports_done(tmp_path):
    d = tmp_path / "cli"
    base = [sys.executable, "-m", "lab", "train-gan", "--preset", "digits-smoke", "--seed", "1", "--run-dir", str(d),
            "--set", "g_ch=2", "d_ch=2", "batch_size=8", "log_every=1", "device=cpu"]
    out = subprocess.run(base + ["--steps", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert safe_load(d / "checkpoint.pt", "cpu")["step"] == 2
    out = subprocess.run(base + ["--steps", "3"], capture_output=True, text=True)  # continues the same run
    assert out.returncode == 0, out.stderr
    assert [s["step"] for s in Run(d).stats()] == [1, 2, 3]
    out = subprocess.run(base + ["--steps", "3"], capture_output=True, text=True)
    assert out.returncode == 0 and "already done" in out.stdout
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["steps"] == 3
    bad = subprocess.run(base[:-1] + ["blocks=2", "--steps", "3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Unknown key 'blocks'" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_reports_every_variant_from_the_real_loop():
    from lab.bench import bench_gan

    rows = bench_gan("digits-smoke", steps=2, warmup=1, device="cpu", variants=["fp32 eager", "bf16 + channels_last"],
                     g_ch=2, d_ch=2, batch_size=8, d_steps=3)
    assert [r["variant"] for r in rows] == ["fp32 eager", "bf16 + channels_last"]
    for r in rows:  # every D step of a G step takes one real batch
        assert r["G steps/s"] > 0 and r["real img/s through D"] == pytest.approx(8 * 3 * r["G steps/s"], rel=0.01)
        assert r["device"].startswith("CPU")
