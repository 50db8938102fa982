"""The GPU path of issue 26 on a GPU (marked `cuda`: skipped without one; benchmarks/gpu_check.sh runs them):
the stages' refiner reading (bf16 weights, no autocast, CUDA graphs, torch.compile) against the CPU's fp32
`refine`; reading ahead onto the device on a side stream; a trunk cache's head on the device; the cache
stage's outputs brought to the host. Bounds are bf16's (about 3 significant digits), as
tests/runtime/test_compute_cuda.py's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sgpose.cache.transfer import ToHost
from sgpose.cache.writer import stored
from sgpose.config.schema import BackboneParams, ComputeParams
from sgpose.data.decoding import decode
from sgpose.inference.reading import Reading, Setup
from sgpose.method.refine import refine
from sgpose.models.backbones import build_backbone, features_of_trunk
from sgpose.runtime import compute
from sgpose.runtime.prefetch import Prefetcher
from test_reading import batch, refiner

pytestmark = pytest.mark.cuda
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float().cpu() - b.float().cpu()).abs().max() / b.float().abs().max()).item()


def _same_joints(a: torch.Tensor, b: torch.Tensor) -> float:
    return (decode(a.float().cpu())[0] == decode(b.float().cpu())[0]).all(-1).float().mean().item()


@pytest.mark.parametrize("mode", ["static", "recursive"])
def test_the_stages_reading_on_the_gpu_decodes_as_fp32_on_the_cpu(mode):
    """Setup.of the default compute section on CUDA (bf16 weights, channels_last, a CUDA graph), a short batch
    padded to the graph's 8 rows: within 3% of the output's range of the CPU's refine (recursive: its steps
    decode a random UNet's flat maps, 10%), the graph's replay the eager native reading's to 1%."""
    unet, spec = refiner()
    feats, y0 = batch(5)
    expect = refine(unet, spec, feats, y0, mode)
    setup = Setup.of(ComputeParams(), CUDA, batch=8)
    assert setup.dtype == torch.bfloat16 and setup.cuda_graphs and setup.compile is None
    graphed = Reading(copy.deepcopy(unet), spec, mode, CUDA, setup)
    out = graphed(feats, y0)
    out2 = graphed(feats, y0)  # replayed: the same buffers, the same numbers
    eager = Reading(copy.deepcopy(unet), spec, mode, CUDA, Setup(torch.bfloat16, True, batch=8))(feats, y0)
    assert out.shape == expect.shape and out.dtype == torch.bfloat16 and len(graphed.run.fn.graphs) == 1
    assert torch.equal(out, out2) and _relative(out, eager) <= 0.01
    assert _relative(out, expect) <= (0.03 if mode == "static" else 0.10)
    assert _same_joints(out, expect) >= (0.9 if mode == "static" else 0.75)


def test_torch_compile_replayed_from_a_graph_agrees_with_the_eager_reading():
    """compute.refiner_compile with graphs (inductor, fused kernels): the eager native reading's to bf16 rounding."""
    unet, spec = refiner()
    feats, y0 = batch(6)
    setup = Setup.of(ComputeParams(refiner_compile=True), CUDA, batch=8)
    assert setup.compile == "inductor" and setup.cuda_graphs
    out = Reading(copy.deepcopy(unet), spec, "static", CUDA, setup)(feats, y0)
    eager = Reading(copy.deepcopy(unet), spec, "static", CUDA, Setup(torch.bfloat16, True, batch=8))(feats, y0)
    assert _relative(out, eager) <= 0.03 and _same_joints(out, eager) >= 0.95


def test_nchw_and_amp_off_settings_run():
    unet, spec = refiner()
    feats, y0 = batch(4)
    expect = refine(unet, spec, feats, y0, "static")
    for cp in (ComputeParams(refiner_channels_last=False), ComputeParams(amp="off")):
        setup = Setup.of(cp, CUDA, batch=4)
        out = Reading(copy.deepcopy(unet), spec, "static", CUDA, setup)(feats, y0)
        assert _relative(out, expect) <= (0.03 if setup.dtype == torch.bfloat16 else 0.01), cp  # TF32 convolutions


def test_prefetched_batches_reach_the_step_stream_complete():
    """Copies on the side stream, the step's stream waiting for each: the values the step reads are the
    host's, for every batch (a missing wait would read half-copied memory)."""
    gen = torch.Generator().manual_seed(0)
    host = [{"x": torch.randn(16, 256, 64, 48, generator=gen).pin_memory()} for _ in range(6)]
    cp = ComputeParams()
    sums = []
    for b in Prefetcher(host, lambda b: {k: compute.to_device(v, cp, CUDA) for k, v in b.items()}, CUDA):
        assert b["x"].is_cuda
        sums.append(b["x"].double().sum().item())
    assert np.allclose(sums, [b["x"].double().sum().item() for b in host], rtol=1e-9)


def test_the_trunks_head_on_the_gpu_gives_the_cpus_features():
    torch.manual_seed(0)
    model = build_backbone(BackboneParams(name="r18", depth=18, deconv_channels=32, input_size=(128, 96),
                                          heatmap_size=(32, 24)), 17).eval()
    trunk = torch.relu(torch.randn(4, 512, 4, 3))
    want = features_of_trunk(model, trunk)
    cp = ComputeParams()
    gpu = compute.prepare_model(copy.deepcopy(model), cp, CUDA)
    with compute.inference(cp, CUDA):
        got = features_of_trunk(gpu, compute.to_device(trunk, cp, CUDA))
    assert all(_relative(g, w) <= 0.03 for g, w in zip(got, want))


def test_outputs_reach_the_host_in_fp16_as_the_writer_converts_them():
    x = torch.randn(8, 64, 32, 24) * 100
    x[0, 0, 0, 0] = 1e5
    arrays, overflowed = ToHost(CUDA, "float16").start({"feat/0": x.to(CUDA), "meta/id": torch.arange(8)})()
    want, _ = stored(x.numpy(), np.dtype(np.float16))
    assert overflowed == ["feat/0"] and arrays["feat/0"].tobytes() == want.tobytes()
    assert arrays["meta/id"].tolist() == list(range(8))
