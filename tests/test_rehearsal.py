"""The paper profile's rehearsal: every notebook with PROFILE = "paper-rehearsal" on fixture files in the real
formats (CIFAR-10/100 pickles, SVHN .mat), the paper's grids and networks with their counts shrunk; and the
paper presets' networks at full width, one training step each."""
import json
import os
from pathlib import Path

import pytest
import torch

from lab import experiments, fixtures, notebook_grids, profiles
from lab.config import ClassifierConfig, ECGANConfig, GANConfig
from lab.errors import ConfigError
from lab.notebooks import notebooks, run_all
from lab.presets import _REHEARSAL, REHEARSAL_THRESHOLD_SCALE, preset, rehearse

GRIDS = ("04", "05", "06", "07")
# Fields a grid fills with run names (hashes of other configs, which shrink with them).
_NAMES = {"gans", "filter", "train_folder"}


@pytest.fixture
def rehearsal_data(tmp_path, monkeypatch):
    """The rehearsal's fixture files, their checksums named in the environment as run_all names them."""
    path = fixtures.write_rehearsal_data(tmp_path / "data")
    monkeypatch.setenv("LAB_FIXTURE_CHECKSUMS", str(path))
    return tmp_path / "data"


def test_fixture_files_load_through_torchvision_and_leave_its_checksums_alone(rehearsal_data, monkeypatch):
    import torchvision.datasets as tvd

    from lab import data

    real = (tvd.CIFAR10.train_list, tvd.CIFAR100.meta, tvd.SVHN.split_list)
    monkeypatch.setattr(data, "_LOADED", {})
    sizes = {n: len(data.load_dataset(n, "train", str(rehearsal_data), download=False))
             for n in ("cifar10", "cifar100", "svhn")}
    assert sizes == {n: fixtures.REHEARSAL_PER_CLASS[n][0] * c for n, c in (("cifar10", 10), ("cifar100", 100), ("svhn", 10))}
    assert (tvd.CIFAR10.train_list, tvd.CIFAR100.meta, tvd.SVHN.split_list) == real  # nothing leaks past the load
    monkeypatch.delenv("LAB_FIXTURE_CHECKSUMS")
    monkeypatch.setattr(data, "_LOADED", {})
    with pytest.raises(data.DataCorruptError):  # without the fixtures' md5s, torchvision refuses the files
        data.load_dataset("cifar10", "train", str(rehearsal_data), download=False)
    monkeypatch.setenv("LAB_FIXTURE_CHECKSUMS", str(rehearsal_data / "missing.json"))
    with pytest.raises(ConfigError, match="LAB_FIXTURE_CHECKSUMS=.*not a readable checksum file"):
        data.load_dataset("cifar10", "train", str(rehearsal_data), download=False)


def _shape(cfg) -> tuple:
    """What a grid's run is, without the counts and widths the rehearsal shrinks (and the run names and BigGAN
    preset names that change with them)."""
    d = cfg.identity()
    for field in set(_REHEARSAL[type(cfg)]) | _NAMES | {"steps", "biggan"}:
        d.pop(field, None)
    return (type(cfg).__name__, json.dumps(d, sort_keys=True, default=str))


def test_the_rehearsals_grids_are_the_papers_at_one_seed(rehearsal_data):
    """Every run kind of the paper profile's grids (dataset, block, method, fraction, threshold, λ, t, real
    subset, GAN set) is in the rehearsal's grid, at seed 0, and nothing else is."""
    root = str(rehearsal_data)
    seeds = lambda c: (c.seed,) if not isinstance(c, GANConfig) else ()  # the GAN sets' seeds 0..5 are counts of GANs
    for nb in GRIDS:
        paper = [c for c in notebook_grids.notebook_grid(nb, "paper", root) if all(s == 0 for s in seeds(c))]
        rehearsal = notebook_grids.notebook_grid(nb, "paper-rehearsal", root)
        assert {_shape(c) for c in rehearsal} == {_shape(rehearse(c)) for c in paper}, nb
        # Not as many runs: at 2 steps a real subset's same-#epochs run can be its same-#steps run (one run).
        assert len(paper) - len(profiles.get("paper").real_fractions) <= len(rehearsal) <= len(paper), nb


