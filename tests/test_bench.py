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
