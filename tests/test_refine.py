"""Algorithm 1 (training draw) and the static inference reading of SPEC 5."""

from pathlib import Path

import torch
from sgpose import guidance
from sgpose.config import load_params
from sgpose.refine import build_unet, guidance_spec, refine_static, training_loss

ROOT = Path(__file__).resolve().parents[1]


def _setup():
    params = load_params(ROOT / "params.yaml", ["refiner.base_channels=8", "refiner.time_dim=16"])
    h, w = params.backbone.heatmap_size
    feats = [torch.randn(3, 8, h, w), torch.randn(3, 8, h // 2, w // 2), torch.randn(3, 8, h // 4, w // 4)]
    y0 = torch.rand(3, 17, h, w)
    return params, build_unet(params, [8, 8, 8]), guidance_spec(params), feats, y0


def test_training_loss_learns_on_a_fixed_batch():
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _setup()
    target, weight = torch.rand_like(y0), torch.ones(3, 17)
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = training_loss(unet, spec, feats, y0, target, weight, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_static_inference_equals_the_last_step_of_the_full_sequence():
    torch.manual_seed(0)
    params, unet, spec, feats, y0 = _setup()
    unet.eval()
    out = refine_static(unet, spec, feats, y0)
    from sgpose.data.heatmaps import predicted_pose
    pred = predicted_pose(y0, params.guidance.pred_threshold)
    H = guidance.guidance_sequence(spec.start, pred, params.guidance.S, params.guidance.schedule, spec.sigma,
                                   spec.size, params.guidance.missing)
    T = params.guidance.T
    with torch.no_grad():
        full = [unet(feats, H[:, t], torch.full((3,), t)) for t in range(T)]
    torch.testing.assert_close(out, full[-1])
