"""compute.cpu_numerics (sgpose.runtime.numerics): `portable` gives one result where `native` gives several.

Other machines are emulated on this one by what makes them compute differently (docs/reproducibility.md):
torch's kernels capped below AVX2 (`ATEN_CPU_CAPABILITY=default`), oneDNN capped at SSE4.1, another
core count (torch's thread count). Each run is a fresh process, as a stage is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sgpose.runtime.numerics import PORTABLE_ENV

# a 12-step Adam training of a small network with the layers of the backbones and the UNet (convolution,
# batch norm, ReLU, transposed convolution), from torch's default initialisation: md5 of the weights
TRAIN = """
import hashlib, sys
from sgpose.config.schema import ComputeParams
from sgpose.runtime import numerics
setting, machine_threads = sys.argv[1], int(sys.argv[2])
cp = ComputeParams(cpu_numerics=setting)
numerics.set_environment(setting)  # before torch and numpy start, as `sgpose <stage>` sets it
import torch
torch.set_num_threads(machine_threads)  # what this machine's cores would give the stage
print(numerics.apply(cp))
print(torch.utils.deterministic.fill_uninitialized_memory)
if len(sys.argv) > 3:  # torch's NaN fill of new memory back on (`portable` turns it off)
    torch.utils.deterministic.fill_uninitialized_memory = True
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
                          torch.nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 17, 1))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x, y = torch.randn(8, 3, 48, 40), torch.rand(8, 17, 48, 40)
for _ in range(12):
    opt.zero_grad()
    torch.nn.functional.mse_loss(net(x), y).backward()
    opt.step()
print(hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in net.state_dict().values())).hexdigest())
"""

MACHINES = {  # environment, torch threads of the "machine"
    "this machine, 1 core": ({}, 1),
    "this machine, 2 cores": ({}, 2),
    "3 cores": ({}, 3),
    "no AVX2 in torch's kernels": ({"ATEN_CPU_CAPABILITY": "default"}, 2),
    "oneDNN at SSE4.1": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
}


def train(setting: str, env: dict, threads: int, fill: bool = False) -> tuple[str, str]:
    """(the numerics line, the weights' md5) of TRAIN in a fresh process on an emulated machine; `fill`:
    with torch's fill of new memory on after `apply`."""
    base = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV and k not in ("OMP_NUM_THREADS",
                                                                                      "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", TRAIN, setting, str(threads)] + ["fill"] * fill, env=base | env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line, filled, md5 = proc.stdout.split("\n")[:3]
    assert filled == str(setting == "native"), (setting, filled)  # `portable` turns the fill off, `native` leaves it
    return line, md5


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], tuple[str, str]]:
    return {(setting, name): train(setting, env, threads) for setting in ("portable", "native")
            for name, (env, threads) in MACHINES.items()}


def test_portable_gives_one_result_on_every_emulated_machine_where_native_gives_several(runs):
    portable = {name: runs["portable", name][1] for name in MACHINES}
    native = {name: runs["native", name][1] for name in MACHINES}
    print("\nportable", portable, "\nnative", native)
    assert len(set(portable.values())) == 1, portable
    assert len(set(native.values())) >= 3, native  # measured: five machines, five results
    assert native["this machine, 2 cores"] != portable["this machine, 2 cores"]  # oneDNN off: another path


def test_portable_leaves_new_memory_unfilled_which_moves_no_bit(runs):
    assert train("portable", {}, 2, fill=True)[1] == runs["portable", "this machine, 2 cores"][1]


def test_the_numerics_line_names_the_setting_and_what_is_in_force(runs):
    lines = {runs["portable", name][0] for name in MACHINES}
    assert lines == {"portable (torch AVX2, oneDNN and NNPACK off, MKL COMPATIBLE, 2 threads, OpenCV baseline, "
                     "numpy AVX2, deterministic algorithms)"}, lines
    assert runs["native", "no AVX2 in torch's kernels"][0].startswith("native (torch DEFAULT, oneDNN on, MKL ")
    assert runs["native", "3 cores"][0].endswith(", 3 threads)")


def test_portable_refuses_a_process_whose_torch_started_with_other_kernels():
    code = ("import torch; torch.ones(3).sum(); "  # torch's kernels chosen before the project could cap them
            "from sgpose.config.schema import ComputeParams; from sgpose.runtime import numerics; "
            "numerics.apply(ComputeParams())")
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV} | {"ATEN_CPU_CAPABILITY": "default"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert ("NumericsError: compute.cpu_numerics portable computes with torch's AVX2 kernels, but this process runs "
            "DEFAULT ones: torch started before sgpose could set ATEN_CPU_CAPABILITY") in proc.stderr, proc.stderr[-2000:]


# a setting `portable` asks for that the library did not take: `apply` names it (read back from the library)
NOT_IN_FORCE = {
    "OpenBLAS": ("import os; os.environ['OPENBLAS_CORETYPE'] = 'Sandybridge'; import numpy; numpy.ones(3) @ numpy.ones(3)",
                 "OpenBLAS runs its Sandybridge kernels, not Haswell (numpy started before OPENBLAS_CORETYPE was set)"),
    "torch threads": ("import torch; torch.set_num_threads(3); "
                      "from sgpose.runtime.numerics import faults; print(faults(ComputeParams())); raise SystemExit(1)",
                      "torch runs 3 threads, not compute.cpu_threads=2', 'MKL runs 3 threads, not 2'"),
    "OpenCV": ("import cv2; cv2.setUseOptimized(True); "
               "from sgpose.runtime.numerics import faults; print(faults(ComputeParams())); raise SystemExit(1)",
               "OpenCV's optimised dispatch is on"),
    "NNPACK": ("import torch; torch.backends.nnpack.set_flags(True); "
               "from sgpose.runtime.numerics import faults; print(faults(ComputeParams())); raise SystemExit(1)",
               "NNPACK is on"),
}


@pytest.mark.parametrize("what", NOT_IN_FORCE)
def test_a_portable_setting_that_did_not_take_effect_is_an_error_naming_it(what):
    """OpenBLAS's core type is read when numpy starts: a numpy started before `portable` was set keeps its
    own, and `apply` refuses it; the others are changed after `apply` and `faults` reads them back."""
    before, message = NOT_IN_FORCE[what]
    first, after = (before, "") if what == "OpenBLAS" else ("", before)
    code = (f"{first}\nfrom sgpose.config.schema import ComputeParams; from sgpose.runtime import numerics\n"
            f"numerics.apply(ComputeParams())\n{after}")
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr[-2000:]


def test_every_portable_setting_is_in_force_after_apply():
    """The process the tests run in (conftest applied `portable` before torch, numpy and OpenCV started)."""
    from sgpose.config.schema import ComputeParams
    from sgpose.runtime.numerics import faults, openblas

    assert faults(ComputeParams()) == []
    assert openblas() == ("Haswell", 1)


def test_a_numpy_stage_given_two_threads_still_runs_openblas_on_one():
    """A numpy-only stage (check_params, evaluate) whose rule has 2 threads: the thread set-up writes
    OPENBLAS_NUM_THREADS=2 before numpy starts, and `portable` puts OpenBLAS back on one thread in the library
    (found by the e2e DAG, where check_params refused to run)."""
    code = ("from sgpose.config.schema import ComputeParams; from sgpose.runtime import numerics, threads\n"
            "numerics.set_environment('portable')\n"
            "threads.configure_threads(2, 'check_params', numerics=lambda: numerics.without_torch(ComputeParams()))\n"
            "print(numerics.openblas()[1])")
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"
