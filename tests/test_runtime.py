"""The runtime choice of precision: bf16 autocast on a CPU only where it is measured faster, both branches."""
import contextlib

import pytest
import torch

from lab.train import common


@pytest.fixture
def decide(monkeypatch):
    """cpu_bf16_is_faster without the environment's answer, its cache cleared before and after."""
    monkeypatch.delenv("LAB_CPU_BF16", raising=False)
    common.cpu_bf16_is_faster.cache_clear()
    yield monkeypatch
    common.cpu_bf16_is_faster.cache_clear()


CPU = torch.device("cpu")


def _is_bf16(ctx) -> bool:
    return isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def test_no_native_bf16_means_fp32_without_measuring(decide):
    decide.setattr(common, "cpu_has_native_bf16", lambda: False)
    decide.setattr(common, "_bf16_speedup", lambda: pytest.fail("must not be measured without native bf16"))
    assert not common.cpu_bf16_is_faster()
    assert isinstance(common.autocast(CPU, "auto"), contextlib.nullcontext)
    assert _is_bf16(common.autocast(CPU, "bf16"))  # asked for explicitly: always


@pytest.mark.parametrize("speedup,faster", [(2.0, True), (1.1, False), (0.1, False)])
def test_native_bf16_is_used_only_when_measured_faster(decide, speedup, faster):
    decide.setattr(common, "cpu_has_native_bf16", lambda: True)
    calls = []
    decide.setattr(common, "_bf16_speedup", lambda: calls.append(1) or speedup)
    assert common.cpu_bf16_is_faster() is faster
    assert _is_bf16(common.autocast(CPU, "auto")) is faster
    assert common.use_channels_last(CPU, "auto") is faster  # the fast path is bf16 with channels_last
    assert common.use_channels_last(CPU, "on") and not common.use_channels_last(CPU, "off")
    assert isinstance(common.autocast(CPU, "fp32"), contextlib.nullcontext)
    assert len(calls) == 1  # measured once per process


def test_the_environment_forces_the_answer(decide):
    decide.setattr(common, "_bf16_speedup", lambda: pytest.fail("forced: no measurement"))
    decide.setenv("LAB_CPU_BF16", "1")
    assert common.cpu_bf16_is_faster()
    common.cpu_bf16_is_faster.cache_clear()
    decide.setenv("LAB_CPU_BF16", "0")
    assert not common.cpu_bf16_is_faster()


def test_the_measurement_runs_both_ways():
    assert common._bf16_speedup(steps=1) > 0
