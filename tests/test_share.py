"""Generator cards: a round trip bit-identical to the runs, every refusal with its message, synthesis that is
deterministic for a seed and resumes after an interruption to the very same files."""
import hashlib
import json
import shutil

import pytest
import torch

from lab import experiments as ex
from lab import share
from lab.presets import preset
from lab.data import load_dataset
from lab.errors import CardError
from lab.runs import Run
from lab.sampling import FilteredSampler
from lab.train.classifier import load_classifier, train_classifier
from lab.train.gan import load_generator, train_gan

pytestmark = pytest.mark.usefixtures("one_thread")
DRY = 300  # draws in a row without an accepted sample that starve a class (the 40-step GANs starve several)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_train):
    """Two 40-step smoke GANs and a 60-step filter, in one run store."""
    root = tmp_path_factory.mktemp("store")
    gans = []
    for seed in (0, 1):
        cfg = preset("digits-smoke").replace(g_ch=4, d_ch=4, steps=40, seed=seed, device="cpu", ckpt_every=40,
                                             grid_every=40)
        gans.append(train_gan(cfg, root / "gan" / f"g{seed}"))
    fcfg = preset("classifier-digits-smoke").replace(steps=60, eval_every=60, device="cpu")
    filt = train_classifier(fcfg, digits_train, root / "classifier" / "filter")
    return gans, filt


@pytest.fixture(scope="module")
def card(runs, tmp_path_factory):
    gans, filt = runs
    return share.export_card(gans, filt, tmp_path_factory.mktemp("card") / "card", threshold=0.5, n_per_class=20)


def _files(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".chunks" not in p.parts}


def test_round_trip_is_bit_identical_to_the_runs(runs, card):
    gans, filt = runs
    G, C, info = share.load_card(card)
    assert len(G) == 2 and info["dataset"]["name"] == "digits" and info["recommended_threshold"] == 0.5
    z, y = torch.randn(12, 128, generator=torch.Generator().manual_seed(3)), torch.arange(12) % 10
    for g, run in zip(G, gans):
        assert torch.equal(g(z, y), load_generator(run.path)(z, y))
    x = load_dataset("digits", "test").images[:8].float() / 127.5 - 1
    assert torch.equal(C(x), load_classifier(filt.path)(x))
    assert sorted(p.name for p in card.iterdir()) == ["card.json", "filter.safetensors", "generator-0.safetensors",
                                                      "generator-1.safetensors"]
    assert not any(p.suffix in (".pt", ".pkl") for p in card.iterdir())
    rates = info["acceptance"]["per_class"]
    assert len(rates) == 10 and len(rates[0]) == len(share.THRESHOLDS)
    assert info["sizes_MiB"]["generators"] < info["sizes_MiB"]["dataset_raw"]


def _copy(card, tmp_path):
    dst = tmp_path / "card"
    shutil.copytree(card, dst)
    return dst


