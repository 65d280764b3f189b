"""lab.study and lab.ledger: the manifest, a whole (tiny) study into a ledger, a second call that trains nothing,
the ledger's weights against the runs' checkpoints, a restore into a fresh run store, RESULTS.md from the
ledger with no dataset on disk; and the committed RESULTS.md against the committed ledger."""
import json
from pathlib import Path

import pytest
import torch

from lab import ledger as lg
from lab.errors import LabError
from lab import jobs as jobs_
from lab import fashion_idx, profiles, report, study
from lab.runs import Run, run_dir, run_lock

REPO = Path(__file__).resolve().parent.parent




def test_the_manifest_is_the_union_of_the_grids_in_priority_order():
    jobs = study.manifest("study")
    names = [j.name() for j in jobs]
    assert len(names) == len(set(names))  # every run once
    assert [j.priority for j in jobs] == sorted(j.priority for j in jobs)
    first, second = jobs[0].config, jobs[1].config
    assert first.kind == "classifier" and first.source == "real" and first.subset == 0 and first.seed == 0  # the filter
    assert second.kind == "gan" and second.block == "add" and second.seed == 0
    gans = [j.config for j in jobs if j.kind == "gan"]
    assert {(g.block, g.seed) for g in gans} == {("add", s) for s in range(4)} | {("concat", s) for s in range(3)}
    metrics = [j for j in jobs if j.kind == "metrics"]
    assert len(metrics) >= 8 and all(j.priority == 9 for j in metrics)  # the FID correlation's >= 8 GAN sets
    ec = [j.config for j in jobs if j.kind == "ecgan" and j.priority == 5]
    assert {c.fraction for c in ec} == {0.1, 0.3} and {c.seed for c in ec} == {0, 1, 2}
    # Within tier 8 the runs that claims test over seeds (BN ablation, adaptive rules) precede the sweeps.
    from lab.manifest import descriptive

    P, base = profiles.get("study"), next(j.config for j in jobs if j.priority == 0)
    eight = [descriptive(j.config, P, base) for j in jobs if j.priority == 8]
    assert eight == sorted(eight) and 0 < sum(eight) < len(eight)
    ablation = [j.config for j in jobs if j.priority == 8 and not descriptive(j.config, P, base) and j.kind == "ecgan"]
    assert {(c.bn_stats, c.threshold_mode) for c in ablation} == {("real", "fixed"), ("all", "freematch"), ("all", "flexmatch")}


def test_a_tiny_study_into_a_ledger(tmp_path, tiny, digits_root, monkeypatch):
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    out = study.study(30, 1, tiny, root, ledger, str(digits_root), steps=4, out=tmp_path / "RESULTS.md",
                      fig_dir=tmp_path / "results")
    jobs = study.manifest(tiny, str(digits_root), steps=4)
    assert len(out) == len(jobs) and all(jobs_.in_ledger(j, ledger) for j in jobs)
    assert not list(ledger.rglob("checkpoint.pt")) and not list(ledger.rglob("*.tmp*"))
    gan = next(j for j in jobs if j.kind == "gan")
    name = gan.name()
    assert {p.name for p in (ledger / "gan" / name).iterdir()} == {
        "config.json", "stats.jsonl", "done.json", "runtime.json", "record.json", "weights.safetensors", "samples.png"}
    rec = json.loads((ledger / "gan" / name / "record.json").read_text())
    assert rec["seconds"] > 0 and rec["machine"]["cpu"]
    # The ledger's weights are the run's EMA generator, and load_generator reads them as it reads a checkpoint.
    from lab.train.gan import load_generator

    a, b = load_generator(root / "gan" / name), load_generator(ledger / "gan" / name)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # Every GAN set's metrics carry the per-class acceptance at the profile's threshold.
    mets = [json.loads(p.read_text()) for p in (ledger / "metrics").glob("*.json")]
    assert len(mets) == sum(j.kind == "metrics" for j in jobs)
    assert all(m["acceptance"]["threshold"] == 0.0 and len(m["acceptance"]["per_class"]) == 10 for m in mets)
    acc = [json.loads(p.read_text()) for p in (ledger / "acceptance").glob("*.json")]  # each GAN's, early
    assert len(acc) == sum(j.kind == "gan" for j in jobs) and all(len(a["acceptance"]["per_class"]) == 10 for a in acc)
    # A second call finds everything in the ledger and trains nothing.
    assert study.study(30, 1, tiny, root, ledger, str(digits_root), results=False, steps=4) == []
    # A new session: a fresh run store gets the ledger's runs back, and a stream classifier can load them.
    fresh = tmp_path / "fresh"
    stream = next(j for j in jobs if j.kind == "classifier" and j.config.source == "gan")
    for kind, dep in study.needs(stream):
        assert lg.restore(ledger, kind, dep, fresh).is_done()
    from lab.train.classifier import load_classifier

    load_classifier(fresh / "classifier" / stream.config.filter)
    # The notebooks open on the ledger: restored into a run store, every run of the manifest is there, finished,
    # and asking for it trains nothing; the GAN-set metrics are found in the store's cache.
    store = tmp_path / "notebook-store"
    assert lg.open_in(store, ledger) == len([j for j in jobs if j.config is not None])
    assert lg.open_in(store, ledger) == 0  # once
    from lab import experiments as ex

    monkeypatch.setattr(ex, "get_or_train", lambda *a, **k: pytest.fail("a ledger run was trained again"))
    for j in jobs:
        if j.config is not None:
            assert Run(store / j.kind / j.name()).is_done(getattr(j.config, "steps", None) or None)
    assert {p.name for p in (store / "metrics").glob("*.json")} == {p.name for p in (ledger / "metrics").glob("*.json")}
    with pytest.raises(LabError, match="not the study's ledger"):
        lg.open_in(store, tmp_path / "nothing")
    # RESULTS.md from the ledger alone (no dataset where data_root points), the same page as the study wrote.
    page = (tmp_path / "RESULTS.md").read_text()
    again = report.write(ledger, tmp_path / "again.md", tmp_path / "results", tiny, str(tmp_path / "no-data"), steps=4)
    assert again.read_text().replace("again.md", "RESULTS.md") == page
    assert "## Adequacy rules" in page and "## GANs: per-class acceptance" in page
    assert "the same-#steps budget is 0.06 epochs of the largest real subset" in page  # 4 steps: far below 5 epochs


