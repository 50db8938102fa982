"""Where tensors are computed: the device, mixed precision and memory format of the `compute` section.

On CUDA the stages run under autocast (bf16 by default) with channels_last tensors; on the CPU
both are off whatever the parameters say (CPU autocast is slower than fp32 for these convolutions,
and the CPU path is the reference the tests pin).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn

from sgpose.config.schema import ComputeParams
from sgpose.core.modes import Amp, CpuNumerics
from sgpose.runtime import numerics

AMP_DTYPES = {Amp.BF16: torch.bfloat16, Amp.FP16: torch.float16}


def device(cp: ComputeParams) -> torch.device:
    """The configured device; `auto` is CUDA when available. A DDP process (torchrun sets LOCAL_RANK)
    gets its own GPU for `auto` and `cuda`; a fixed `cuda:N` would put every process on one GPU.
    On CUDA this also sets cuDNN's autotuner (`compute.cudnn_benchmark`) for the process."""
    if cp.device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    dev = torch.device("cuda" if cp.device == "auto" else cp.device)
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ValueError(f"compute.device is {cp.device} but CUDA is not available here (use auto or cpu)")
    configure_cudnn(cp)
    return _gpu(cp, dev)


def configure_cudnn(cp: ComputeParams) -> None:
    """cuDNN's autotuner on or off: on, the first call of each convolution shape times cuDNN's algorithms
    and keeps the fastest (the official HRNet/SimpleBaseline default, CUDNN.BENCHMARK); off, cuDNN's
    heuristic picks one untimed, which for the refiner's odd shapes (17 + 256 input channels at 64x48)
    need not be a fast one. Either way the results are equal up to the order of float sums."""
    torch.backends.cudnn.benchmark = cp.cudnn_benchmark


def _gpu(cp: ComputeParams, dev: torch.device) -> torch.device:
    """The GPU of this process: torchrun's LOCAL_RANK for `auto` and `cuda`, else the configured one."""
    rank = os.environ.get("LOCAL_RANK")
    if rank is None:
        return dev if dev.index is not None else torch.device("cuda", 0)
    if dev.index is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ValueError(f"compute.device {cp.device} names one GPU for {os.environ['WORLD_SIZE']} DDP processes; "
                         "use auto or cuda")
    return torch.device("cuda", int(rank))


def autocast(cp: ComputeParams, dev: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to `compute.amp` on CUDA; a no-op on the CPU or with amp off."""
    if dev.type != "cuda" or cp.amp == Amp.OFF:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=AMP_DTYPES[cp.amp])


def channels_last(cp: ComputeParams, dev: torch.device) -> bool:
    """Whether tensors and models use the NHWC memory format here (CUDA only)."""
    return cp.channels_last and dev.type == "cuda"


def effective(cp: ComputeParams, dev: torch.device) -> dict:
    """What the numbers are computed with here (device type, autocast dtype, memory format, and on the CPU
    the numerics in force: sgpose.runtime.numerics): the configured section says `auto` and `bf16` alike on
    a CPU and a GPU node, this does not; under `native` it names this machine's kernels."""
    amp = Amp(cp.amp).value if dev.type == "cuda" else Amp.OFF.value  # plain data: pickled in resume points
    cpu = numerics.describe(cp) if dev.type == "cpu" else CpuNumerics(cp.cpu_numerics).value
    return {"device": dev.type, "amp": amp, "channels_last": channels_last(cp, dev), "cpu_numerics": cpu}


def grad_scaler(cp: ComputeParams, dev: torch.device) -> torch.amp.GradScaler:
    """fp16's loss scaling, enabled only where fp16 autocast runs (a no-op scaler elsewhere: bf16, off, the CPU)."""
    return torch.amp.GradScaler("cuda", enabled=effective(cp, dev)["amp"] == Amp.FP16)


def prepare_model(model: nn.Module, cp: ComputeParams, dev: torch.device) -> nn.Module:
    """`model` on the device, in channels_last where that applies."""
    model = model.to(dev)
    return model.to(memory_format=torch.channels_last) if channels_last(cp, dev) else model


def to_device(x: torch.Tensor, cp: ComputeParams, dev: torch.device, nhwc: bool | None = None) -> torch.Tensor:
    """A batch tensor on the device (asynchronous from pinned memory); 4-D ones in channels_last there
    (`nhwc`: that format's choice instead of `channels_last`'s, e.g. the refiner's). fp16 (the cache's
    storage type, `CacheBatches(as_stored=True)`) arrives as float32."""
    x = x.to(dev, non_blocking=True)
    dtype = torch.float32 if x.dtype == torch.float16 else x.dtype
    nhwc = channels_last(cp, dev) if nhwc is None else nhwc
    fmt = torch.channels_last if x.dim() == 4 and nhwc else torch.preserve_format
    return x.to(dtype=dtype, memory_format=fmt)  # one copy on the device for both (none when neither applies)


@contextlib.contextmanager
def inference(cp: ComputeParams, dev: torch.device) -> Iterator[None]:
    """no_grad + autocast: how the frozen backbone and the refiner's inference run."""
    with torch.no_grad(), autocast(cp, dev):
        yield


def refiner_dtype(cp: ComputeParams, dev: torch.device) -> torch.dtype:
    """The dtype of the refiner's weights and inputs at inference: the amp dtype on CUDA, the weights
    converted once (autocast would cast every weight at every call: a third of the reading's device time
    on an H200); float32 on the CPU or with amp off."""
    amp = effective(cp, dev)["amp"]
    return AMP_DTYPES[Amp(amp)] if amp != Amp.OFF else torch.float32


def refiner_channels_last(cp: ComputeParams, dev: torch.device) -> bool:
    """Whether the refiner runs in NHWC (`compute.refiner_channels_last`, CUDA only): GroupNorm has no
    NHWC kernel on CUDA, so each of the UNet's norms may copy its input to NCHW and back."""
    return cp.refiner_channels_last and dev.type == "cuda"



def prepare_refiner(unet: nn.Module, cp: ComputeParams, dev: torch.device) -> nn.Module:
    """The refiner to train: float32 weights (autocast runs it in `compute.amp`) on the device, in its
    memory format (`refiner_channels_last`)."""
    unet = unet.to(dev)
    return unet.to(memory_format=torch.channels_last) if refiner_channels_last(cp, dev) else unet