def _rewrite(path, drop=None):
    """Re-save a safetensors file without tensor `drop`; returns its new sha256 (so that only the names differ)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state.pop(drop)
    save_file(state, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_refusal_names_the_file(card, runs, tmp_path):
    # Tampered bytes.
    c = _copy(card, tmp_path / "a")
    blob = bytearray((c / "generator-1.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (c / "generator-1.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CardError, match=r"generator-1\.safetensors does not match the sha256"):
        share.load_card(c)
    # A missing tensor (the hash on the card updated, as a careless edit would).
    c = _copy(card, tmp_path / "b")
    meta = json.loads((c / "card.json").read_text())
    name = next(iter(meta["filter"]["tensors"]))
    meta["filter"]["sha256"] = _rewrite(c / "filter.safetensors", drop=name)
    (c / "card.json").write_text(json.dumps(meta))
    with pytest.raises(CardError, match=r"filter\.safetensors holds other tensors than the card lists"):
        share.load_card(c)
    # Another architecture: the config on the card does not build these tensors.
    c = _copy(card, tmp_path / "c")
    meta = json.loads((c / "card.json").read_text())
    meta["generators"][0]["config"]["g_ch"] = 8
    (c / "card.json").write_text(json.dumps(meta))
    with pytest.raises(CardError, match=r"generator-0\.safetensors is not the architecture of its config"):
        share.load_card(c)
    # A newer format.
    c = _copy(card, tmp_path / "d")
    meta = json.loads((c / "card.json").read_text())
    meta["format_version"] = share.FORMAT_VERSION + 1
    (c / "card.json").write_text(json.dumps(meta))
    with pytest.raises(CardError, match="newer than this lab's"):
        share.load_card(c)
    # A pickled checkpoint passed as a card, or named by one.
    with pytest.raises(CardError, match=r"checkpoint\.pt is a file; a card is a folder"):
        share.load_card(runs[0][0].path / "checkpoint.pt")
    c = _copy(card, tmp_path / "e")
    meta = json.loads((c / "card.json").read_text())
    shutil.copy(runs[0][0].path / "checkpoint.pt", c / "g.pt")
    meta["generators"][0]["file"] = "g.pt"
    (c / "card.json").write_text(json.dumps(meta))
    with pytest.raises(CardError, match=r"names g\.pt: a card holds only \.safetensors files"):
        share.load_card(c)
    with pytest.raises(CardError, match="not a generator card"):
        share.load_card(tmp_path)
    with pytest.raises(CardError, match="is not a finished GAN run"):
        share.export_card([Run(tmp_path)], runs[1], tmp_path / "x", threshold=0.9)


@pytest.mark.parametrize("fmt", ["png", "npz"])
def test_synthesis_is_deterministic_for_a_seed(card, tmp_path, fmt):
    a = share.synthesize(card, 50, 0.5, tmp_path / "a", fmt=fmt, seed=4, chunk=20, device="cpu", max_draws_per_class=DRY)
    b = share.synthesize(card, 50, 0.5, tmp_path / "b", fmt=fmt, seed=4, chunk=20, device="cpu", max_draws_per_class=DRY)
    assert _files(a) == _files(b)
    ds = load_dataset(f"folder:{a}", "train")
    assert len(ds) == 50 and ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 16, 16)
    counts = ds.class_counts().tolist()
    stats = json.loads((a / "filter_stats.json").read_text())
    starved = stats["starved_classes"]
    fed = [n for c, n in enumerate(counts) if c not in starved]
    assert len(fed) >= 2 and max(fed) - min(fed) <= 3  # class-balanced chunks over the classes the filter feeds
    assert all(counts[c] < min(fed) for c in starved)  # only what came before the class starved
    assert ds.classes == [str(d) for d in range(10)]
    assert sum(r["accepted"] for r in stats["per_class"]) >= 50 and stats["threshold"] == 0.5
    if fmt == "png":
        names = sorted(p.stem for p in a.rglob("*.png"))
        assert names == [f"{i:07d}" for i in range(50)]  # every index once
    c = share.synthesize(card, 50, 0.5, tmp_path / "c", fmt=fmt, seed=5, chunk=20, device="cpu", max_draws_per_class=DRY)
    assert _files(c) != _files(a)


def test_an_interrupted_synthesis_resumes_to_the_same_files(card, tmp_path, monkeypatch):
    whole = share.synthesize(card, 60, 0.5, tmp_path / "whole", seed=1, chunk=20, device="cpu", max_draws_per_class=DRY)
    calls = {"n": 0}
    real = FilteredSampler.next_batch

    def dies_in_the_third_chunk(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(FilteredSampler, "next_batch", dies_in_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        share.synthesize(card, 60, 0.5, tmp_path / "part", seed=1, chunk=20, device="cpu", max_draws_per_class=DRY)
    monkeypatch.setattr(FilteredSampler, "next_batch", real)
    assert len(list((tmp_path / "part").rglob("*.png"))) == 40
    resumed = share.synthesize(card, 60, 0.5, tmp_path / "part", seed=1, chunk=20, device="cpu", max_draws_per_class=DRY)
    assert _files(resumed) == _files(whole)
    with pytest.raises(CardError, match="other settings"):
        share.synthesize(card, 60, 0.9, tmp_path / "part", seed=1, chunk=20, device="cpu", max_draws_per_class=DRY)


def test_a_classifier_trains_on_the_written_dataset(card, tmp_path):
    out = share.synthesize(card, 200, 0.5, tmp_path / "syn", seed=0, chunk=100, device="cpu", max_draws_per_class=DRY)
    cfg = ex.classifier_config("smoke", None, "data", train_folder=str(out), steps=20, eval_every=20, device="cpu")
    run = ex.real_classifier(cfg, tmp_path / "runs")
    done = run.done()
    assert done["train_images"] == 200 and 0 <= done["error"] <= 100
    assert run.config(type(cfg)).train_folder == str(out)
    with pytest.raises(Exception, match="synthetic training set"):
        load_dataset(f"folder:{out}", "test")


def test_the_cli_writes_the_same_card_and_a_dataset(runs, card, tmp_path):
    import subprocess
    import sys

    gans, filt = runs
    out = tmp_path / "cli-card"
    cmd = [sys.executable, "-m", "lab", "export-card", "--gan", *(str(g.path) for g in gans), "--filter", str(filt.path),
           "--out", str(out), "--threshold", "0.5"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("generator-0.safetensors", "generator-1.safetensors", "filter.safetensors"):
        assert (out / name).read_bytes() == (card / name).read_bytes(), name
    G, _, info = share.load_card(out)
    assert len(G) == 2 and info["recommended_threshold"] == 0.5
    data = tmp_path / "cli-data"
    res = subprocess.run([sys.executable, "-m", "lab", "synthesize", "--card", str(out), "--n", "20", "--out", str(data),
                          "--format", "npz", "--device", "cpu", "--max-draws-per-class", str(DRY)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(load_dataset(f"folder:{data}", "train")) == 20 and "wrote" in res.stdout
