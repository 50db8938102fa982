"""Golden digests (sgpose.golden.recorded): the processor that runs the suite computes the recorded bits of
every numeric component the stages use, under `portable`. The machines that develop and test the project
change processors over time (Zen 3 with AVX2, Zen 4 and Zen 5 with AVX-512 so far), so this is the
cross-machine test every landing runs; a machine that computes one component differently fails it, and
the failure names the component and the processor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sgpose.cli import main
from sgpose.golden import recorded as golden
from sgpose.golden.components import COMPONENTS
from sgpose.runtime.numerics import PORTABLE_ENV
from sgpose.stages.doctor import processor

# a fresh process whose numerics are set as a stage's, then each component computed the way it is not:
# torch's own (processor-dependent) square root, one thread fewer than compute.cpu_threads
SPOILED = """
from sgpose.config.schema import ComputeParams
from sgpose.runtime import numerics
numerics.set_environment("portable"); numerics.apply(ComputeParams())
import json, torch
from sgpose.runtime import exact
from sgpose.golden.components import digests
from sgpose.golden.recorded import GOLDEN
def differ(): return sorted(n for n, d in digests().items() if d != GOLDEN[n])
out = {"as set": differ()}
torch.set_num_threads(1); out["1 thread"] = differ(); torch.set_num_threads(2)
exact.sqrt = torch.sqrt; out["torch sqrt"] = differ()
print(json.dumps(out))
"""


def fresh_env() -> dict[str, str]:
    """The environment of a user's shell: none of `portable`'s settings (the command sets them)."""
    return {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}


def test_this_processor_computes_the_recorded_digest_of_every_component():
    proc = subprocess.run([sys.executable, "-m", "sgpose.cli", "doctor", "--json"], env=fresh_env(),
                          capture_output=True, text=True, timeout=600)
    found = json.loads(proc.stdout)
    differ = {name: f"{d['digest']} (recorded {d['recorded']})" for name, d in found.items() if not d["same"]}
    assert not differ, f"{processor()} computes other bits than the recorded ones in: {differ}"
    assert proc.returncode == 0 and set(found) == set(golden.GOLDEN) == set(COMPONENTS)


def test_a_component_computed_otherwise_fails_the_check_and_is_named():
    """The check can fail: with torch's square root in place of the exact one, the optimizer's and the
    trainings' digests move; with one thread fewer, every sum over threads."""
    proc = subprocess.run([sys.executable, "-c", SPOILED], env=fresh_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["as set"] == []
    assert {"Adam", "backbone training", "refiner training", "pointwise"} <= set(out["torch sqrt"]), out
    assert {"reductions", "GEMM", "convolution", "backbone training"} <= set(out["1 thread"]), out


def test_doctor_names_the_differing_component_and_exits_1(monkeypatch, capsys):
    monkeypatch.setitem(golden.GOLDEN, "GEMM", "0" * 12)
    assert main(["doctor", "--only", "GEMM", "--only", "heatmaps"]) == 1
    out, err = capsys.readouterr()
    assert "GEMM" in out and "DIFFERS (recorded 000000000000)" in out and "heatmaps" in out
    assert "differs from the recorded digests in 1 of 2 components (GEMM)" in err


def test_doctor_refuses_an_unknown_component(capsys):
    assert main(["doctor", "--only", "gemm"]) == 1
    assert "no component 'gemm' (components: torch init, GEMM," in capsys.readouterr().err


@pytest.mark.parametrize("cpuinfo, expected", [
    ("model name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu avx2 avx512f\n",
     "AMD EPYC, family 25 model 17, AVX-512"),
    ("model name\t: Intel Xeon\ncpu family\t: 6\nmodel\t\t: 63\nflags\t\t: fpu avx avx2\n",
     "Intel Xeon, family 6 model 63, AVX2"),
])
def test_the_processor_is_named_as_the_kernel_reports_it(tmp_path, cpuinfo, expected):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert processor(tmp_path / "cpuinfo").startswith(expected)
