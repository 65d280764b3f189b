"""EC-GAN: DCGAN models, the shared two-head discriminator, the D/G/C phases, short runs on digits for every
method, the seeded labelled subset, exact resume, config and the Table 1 helpers."""
import copy
import json

import numpy as np
import pytest
import torch

import lab.train.ecgan as ec
import lab.train.ecgan_phases as phases
from lab.config import ECGANConfig
from lab.presets import PRESETS, preset
from lab.data import subset, to_float
from lab.errors import ConfigError, DivergenceError
from lab.losses import shared_d_loss
from lab.experiments import ecgan_run
from lab.papers import PAPER_TABLE1
from lab.ecgan_tables import ecgan_results as results, ecgan_table as table
from lab.models import (
    ClassHead, DCGANDiscriminator, DCGANGenerator, SharedDCGANDiscriminator, SharedResNetDiscriminator, param_count,
)
from lab.runs import run_dir
from lab.train.common import autocast
from nets import same, snapshot  # tests/ is on sys.path

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (conftest)


AMP = autocast(CPU, "fp32")


def tiny(**kw):
    """digits-ecgan-smoke at tiny widths; 2 % of the digits (80 images, 5 batches of 16 per epoch)."""
    base = dict(classifier_width=2, ngf=4, ndf=4, batch_size=16, fraction=0.02, steps=4, log_every=1,
                eval_every=100, ckpt_every=4, device="cpu")
    return preset("digits-ecgan-smoke").replace(**{**base, **kw})


def _timeless(stats):
    return [{k: v for k, v in s.items() if k != "sec_per_step"} for s in stats]


# --- Models -------------------------------------------------------------------------------
def test_dcgan_shapes_range_and_sizes():
    torch.manual_seed(0)
    G, D = DCGANGenerator(), DCGANDiscriminator()
    assert (G.z_dim, G.num_classes) == (100, 0)
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,)
    # ecgan.md: G ≈ 1.07 M, D ≈ 0.66 M parameters (no conv biases; BN affine only)
    assert param_count(G) == 100 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16 + 2 * (256 + 128 + 64)
    assert param_count(D) == 3 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 16 + 2 * (128 + 256)
    bn = lambda m: sum(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules())
    assert (bn(DCGANDiscriminator(first_bn=False)), bn(DCGANDiscriminator(first_bn=True))) == (2, 3)


def test_dcgan_at_16x16_drops_the_widest_layer():
    """For the 16x16 digits G goes 4x4 (4 ngf) -> 8x8 (2 ngf) -> 16x16 (3), D 16 -> 8 (2 ndf) -> 4 (4 ndf)."""
    G, D = DCGANGenerator(ngf=8, resolution=16), DCGANDiscriminator(ndf=8, resolution=16)
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 3, 16, 16) and G.img_resolution == 16 and D(x).shape == (5,)
    assert param_count(G) == 100 * 32 * 16 + 32 * 16 * 16 + 16 * 3 * 16 + 2 * (32 + 16)
    assert param_count(D) == 3 * 16 * 16 + 16 * 32 * 16 + 32 * 16 + 2 * 32
    S = SharedDCGANDiscriminator(10, ndf=8, first_bn=True, resolution=16)
    assert [o.shape for o in S(x)] == [(5,), (5, 10)]
    with pytest.raises(ValueError, match="16x16 or 32x32"):
        DCGANGenerator(resolution=64)


def test_dcgan_init_is_n002_and_optional():
    torch.manual_seed(0)
    conv_types = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    convs = lambda m: [l.weight.detach() for l in m.modules() if isinstance(l, conv_types)]
    gammas = lambda m: torch.cat([l.weight.detach() for l in m.modules() if isinstance(l, torch.nn.BatchNorm2d)])
    for m in (DCGANGenerator(dcgan_init=True), DCGANDiscriminator(dcgan_init=True)):
        for w in convs(m):  # every layer N(0, 0.02), whatever its fan-in
            assert abs(w.mean().item()) < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
        g = gammas(m)
        assert g.mean().item() == pytest.approx(1.0, abs=0.01) and g.std().item() == pytest.approx(0.02, rel=0.3)
    for m in (DCGANGenerator(dcgan_init=False), DCGANDiscriminator(dcgan_init=False)):  # PyTorch's defaults
        stds = [w.std().item() for w in convs(m)]  # Kaiming-uniform: the std falls with the fan-in
        assert torch.all(gammas(m) == 1) and max(stds) > 2 * min(stds)


