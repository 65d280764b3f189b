"""The train commands (`python -m lab train-gan | train-classifier | train-ecgan`): --dry-run, and every user
mistake ending in exit 2 with one line that says what to do, the files on disk unchanged (hashes before and
after): wrong preset kinds, NaN and bad devices in --set, --run-dir naming a file or an uncreatable path, a
resume under other settings, a run another process trains, damaged checkpoints and run files."""
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
TINY = ["--set", "log_every=1", "ckpt_every=2", "device=cpu"]


def lab(*args, cwd, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lab", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def hashes(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_line_error(r, *parts):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and "it/s" not in line and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("cmd,preset", [("train-gan", "digits-smoke"), ("train-classifier", "classifier-digits-smoke"),
                                        ("train-ecgan", "digits-ecgan-smoke")])
def test_dry_run_prints_the_config_and_writes_nothing(tmp_path, cmd, preset):
    r = lab(cmd, "--preset", preset, "--dry-run", "--steps", 7, "--seed", 3, "--root", tmp_path / "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    body, last = r.stdout.rsplit("}", 1)
    cfg = json.loads(body + "}")
    assert cfg["steps"] == 7 and cfg["seed"] == 3
    assert last.strip().startswith(f"run directory: {tmp_path / 'runs'}/") and last.strip().endswith("(new)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,parts", [
    (["train-gan", "--preset", "classifier-digits-smoke"], ["is a classifier preset", "train-gan takes one of: digits-smoke"]),
    (["train-classifier", "--preset", "digits-ecgan-smoke"], ["is a ecgan preset", "classifier-digits-smoke"]),
    (["train-gan", "--preset", "digits-smoke", "--set", "g_lr=NaN"], ["GANConfig.g_lr must be a finite number, got nan"]),
    (["train-classifier", "--preset", "classifier-digits-smoke", "--set", "lr=Infinity"], ["must be a finite number, got inf"]),
    (["train-gan", "--preset", "digits-smoke", "--set", "device=foo"], ["GANConfig.device must be 'auto', 'cpu'"]),
    (["train-gan", "--preset", "digits-smoke", "--set", "g_lr"], ["--set takes key=value pairs"]),
    (["train-ecgan", "--preset", "digits-ecgan-smoke", "--set", "fraction=NaN"], ["ECGANConfig.fraction must be a finite"]),
    (["train-gan", "--preset", "nope"], ["Unknown preset 'nope'"]),
])
def test_plain_mistakes_write_nothing(tmp_path, args, parts):
    one_line_error(lab(*args, "--root", tmp_path / "runs", cwd=tmp_path), *parts)
    assert list(tmp_path.iterdir()) == []


