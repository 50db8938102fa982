"""The numeric components under other processors, emulated on this one by qemu-user (`qemu-x86_64 -cpu
MODEL`, Debian's qemu-user, installed by scripts/test_setup.sh): the process reads the emulated
processor's CPUID (vendor, family, model, features), so every library picks its code as it would there,
and QEMU computes approximate instructions (rcp, rsqrt) exactly, so any result that depends on them moves.
Unlike capping features on this machine (tests/runtime/test_numerics.py), this takes nothing away from it:
it is how NNPACK's convolutions, torch's square root and OpenBLAS's core type were found to move the bits
(docs/reproducibility.md). QEMU 7.2 emulates up to AVX2; the AVX-512 side is the machine that runs the suite
(tests/golden/test_golden_digests.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sgpose.golden.recorded import GOLDEN
from sgpose.runtime.numerics import PORTABLE_ENV

QEMU = shutil.which("qemu-x86_64")
# AMD Zen 3 (the kind of processor that first recorded dvc.lock) and Intel Ice Lake: the two vendors, whose
# processors MKL, OpenBLAS and NNPACK tell apart. benchmarks/emulated_processors.py runs more models.
MODELS = ("EPYC-Milan", "Icelake-Server-v6")
FEATURES = "from numpy._core._multiarray_umath import __cpu_features__ as f; print(f['AVX2'], f['AVX512F'])"

pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (Debian: apt-get install qemu-user; "
                                                     "scripts/test_setup.sh installs it)")


def emulated(model: str, *args: str) -> subprocess.CompletedProcess:
    """`python args...` under `qemu-x86_64 -cpu model`, from a shell without `portable`'s settings."""
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    return subprocess.run([QEMU, "-cpu", model, sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=1500)


@pytest.fixture(scope="module")
def doctors() -> dict[str, dict]:
    """`sgpose doctor --json` under each emulated model (two at a time: this machine's two cores)."""
    with ThreadPoolExecutor(2) as pool:
        procs = dict(zip(MODELS, pool.map(lambda m: emulated(m, "-m", "sgpose.cli", "doctor", "--json"), MODELS)))
    out = {}
    for model, proc in procs.items():
        assert proc.stdout.strip(), f"{model}: {proc.stderr[-3000:]}"
        out[model] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_the_emulated_process_sees_the_emulated_processor(model):
    """What the libraries read is the model's CPUID: AVX2, and no AVX-512 even where this machine has it."""
    proc = emulated(model, "-c", FEATURES)
    assert proc.stdout.split() == ["True", "False"], proc.stderr[-2000:]


@pytest.mark.parametrize("model", MODELS)
def test_an_emulated_processor_computes_the_recorded_digests(doctors, model):
    found = doctors[model]
    differ = {n: f"{d['digest']} (recorded {d['recorded']})" for n, d in found.items() if not d["same"]}
    assert not differ, f"under qemu -cpu {model}: {differ}"
    assert {n: d["digest"] for n, d in found.items()} == GOLDEN
