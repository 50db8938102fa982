"""The CPU's arithmetic, set by the project (`compute.cpu_numerics`): `portable` gives the same bits on any
x86-64 machine with AVX2, whatever its vector width, caches or core count; `native` lets every library
take the fastest code for this processor (docs/reproducibility.md, where each knob's measurement is).

What moves the bits of one computation from the same inputs, measured on one machine by emulating others
(docs/reproducibility.md, "What moves the bits"):
- torch's own kernels dispatch on the processor (`ATEN_CPU_CAPABILITY` default vs avx2: other weights, even
  other initial weights: `normal_` has an AVX2 path);
- oneDNN's convolutions dispatch on the ISA and block for the caches (`ONEDNN_MAX_CPU_ISA`: other weights);
- MKL's GEMM picks a code branch per processor (MKL_CBWR=AVX2 is not honoured on AMD: only COMPATIBLE is
  one branch on Intel and AMD alike);
- the thread count (a reduction's partial sums): 1, 2, 3 threads give three trainings;
- OpenMP teams shrunk by load (`OMP_DYNAMIC`); OpenCV's warpAffine per dispatch level; numpy's float64
  exp/log on AVX-512 machines (its own kernels, not libm's: pycocotools' OKS).

`portable` fixes each: torch at AVX2, oneDNN off (torch's own convolutions over MKL's COMPATIBLE GEMM),
a thread count from the params (never the machine's), fixed-size OpenMP teams, OpenCV's baseline code,
numpy without its AVX-512 kernels, and torch's deterministic algorithms (without their fill of new memory).
The environment variables are read when a library starts, so `apply` runs before a stage imports torch,
numpy or OpenCV (`sgpose.cli`).
Outside the cache fingerprint like `sgpose.runtime.threads`? No: it decides the numbers a shard holds, so
it is inside (`sgpose.runtime.compute.effective` records it).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

from sgpose.config.schema import ComputeParams
from sgpose.core.modes import CpuNumerics

CAPABILITY = "avx2"  # torch's kernels under `portable`: every x86-64 machine sold since 2015 has AVX2
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": CAPABILITY,
    "MKL_CBWR": "COMPATIBLE",  # MKL's one conditional-numerical-reproducibility branch on Intel and AMD
    "MKL_DYNAMIC": "FALSE",  # teams of the asked size, never shrunk by the machine's load
    "OMP_DYNAMIC": "FALSE",
    "TORCHINDUCTOR_DETERMINISTIC": "1",  # torch.use_deterministic_algorithms's inductor half (`apply`)
    # numpy's float64 exp/log on AVX-512 machines are its own kernels (other last bits than libm's)
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
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
    torch thread count the stage was given (`sgpose.runtime.threads`) by `compute.cpu_threads`."""
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
    return describe(cp)


def without_torch(cp: ComputeParams) -> str:
    """The description for a stage that computes without torch (evaluate, prepare: numpy only)."""
    setting = CpuNumerics(cp.cpu_numerics)
    detail = "numpy without its AVX-512 kernels" if setting == CpuNumerics.PORTABLE else "numpy's own dispatch"
    return f"{setting.value} (no torch in this stage; {detail})"


def describe(cp: ComputeParams) -> str:
    """What computes the CPU's numbers in this process, in words: the same string on every machine under
    `portable` (its settings are the project's), the machine's own under `native`."""
    import torch

    mkldnn = "on" if torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available() else "off"
    parts = [f"torch {torch.backends.cpu.get_cpu_capability()}", f"oneDNN {mkldnn}", f"MKL {mkl_branch()}",
             f"{torch.get_num_threads()} threads"]
    if cp.cpu_numerics == CpuNumerics.PORTABLE:
        parts += ["OpenCV baseline", "deterministic algorithms"]
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


def started_libraries() -> list[str]:
    """The libraries whose start reads `PORTABLE_ENV` that this process has already imported."""
    return [m for m in ("torch", "numpy", "cv2") if m in sys.modules]

