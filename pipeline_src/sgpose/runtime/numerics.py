"""The CPU's arithmetic, set by the project (`compute.cpu_numerics`): `portable` gives the same bits on any
x86-64 machine with AVX2, whatever its vendor, vector width, caches or core count; `native` lets every
library take the fastest code for this processor (docs/reproducibility.md, where each leak's measurement is).

What moves the bits of one computation from the same inputs (docs/reproducibility.md, "What moves the bits"),
found by emulating other machines on one: capping features (torch's kernels, oneDNN's ISA, thread counts)
and running under another processor's CPUID with qemu-user, which also computes approximate instructions
(rcp/rsqrt) exactly and so exposes any result that depends on them:
- torch's own kernels dispatch on the processor (`ATEN_CPU_CAPABILITY`); oneDNN's convolutions dispatch on
  the ISA and block for the caches; NNPACK's convolutions (batches of 16 or more with oneDNN off) choose
  their kernels from the processor;
- MKL's GEMM picks a code branch per processor (only COMPATIBLE is one branch on Intel and AMD alike);
  torch's `sqrt` (float32 and float64, through MKL's vector math) is not IEEE's and differs per processor;
- numpy's float64 exp/log and float32 power on AVX-512 machines (its own kernels: pycocotools' OKS), and
  OpenBLAS's kernels per core type (numpy's matmul and dot);
- the thread count (a reduction's partial sums) and OpenMP teams shrunk by load; OpenCV's warpAffine per
  dispatch level.

`portable` fixes each: torch at AVX2, oneDNN and NNPACK off (torch's own convolutions over MKL's
COMPATIBLE GEMM), a thread count from the params (never the machine's), fixed-size OpenMP teams, OpenCV's
baseline code, numpy without its AVX-512 kernels, OpenBLAS's Haswell kernels on one thread, and torch's
deterministic algorithms (without their fill of new memory); square roots go through `sgpose.runtime.exact`.
The environment variables are read when a library starts, so `apply` runs before a stage imports torch,
numpy or OpenCV (`sgpose.cli`), and then checks that each setting is in force: one that did not take
effect is an error naming it, never a run that silently computes other bits.
Outside the cache fingerprint like `sgpose.runtime.threads`? No: it decides the numbers a shard holds, so
it is inside (`sgpose.runtime.compute.effective` records it).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import sys
from pathlib import Path

from sgpose.config.schema import ComputeParams
from sgpose.core.modes import CpuNumerics

CAPABILITY = "avx2"  # torch's kernels under `portable`: every x86-64 machine sold since 2015 has AVX2
NUMPY_AVX512 = ("X86_V4", "AVX512_ICL", "AVX512_SPR")  # numpy 2.4's AVX-512 dispatch groups (__cpu_dispatch__)
OPENBLAS_CORE = "Haswell"  # OpenBLAS's AVX2 kernels, the ones an AVX2 machine takes by itself
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": CAPABILITY,
    "MKL_CBWR": "COMPATIBLE",  # MKL's one conditional-numerical-reproducibility branch on Intel and AMD
    "MKL_DYNAMIC": "FALSE",  # teams of the asked size, never shrunk by the machine's load
    "OMP_DYNAMIC": "FALSE",
    "TORCHINDUCTOR_DETERMINISTIC": "1",  # torch.use_deterministic_algorithms's inductor half (`apply`)
    # numpy's float64 exp/log and float32 power on AVX-512 machines are its own kernels (other last bits
    # than the AVX2 ones); the names are numpy 2.4's dispatch groups (an unknown name is silently ignored)
    "NPY_DISABLE_CPU_FEATURES": " ".join(NUMPY_AVX512),
    # OpenBLAS (numpy's matmul and dot) picks its kernels per core type (SkylakeX on Zen 4, Haswell on Zen 3:
    # other bits) and splits a product over its threads
    "OPENBLAS_CORETYPE": OPENBLAS_CORE,
    "OPENBLAS_NUM_THREADS": "1",
}
# another machine emulated on this one (tests, benchmarks/numerics_dag.py): torch's kernels below AVX2,
# oneDNN at SSE4.1, other OpenMP and MKL thread counts, MKL's AUTO branch
OTHER_MACHINE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "3",
                 "MKL_NUM_THREADS": "3", "MKL_CBWR": "AUTO"}
MKL_BRANCHES = {1: "off", 2: "AUTO", 3: "COMPATIBLE"}  # mkl_cbwr_get's codes (mkl_cbwr.h), the ones we name
STRICT = 0x10000


class NumericsError(ValueError):
    """`portable` cannot hold in this process (a library started before the project could set it)."""


def set_environment(setting: CpuNumerics | str) -> None:
    """The environment of `setting` for the libraries this process has not started yet and for every
    process it starts (reader processes, torchrun's workers, DataLoader workers)."""
    if CpuNumerics(setting) == CpuNumerics.PORTABLE:
        os.environ.update(PORTABLE_ENV)


def apply(cp: ComputeParams) -> str:
    """Put `compute.cpu_numerics` in force in this process (torch is imported here) and describe what is
    in force: the stage's first log line and its outputs carry the description. `portable` replaces the
    torch thread count the stage was given (`sgpose.runtime.threads`) by `compute.cpu_threads`, and is
    checked after it is set (`faults`): a setting not in force raises NumericsError naming it."""
    set_environment(cp.cpu_numerics)
    import torch

    portable = cp.cpu_numerics == CpuNumerics.PORTABLE
    if portable:
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != CAPABILITY.upper():
            raise NumericsError(
                f"compute.cpu_numerics portable computes with torch's {CAPABILITY.upper()} kernels, but this "
                f"process runs {capability} ones: " + ("torch started before sgpose could set ATEN_CPU_CAPABILITY; "
                                                       "run the stage as `sgpose <stage>` in a fresh process"
                                                       if torch.cpu._is_avx2_supported() else
                                                       "this CPU has no AVX2; use compute.cpu_numerics native"))
        torch.backends.mkldnn.enabled = False
        torch.backends.nnpack.set_flags(False)  # its kernels are chosen per processor (docs/reproducibility.md)
        # torch.use_deterministic_algorithms(True) less its import of torch._inductor (1.2 s of every stage's
        # start): ATen's switch here, inductor's from TORCHINDUCTOR_DETERMINISTIC (PORTABLE_ENV) if ever imported
        torch._C._set_deterministic_algorithms(True, warn_only=False)
        # ... without its NaN fill of every new tensor: about 10 % of a refiner step, and no bit of ours moves
        # (a stage that read unwritten memory would hold NaN with it; the sample's refiner.pt is the same file
        # with and without: docs/reproducibility.md)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.set_num_threads(cp.cpu_threads)
        os.environ.update({v: str(cp.cpu_threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        import cv2

        cv2.setUseOptimized(False)  # every dispatch level off: warpAffine's baseline code on every machine
        set_openblas_threads(1)
        _refuse(faults(cp))
    return describe(cp)


def faults(cp: ComputeParams) -> list[str]:
    """What `portable` sets that is not in force in this process, one phrase each (empty: all of it is).
    Read back from the libraries themselves, not from the environment that asked for it."""
    import torch

    found = [f"torch's kernels are {torch.backends.cpu.get_cpu_capability()}, not {CAPABILITY.upper()}"] \
        if torch.backends.cpu.get_cpu_capability() != CAPABILITY.upper() else []
    checks = {
        "oneDNN is on": torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available(),
        "NNPACK is on": torch._C._get_nnpack_enabled() and torch.backends.nnpack.is_available(),
        "torch's deterministic algorithms are off": not torch.are_deterministic_algorithms_enabled(),
        f"torch runs {torch.get_num_threads()} threads, not compute.cpu_threads={cp.cpu_threads}":
            torch.get_num_threads() != cp.cpu_threads,
        f"MKL's branch is {mkl_branch()}, not COMPATIBLE": mkl_branch() not in ("COMPATIBLE", "none"),
        f"MKL runs {_mkl('mkl_get_max_threads')} threads, not {cp.cpu_threads}":
            _mkl("mkl_get_max_threads") not in (None, cp.cpu_threads),
        "MKL's teams are dynamic (shrunk by the machine's load)": bool(_mkl("mkl_serv_get_dynamic")),
    }
    found += [what for what, wrong in checks.items() if wrong]
    found += numpy_faults()
    if "cv2" in sys.modules and sys.modules["cv2"].useOptimized():
        found.append("OpenCV's optimised dispatch is on")
    return found


def numpy_faults() -> list[str]:
    """What `portable` sets for numpy and its OpenBLAS that is not in force (numpy imported here)."""
    from numpy._core._multiarray_umath import __cpu_features__

    on = [group for group in NUMPY_AVX512 if __cpu_features__.get(group)]
    found = [f"numpy's {', '.join(on)} kernels are on (numpy started before NPY_DISABLE_CPU_FEATURES was set)"] \
        if on else []
    core, threads = openblas()
    if core is not None and core.lower() != OPENBLAS_CORE.lower():
        found.append(f"OpenBLAS runs its {core} kernels, not {OPENBLAS_CORE} (numpy started before "
                     "OPENBLAS_CORETYPE was set)")
    if threads not in (None, 1):
        found.append(f"OpenBLAS runs {threads} threads, not 1")
    return found


def _refuse(found: list[str]) -> None:
    if found:
        raise NumericsError("compute.cpu_numerics portable is not in force in this process: " + "; ".join(found)
                            + ". Run the stage as `sgpose <stage>` in a fresh process (it sets them before "
                            "torch, numpy and OpenCV start)")


def without_torch(cp: ComputeParams) -> str:
    """The description for a stage that computes without torch (evaluate, prepare: numpy only); under
    `portable`, numpy's settings are checked as `apply` checks torch's."""
    setting = CpuNumerics(cp.cpu_numerics)
    if setting == CpuNumerics.PORTABLE:
        set_openblas_threads(1)
        _refuse(numpy_faults())
    detail = "numpy without its AVX-512 kernels, OpenBLAS Haswell" if setting == CpuNumerics.PORTABLE \
        else "numpy's own dispatch"
    return f"{setting.value} (no torch in this stage; {detail})"


def describe(cp: ComputeParams) -> str:
    """What computes the CPU's numbers in this process, in words: the same string on every machine under
    `portable` (its settings are the project's), the machine's own under `native`."""
    import torch

    mkldnn = "on" if torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available() else "off"
    parts = [f"torch {torch.backends.cpu.get_cpu_capability()}", f"oneDNN {mkldnn}", f"MKL {mkl_branch()}",
             f"{torch.get_num_threads()} threads"]
    if cp.cpu_numerics == CpuNumerics.PORTABLE:
        parts[1] = "oneDNN and NNPACK off"
        parts += ["OpenCV baseline", "numpy AVX2", "deterministic algorithms"]
    return f"{CpuNumerics(cp.cpu_numerics).value} ({', '.join(parts)})"


def mkl_branch() -> str:
    """MKL's code branch in force (`mkl_cbwr_get`, exported by torch's CPU library), e.g. COMPATIBLE,
    AUTO; `none` where torch was built without MKL."""
    get = _mkl_cbwr_get()
    if get is None:
        return "none"
    code = get(-1)
    name = MKL_BRANCHES.get(code & ~STRICT, f"branch {code & ~STRICT}")
    return name + (",STRICT" if code & STRICT else "")


@functools.cache
def _mkl_cbwr_get():
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        fn = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def _mkl(function: str) -> int | None:
    """An int MKL reports of itself (`mkl_get_max_threads`, `mkl_serv_get_dynamic`), read from the MKL inside
    torch's CPU library; None where torch was built without MKL."""
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        fn = getattr(ctypes.CDLL(str(lib)), function)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    return int(fn())


def set_openblas_threads(n: int) -> None:
    """OpenBLAS's thread count, set in the library (its environment variable is read once, when numpy starts, and
    the stage's thread set-up may have changed it before: `sgpose.runtime.threads`). A no-op without it."""
    lib = _openblas_lib()
    if lib is not None:
        lib.scipy_openblas_set_num_threads64_(ctypes.c_int(n))


def _openblas_lib():
    import numpy

    libs = sorted(glob.glob(os.path.join(os.path.dirname(numpy.__path__[0]), "numpy.libs", "libscipy_openblas*")))
    try:
        return ctypes.CDLL(libs[0])
    except (IndexError, OSError):
        return None


def openblas() -> tuple[str | None, int | None]:
    """(core type, threads) of the OpenBLAS numpy runs (its bundled scipy-openblas); (None, None) where
    numpy carries another BLAS."""
    lib = _openblas_lib()
    try:
        corename, threads = lib.scipy_openblas_get_corename64_, lib.scipy_openblas_get_num_threads64_
    except AttributeError:  # no OpenBLAS (None), or another build of it
        return None, None
    corename.restype, threads.restype = ctypes.c_char_p, ctypes.c_int
    return corename().decode(), int(threads())