def test_run_dir_that_is_a_file_or_cannot_be_created(tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    one_line_error(lab("train-gan", "--preset", "digits-smoke", "--run-dir", f, cwd=tmp_path), "is a file")
    assert f.read_text() == "mine"
    one_line_error(lab("train-gan", "--preset", "digits-smoke", "--run-dir", f / "sub", cwd=tmp_path), "cannot be created")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """A 2-step smoke GAN run with a checkpoint (trained by the CLI itself)."""
    root = tmp_path_factory.mktemp("cli")
    r = lab("train-gan", "--preset", "digits-smoke", "--steps", 2, *TINY, "--run-dir", root / "g", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "done, 2 steps" in r.stdout
    return root / "g"


def _copy(src, dest):
    import shutil

    shutil.copytree(src, dest)
    return dest


def test_a_resume_under_other_settings_is_refused_even_after_config_json_was_edited(gan_run, tmp_path):
    g = _copy(gan_run, tmp_path / "g")
    cfg = json.loads((g / "config.json").read_text())
    (g / "config.json").write_text(json.dumps({**cfg, "g_lr": 1e-4, "d_steps": 2}, indent=2))  # edited by hand
    before = hashes(g)
    err = one_line_error(lab("train-gan", "--preset", "digits-smoke", "--steps", 4, *TINY, "d_steps=2", "g_lr=1e-4",
                             "--run-dir", g, cwd=tmp_path), "checkpoint.pt was written with d_steps = 1, and d_steps = 2",
                         "2 field(s) differ: d_steps, g_lr", "new run directory")
    assert hashes(g) == before, err


def test_a_run_another_process_trains_is_refused(gan_run, tmp_path):
    g = _copy(gan_run, tmp_path / "g")
    before = hashes(g)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lab.runs import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)", str(g)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(lab("train-gan", "--preset", "digits-smoke", "--steps", 4, *TINY, "--run-dir", g, cwd=tmp_path),
                       f"is being trained by process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert {k: v for k, v in hashes(g).items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


@pytest.mark.parametrize("damage,parts", [
    (lambda g: (g / "checkpoint.pt").write_bytes(b""), ["is empty (0 bytes)", "delete it to restart"]),
    (lambda g: (g / "checkpoint.pt").write_bytes(random.Random(0).randbytes(3000)), ["is not a torch checkpoint or is damaged"]),
    (lambda g: torch.save({"weight": torch.zeros(2)}, g / "checkpoint.pt"), ["is not a checkpoint of this lab's runs"]),
    (lambda g: (g / "config.json").write_text('{"dataset": "dig'), ["config.json is damaged (not valid JSON",
                                                                       "delete config.json and run the same command"]),
    (lambda g: (g / "done.json").write_text(""), ["done.json is damaged (empty)", "delete it and run the same command"]),
    (lambda g: (g / "runtime.json").write_text(""), ["runtime.json is damaged (empty)", "delete it"]),
])
def test_damaged_files_are_named_with_what_to_do(gan_run, tmp_path, damage, parts):
    g = _copy(gan_run, tmp_path / "g")
    damage(g)
    before = hashes(g)
    one_line_error(lab("train-gan", "--preset", "digits-smoke", "--steps", 4, *TINY, "--run-dir", g, cwd=tmp_path), *parts)
    assert hashes(g) == before


def test_a_torn_last_stats_line_is_repaired_on_resume(gan_run, tmp_path):
    g = _copy(gan_run, tmp_path / "g")
    lines = (g / "stats.jsonl").read_text().splitlines()
    (g / "stats.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "loss_d_re')  # a crash mid-write
    r = lab("train-gan", "--preset", "digits-smoke", "--steps", 4, *TINY, "--run-dir", g, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line)["step"] for line in (g / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_share_commands_check_their_inputs_before_writing(tmp_path):
    from lab.errors import CardError
    from lab.runs import Run
    from lab.share import export_card, synthesize

    with pytest.raises(CardError, match=r"must be a number in \[0, 1\].*got 7"):
        export_card([Run(tmp_path / "g")], Run(tmp_path / "f"), tmp_path / "card", threshold=7)
    with pytest.raises(CardError, match=r"must be a number in \[0, 1\].*got 2.0"):
        synthesize(tmp_path / "card", 10, 2.0, tmp_path / "out")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(CardError, match="is a file; name a folder"):
        synthesize(tmp_path / "card", 10, 0.5, tmp_path / "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_text() == "mine"
    r = lab("export-card", "--gan", tmp_path / "g", "--filter", tmp_path / "f", "--out", tmp_path / "c", "--threshold", 7,
            cwd=tmp_path)
    one_line_error(r, "must be a number in [0, 1]")
    assert not (tmp_path / "c").exists()


def test_results_on_a_folder_without_runs_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(lab("results", "--runs", tmp_path / "empty", "--out", tmp_path / "R.md", "--figures", tmp_path / "f",
                       cwd=tmp_path), "holds no runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_exploding_losses_warn_once(tmp_path):
    from lab.runs import Run
    from lab.train.loop import LogWindow

    run = Run(tmp_path)
    log = LogWindow(run, 10, 0, 1, "t", lambda s: {})
    with pytest.warns(RuntimeWarning, match=r"loss_d = 1.2e\+05 at step 1: the losses are exploding without becoming NaN"):
        log.add(loss_d=torch.tensor(1.2e5))
        log.log(1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log.add(loss_d=torch.tensor(3e5))
        log.log(2)  # once per run
        log.close() if hasattr(log, "close") else None


def test_the_api_takes_the_run_lock_too(tmp_path, digits_train):
    """train_classifier (like train_gan and train_ecgan) holds its run's lock: while another process holds it,
    the call waits, then finishes the run."""
    import time

    from lab.presets import preset
    from lab.train.classifier import train_classifier

    path = tmp_path / "c"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lab.runs import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(4)", str(path)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.perf_counter()
    cfg = preset("classifier-digits-smoke").replace(width=8, steps=2, log_every=1, eval_every=2, ckpt_every=2,
                                                    device="cpu")
    run = train_classifier(cfg, digits_train, path)
    holder.wait()
    assert time.perf_counter() - t0 > 2 and run.is_done(2)


@pytest.mark.parametrize("args,parts", [
    (["demo", "--only", "99"], ["--only 99: no notebook starts with that"]),
    (["bench", "gan", "--steps", "0"], ["argument --steps: must be at least 1, got 0"]),
    (["study", "--minutes", "nan"], ["argument --minutes: must be a positive number, got nan"]),
    (["study", "--status", "--only", "ecgan,gans"], ["study --only: unknown kind(s) gans; choose from gan, real"]),
    (["synthesize", "--card", "c", "--n", "-3", "--out", "o"], ["argument --n: must be at least 1, got -3"]),
])
def test_other_commands_refuse_bad_arguments_with_exit_2(tmp_path, args, parts):
    r = lab(*args, *(["--out", tmp_path / "demo"] if args[0] == "demo" else []), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert all(p in r.stderr for p in parts), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_study_status_counts_only_the_kinds_asked_for(tmp_path):
    r = lab("study", "--status", "--only", "ecgan", "--ledger", tmp_path / "ledger", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from lab import jobs, study

    hours = {t: sum(jobs.estimate(j, tmp_path / "ledger", known={}) for j in study.manifest("study")
                    if j.kind == "ecgan" and j.priority == t) / 3600 for t in (5, 8)}
    assert r.stdout.splitlines() == [f"tier 5: 0 in the ledger, 30 to do (~{hours[5]:.1f} h of one thread here)",
                                     f"tier 8: 0 in the ledger, 24 to do (~{hours[8]:.1f} h of one thread here)",
                                     f"left: ~{hours[5] + hours[8]:.1f} h of one thread on this CPU (`lab.jobs.estimate`: "
                                     f"the ledger's rates on this CPU, else its defaults)"]