def test_shared_discriminators_have_two_heads():
    x = torch.randn(4, 3, 32, 32)
    for D in (SharedDCGANDiscriminator(10, ndf=8), SharedResNetDiscriminator(10, width=4)):
        rf, cls = D(x)
        assert rf.shape == (4,) and cls.shape == (4, 10)
        assert torch.allclose(ClassHead(D)(x), cls, atol=1e-6)


def test_shared_loss_matches_its_formula():
    rng = np.random.default_rng(0)
    rf_r, rf_f, cls, y = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(5, 4)), rng.integers(0, 4, 5)
    sig = lambda v: 1 / (1 + np.exp(-v))
    bce = -np.mean(np.log(sig(rf_r))) - np.mean(np.log(1 - sig(rf_f)))
    p = np.exp(cls - cls.max(1, keepdims=True))
    ce = -np.mean(np.log((p / p.sum(1, keepdims=True))[np.arange(5), y]))
    t = torch.tensor
    for lam in (0.1, 1.0):
        assert shared_d_loss(t(rf_r), t(cls), t(y), t(rf_f), lam).item() == pytest.approx(lam * bce + ce, rel=1e-9)
    assert shared_d_loss(t(rf_r), t(cls), t(y), None, 0.1).item() == pytest.approx(ce, rel=1e-9)


# --- Phases -------------------------------------------------------------------------------
@pytest.fixture
def nets(digits_train):
    cfg = tiny()
    torch.manual_seed(0)
    m = phases.build_models(cfg)
    opts = {k: torch.optim.Adam(v.parameters(), lr=1e-2) for k, v in m.items()}
    x = to_float(digits_train.images[:16])
    return m, opts, x, digits_train.targets[:16]


def test_each_phase_changes_only_its_own_network(nets):
    m, opts, x, y = nets
    G, D, C = m["G"], m["D"], m["C"]
    x_fake = G(torch.randn(16, 100))  # with G's graph, as in the loop
    before = {k: snapshot(v) for k, v in m.items()}

    phases.d_phase(D, opts["D"], x, x_fake, AMP)
    assert not same(snapshot(D), before["D"]) and same(snapshot(G), before["G"]) and same(snapshot(C), before["C"])
    assert all(p.grad is None for p in G.parameters())  # the fakes were detached

    before = {k: snapshot(v) for k, v in m.items()}
    phases.g_phase(D, opts["G"], x_fake, AMP)
    assert not same(snapshot(G), before["G"]) and same(snapshot(D), before["D"]) and same(snapshot(C), before["C"])

    opts["G"].zero_grad(set_to_none=True)
    before = {k: snapshot(v) for k, v in m.items()}
    out = phases.c_phase(C, opts["C"], x, y, x_fake, 0.1, 0.0, 1, AMP)  # t = 0: every fake is pseudo-labelled
    assert out["kept"] == 1.0
    assert not same(snapshot(C), before["C"]) and same(snapshot(G), before["G"]) and same(snapshot(D), before["D"])
    assert all(p.grad is None for p in G.parameters())  # C's loss never reaches G


def test_bn_stats_real_keeps_fakes_out_of_the_running_statistics(nets):
    m, opts, x, y = nets
    x_fake = m["G"](torch.randn(16, 100)).detach()
    stats = lambda c: [b.clone() for n, b in c.named_buffers() if "running" in n]
    ref = copy.deepcopy(m["C"])
    ref(x)  # the one real forward of the C step, in train mode
    for c_steps in (1, 2):
        for freeze in (True, False):
            C = copy.deepcopy(m["C"])
            opt = torch.optim.Adam(C.parameters(), lr=1e-2)
            phases.c_phase(C, opt, x, y, x_fake, 0.1, 0.5, c_steps, AMP, freeze_bn=freeze)
            assert same(stats(C), stats(ref)) == freeze