def test_a_longer_budget_continues_the_ledgers_runs_and_records_where_they_came_from(tmp_path, tiny, digits_root):
    """EC-GAN's runs asked for more iterations: the lanes continue the store's finished runs (not from scratch),
    the ledger's copy is replaced, and its record keeps the first export's machine and the step it reached."""
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    short = [Path(p) for p in study.study(30, 1, tiny, root, ledger, str(digits_root), results=False, steps=4,
                                         only=("ecgan",))]
    assert short and all(Run(p).done()["step"] == 4 for p in short)
    first = {p.name: json.loads((p / "record.json").read_text()) for p in short}
    lines = {p.name: Run(p).stats() for p in short}  # with their wall times: a retrained run would differ
    longer = [Path(p) for p in study.study(30, 1, tiny, root, ledger, str(digits_root), results=False, steps=6,
                                          only=("ecgan",))]
    assert sorted(p.name for p in longer) == sorted(first)
    for p in longer:
        assert Run(p).done()["step"] == 6 and Run(p).stats()[:len(lines[p.name])] == lines[p.name]  # continued
        rec = json.loads((p / "record.json").read_text())
        assert rec["continued"] == {"from_step": 4, "exported": first[p.name]["exported"],
                                    "seconds": first[p.name]["seconds"], "machine": first[p.name]["machine"]}
        assert rec["seconds"] < rec["train_seconds"] + 60  # this export's wall time: the last 2 steps


def test_a_failing_run_is_logged_and_the_others_go_on(tmp_path, tiny, digits_root, monkeypatch):
    from lab import experiments as ex

    real = ex.train_config

    def broken(cfg, root=None, on_step=None):
        if cfg.kind == "gan":
            raise RuntimeError("a broken GAN")
        return real(cfg, root, on_step)

    monkeypatch.setattr(ex, "train_config", broken)
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    out = study.study(30, 1, tiny, root, ledger, str(digits_root), results=False, steps=4)
    failures = [json.loads(line) for line in (root / "study-failures.jsonl").read_text().splitlines()]
    assert {f["kind"] for f in failures} == {"gan"} and "a broken GAN" in failures[0]["error"]
    assert out and not (ledger / "gan").exists()  # the others were exported; nothing that needs a GAN ran
    assert not any(Run(p).config(ex.ClassifierConfig).source == "gan" for p in (ledger / "classifier").iterdir())


