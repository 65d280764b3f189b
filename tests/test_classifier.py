"""The classifier loop: learning on digits, exact resume, schedule, evaluation, source checks."""
import math

import pytest
import torch

from lab.presets import preset
from lab.data import ImageDataset, load_dataset, subset
from lab.errors import ConfigError
from lab.train.classifier import evaluate, lr_factor, train_classifier


def tiny(**kw):
    base = dict(width=4, batch_size=32, steps=6, log_every=2, eval_every=3, ckpt_every=4, device="cpu")
    return preset("classifier-digits-smoke").replace(**{**base, **kw})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """The smoke classifier after 150 steps on the digits (also the filter of the stream tests)."""
    cfg = preset("classifier-digits-smoke").replace(steps=150, eval_every=150, device="cpu")
    return train_classifier(cfg, digits[0], tmp_path_factory.mktemp("clf") / "r")


def test_a_hundred_and_fifty_steps_on_digits_beat_chance_clearly(trained):
    run = trained
    done = run.done()
    assert done["error"] < 30, done  # chance is 90 % error
    assert len(done["per_class_accuracy"]) == 10
    assert run.stats()[-1]["test_error"] == pytest.approx(done["error"])


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, digits):
    train = subset(digits[0], 500, seed=1)
    cfg = tiny(steps=7, subset=500, subset_seed=1, log_every=1)
    a = train_classifier(cfg, train, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_5(step, stats):  # after the line of step 5 is logged, before any checkpoint of it
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_classifier(cfg, train, tmp_path / "b", on_step=crash_at_5)
    assert [s["step"] for s in a.stats()][:5] == [1, 2, 3, 4, 5]
    b = train_classifier(cfg, train, tmp_path / "b")  # resumes from the checkpoint of step 4
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    for k in sa["models"]["model"]:
        assert torch.equal(sa["models"]["model"][k], sb["models"]["model"][k]), k
    strip = lambda st: [{k: v for k, v in s.items() if k != "sec_per_step"} for s in st]
    assert strip(a.stats()) == strip(b.stats())
    assert a.done()["error"] == b.done()["error"]


def test_lr_schedules_follow_their_definition():
    T = 1000
    for s in (0, 1, 250, 500, 999, 1000):
        assert lr_factor("cosine", s, T) == pytest.approx(0.5 * (1 + math.cos(math.pi * s / T)))
    assert [lr_factor("step", s, T) for s in (0, 499, 500, 749, 750)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor("constant", 700, T) == 1.0


def test_logged_lr_decays_with_the_cosine(tmp_path, digits):
    run = train_classifier(tiny(steps=4, log_every=1, lr=0.2), digits[0], tmp_path / "r")
    lrs = [s["lr"] for s in run.stats()]
    assert lrs == pytest.approx([0.2 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in (1, 2, 3, 4)])


def test_evaluate_against_a_direct_count(digits):
    test = subset(digits[1], 50, seed=0)

    class Stub(torch.nn.Module):  # predicts class = (mean pixel bucket), deterministic
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            pred = (x.mean(dim=(1, 2, 3)) * 1000).long() % 10
            return torch.nn.functional.one_hot(pred, 10).float() + 0 * self.w

    out = evaluate(Stub(), test, batch_size=7)
    x = test.images.float() / 127.5 - 1
    pred = (x.mean(dim=(1, 2, 3)) * 1000).long() % 10
    hit = pred == test.targets
    assert out["accuracy"] == pytest.approx(100 * hit.float().mean().item())
    assert out["error"] == pytest.approx(100 - out["accuracy"])
    for c in range(10):
        m = test.targets == c
        assert out["per_class_accuracy"][c] == pytest.approx(100 * hit[m].float().mean().item())


def test_source_must_match_the_config(tmp_path, digits):
    with pytest.raises(ConfigError, match="source is 'gan' but the data source is a dataset"):
        train_classifier(tiny(source="gan", gans=("g",), threshold=0.5, filter="f"), digits[0], tmp_path / "r")
    with pytest.raises(ConfigError, match="only apply to source='gan'"):
        tiny(threshold=0.5)
    big = ImageDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4), digits[0].classes, "digits")
    with pytest.raises(ConfigError, match="32x32 but the test split of digits is 16x16"):
        train_classifier(tiny(), big, tmp_path / "r32")
    assert not (tmp_path / "r32").exists()  # refused before anything is written


class Replay(torch.nn.Module):
    """A stand-in generator: G(z, y) is a real digit of class y picked by z (so a filter accepts most)."""

    def __init__(self, ds):
        super().__init__()
        self.z_dim, self.num_classes = 4, 10
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self.by_class = [ds.images[ds.targets == c] for c in range(10)]

    def forward(self, z, y):
        pick = (z[:, 0].abs() * 1e4).long()
        imgs = [self.by_class[c][i % len(self.by_class[c])] for c, i in zip(y.tolist(), pick.tolist())]
        return torch.stack(imgs).float() / 127.5 - 1


def test_training_on_a_filtered_stream_resumes_exactly(tmp_path, digits, trained):
    from lab.sampling import FilteredSampler
    from lab.train.classifier import load_classifier

    clf = load_classifier(trained.path)
    G = Replay(digits[0]).eval()
    cfg = tiny(source="gan", gans=("replay",), threshold=0.5, filter=trained.path.name, steps=7, log_every=1,
               augment=False)

    def stream():  # a new sampler object, as a new process would build
        return FilteredSampler([G], clf, 0.5, cfg.batch_size, seed=cfg.seed)

    a = train_classifier(cfg, stream(), tmp_path / "a")

    def crash_at_5(step, stats):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, stream(), tmp_path / "b", on_step=crash_at_5)
    b = train_classifier(cfg, stream(), tmp_path / "b")
    sa, sb = a.load_checkpoint(), b.load_checkpoint()
    assert all(torch.equal(sa["models"]["model"][k], sb["models"]["model"][k]) for k in sa["models"]["model"])
    assert sa["samplers"]["source"]["accepted"] == sb["samplers"]["source"]["accepted"]
    assert sum(sa["samplers"]["source"]["accepted"]) >= 7 * 32
    assert a.done()["error"] == b.done()["error"]


def test_divergence_stops_with_one_error_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    from lab.errors import DivergenceError
    from lab.runs import Run

    cfg = tiny(steps=8, ckpt_every=1, log_every=4, lr=1e30, subset=500)
    with pytest.raises(DivergenceError, match="NaN or inf") as err:
        train_classifier(cfg, subset(digits[0], 500), tmp_path / "r")
    run = Run(tmp_path / "r")
    assert not run.is_done()
    if run.has_checkpoint():  # whatever was saved is finite, and the message names its step
        state = run.load_checkpoint()
        assert all(torch.isfinite(v).all() for v in state["models"]["model"].values() if v.is_floating_point())
        assert f"checkpoint of step {state['step']}" in str(err.value)
    else:
        assert "no checkpoint had been written" in str(err.value)