def test_shared_phases_change_only_their_network(digits_train):
    torch.manual_seed(0)
    for method in ("shared-dcgan", "shared-resnet"):
        m = phases.build_models(tiny(method=method))
        G, D = m["G"], m["D"]
        opt_D, opt_G = torch.optim.Adam(D.parameters()), torch.optim.Adam(G.parameters())
        x, y = to_float(digits_train.images[:16]), digits_train.targets[:16]
        x_fake = G(torch.randn(16, 100))
        g0, d0 = snapshot(G), snapshot(D)
        phases.shared_phase(D, opt_D, x, y, x_fake, 0.1, 0.7, AMP)
        assert same(snapshot(G), g0) and not same(snapshot(D), d0)
        d0 = snapshot(D)
        phases.g_phase(D, opt_G, x_fake, AMP)
        assert not same(snapshot(G), g0) and same(snapshot(D), d0)


def test_rotation_matches_torchvision(digits_train):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = to_float(digits_train.images[:6])
    angles = torch.tensor([0.0, 10.0, -10.0, 4.5, -7.3, 90.0])
    r = ec.rotate(x, angles)
    for i, a in enumerate(angles.tolist()):
        assert torch.equal(r[i], TF.rotate(x[i], a, interpolation=InterpolationMode.NEAREST, fill=-1.0))


# --- Short runs on digits -----------------------------------------------------------------
LEARN = dict(classifier_width=4, ngf=8, ndf=8, batch_size=32, lr=2e-3, steps=80, eval_every=100, log_every=20,
             ckpt_every=80, device="cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One run store with 80-iteration runs of three methods on the same 25 % of the digits (1,000 images).

    EC-GAN runs with bn_stats="real": while the fakes are still poor (80 iterations at these widths), letting
    them into C's BN running statistics (the notebook's behaviour) leaves C at chance level in eval mode.
    """
    root = tmp_path_factory.mktemp("ecgan-store")
    base = preset("digits-ecgan-smoke").replace(**LEARN)
    runs = {m: ecgan_run(base.replace(method=m, bn_stats="real" if m == "ecgan" else "all"), root)
            for m in ("ecgan", "classifier", "shared-dcgan")}
    return root, runs


def test_short_runs_of_every_method_beat_chance_clearly(store):
    _, runs = store
    for method, run in runs.items():
        done = run.done()
        assert done["step"] == 80 and done["method"] == method
        assert done["final_accuracy"] > 30, (method, done["final_accuracy"])  # chance: 10 %
        assert done["best_accuracy"] >= done["final_accuracy"]
        assert run.stats()[-1]["test_acc"] == pytest.approx(done["final_accuracy"])
    st = runs["ecgan"].stats()[-1]
    assert {"loss_d", "loss_g", "loss_c", "kept", "train_acc", "d_real", "d_fake"} <= set(st)
    assert 0 <= st["kept"] <= 1
    assert (runs["ecgan"].path / "samples" / "step-0000080.png").exists()


def test_every_method_trains_on_the_same_seeded_subset(store, digits_train):
    _, runs = store
    want = subset(digits_train, int(4000 * 0.25), seed=0, balanced=False)
    assert len({r.done()["labelled"] for r in runs.values()}) == 1
    assert runs["ecgan"].done()["labelled"] == ec.fingerprint(want) and runs["ecgan"].done()["n_labelled"] == 1000
    other = ec.labelled_subset(preset("digits-ecgan-smoke").replace(subset_seed=1), digits_train)
    assert ec.fingerprint(other) != ec.fingerprint(want)


def test_results_and_table_against_the_run_store(store):
    import pandas as pd

    root, runs = store
    df = pd.DataFrame(results(root))
    assert sorted(df["method"]) == ["classifier", "ecgan", "shared-dcgan"]
    assert set(df["fraction"]) == {0.25} and set(df["lam"]) == {0.1}
    t = table(df)
    assert list(t.index) == ["10%", "15%", "20%", "25%", "30%"]
    assert t.loc["25%", "EC-GAN"] == f"{runs['ecgan'].done()['final_accuracy']:.2f}"
    assert t.loc["25%", "EC-GAN (paper)"] == 93.93 and t.loc["10%", "Shared DC-Disc GAN (paper)"] == 86.17
    assert t.loc["10%", "EC-GAN"] == "–"
    two = pd.concat([df, df.assign(seed=1, final_accuracy=df["final_accuracy"] + 2)])
    assert "± 1.41 (2 seeds)" in table(two).loc["25%", "EC-GAN"]
    assert len(PAPER_TABLE1) == 5 and all(len(v) == 6 for v in PAPER_TABLE1.values())


def test_ecgan_with_lambda_0_trains_c_exactly_like_the_classifier(tmp_path, digits_train):
    """Same init, batches and optimiser: with λ = 0 the pseudo-label term adds exactly nothing to C's gradient."""
    cfg = tiny(lam=0.0, threshold=0.0, steps=3)
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a").load_checkpoint()["models"]["C"]
    b = ec.train_ecgan(cfg.replace(method="classifier"), labelled, tmp_path / "b").load_checkpoint()["models"]["C"]
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in params)
    assert not torch.equal(a["stem.1.running_mean"], b["stem.1.running_mean"])  # the fakes went through C's BN