def test_only_takes_the_jobs_of_the_kinds_named(tmp_path, tiny, digits_root):
    jobs = study.manifest("study")
    parts = {k: jobs_.select(jobs, (k,)) for k in jobs_.JOB_KINDS}
    assert sum(len(p) for p in parts.values()) == len(jobs) and all(parts.values())
    assert all(j.kind == "ecgan" for j in parts["ecgan"]) and all(j.config.source == "real" for j in parts["real"])
    assert jobs_.select(jobs, ("ecgan", "real")) == [j for j in jobs if j in parts["ecgan"] or j in parts["real"]]
    with pytest.raises(LabError, match="unknown kind"):
        jobs_.select(jobs, ("gans",))
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    out = study.study(30, 1, tiny, root, ledger, str(digits_root), results=False, steps=4, only=("real",))
    real = jobs_.select(study.manifest(tiny, str(digits_root), steps=4), ("real",))
    assert len(out) == len(real) and {p.parent.name for p in map(Path, out)} == {"classifier"}
    assert not (ledger / "gan").exists() and not (root / "gan").exists()


def test_a_lane_waits_only_for_a_run_in_training_that_one_of_its_jobs_reads(tmp_path, tiny, digits_root, monkeypatch):
    class Waited(Exception):
        pass

    def sleep(seconds):
        raise Waited

    monkeypatch.setattr(study.time, "sleep", sleep)
    jobs = study.manifest(tiny, str(digits_root), steps=4)
    stream = next(j for j in jobs if jobs_.job_kind(j) == "stream")
    real = next(j for j in jobs if jobs_.job_kind(j) == "real" and ("classifier", j.name()) not in study.needs(stream))
    (_, gan), (_, filt) = study.needs(stream)
    root, ledger, deadline = tmp_path / "runs", tmp_path / "ledger", study.time.time() + 3600

    def lane(*jobs):
        return study.lane(list(jobs), root, ledger, deadline, tiny, str(digits_root), log=lambda m: None)

    # Another lane trains a real run that the stream does not read, and nobody trains the stream's GAN or
    # filter: nothing to wait for (the stream waits on a later session).
    other_lane = study._claim(real.name(root), root)
    assert lane(real) == [] and lane(real, stream) == []
    # A lane trains the stream's GAN (holds its claim), or a process its filter (holds the run's lock): it waits.
    gan_lane = study._claim(gan, root)
    with pytest.raises(Waited):
        lane(real, stream)
    gan_lane.close()
    with run_lock(root / "classifier" / filt):
        with pytest.raises(Waited):
            lane(stream)
    other_lane.close()


def test_a_plan_takes_jobs_in_priority_order_within_its_budget_and_only_what_can_run(tmp_path):
    jobs = study.manifest("study")
    known = {"real": 0.1, "gan": 1000.0, "stream": 0.1, "ecgan": 0.1}
    est = {j.name(): jobs_.estimate(j, tmp_path, "study", known) for j in jobs}
    everything = jobs_.plan(jobs, tmp_path / "ledger", tmp_path / "runs", 1e12, "study", known)
    assert everything == jobs  # every run a job reads is taken before it
    first = jobs_.plan(jobs, tmp_path / "ledger", tmp_path / "runs", est[jobs[0].name()], "study", known)
    assert first == jobs[:1]  # the filter alone
    # A budget with room for no GAN (3,000 steps x 1,000 s): nothing that reads a GAN, the rest in order.
    taken = jobs_.plan(jobs, tmp_path / "ledger", tmp_path / "runs", 10_000, "study", known)
    assert taken and all(jobs_.job_kind(j) in ("real", "ecgan") for j in taken)
    assert sum(est[j.name()] for j in taken) <= 10_000 and taken == [j for j in jobs if j in taken]
    cheap = [j for j in jobs if jobs_.job_kind(j) in ("real", "ecgan")]
    assert taken == cheap[:len(taken)] or sum(est[j.name()] for j in cheap[:len(taken) + 1]) > 10_000


