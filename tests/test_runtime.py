"""The runtime choice of precision and layout: bf16 autocast and channels_last on a CPU only where they are
measured faster, every branch."""
import contextlib

import pytest
import torch

from lab.train import common


@pytest.fixture
def decide(monkeypatch):
    """The CPU decisions without the environment's answers, their caches cleared before and after."""
    monkeypatch.delenv("LAB_CPU_BF16", raising=False)
    monkeypatch.delenv("LAB_CPU_CHANNELS_LAST", raising=False)
    for f in (common.cpu_bf16_is_faster, common.cpu_channels_last_is_faster):
        f.cache_clear()
    yield monkeypatch
    for f in (common.cpu_bf16_is_faster, common.cpu_channels_last_is_faster):
        f.cache_clear()


CPU = torch.device("cpu")


def _is_bf16(ctx) -> bool:
    return isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def test_no_native_bf16_means_fp32_without_measuring(decide):
    decide.setattr(common, "cpu_has_native_bf16", lambda: False)
    decide.setattr(common, "_channels_last_speedup", lambda: 1.0)
    decide.setattr(common, "_bf16_speedup", lambda: pytest.fail("must not be measured without native bf16"))
    assert not common.cpu_bf16_is_faster()
    assert isinstance(common.autocast(CPU, "auto"), contextlib.nullcontext)
    assert _is_bf16(common.autocast(CPU, "bf16"))  # asked for explicitly: always


@pytest.mark.parametrize("speedup,faster", [(2.0, True), (1.1, False), (0.1, False)])
def test_native_bf16_is_used_only_when_measured_faster(decide, speedup, faster):
    decide.setattr(common, "cpu_has_native_bf16", lambda: True)
    decide.setattr(common, "_channels_last_speedup", lambda: 1.0)  # fp32 gains nothing from channels_last
    calls = []
    decide.setattr(common, "_bf16_speedup", lambda: calls.append(1) or speedup)
    assert common.cpu_bf16_is_faster() is faster
    assert _is_bf16(common.autocast(CPU, "auto")) is faster
    assert common.use_channels_last(CPU, "auto") is faster  # bf16 was measured with channels_last
    assert common.use_channels_last(CPU, "on") and not common.use_channels_last(CPU, "off")
    assert isinstance(common.autocast(CPU, "fp32"), contextlib.nullcontext)
    assert len(calls) == 1  # measured once per process


@pytest.mark.parametrize("speedup,faster", [(1.3, True), (1.05, False), (0.5, False)])
def test_fp32_channels_last_is_used_only_when_measured_faster(decide, speedup, faster):
    decide.setattr(common, "cpu_has_native_bf16", lambda: False)  # fp32 either way
    calls = []
    decide.setattr(common, "_channels_last_speedup", lambda: calls.append(1) or speedup)
    assert common.use_channels_last(CPU, "auto") is faster
    assert isinstance(common.autocast(CPU, "auto"), contextlib.nullcontext)
    assert common.use_channels_last(CPU, "off") is False and common.use_channels_last(CPU, "on") is True
    common.use_channels_last(CPU, "auto")
    assert len(calls) == 1  # measured once per process


def test_bf16_is_measured_against_the_faster_fp32_layout(decide):
    decide.setattr(common, "cpu_has_native_bf16", lambda: True)
    decide.setattr(common, "_channels_last_speedup", lambda: 1.5)
    probes = []
    decide.setattr(common, "_probe_step_ms", lambda variants, steps=5: probes.extend(variants) or [11.0, 10.0])
    assert not common.cpu_bf16_is_faster()  # 1.1x over fp32 in channels_last: below the 1.2x it needs
    assert probes == [(False, True), (True, True)]


def test_the_environment_forces_the_answer(decide):
    decide.setattr(common, "_bf16_speedup", lambda: pytest.fail("forced: no measurement"))
    decide.setattr(common, "_channels_last_speedup", lambda: pytest.fail("forced: no measurement"))
    decide.setenv("LAB_CPU_BF16", "1")
    decide.setenv("LAB_CPU_CHANNELS_LAST", "1")
    assert common.cpu_bf16_is_faster() and common.cpu_channels_last_is_faster()
    common.cpu_bf16_is_faster.cache_clear()
    common.cpu_channels_last_is_faster.cache_clear()
    decide.setenv("LAB_CPU_BF16", "0")
    decide.setenv("LAB_CPU_CHANNELS_LAST", "0")
    assert not common.cpu_bf16_is_faster() and not common.cpu_channels_last_is_faster()
    assert not common.use_channels_last(CPU, "auto")


def test_the_measurements_run_every_way(decide):
    decide.setenv("LAB_CPU_CHANNELS_LAST", "0")
    assert common._channels_last_speedup(steps=1) > 0
    assert common._bf16_speedup(steps=1) > 0