def test_shared_resnet_and_classifier_dcgan_run(tmp_path, digits_train):
    for method in ("shared-resnet", "classifier-dcgan"):
        cfg = tiny(method=method, steps=2)
        run = ec.train_ecgan(cfg, ec.labelled_subset(cfg, digits_train), tmp_path / method)
        assert run.done()["step"] == 2 and 0 <= run.done()["final_accuracy"] <= 100
        assert ("G_params" in run.done()) == (method == "shared-resnet")


# --- Resume, NaN guard, runtime paths ---------------------------------------------------------
@pytest.mark.parametrize("official", [False, True], ids=["paper", "official"])
def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, digits_train, official):
    changes = dict(real_range="[0,1]", c_steps=2, dcgan_init=False, d_first_bn=True, sampling="independent",
                   threshold=0.2) if official else {}
    # Log lines at steps 3, 5 (evaluation), 6, 7 (evaluation); the checkpoint of step 4 holds a half-full log window.
    cfg = tiny(steps=7, eval_every=5, log_every=3, augment=True, **changes)
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_5(step, stats):  # after the line of step 5 (with its evaluation), before any checkpoint of it
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        ec.train_ecgan(cfg, labelled, tmp_path / "b", on_step=crash_at_5)
    b = ec.train_ecgan(cfg, labelled, tmp_path / "b")  # resumes from the checkpoint of step 4
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    for role in sa["models"]:
        for k in sa["models"][role]:
            assert torch.equal(sa["models"][role][k], sb["models"][role][k]), (role, k)
    assert torch.equal(sa["rngs"]["z"], sb["rngs"]["z"]) and torch.equal(sa["rngs"]["data"], sb["rngs"]["data"])
    assert _timeless(a.stats()) == _timeless(b.stats())
    assert [s["step"] for s in a.stats()] == [3, 5, 6, 7]
    assert [s["step"] for s in a.stats() if "test_acc" in s] == [5, 7]
    assert a.done() == b.done()