def test_rates_are_per_kind_and_per_ecgan_method_from_this_cpus_records(tmp_path):
    """EC-GAN's classifier alone costs about a quarter of EC-GAN's step: each method is estimated by its own
    records (a lane must not start an 18-minute run on a 4-minute estimate), by the slowest method's where the
    ledger has none of that method (the BigGAN variant, 33 min, started on a 6-minute pooled estimate); a
    record's wall time counts where it covers the training."""
    from lab.host import cpu_kind, cpu_model
    from lab.presets import preset

    base = preset("fashion-ecgan-study")
    here, other_kind = (cpu_model(), cpu_kind()), (cpu_model(), "AVX-512 BF16" if cpu_kind() != "AVX-512 BF16" else "AVX2")
    for i, (method, wall, train, (cpu, kind)) in enumerate([("classifier", 300.0, 240.0, here),
                                                            ("ecgan", 1200.0, 1000.0, here),
                                                            ("ecgan", 1500.0, 900.0, here),
                                                            ("ecgan", 60.0, 50.0, ("another CPU", cpu_kind())),
                                                            ("ecgan", 70.0, 60.0, other_kind)]):  # same name, faster
        run = tmp_path / "ecgan" / f"r{i}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(base.replace(method=method, seed=i).to_dict()))
        (run / "record.json").write_text(json.dumps({"seconds": wall, "train_seconds": train,
                                                     "machine": {"cpu": cpu, "cpu_kind": kind}}))
    r, n = jobs_.rates(tmp_path), base.steps
    assert r["ecgan:classifier"] == 300 / n and r["ecgan:ecgan"] == 1500 / n  # medians; wall > training
    assert r["ecgan"] == 1200 / n and "another" not in str(r)  # pooled, this CPU's records only
    ec = {j.config.method: j for j in study.manifest("study") if j.kind == "ecgan" and j.priority == 5}
    assert jobs_.estimate(ec["classifier"], tmp_path, known=r) == pytest.approx(300)
    assert jobs_.estimate(ec["ecgan"], tmp_path, known=r) == pytest.approx(1500)
    assert jobs_.estimate(ec["shared-dcgan"], tmp_path, known=r) == pytest.approx(1500)  # none of its own: the slowest


def test_rates_follow_this_cpus_newest_records(tmp_path):
    """Streams drawn in channels_last took half the time of the many runs before them: the rate is the median of
    the newest `RECENT` records of a kind on this CPU, so a few runs of faster code set it."""
    from lab.host import cpu_kind, cpu_model
    from lab.presets import preset

    base = preset("classifier-fashion-study").replace(source="gan", gans=("g",), threshold=0.9)
    old, new = [0.6] * 6, [0.29] * 3
    for i, rate in enumerate(old + new):
        run = tmp_path / "classifier" / f"r{i}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(base.replace(seed=i).to_dict()))
        (run / "record.json").write_text(json.dumps({
            "seconds": rate * base.steps, "exported": f"2026-12-{1 + i:02d} 10:00:00",
            "machine": {"cpu": cpu_model(), "cpu_kind": cpu_kind()}}))
    assert jobs_.RECENT == 5
    assert jobs_.rates(tmp_path)["stream"] == pytest.approx(0.29)  # the newest 5: three fast, two slow
    (tmp_path / "classifier" / "r8" / "record.json").unlink()
    (tmp_path / "classifier" / "r7" / "record.json").unlink()
    assert jobs_.rates(tmp_path)["stream"] == pytest.approx(0.6)  # one fast among the newest 5


def test_a_streams_rule_is_estimated_by_its_own_records_else_by_its_measured_default(tmp_path):
    """The quantile rule at base 0.9 draws 10 samples per image, FreeMatch's about one: a stream of each is
    estimated by its rule's records (a lane must not start a 2-hour run on a 46-minute estimate)."""
    streams = {(j.config.threshold_mode, j.config.threshold): j for j in study.manifest("study")
               if j.kind == "classifier" and j.config.source == "gan" and j.config.seed == 0}
    quantile, freematch, fixed = streams[("quantile", 0.9)], streams[("freematch", 0.9)], streams[("fixed", 0.9)]
    n = fixed.config.steps
    known = {"stream": 0.6, "stream:freematch": 0.2}
    assert jobs_.estimate(fixed, tmp_path, known=known) == pytest.approx(0.6 * n)
    assert jobs_.estimate(freematch, tmp_path, known=known) == pytest.approx(0.2 * n)
    assert jobs_.estimate(quantile, tmp_path, known=known) == pytest.approx(jobs_.DEFAULT_SEC_PER_STEP["stream:quantile"] * n)
    assert jobs_.estimate(quantile, tmp_path, known={**known, "stream:quantile": 1.5}) == pytest.approx(1.5 * n)