def test_channels_last_is_dropped_for_models_whose_backward_crashes_in_it():
    """A strided 1x1 convolution with < 8 input channels (ResNet-18's shortcut at width 4) segfaulted in
    channels_last on an AVX2 CPU; such models train in the default layout, larger ones keep channels_last."""
    from lab.models import ResNet18
    from lab.train.loop import Runtime

    cpu = torch.device("cpu")
    assert common.channels_last_crashes(cpu, ResNet18(10, 4))
    assert not common.channels_last_crashes(cpu, ResNet18(10, 8))
    assert not common.channels_last_crashes(torch.device("cuda"), ResNet18(10, 4))
    rt = Runtime(cpu, contextlib.nullcontext(), torch.channels_last)
    assert rt.layout_for(ResNet18(10, 8), ResNet18(10, 4)) == torch.contiguous_format
    assert rt.layout_for(ResNet18(10, 8)) == torch.channels_last


def test_a_width_4_classifier_trains_with_channels_last_asked_for(tmp_path, digits_train):
    from lab.presets import preset
    from lab.train.classifier import train_classifier

    cfg = preset("classifier-digits-smoke").replace(width=4, steps=3, log_every=1, eval_every=3, ckpt_every=3,
                                                    channels_last="on", device="cpu")
    run = train_classifier(cfg, digits_train, tmp_path / "c")
    assert run.done()["step"] == 3


def _cfg(**kw):
    from lab.presets import preset

    base = dict(width=8, batch_size=32, steps=7, log_every=1, eval_every=7, ckpt_every=4, device="cpu",
                precision="auto", channels_last="auto")
    return preset("classifier-digits-smoke").replace(**{**base, **kw})


def test_a_run_keeps_the_runtime_its_first_process_measured(decide, tmp_path):
    """Measured once per run, not once per process: a later process reads runtime.json instead of measuring;
    an explicit setting (config or environment) still wins and is written down; another device re-decides."""
    import json

    from lab.runs import Run
    from lab.train.loop import Runtime

    decide.setattr(common, "cpu_has_native_bf16", lambda: False)
    decide.setattr(common, "_channels_last_speedup", lambda: 1.3)
    run = Run(tmp_path / "r")
    run.init(_cfg())
    rt = Runtime.for_run(_cfg(), run)
    saved = lambda: json.loads((run.path / "runtime.json").read_text())
    assert rt.memory_format == torch.channels_last and isinstance(rt.amp, contextlib.nullcontext)
    assert saved() == {"device": "cpu", "bf16": False, "channels_last": True}
    common.cpu_channels_last_is_faster.cache_clear()  # a new process, on which the timing would come out otherwise
    decide.setattr(common, "_channels_last_speedup", lambda: pytest.fail("the run's decision is on disk"))
    assert Runtime.for_run(_cfg(), run).memory_format == torch.channels_last
    assert Runtime.for_run(_cfg(channels_last="off"), run).memory_format == torch.contiguous_format
    assert saved()["channels_last"] is False
    assert Runtime.for_run(_cfg(), run).memory_format == torch.contiguous_format  # the last decision
    decide.setenv("LAB_CPU_CHANNELS_LAST", "1")
    common.cpu_channels_last_is_faster.cache_clear()
    assert Runtime.for_run(_cfg(), run).memory_format == torch.channels_last and saved()["channels_last"] is True
    decide.delenv("LAB_CPU_CHANNELS_LAST")
    common.cpu_channels_last_is_faster.cache_clear()
    (run.path / "runtime.json").write_text(json.dumps({"device": "cuda", "bf16": True, "channels_last": True}))
    decide.setattr(common, "_channels_last_speedup", lambda: 1.0)
    rt = Runtime.for_run(_cfg(), run)  # decided on another device: measured here again
    assert rt.memory_format == torch.contiguous_format and not _is_bf16(rt.amp)
    assert saved() == {"device": "cpu", "bf16": False, "channels_last": False}


def test_a_resume_keeps_the_layout_when_the_new_process_would_measure_otherwise(decide, tmp_path, digits_train):
    """Interrupted in channels_last, resumed by a process whose timing favours the default layout: the run
    finishes bit-identical to the uninterrupted channels_last run (a fresh run in the default layout does not)."""
    from lab.train.classifier import train_classifier

    decide.setattr(common, "cpu_has_native_bf16", lambda: False)
    speedup = {"x": 1.3}
    decide.setattr(common, "_channels_last_speedup", lambda: speedup["x"])
    cfg = _cfg()
    a = train_classifier(cfg, digits_train, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_6(step, stats):  # after the checkpoint of step 4
        if step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_classifier(cfg, digits_train, tmp_path / "b", on_step=crash_at_6)
    speedup["x"] = 1.0
    common.cpu_channels_last_is_faster.cache_clear()
    b = train_classifier(cfg, digits_train, tmp_path / "b")
    c = train_classifier(cfg, digits_train, tmp_path / "c")  # a new run in this process: the default layout
    wa, wb, wc = (r.load_checkpoint()["models"]["model"] for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # so the layout does change the arithmetic
    assert a.done()["error"] == b.done()["error"]
