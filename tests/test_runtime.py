"""The runtime choice of precision and layout: by the device's capability (CPU flags), never by a timing, so
the same command gives the same numbers in every process; every branch."""
import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch

from lab.train import common


@pytest.fixture
def decide(monkeypatch):
    """The CPU decisions without the environment's answers."""
    monkeypatch.delenv("LAB_CPU_BF16", raising=False)
    monkeypatch.delenv("LAB_CPU_CHANNELS_LAST", raising=False)
    yield monkeypatch


CPU = torch.device("cpu")


def _is_bf16(ctx) -> bool:
    return isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


@pytest.mark.parametrize("flags,bf16", [({"avx2", "fma"}, False), ({"avx2", "avx512f"}, False),
                                        ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True)])
def test_auto_follows_the_cpu_flags(decide, flags, bf16):
    decide.setattr(common, "cpu_flags", lambda: frozenset(flags))
    assert common.cpu_bf16() is bf16
    assert _is_bf16(common.autocast(CPU, "auto")) is bf16
    assert common.use_channels_last(CPU, "auto")  # channels_last on every CPU
    assert _is_bf16(common.autocast(CPU, "bf16"))  # asked for explicitly: always
    assert isinstance(common.autocast(CPU, "fp32"), contextlib.nullcontext)
    assert common.use_channels_last(CPU, "on") and not common.use_channels_last(CPU, "off")


def test_this_machines_flags_are_read():
    flags = common.cpu_flags()
    assert isinstance(flags, frozenset)
    if os.path.exists("/proc/cpuinfo") and os.uname().machine == "x86_64":
        assert "sse2" in flags
    assert common.cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)


def test_the_environment_forces_the_answer(decide):
    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx2"}))
    decide.setenv("LAB_CPU_BF16", "1")
    decide.setenv("LAB_CPU_CHANNELS_LAST", "1")
    assert common.cpu_bf16() and common.cpu_channels_last()
    decide.setenv("LAB_CPU_BF16", "0")
    decide.setenv("LAB_CPU_CHANNELS_LAST", "0")
    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert not common.cpu_bf16() and not common.cpu_channels_last()
    assert not common.use_channels_last(CPU, "auto")


def test_nothing_is_timed():
    """No timing probe is left that a decision could come from."""
    assert not [n for n in dir(common) if "speedup" in n or "probe" in n or "is_faster" in n]


_TRAIN = """
import sys, time, torch
from lab.data import load_dataset
from lab.presets import preset
from lab.train import common
from lab.train.classifier import train_classifier
time.perf_counter = (lambda t=[0.0]: t.__setitem__(0, t[0] + float(sys.argv[3])) or t[0])  # a clock at its own pace
cfg = preset("classifier-digits-smoke").replace(width=8, batch_size=32, steps=5, log_every=1, eval_every=5,
                                                ckpt_every=5, device="cpu")
train = load_dataset("digits", "train", root=sys.argv[1], download=False)
train_classifier(cfg, train, sys.argv[2])
"""


def test_two_processes_under_opposite_timings_choose_one_runtime_and_identical_weights(tmp_path, digits_root):
    """The same command in two processes, one with a clock 100x slower than the other's: the same runtime.json
    and bit-identical weights."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_CPU_")}
    env["OMP_NUM_THREADS"] = "1"
    for name, pace in (("a", "0.001"), ("b", "0.1")):
        subprocess.run([sys.executable, "-c", _TRAIN, str(digits_root), str(tmp_path / name), pace], check=True,
                       env=env, timeout=300)
    ra, rb = (json.loads((tmp_path / n / "runtime.json").read_text()) for n in "ab")
    assert ra == rb == {"device": "cpu", "bf16": common.cpu_has_native_bf16(), "channels_last": True}
    wa, wb = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=True)["models"]["model"] for n in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


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


def test_a_run_keeps_the_runtime_its_first_process_chose(decide, tmp_path):
    """Decided once per run: a later process on a CPU of other flags reads runtime.json; an explicit setting
    (config or environment) still wins and is written down; another device re-decides."""
    from lab.runs import Run
    from lab.train.loop import Runtime

    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    run = Run(tmp_path / "r")
    run.init(_cfg())
    rt = Runtime.for_run(_cfg(), run)
    saved = lambda: json.loads((run.path / "runtime.json").read_text())
    assert rt.memory_format == torch.channels_last and _is_bf16(rt.amp)
    assert saved() == {"device": "cpu", "bf16": True, "channels_last": True}
    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx2"}))  # resumed on an AVX2-only CPU
    assert _is_bf16(Runtime.for_run(_cfg(), run).amp)
    assert Runtime.for_run(_cfg(channels_last="off"), run).memory_format == torch.contiguous_format
    assert saved()["channels_last"] is False
    assert Runtime.for_run(_cfg(), run).memory_format == torch.contiguous_format  # the last decision
    decide.setenv("LAB_CPU_CHANNELS_LAST", "1")
    assert Runtime.for_run(_cfg(), run).memory_format == torch.channels_last and saved()["channels_last"] is True
    decide.delenv("LAB_CPU_CHANNELS_LAST")
    (run.path / "runtime.json").write_text(json.dumps({"device": "cuda", "bf16": True, "channels_last": False}))
    rt = Runtime.for_run(_cfg(), run)  # decided on another device: decided here again
    assert rt.memory_format == torch.channels_last and not _is_bf16(rt.amp)
    assert saved() == {"device": "cpu", "bf16": False, "channels_last": True}


def test_a_resume_on_a_cpu_of_other_flags_keeps_the_runs_arithmetic(decide, tmp_path, digits_train):
    """Interrupted under bf16 (a CPU with native bf16), resumed on an AVX2-only CPU: the run finishes
    bit-identical to the uninterrupted bf16 run (a fresh run on the AVX2 CPU, in fp32, does not)."""
    from lab.train.classifier import train_classifier

    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    cfg = _cfg()
    a = train_classifier(cfg, digits_train, tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_at_6(step, stats):  # after the checkpoint of step 4
        if step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_classifier(cfg, digits_train, tmp_path / "b", on_step=crash_at_6)
    decide.setattr(common, "cpu_flags", lambda: frozenset({"avx2"}))
    b = train_classifier(cfg, digits_train, tmp_path / "b")
    c = train_classifier(cfg, digits_train, tmp_path / "c")  # a new run on this CPU: fp32
    wa, wb, wc = (r.load_checkpoint()["models"]["model"] for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # so the precision does change the arithmetic
    assert a.done()["error"] == b.done()["error"]