def test_a_finished_run_given_more_iterations_continues_to_the_longer_run(tmp_path, digits_train):
    """`steps` is not part of a run's identity and EC-GAN's schedule does not depend on it: a finished run of 4
    iterations, asked for 7, resumes from its last checkpoint and ends equal to a run of 7 from the start (the
    study lengthens its EC-GAN runs this way)."""
    from lab.runs import get_or_train

    cfg = tiny(steps=7, eval_every=2, log_every=2, ckpt_every=4)
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a")
    train = lambda c, path: ec.train_ecgan(c, labelled, path)
    short = get_or_train(cfg.replace(steps=4), train, root=tmp_path / "store")
    assert short.done()["step"] == 4
    b = get_or_train(cfg, train, root=tmp_path / "store")
    assert b.path == short.path and b.done()["step"] == 7
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    assert all(torch.equal(sa["models"][r][k], sb["models"][r][k]) for r in sa["models"] for k in sa["models"][r])
    assert _timeless(a.stats()) == _timeless(b.stats()) and a.done() == b.done()


@pytest.mark.parametrize("real_range", ["[-1,1]", "[0,1]"])
def test_real_images_reach_d_and_c_in_the_configured_range(tmp_path, digits_train, monkeypatch, real_range):
    seen = {"C": [], "D": []}  # (batch size, min, max) of every input
    build = ec.build_models

    def spying_build(cfg):
        models = build(cfg)
        for k in seen:
            models[k].register_forward_pre_hook(
                lambda m, a, k=k: seen[k].append((len(a[0]), a[0].min().item(), a[0].max().item())))
        return models

    monkeypatch.setattr(ec, "build_models", spying_build)
    cfg = tiny(steps=1, real_range=real_range)
    ec.train_ecgan(cfg, ec.labelled_subset(cfg, digits_train), tmp_path / "r")
    lo = 0.0 if real_range == "[0,1]" else -1.0
    (c_real, c_fake, *c_test), (d_real, d_fake, _) = seen["C"], seen["D"]  # C: real, fake, then the test split
    # digits span black to (nearly: halving blurs the strokes) white
    assert c_real[1] == d_real[1] == lo and c_real[2] == d_real[2] and c_real[2] > 0.95
    assert c_fake[1] < 0 and d_fake[1] < 0  # G's tanh output is in [-1, 1] either way (as in the notebook)
    assert sum(n for n, _, _ in c_test) == 1000 and min(m for _, m, _ in c_test) == lo


def test_resume_refuses_another_labelled_subset(tmp_path, digits_train):
    cfg = tiny(steps=2)
    ec.train_ecgan(cfg, ec.labelled_subset(cfg, digits_train), tmp_path / "r")
    with pytest.raises(ConfigError, match="another labelled subset"):
        ec.train_ecgan(cfg.replace(steps=3), subset(digits_train, 80, seed=5, balanced=False), tmp_path / "r")


def test_nan_loss_stops_the_run_with_a_divergence_error(tmp_path, digits_train, monkeypatch):
    real = phases.ecgan_classifier_loss
    monkeypatch.setattr(phases, "ecgan_classifier_loss", lambda *a: real(*a) * float("nan"))
    cfg = tiny(steps=2)
    with pytest.raises(DivergenceError, match="loss_c"):
        ec.train_ecgan(cfg, ec.labelled_subset(cfg, digits_train), tmp_path / "r")
    assert not (tmp_path / "r" / "done.json").exists()


def test_bf16_autocast_and_channels_last_path_runs(tmp_path, digits_train):
    cfg = tiny(steps=2, precision="bf16", channels_last="on")
    run = ec.train_ecgan(cfg, ec.labelled_subset(cfg, digits_train), tmp_path / "r")
    assert run.done()["step"] == 2 and all(np.isfinite(v) for k, v in run.stats()[-1].items() if k.startswith("loss"))


# --- Config -------------------------------------------------------------------------------
def test_config_rejects_unknown_keys_and_out_of_range_values():
    with pytest.raises(ConfigError, match="'lamda'"):
        ECGANConfig.from_dict(ECGANConfig().to_dict() | {"lamda": 0.1})
    for field, value, msg in [("lam", -0.1, r"lam must lie in \[0, inf\]"),
                              ("threshold", 1.5, r"threshold must lie in \[0, 1\]"),
                              ("threshold", -0.1, "threshold"), ("fraction", 0.0, r"fraction must lie in \(0, 1\]"),
                              ("c_steps", 3, "c_steps"), ("method", "salimans", "method must be one of"),
                              ("real_range", "[0,255]", "real_range")]:
        with pytest.raises(ConfigError, match=msg):
            ECGANConfig().replace(**{field: value})


