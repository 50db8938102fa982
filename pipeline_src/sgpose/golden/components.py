"""The numeric components the stages compute with, one digest each: what `sgpose doctor` and the golden-digest
test compare with the recorded ones (`sgpose.golden.recorded`), so that a machine that computes any of them
differently is named before (or instead of) an 11-minute run that ends in other bits.

Each component runs the project's own code where it has one (the backbone and the UNet, their losses and
optimizer, the heatmap targets, the guidance, the crops, the decoders, the OKS evaluation) on fixed,
seeded inputs, small enough that all of them take seconds natively and minutes under an emulated processor
(tests/golden/test_emulated_processors.py). Run under `compute.cpu_numerics: portable`, in a process whose
numerics `sgpose.runtime.numerics.apply` set (`sgpose doctor` does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sgpose.config.schema import BackboneParams, GuidanceParams
from sgpose.core.keypoints import COCO
from sgpose.core.variants import get_variant
from sgpose.data.decoding import decode, flip_back
from sgpose.data.targets import encode_targets
from sgpose.data.transforms import warp_crop
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.method import guidance
from sgpose.method.refine import GuidanceSpec, draw_steps, training_loss
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.backbones import build_backbone
from sgpose.models.features import FeatureInfo
from sgpose.models.losses import joints_mse
from sgpose.runtime import exact
from sgpose.training.optim import Adam

# the sample's backbone (params.yaml: sb_r18) and refiner (base 16, gain 20); the backbone trains on crops of
# a sixth of the sample's pixels per batch (64x64, 16: NNPACK's path began there) to keep a step within seconds under
# emulation (the sample's 128x96 at batch 32: 8 minutes for two steps under qemu)
SAMPLE_BACKBONE = BackboneParams(name="sb_r18", dataset="sample", depth=18, deconv_channels=64, input_size=(128, 96),
                                 heatmap_size=(32, 24))
SHORT_BACKBONE = SAMPLE_BACKBONE.model_copy(update={"input_size": (64, 64), "heatmap_size": (16, 16)})
BACKBONE_BATCH, REFINER_BATCH, STEPS = 16, 8, 2

Values = Iterable[object]


def digest(values: Values) -> str:
    """md5 (12 hex digits) of the bytes of every tensor, array or number in `values`, in order."""
    h = hashlib.md5()
    for v in values:
        if isinstance(v, torch.Tensor):
            v = v.detach().contiguous().numpy()
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:12]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def torch_init() -> Values:
    """torch's generator and the initialisations: randn, normal_, kaiming_uniform_ (every conv's default),
    and the sample backbone's initial weights."""
    torch.manual_seed(0)
    w = torch.empty(64, 64, 3, 3)
    yield torch.randn(1000, 100)
    yield torch.nn.init.normal_(w.clone(), std=0.001)
    yield torch.nn.init.kaiming_uniform_(w.clone(), a=5 ** 0.5)
    torch.manual_seed(0)
    yield from build_backbone(SAMPLE_BACKBONE, COCO.num_joints).state_dict().values()


def gemm() -> Values:
    """MKL's GEMM (float32, float64, batched)."""
    g = _gen(1)
    a, b = torch.randn(300, 576, generator=g), torch.randn(576, 77, generator=g)
    yield a @ b
    yield a.double() @ b.double()
    yield torch.bmm(a.reshape(3, 100, 576), b.expand(3, -1, -1))


def convolution() -> Values:
    """Convolutions forward and backward at batches 1, 8 and 32 (NNPACK's path began at 16): 3x3, 3x3 with
    stride 2, 1x1."""
    g = _gen(2)
    w = torch.randn(32, 16, 3, 3, generator=g) * 0.1
    for batch in (1, 8, 32):
        x = torch.randn(batch, 16, 24, 20, generator=g).requires_grad_()
        wr = w.clone().requires_grad_()
        ys = (F.conv2d(x, wr, padding=1), F.conv2d(x, wr, stride=2, padding=1), F.conv2d(x, wr[:, :, 1:2, 1:2]))
        sum(y.square().sum() for y in ys).backward()
        yield from (*ys, x.grad, wr.grad)


def transposed_convolution() -> Values:
    """The deconv head's 4x4 stride-2 transposed convolution, forward and backward."""
    g = _gen(3)
    x = torch.randn(8, 32, 8, 6, generator=g).requires_grad_()
    w = (torch.randn(32, 16, 4, 4, generator=g) * 0.1).requires_grad_()
    y = F.conv_transpose2d(x, w, stride=2, padding=1)
    y.square().sum().backward()
    yield from (y, x.grad, w.grad)


def normalisation() -> Values:
    """Batch norm (training with running statistics, evaluation, backward) and the UNet's GroupNorm + SiLU."""
    g = _gen(4)
    x = torch.randn(8, 16, 24, 20, generator=g)
    bn = torch.nn.BatchNorm2d(16, momentum=0.1)
    y = bn(x)
    y.square().sum().backward()
    yield from (y, bn.running_mean, bn.running_var, bn.weight.grad)
    bn.eval()
    yield bn(x)
    gn = torch.nn.GroupNorm(8, 16)
    y = F.silu(gn(x))
    y.square().sum().backward()
    yield from (y, gn.weight.grad)


