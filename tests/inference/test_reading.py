"""The refiner's inference reading as the stages run it (sgpose.inference.reading) against `refine` itself,
on the CPU: the stages' CPU setting is `refine` to the bit; the GPU's setting (weights and features in bf16,
channels_last) runs here too and agrees to bf16's rounding; torch.compile traces the whole reading without
a break; padded batches give the unpadded rows; the reading copies nothing from the host and reads nothing
back (what a CUDA graph cannot capture). The CUDA graphs themselves: tests/runtime/test_compute_cuda.py."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import as_trained
from sgpose.config.schema import ComputeParams, GuidanceParams
from sgpose.core.keypoints import COCO
from sgpose.core.variants import get_variant
from sgpose.inference.reading import Reading, Setup
from sgpose.method import guidance
from sgpose.method.refine import GuidanceSpec, input_channels, refine
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.features import feature_info
from sgpose.runtime.graphs import host_traffic

HEATMAP, CPU = (32, 24), torch.device("cpu")
MODES = ("static", "recursive", "recursive_from_pred")


def refiner(variant: str = "ours", prev: bool = False, S: int = 3) -> tuple[StructureGuidedUNet, GuidanceSpec]:
    v, gp = get_variant(variant), GuidanceParams(S=S)
    spec = GuidanceSpec(gp, v, torch.from_numpy(COCO.canonical_pose(HEATMAP)), 1.0, HEATMAP,
                        guidance.step_weights(v.guidance, gp.S, gp.a3_steps), prev)
    torch.manual_seed(0)
    unet = StructureGuidedUNet(17, feature_info([8, 8, 8]), 8, [1, 2, 4], 16, in_channels=input_channels(17, v, prev),
                               step_embedding=v.step_embedding)
    return as_trained(unet, std=0.2).eval(), spec


def batch(n: int = 6, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n, 8, HEATMAP[0] >> i, HEATMAP[1] >> i, generator=gen) for i in range(3)]
    return feats, torch.rand(n, 17, *HEATMAP, generator=gen)


@pytest.mark.parametrize("variant,prev,S", [("ours", False, 3), ("ours", True, 3), ("A1", False, 3), ("A3", False, 3),
                                            ("ours", False, 2), ("A2", False, 3)])
@pytest.mark.parametrize("mode", MODES)
def test_the_cpu_setting_is_refine_to_the_bit(variant, prev, S, mode):
    """What infer runs on the CPU (Setup.of: float32, NCHW, eager) against `refine` on the spec as built:
    the spec on the device and the guidance rendered for the step's maps only change no bit."""
    unet, spec = refiner(variant, prev, S)
    feats, y0 = batch()
    expect = refine(unet, spec, feats, y0, mode)
    setup = Setup.of(ComputeParams(refiner_compile=True), CPU, batch=4)
    assert setup == Setup(batch=4)  # graphs and compile are CUDA's
    assert torch.equal(Reading(copy.deepcopy(unet), spec, mode, CPU, setup)(feats, y0), expect)


@pytest.mark.parametrize("mode", ["static", "recursive"])
def test_weights_and_features_in_bf16_channels_last_agree_to_bf16_rounding(mode):
    """The GPU's setting (no autocast: weights converted once, features converted on the way in, the step
    embedding and guidance cast to the UNet's dtype) on the CPU. Bounds: the static reading within 2% of
    the output's range (measured 0.7%); the recursive reading's later steps decode the previous output of
    this random UNet (flat maps: any rounding moves an argmax), so within 10% (measured 3.5%) and most
    decoded joints the same."""
    unet, spec = refiner()
    feats, y0 = batch()
    expect = refine(unet, spec, feats, y0, mode)
    reading = Reading(copy.deepcopy(unet), spec, mode, CPU, Setup(torch.bfloat16, channels_last=True))
    out = reading(feats, y0)
    assert out.dtype == torch.bfloat16 and reading.unet.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)
    error = ((out.float() - expect).abs().max() / expect.abs().max()).item()
    assert error <= (0.02 if mode == "static" else 0.10), error
    argmax = lambda h: h.flatten(2).argmax(-1)  # noqa: E731
    assert (argmax(out.float()) == argmax(expect)).float().mean() >= (0.95 if mode == "static" else 0.8)


def test_padded_batches_give_the_rows_of_unpadded_ones():
    """FixedBatch (what graphs and compile run under): a short batch padded with zero rows, a long one in
    pieces; every layer works per sample, so each real row is its unpadded value to float sums' order (a
    batch of 16 takes another GEMM blocking on the CPU: measured 7.5e-6 of the output's range)."""
    unet, spec = refiner()
    feats, y0 = batch(7)
    expect = refine(unet, spec, feats, y0, "static")
    for rows in (4, 7, 16):  # 7 in pieces of 4 (4 + 3 padded); one call; padded to 16
        out = Reading(copy.deepcopy(unet), spec, "static", CPU, Setup(batch=rows, compile="eager"))(feats, y0)
        assert out.shape == expect.shape
        assert torch.allclose(out, expect, rtol=0, atol=2e-5 * expect.abs().max().item()), rows


@pytest.mark.parametrize("mode", ["static", "recursive"])
def test_torch_compile_traces_the_whole_reading(mode):
    """The reading compiles as one graph (fullgraph: a break would raise), with AOT autograd's
    decompositions as inductor gets them; the same heatmaps to float32 rounding (decomposed norms)."""
    unet, spec = refiner()
    feats, y0 = batch()
    expect = refine(unet, spec, feats, y0, mode)
    reading = Reading(copy.deepcopy(unet), spec, mode, CPU, Setup(batch=6))
    compiled = torch.compile(reading._eager, backend="aot_eager", dynamic=False, fullgraph=True)
    with torch.no_grad():
        out = compiled(*reading.inputs(feats, y0))
    assert torch.allclose(out, expect, rtol=0, atol=1e-5 * expect.abs().max().item())


@pytest.mark.parametrize("variant,prev", [("ours", False), ("ours", True), ("A1", False), ("A4", False)])
@pytest.mark.parametrize("mode", MODES)
def test_the_reading_copies_nothing_from_the_host_and_reads_nothing_back(variant, prev, mode):
    """What made the CUDA graph fail on the H200 ("Cannot copy between CPU and CUDA tensors during CUDA
    graph capture"): the start pose, the step weights and the schedule's alphas lived on the host. With
    the spec on the device no op of any reading meets a host tensor or syncs; the spec as built does."""
    unet, spec = refiner(variant, prev)
    meta = torch.device("meta")
    reading = Reading(copy.deepcopy(unet), spec, mode, meta, Setup(torch.bfloat16, channels_last=True))
    feats, y0 = batch()
    args = reading.inputs([f.to(meta) for f in feats], y0.to(meta))
    assert host_traffic(reading._eager, *args) == []
    on_host = lambda *a: refine(reading.unet, spec, list(a[:-1]), a[-1], mode)  # noqa: E731
    assert variant == "A1" or host_traffic(on_host, *args)  # A1 renders no guidance: nothing from the spec