def test_presets_round_trip_and_say_what_they_claim():
    for name in ("svhn-ecgan-paper", "svhn-ecgan-official", "digits-ecgan-smoke"):
        cfg = preset(name)
        assert name in PRESETS and ECGANConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    p, o = preset("svhn-ecgan-paper"), preset("svhn-ecgan-official")
    paper = (p.dataset, p.lam, p.threshold, p.classifier_width, p.lr, p.beta1, p.weight_decay, p.batch_size, p.epochs)
    assert paper == ("svhn", 0.1, 0.7, 64, 2e-4, 0.5, 1e-3, 64, 100)
    assert (p.real_range, p.c_steps, p.dcgan_init, p.d_first_bn, p.augment) == ("[-1,1]", 1, True, False, False)
    assert (o.threshold, o.classifier_width, o.real_range, o.c_steps, o.dcgan_init, o.d_first_bn, o.sampling) == \
        (0.2, 16, "[0,1]", 2, False, True, "independent")
    ident = p.identity()
    assert "method" in ident and "fraction" in ident and "epochs" not in ident and "device" not in ident
    assert len({run_dir(p), run_dir(p.replace(method="classifier")), run_dir(p.replace(fraction=0.2))}) == 3
    assert run_dir(p) == run_dir(p.replace(epochs=5, device="cpu"))


def test_the_table_takes_exactly_the_grid_runs_of_every_fraction(tmp_path):
    """Runs of different fractions have different lengths (the paper: 11,400 vs 34,300 iterations): the table
    of a grid keeps every fraction's runs, and a run of other settings in the same store stays out."""
    import lab.ecgan_tables as tb
    import lab.experiments as xe
    from lab.runs import Run, run_dir

    base = xe.ecgan_config("paper", "data")
    grid = xe.ecgan_grid(base, (0.1, 0.3), ("classifier", "ecgan"), (0, 1))
    runs = []
    for cfg in grid:
        steps = 11_400 if cfg.fraction == 0.1 else 34_300
        cfg = cfg.replace(steps=steps)
        run = Run(run_dir(cfg, tmp_path))
        run.init(cfg)
        acc = 80 + 10 * cfg.fraction + (2 if cfg.method == "ecgan" else 0) + cfg.seed
        run.mark_done({"step": steps, "epochs": 100, "final_accuracy": acc, "best_accuracy": acc, "n_labelled": 7325})
        runs.append(run)
    stray = base.replace(method="ecgan", fraction=0.1, lam=0.5, steps=11_400)
    r = Run(run_dir(stray, tmp_path))
    r.init(stray)
    r.mark_done({"step": 11_400, "epochs": 100, "final_accuracy": 1.0, "best_accuracy": 1.0, "n_labelled": 7325})
    import pandas as pd

    table = tb.ecgan_table(pd.DataFrame(tb.ecgan_results(tmp_path, runs=runs)))
    assert table.loc["10%", "EC-GAN"] == "83.50 ± 0.71 (2 seeds)" and table.loc["30%", "EC-GAN"] == "85.50 ± 0.71 (2 seeds)"
    assert table.loc["30%", "EC-GAN: Classifier"] == "83.50 ± 0.71 (2 seeds)"
    assert len(tb.ecgan_results(tmp_path)) == 9  # the store holds the stray run too