def pointwise() -> Values:
    """torch's float32 elementwise maths (exp, log, sin, cos, sigmoid, tanh, pow, division), nearest
    upsampling, and the exact square root the optimizer and the controlled benchmark take."""
    g = _gen(5)
    x = torch.randn(100003, generator=g) * 3
    pos = x.abs() + 1e-3
    yield from (torch.exp(-x), torch.log(pos), torch.sin(x), torch.cos(x), torch.sigmoid(x), torch.tanh(x),
                pos.pow(1.7), x / pos, F.silu(x))
    yield from (exact.sqrt(pos), exact.sqrt(pos.double()))
    yield F.interpolate(x[:4800].reshape(2, 4, 30, 20), size=(60, 40), mode="nearest")


def reductions() -> Values:
    """Sums, means and variances (their partial sums depend on the threads and the vector width)."""
    g = _gen(6)
    x = torch.randn(1_000_003, generator=g)
    m = x[:960000].reshape(20, 16, 60, 50)
    yield from (x.sum(), x.mean(), m.var(dim=(0, 2, 3)), m.mean(dim=(2, 3)), x.cumsum(0), m.amax(dim=(2, 3)))
    yield m.flatten(2).argmax(-1)


def adam() -> Values:
    """The trainings' optimizer (`sgpose.training.optim.Adam`), five steps of a small network."""
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 17, 1))
    opt = Adam(net.parameters(), lr=1e-3)
    g = _gen(7)
    x, y = torch.randn(8, 3, 48, 40, generator=g), torch.rand(8, 17, 48, 40, generator=g)
    for _ in range(5):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
    yield from net.state_dict().values()


def numpy_math() -> Values:
    """numpy's float64 and float32 exp, log, power, sin, sqrt and sums (pycocotools' OKS is float64 exp)."""
    rng = np.random.default_rng(8)
    f64 = rng.standard_normal(100000) * 5
    f32 = f64.astype(np.float32)
    yield from (np.exp(f64), np.log(np.abs(f64) + 1e-3), np.exp(f32), np.log(np.abs(f32) + 1e-3))
    yield from (np.power(np.abs(f32), 1.7), np.power(np.abs(f64), 1.7), np.sin(f32), np.cos(f64))
    yield from (np.sqrt(np.abs(f64)), np.hypot(f64, f64[::-1]), np.sum(f64), np.sum(f32), np.cumsum(f64))


def numpy_blas() -> Values:
    """numpy's matmul and dot (OpenBLAS), from the crops' 2x3 affine maps to long dot products."""
    rng = np.random.default_rng(9)
    f64 = rng.standard_normal(100000)
    yield from (np.dot(f64, f64), f64[:600].reshape(20, 30) @ f64[:900].reshape(30, 30))
    yield f64[:600].reshape(20, 30).astype(np.float32) @ f64[:900].reshape(30, 30).astype(np.float32)
    yield f64[:6].reshape(3, 2) @ f64[6:10].reshape(2, 2).T + f64[10:12]


def opencv() -> Values:
    """The crops (`sgpose.data.transforms.warp_crop`: warpAffine), a resize and a blur, and a JPEG encoded
    and decoded (libjpeg-turbo)."""
    rng = np.random.default_rng(10)
    img = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (7, 7), 2.0)
    yield from (img, warp_crop(img, np.array([150.5, 120.25]), np.array([1.1, 1.45]), 17.0, (96, 128)))
    yield cv2.resize(img, (97, 131), interpolation=cv2.INTER_LINEAR)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    yield from (enc, cv2.imdecode(enc, cv2.IMREAD_COLOR))


def _poses(seed: int, n: int, size: tuple[int, int]) -> torch.Tensor:
    g = _gen(seed)
    h, w = size
    return torch.rand(n, COCO.num_joints, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])


def heatmaps() -> Values:
    """Heatmap targets (`encode_targets`), the graduated guidance of `ours` (cosine alphas, interpolation,
    rendering, fusion), and the decoders (standard, DARK, the flip test's flip_back)."""
    size = tuple(SAMPLE_BACKBONE.heatmap_size)
    sigma = SAMPLE_BACKBONE.heatmap_sigma
    joints = _poses(11, 8, size)
    visible = (torch.rand(8, COCO.num_joints, generator=_gen(12)) > 0.2).float()
    target, weight = encode_targets(joints, visible, size, sigma)
    yield from (target, weight)
    start = torch.from_numpy(COCO.canonical_pose(size))
    seq = guidance.guidance_sequence(start, joints, 3, sigma=sigma, size=size)
    yield seq
    maps = target + 0.05 * torch.rand(target.shape, generator=_gen(13))
    yield from decode(maps, "standard")
    yield from decode(maps, "dark", sigma)
    yield flip_back(maps, COCO.flip_permutation())