def test_rehearsal_presets_change_counts_widths_and_thresholds_only():
    for name in ("cifar10-paper", "cifar100-concat-paper", "classifier-svhn-paper", "svhn-ecgan-paper"):
        paper, small = preset(name), preset(f"{name}-rehearsal")
        changed = {k for k, v in paper.to_dict().items() if small.to_dict()[k] != v}
        assert changed <= set(_REHEARSAL[type(paper)]) | {"threshold", "biggan"}, (name, changed)
    assert preset("svhn-ecgan-paper-rehearsal").threshold == pytest.approx(0.7 * REHEARSAL_THRESHOLD_SCALE)
    assert preset("svhn-ecgan-paper-rehearsal").biggan == "cifar10-paper-rehearsal"
    p, r = profiles.get("paper"), profiles.get("paper-rehearsal")
    assert (r.dataset, r.block_dataset, r.ecgan_dataset) == (p.dataset, p.block_dataset, p.ecgan_dataset)
    assert (r.real_fractions, r.gan_counts, r.ecgan_fractions, r.lambda_sweep) == \
           (p.real_fractions, p.gan_counts, p.ecgan_fractions, p.lambda_sweep)
    unscale = lambda ts: [None if t is None else round(t / REHEARSAL_THRESHOLD_SCALE, 9) for t in ts]
    assert unscale(r.sweep) == list(p.sweep) and unscale(r.t_sweep) == list(p.t_sweep)


@pytest.mark.parametrize("name,params", [
    ("cifar100-concat-paper", 4_980_000), ("classifier-cifar100-paper", 11_220_132), ("svhn-ecgan-paper", 11_173_962)])
def test_the_paper_networks_train_a_step_at_full_width(name, params, rehearsal_data, tmp_path):
    """The rehearsal trains its networks at 1/8 of the width; the paper's own widths, one step on the fixtures."""
    from lab.models import param_count
    from lab.train.classifier import load_classifier
    from lab.train.ecgan import load_ecgan
    from lab.train.gan import load_generator

    cfg = preset(name).replace(data_root=str(rehearsal_data), steps=1, batch_size=2, log_every=1)
    if isinstance(cfg, ECGANConfig):
        cfg = cfg.replace(fraction=0.1, eval_every=1, ckpt_every=1)
    elif isinstance(cfg, ClassifierConfig):
        cfg = cfg.replace(eval_every=1, ckpt_every=1)
    else:
        cfg = cfg.replace(ckpt_every=1, grid_every=10, d_steps=1)  # no sample grid (1,000 images at ch 64)
    run = experiments.train_config(cfg, root=tmp_path / "runs")
    assert run.done()
    if isinstance(cfg, GANConfig):
        n = param_count(load_generator(run.path))
        assert cfg.g_ch == 64 and abs(n - params) / params < 0.01, n  # 4.3 M with the add block and 10 classes
    elif isinstance(cfg, ClassifierConfig):
        assert param_count(load_classifier(run.path)) == params
    else:
        assert param_count(load_ecgan(run.path)[1]) == params


def test_every_notebook_executes_with_the_paper_rehearsal(tmp_path):
    """All notebooks, in order, one run store, on the fixture files: no cell fails, every notebook exports a
    figure, and the runs are the paper's kinds (CIFAR-10 and CIFAR-100 GANs of both blocks, SVHN EC-GAN of every
    method)."""
    out = tmp_path / "rehearsal"
    done = run_all(out, "paper-rehearsal", jobs=1)
    assert [p.name for p in done] == [p.name for p in notebooks()]
    assert "LAB_FIXTURE_CHECKSUMS" not in os.environ  # run_all restores the environment
    for nb in done:
        cells = json.loads(nb.read_text())["cells"]
        assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"], nb.name
        assert list((out / "figures").glob(f"{nb.stem[:2]}_*.pdf")), f"{nb.name} exported no figure"
    runs = out / "runs"
    gans = [GANConfig.from_dict(json.loads(p.read_text())) for p in runs.glob("gan/*/config.json")]
    assert {(g.dataset, g.block) for g in gans} == {("cifar10", "add"), ("cifar100", "add"), ("cifar100", "concat")}
    assert len([g for g in gans if g.dataset == "cifar10"]) == max(profiles.get("paper").gan_counts)
    ecgans = [ECGANConfig.from_dict(json.loads(p.read_text())) for p in runs.glob("ecgan/*/config.json")]
    assert {e.method for e in ecgans} >= {"classifier", "ecgan", "shared-dcgan", "shared-resnet", "ecgan-biggan"}
    assert {e.dataset for e in ecgans} == {"svhn"}
    assert {e.fraction for e in ecgans} == set(profiles.get("paper").ecgan_fractions)
    metrics = [json.loads(p.read_text()) for p in (runs / "metrics").glob("*.json")]
    assert metrics and all(m["FID"] is not None for m in metrics)  # the paper's FID protocol ran (on 10 samples)


def test_labelled_rows_and_class_grid_draw_what_is_there():
    """Found by the rehearsal: no class with enough accepted samples (notebook 03), a synthetic set without
    some classes (notebook 08)."""
    from lab import plots
    from lab.data import ImageDataset

    fig = plots.labelled_rows(torch.zeros(0, 3, 8, 8), 8, [], title="after filtering")
    assert fig.axes
    images = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    ds = ImageDataset(images, torch.tensor([2, 2, 0]), [str(c) for c in range(4)], "folder")
    fig = plots.class_grid(ds, per_class=5)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "1", "2", "3"]
