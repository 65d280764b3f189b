"""lab.train.loop: the shared checkpoint schema, and checkpoints of the earlier per-loop layouts (run stores
written before the schema) read by the loaders and resumed exactly."""
import torch

import lab.train.ecgan as ec
from lab.presets import preset
from lab.checkpoints import atomic_save
from lab.runs import Run
from lab.train.classifier import load_classifier, train_classifier
from lab.train.gan import load_generator, train_gan
from lab.train.loop import read_checkpoint


def _old_gan(s: dict) -> dict:
    """A current GAN checkpoint in the layout train_gan wrote before the shared schema."""
    return {"step": s["step"], "config": s["config"], "G": s["models"]["G"], "D": s["models"]["D"],
            "G_ema": s["models"]["G_ema"], "opt_G": s["opts"]["G"], "opt_D": s["opts"]["D"], "gen": s["rngs"]["gen"],
            "rng": s["rngs"]["global"], "sampler": s["samplers"]["data"], "window": s["extra"]["window"]}


def test_the_schema_holds_everything_to_resume(tmp_path):
    cfg = preset("digits-smoke").replace(g_ch=4, d_ch=4, steps=4, log_every=2, ckpt_every=4, grid_every=4, device="cpu")
    s = read_checkpoint(train_gan(cfg, tmp_path / "g"))
    assert set(s) == {"step", "config", "models", "opts", "rngs", "samplers", "extra"}
    assert set(s["models"]) == {"G", "D", "G_ema"} and set(s["rngs"]) == {"global", "gen"}
    assert s["step"] == 4 and s["config"]["g_ch"] == 4


def test_an_old_gan_checkpoint_loads_and_resumes_exactly(tmp_path):
    cfg = preset("digits-smoke").replace(g_ch=4, d_ch=4, steps=8, log_every=2, ckpt_every=4, grid_every=8, device="cpu")
    straight = train_gan(cfg, tmp_path / "a")
    half = train_gan(cfg.replace(steps=4), tmp_path / "b")
    atomic_save(_old_gan(half.load_checkpoint()), half.checkpoint_path)  # as an earlier version wrote it
    (half.path / "done.json").unlink()
    G = load_generator(half.path)
    assert torch.equal(G.state_dict()["out_conv.parametrizations.weight.original"],
                       half.load_checkpoint()["G_ema"]["out_conv.parametrizations.weight.original"])
    resumed = train_gan(cfg, tmp_path / "b")  # from the old checkpoint of step 4
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    for role in a["models"]:
        for k in a["models"][role]:
            assert torch.equal(a["models"][role][k], b["models"][role][k]), (role, k)


def test_old_classifier_and_ecgan_checkpoints_load(tmp_path, digits_train):
    cfg = preset("classifier-digits-smoke").replace(width=4, steps=4, eval_every=4, ckpt_every=4, device="cpu",
                                                    subset=400)
    run = train_classifier(cfg, digits_train, tmp_path / "c")
    s = run.load_checkpoint()
    atomic_save({"step": s["step"], "config": s["config"], "model": s["models"]["model"], "opt": s["opts"]["opt"],
                 "sched": s["opts"]["sched"], "gen": s["rngs"]["gen"], "rng": s["rngs"]["global"],
                 "window": s["extra"]["window"], "source": s["samplers"].get("source")}, run.checkpoint_path)
    model = load_classifier(run.path)
    assert torch.equal(model.state_dict()["linear.weight"], s["models"]["model"]["linear.weight"])

    e = preset("digits-ecgan-smoke").replace(method="ecgan", classifier_width=2, ngf=4, ndf=4, fraction=0.02,
                                             batch_size=16, steps=4, eval_every=4, ckpt_every=4, device="cpu")
    run = ec.train_ecgan(e, ec.labelled_subset(e, digits_train), tmp_path / "e")
    s = run.load_checkpoint()
    atomic_save({"step": s["step"], "config": s["config"], "labelled": s["extra"]["labelled"], "best": s["extra"]["best"],
                 "models": s["models"], "opts": s["opts"], "gen_data": s["rngs"]["data"], "gen_z": s["rngs"]["z"],
                 "rng": s["rngs"]["global"], "sampler": s["samplers"]["data"], "window": s["extra"]["window"]},
                run.checkpoint_path)
    models, clf = ec.load_ecgan(run.path)
    assert set(models) == {"C", "D", "G"}
    assert torch.equal(models["C"].state_dict()["linear.weight"], s["models"]["C"]["linear.weight"])
    assert Run(run.path).is_done()