def oks_evaluation() -> Values:
    """COCO keypoint AP through `sgpose.evaluation` (pycocotools; OKS is numpy float64 exp)."""
    rng = np.random.default_rng(14)
    images, anns, results = [], [], []
    for i in range(6):
        images.append({"id": i + 1, "width": 640, "height": 480, "file_name": f"{i}.jpg"})
        for j in range(2):
            xy = rng.random((COCO.num_joints, 2)) * [200, 300] + [50 + 250 * j, 60]
            kp = np.concatenate([xy, np.full((COCO.num_joints, 1), 2.0)], 1)
            box = [float(xy[:, 0].min()), float(xy[:, 1].min()), float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1]))]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": box,
                         "area": box[2] * box[3], "num_keypoints": COCO.num_joints, "keypoints": kp.ravel().tolist()})
            noisy = xy + rng.standard_normal(xy.shape) * rng.uniform(1, 15)
            res = np.concatenate([noisy, rng.random((COCO.num_joints, 1))], 1)
            results.append({"image_id": i + 1, "category_id": 1, "keypoints": res.ravel().tolist(),
                            "score": float(rng.random())})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.names), "skeleton": []}]}
    metrics = evaluate_keypoints(gt, results, COCO.sigmas)
    yield np.array([metrics[k] for k in sorted(metrics)], dtype=np.float64)


def backbone_training() -> Values:
    """Two Adam steps of the sample backbone (SimpleBaseline ResNet-18, its deconv head of 64 channels) on
    seeded 64x64 crops in batches of 16, through its JointsMSE loss: losses, weights, batch-norm statistics."""
    torch.manual_seed(0)
    model = build_backbone(SHORT_BACKBONE, COCO.num_joints).train()
    opt = Adam(model.parameters(), lr=1e-3)
    g = _gen(15)
    h, w = SHORT_BACKBONE.heatmap_size
    for _ in range(STEPS):
        x = torch.randn(BACKBONE_BATCH, 3, *SHORT_BACKBONE.input_size, generator=g)
        target, weight = encode_targets(_poses(int(torch.randint(0, 1000, (1,), generator=g)), BACKBONE_BATCH, (h, w)),
                                        torch.ones(BACKBONE_BATCH, COCO.num_joints), (h, w), SHORT_BACKBONE.heatmap_sigma)
        opt.zero_grad()
        heat, _ = model(x)
        loss = joints_mse(heat, target, weight)
        loss.backward()
        opt.step()
        yield loss
    yield from model.state_dict().values()


def refiner_training() -> Values:
    """Two Adam steps of the sample's refiner (`ours`, base 16, gain 20) on seeded features of sb_r18's
    shapes, through Algorithm 1's loss (guidance from the backbone's pose at drawn steps)."""
    size, sigma = tuple(SAMPLE_BACKBONE.heatmap_size), SAMPLE_BACKBONE.heatmap_sigma
    features = [FeatureInfo(0, 64), FeatureInfo(1, 64), FeatureInfo(2, 64)]
    torch.manual_seed(0)
    unet = StructureGuidedUNet(COCO.num_joints, features, 16, [1, 2, 4], 64, input_gain=20.0).train()
    variant = get_variant("ours")
    gp = GuidanceParams()
    spec = GuidanceSpec(gp, variant, torch.from_numpy(COCO.canonical_pose(size)), sigma, size,
                        guidance.step_weights(variant.guidance, gp.S, gp.a3_steps))
    opt = Adam(unet.parameters(), lr=1e-3)
    g = _gen(16)
    for _ in range(STEPS):
        feats = [torch.randn(REFINER_BATCH, 64, size[0] >> i, size[1] >> i, generator=g) for i in range(3)]
        joints = _poses(int(torch.randint(0, 1000, (1,), generator=g)), REFINER_BATCH, size)
        y0, weight = encode_targets(joints + torch.randn(joints.shape, generator=g), torch.ones(REFINER_BATCH, 17),
                                    size, sigma)
        target, _ = encode_targets(joints, torch.ones(REFINER_BATCH, 17), size, sigma)
        t = draw_steps(spec, REFINER_BATCH, g, 0.75)
        opt.zero_grad()
        loss = training_loss(unet, spec, feats, y0, target, weight, t)
        loss.backward()
        opt.step()
        yield loss
    yield from unet.state_dict().values()


COMPONENTS: dict[str, Callable[[], Values]] = {
    "torch init": torch_init,
    "GEMM": gemm,
    "convolution": convolution,
    "transposed convolution": transposed_convolution,
    "normalisation": normalisation,
    "pointwise": pointwise,
    "reductions": reductions,
    "Adam": adam,
    "numpy math": numpy_math,
    "numpy BLAS": numpy_blas,
    "OpenCV and JPEG": opencv,
    "heatmaps": heatmaps,
    "OKS evaluation": oks_evaluation,
    "backbone training": backbone_training,
    "refiner training": refiner_training,
}


def digests(names: Iterable[str] | None = None) -> dict[str, str]:
    """{component: digest} for `names` (default all), each computed afresh."""
    return {name: digest(COMPONENTS[name]()) for name in (COMPONENTS if names is None else names)}
