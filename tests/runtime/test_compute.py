"""`compute`: the device, autocast and memory format; on the CPU everything stays fp32 and NCHW."""

import pytest
import torch
from sgpose.config.schema import ComputeParams
from sgpose.runtime import compute, numerics


def test_cpu_is_plain_fp32_nchw():
    cp = ComputeParams(device="cpu", amp="bf16", channels_last=True)
    dev = compute.device(cp)
    assert dev == torch.device("cpu") and not compute.channels_last(cp, dev)
    model = compute.prepare_model(torch.nn.Conv2d(3, 4, 3), cp, dev)
    x = compute.to_device(torch.randn(2, 3, 8, 8), cp, dev)
    assert x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    with compute.inference(cp, dev):
        y = model(x)
    assert y.dtype == torch.float32 and not y.requires_grad  # no autocast, no grad


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_is_the_cpu_without_cuda_and_cuda_is_an_error():
    assert compute.device(ComputeParams()) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        compute.device(ComputeParams(device="cuda"))


@pytest.mark.cuda
def test_cuda_autocasts_to_bf16_in_channels_last():
    cp = ComputeParams()
    dev = compute.device(cp)
    model = compute.prepare_model(torch.nn.Conv2d(3, 4, 3), cp, dev)
    x = compute.to_device(torch.randn(2, 3, 8, 8), cp, dev)
    assert x.is_contiguous(memory_format=torch.channels_last)
    with compute.inference(cp, dev):
        assert model(x).dtype == torch.bfloat16


@pytest.mark.parametrize("configured,env,want", [
    ("auto", {}, "cuda:0"), ("cuda", {}, "cuda:0"), ("cuda:1", {}, "cuda:1"),
    ("auto", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:1"), ("cuda", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cuda:1"),
    ("cpu", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, "cpu")])
def test_each_ddp_process_gets_its_own_gpu(monkeypatch, configured, env, want):
    """torchrun's LOCAL_RANK picks the GPU for `auto` and `cuda` (device resolution only: no CUDA needed)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for key in ("LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert compute.device(ComputeParams(device=configured)) == torch.device(want)


def test_one_fixed_gpu_for_several_ddp_processes_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="names one GPU for 2 DDP processes"):
        compute.device(ComputeParams(device="cuda:0"))


def test_effective_records_what_runs_here():
    """The CPU names the numerics in force (the conftest applies `portable`); a GPU names the setting only."""
    cp = ComputeParams(device="cpu", amp="bf16", channels_last=True, cpu_numerics="portable")
    cpu = compute.effective(cp, torch.device("cpu"))
    assert cpu == {"device": "cpu", "amp": "off", "channels_last": False, "cpu_numerics": numerics.describe(cp)}
    assert cpu["cpu_numerics"].startswith("portable (torch AVX2, oneDNN and NNPACK off, MKL COMPATIBLE, 2 threads")
    gpu = compute.effective(cp, torch.device("cuda", 0))
    assert gpu == {"device": "cuda", "amp": "bf16", "channels_last": True, "cpu_numerics": "portable"}


@pytest.mark.parametrize("benchmark", [True, False])
def test_a_cuda_device_sets_cudnns_autotuner_and_the_cpu_leaves_it(monkeypatch, benchmark):
    """compute.cudnn_benchmark reaches torch.backends.cudnn on CUDA (resolution only: no CUDA needed)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not benchmark)
    compute.device(ComputeParams(device="cpu", cudnn_benchmark=benchmark))
    assert torch.backends.cudnn.benchmark is (not benchmark)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    compute.device(ComputeParams(cudnn_benchmark=benchmark))
    assert torch.backends.cudnn.benchmark is benchmark