def test_bn_table_sets_the_two_ecgan_variants_beside_the_classifier(tmp_path):
    """Notebook 07's BatchNorm ablation: its grid adds EC-GAN and the shared ResNet discriminator with
    bn_stats="real" at the first fraction for every seed, and the table puts those runs beside their defaults and
    C alone, and only at that fraction."""
    import pandas as pd

    import lab.ecgan_tables as tb
    import lab.notebook_grids as notebook_grids
    from lab.runs import Run, run_dir

    grid = notebook_grids.ecgan_table_grid("smoke", "data", fractions=(0.1, 0.3), seeds=(0, 1), lambda_sweep=(), t_sweep=())
    bn = [c for c in grid if c.bn_stats == "real"]
    assert [(c.method, c.fraction, c.seed) for c in bn] == [("ecgan", 0.1, 0), ("ecgan", 0.1, 1),
                                                            ("shared-resnet", 0.1, 0), ("shared-resnet", 0.1, 1)]
    acc = {("classifier", "all"): 70.0, ("ecgan", "all"): 40.0, ("ecgan", "real"): 72.0,
           ("shared-resnet", "all"): 10.0, ("shared-resnet", "real"): 80.0}
    runs = []
    for cfg in grid:
        if (cfg.method, cfg.bn_stats) not in acc:
            continue
        run = Run(run_dir(cfg, tmp_path))
        run.init(cfg)
        a = acc[(cfg.method, cfg.bn_stats)] + 2 * cfg.seed + 10 * cfg.fraction
        run.mark_done({"step": cfg.steps, "epochs": 1, "final_accuracy": a, "best_accuracy": a, "n_labelled": 100})
        runs.append(run)
    df = pd.DataFrame(tb.ecgan_results(tmp_path, runs=runs))
    t = tb.ecgan_bn_table(df)
    assert list(t.index) == ["10%"]  # the ablation's fraction only
    assert t.loc["10%", "classifier alone"] == "72.00 ± 1.41 (2 seeds)"
    assert t.loc["10%", "EC-GAN (fakes in BN statistics, the official code)"] == "42.00 ± 1.41 (2 seeds)"
    assert t.loc["10%", "EC-GAN (fakes out of BN running statistics)"] == "74.00 ± 1.41 (2 seeds)"
    assert t.loc["10%", "shared ResNet D (fakes in BN statistics)"] == "12.00 ± 1.41 (2 seeds)"
    assert t.loc["10%", "shared ResNet D (fakes out of BN running statistics)"] == "82.00 ± 1.41 (2 seeds)"
    assert tb.ecgan_bn_table(df[df["bn_stats"] == "all"]).empty  # no ablation runs: no rows


@pytest.mark.parametrize("mode", ["freematch", "flexmatch"])
def test_an_adaptive_pseudo_label_rule_resumes_bit_for_bit(tmp_path, digits_train, mode):
    """EC-GAN with a class-adaptive threshold rule: its state (EMAs, window) in the checkpoint, so an interrupted
    run finishes equal to the uninterrupted one; the final per-class thresholds in done.json."""
    cfg = tiny(steps=7, eval_every=5, log_every=3, threshold_mode=mode)
    labelled = ec.labelled_subset(cfg, digits_train)
    a = ec.train_ecgan(cfg, labelled, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_5(step, stats):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        ec.train_ecgan(cfg, labelled, tmp_path / "b", on_step=crash_at_5)
    b = ec.train_ecgan(cfg, labelled, tmp_path / "b")
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    assert all(torch.equal(sa["models"][r][k], sb["models"][r][k]) for r in sa["models"] for k in sa["models"][r])
    assert a.done() == b.done() and len(a.done()["thresholds"]) == cfg.num_classes
    assert set(sa["extra"]["rule"]) == set(ec.rule(mode, cfg.num_classes, cfg.threshold).state_dict())
    fixed = ec.train_ecgan(cfg.replace(threshold_mode="fixed"), labelled, tmp_path / "f")
    from lab.runs import config_hash

    assert "thresholds" not in fixed.done() and config_hash(cfg) != config_hash(cfg.replace(threshold_mode="fixed"))
    assert config_hash(cfg.replace(threshold_mode="fixed")) == config_hash(tiny(steps=7))  # "fixed": the old hash