def test_a_run_the_store_holds_finished_at_fewer_steps_is_estimated_by_the_steps_left(tmp_path):
    """A longer budget continues a finished run from its last checkpoint: a lane estimates only what is left."""
    job = next(j for j in study.manifest("study") if j.kind == "ecgan" and j.config.method == "classifier")
    known, n = {"ecgan:classifier": 0.2}, job.config.steps
    store = tmp_path / "store"
    assert jobs_.estimate(job, tmp_path, known=known, root=store) == pytest.approx(0.2 * n)  # not in the store
    run = store / "ecgan" / run_dir(job.config).name
    run.mkdir(parents=True)
    (run / "done.json").write_text(json.dumps({"step": n // 4}))
    assert jobs_.estimate(job, tmp_path, known=known, root=store) == pytest.approx(0.2 * (n - n // 4))
    (run / "done.json").write_text(json.dumps({"step": n}))  # finished at its length: only its export is left
    assert jobs_.estimate(job, tmp_path, known=known, root=store) == 0


def test_minutes_must_be_positive(tmp_path):
    from lab.errors import LabError

    with pytest.raises(LabError, match="positive number of minutes"):
        study.study(0, 1, "smoke", tmp_path / "r", tmp_path / "l")


def test_the_committed_results_page_is_what_the_committed_ledger_gives(tmp_path):
    """RESULTS.md can never drift from its records: regenerated from results/ledger/ (no dataset, no training)."""
    ledger = REPO / "results" / "ledger"
    if not (ledger / "datasets.json").exists():
        pytest.fail("results/ledger/ has no datasets.json: the study's ledger is missing from this checkout")
    out = tmp_path / "RESULTS.md"
    report.write(ledger, out, tmp_path / "results", "study", str(tmp_path / "no-data"))
    text = out.read_text().replace(f"`{ledger}`", "`results/ledger`")
    assert text == (REPO / "RESULTS.md").read_text(), "RESULTS.md differs from `python -m lab results`: regenerate it"
    committed = {p.name for p in (REPO / "results").glob("*.png")}
    assert {p.name for p in (tmp_path / "results").glob("*.png")} == committed


def test_every_ledger_run_is_named_by_its_config():
    """A config field added later (with its `legacy` value) must not rename the ledger's runs."""
    from lab.ledger import CONFIGS
    from lab.runs import run_dir

    ledger = REPO / "results" / "ledger"
    runs = [p for kind in CONFIGS for p in (ledger / kind).glob("*") if (p / "config.json").exists()]
    assert runs
    for p in runs:
        cfg = Run(p).config(CONFIGS[p.parent.name])
        assert run_dir(cfg).name == p.name


@pytest.mark.skipif(not Path(fashion_idx.FASHION_IDX_DIR, "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_the_study_notebooks_open_on_the_committed_ledger_and_train_nothing(tmp_path):
    """PROFILE = "study": notebooks 04, 06 and 07, in one run store as a user would run them, show the committed
    ledger's runs (a run or a GAN set's metrics the ledger lacks is named, not trained), and the store ends with
    exactly the ledger's runs. (05 and 08 read the ledger the same way: `lab.runs.if_stored` and
    `lab.experiments.gan_pool`, tested in test_runs.py.)"""
    from lab.notebooks import demo_parameters, execute

    params = {**demo_parameters(tmp_path, "study"), "DATA_ROOT": str(tmp_path / "data")}  # Debian's files are read
    shown = ""
    for nb in ("04_classifier_on_samples", "06_multi_gan", "07_ecgan_svhn"):
        out = json.loads(execute(REPO / "notebooks" / f"{nb}.ipynb", tmp_path, params, timeout=600).read_text())
        shown += "".join("".join(o.get("text", [])) for c in out["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    ledger = REPO / "results" / "ledger"
    for kind in ("gan", "classifier", "ecgan"):
        store = {p.name for p in (tmp_path / "runs" / kind).glob("*")}
        assert store == {p.name for p in (ledger / kind).glob("*")}, kind
    assert "restored into" in shown


def test_a_gan_sets_metrics_count_the_fid_reference_once_per_machine(tmp_path, monkeypatch):
    """FID's reference statistics (10,000 images through the FID network, ~40 min on a CPU thread) are computed
    by the first GAN set of a machine and cached: a metrics job counts them only where the cache lacks them, and
    a plan only once."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    P, ips = profiles.get("study"), jobs_.IMAGES_PER_SECOND
    metrics = [j for j in study.manifest("study") if j.kind == "metrics"][:2]
    alone, first = 60 + P.n_fid / ips, 60 + (P.n_fid + P.n_fid_reference) / ips
    assert jobs_.estimate(metrics[0], tmp_path) == pytest.approx(first)
    store = tmp_path / "store"
    for kind, name in {d for j in metrics for d in study.needs(j)}:  # their GANs and the filter: finished
        (store / kind / name).mkdir(parents=True)
        (store / kind / name / "done.json").write_text(json.dumps({"step": 1}))
    assert jobs_.plan(metrics, tmp_path, store, first + alone, known={}) == metrics  # the reference once
    assert jobs_.plan(metrics, tmp_path, store, first + alone - 1, known={}) == metrics[:1]
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"lab-{P.dataset}-n{P.n_fid_reference}-0123456789ab-inception0-stat-fid-2048.pt").write_bytes(b"")
    assert jobs_.estimate(metrics[0], tmp_path) == pytest.approx(alone)
    assert jobs_.estimate(metrics[0], tmp_path, cached=False) == pytest.approx(first)
