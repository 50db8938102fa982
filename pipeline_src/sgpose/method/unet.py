"""The structure-guided UNet of docs/method.md §3.

    input     H(t) (K channels) is concatenated with the heatmap-resolution feature F_0, then a conv
              (`input_gain`, beyond the paper: the maps scaled first; docs/paper_notes.md)
    encoder   level i runs at 1/2^i of the heatmap resolution; levels i >= 1 downsample and fuse
              the backbone feature of that resolution (concatenate + 1x1 conv)
    step      t -> sinusoidal position embedding -> MLP -> added inside every residual block
    middle    two residual blocks at the lowest resolution
    decoder   upsample, concatenate the encoder skip, residual block, back to F_0's resolution
    output    a 1x1 conv to K heatmaps
    init      as the diffusion UNet it follows (guided-diffusion, Dhariwal & Nichol 2021): the output conv
              and every residual block's second conv start at zero, so each block starts as its skip
              path and the network's first output is all-zero heatmaps (docs/paper_notes.md)
Works for any feature list whose resolutions halve (SimpleBaseline: 3, HRNet: 4), and for a subset
of its levels (`feature_levels`, what `cache.feature_levels` stored): a level without a backbone
feature is simply not fused.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sgpose.models.features import FeatureInfo


def step_embedding(t: Tensor, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Sinusoidal position embedding of integer steps t (B,) -> (B, dim) (Transformer / DDPM), computed in
    float32 and handed over in `dtype` (the MLP's: a UNet whose weights are bf16 takes it in bf16)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).to(dtype)


def zero(module: nn.Module) -> nn.Module:
    """`module` with every parameter set to zero (guided-diffusion's `zero_module`)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """Norm-act-conv twice, with the step embedding added between (diffusion-UNet style)."""

    def __init__(self, cin: int, cout: int, time_dim: int, zero_init: bool = True):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, cout)
        conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), zero(conv2) if zero_init else conv2
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class StructureGuidedUNet(nn.Module):
    """UNet(features, guidance H(t), step t) -> K refined heatmaps at F_0's resolution."""

    def __init__(self, num_joints: int, features: list[FeatureInfo], base_channels: int = 32,
                 channel_mults: list[int] | None = None, time_dim: int = 64, in_channels: int | None = None,
                 step_embedding: bool = True, zero_init: bool = True, input_gain: float = 1.0):
        """features: the backbone features given to forward, each fused at its level (`FeatureInfo`);
        in_channels: the maps concatenated with F_0 (default num_joints: H(t); 0 for features only,
        2K with the previous-heatmap input). step_embedding False: no t input (ablations A1, A2).
        zero_init False: PyTorch's default initialisation instead of guided-diffusion's zero convs.
        input_gain: the maps are multiplied by it before the concatenation (`refiner.guidance_gain`; 1: as
        rendered, peak 1, the paper's reading)."""
        super().__init__()
        in_channels = num_joints if in_channels is None else in_channels
        self.features = list(features)
        self.input_gain = input_gain
        top = max(f.level for f in self.features)
        mults = list(channel_mults) if channel_mults else [2**i for i in range(top + 1)]
        if top >= len(mults):
            raise ValueError(f"channel_mults {mults} gives {len(mults)} UNet levels but a backbone feature is at "
                             f"level {top}: give one multiplier per feature level (or cache fewer levels)")
        at = {f.level: f.channels for f in self.features}  # UNet level -> backbone channels fused there
        if in_channels + at.get(0, 0) == 0:
            raise ValueError("the UNet input has no channels: neither guidance maps nor the level-0 feature")
        widths = [base_channels * m for m in mults]
        self.time_dim = time_dim
        self.time_mlp = (nn.Sequential(nn.Linear(time_dim, time_dim * 2), nn.SiLU(), nn.Linear(time_dim * 2, time_dim))
                         if step_embedding else None)
        # encoder, one (downsample, fuse, block) per level, highest resolution first. Level 0 fuses the
        # guidance maps with F_0 (a 3x3 conv, no downsampling); level i >= 1 halves the resolution and
        # fuses the backbone feature of that resolution, when one was cached (concatenate + 1x1 conv)
        self.downs = nn.ModuleList()
        for i, width in enumerate(widths):
            cin = in_channels if i == 0 else widths[i - 1]
            self.downs.append(nn.ModuleList([
                nn.Identity() if i == 0 else nn.Conv2d(cin, cin, 3, stride=2, padding=1),
                nn.Conv2d(cin + at.get(i, 0), width, 3 if i == 0 else 1, padding=1 if i == 0 else 0),
                ResBlock(width, width, time_dim, zero_init)]))
        self.mid = nn.ModuleList([ResBlock(widths[-1], widths[-1], time_dim, zero_init),
                                  ResBlock(widths[-1], widths[-1], time_dim, zero_init)])
        # decoder, one (upsample, block) per level, lowest resolution first: the upsampled input (a 1x1
        # conv to the level's width; none at the lowest level) concatenated with the encoder's skip
        self.ups = nn.ModuleList(
            nn.ModuleList([nn.Identity() if i == len(widths) - 1 else nn.Conv2d(widths[i + 1], width, 1),
                           ResBlock(2 * width, width, time_dim, zero_init)])
            for i, width in reversed(list(enumerate(widths))))
        out = nn.Conv2d(widths[0], num_joints, 1)
        self.head = nn.Sequential(_norm(widths[0]), nn.SiLU(), zero(out) if zero_init else out)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype: float32, or the compute dtype when inference converted them once
        (`sgpose.inference.reading`); inputs in another dtype are cast to it on the way in."""
        return self.head[-1].weight.dtype

    @property
    def levels(self) -> list[int]:
        """The backbone feature levels this refiner fuses (what its cache stored)."""
        return [f.level for f in self.features]

    def forward(self, features: list[Tensor], guidance: Tensor, t: Tensor) -> Tensor:
        """features: the backbone's (B, C_l, h/2^l, w/2^l) at `levels`; guidance (B, in_channels, h, w);
        t (B,) -> (B, K, h, w)."""
        if len(features) != len(self.features):
            raise ValueError(f"{len(features)} backbone features given; this refiner was built for feature levels "
                             f"{self.levels}")
        dtype = self.dtype  # under autocast float32 (autocast casts); a converted UNet's own (no-ops on the CPU)
        feat = {level: f.to(dtype) for level, f in zip(self.levels, features)}  # UNet level -> backbone feature
        if self.time_mlp is None:
            temb = features[0].new_zeros(features[0].shape[0], self.time_dim, dtype=dtype)
        else:
            temb = self.time_mlp(step_embedding(t, self.time_dim, dtype))  # (B, time_dim)
        # Gaussians of peak 1 over a few pixels (RMS ~0.05) beside features of RMS ~0.7: a gain lets the first
        # conv read them from the first step (refiner.guidance_gain; docs/paper_notes.md, issue 25)
        x, skips = guidance.to(dtype) * self.input_gain if self.input_gain != 1 else guidance.to(dtype), []
        for level, (downsample, fuse, block) in enumerate(self.downs):
            x = downsample(x)  # (B, C_{i-1}, h/2^i, w/2^i)
            x = fuse(torch.cat([x, feat[level]], dim=1) if level in feat else x)  # (B, C_i, h/2^i, w/2^i)
            x = block(x, temb)
            skips.append(x)
        for block in self.mid:
            x = block(x, temb)
        for upsample, block in self.ups:
            skip = skips.pop()  # (B, C_i, h/2^i, w/2^i)
            # nearest to the skip's size (odd sizes round down on the way in); the lowest level: same size
            x = upsample(F.interpolate(x, size=skip.shape[-2:], mode="nearest"))  # (B, C_i, h/2^i, w/2^i)
            x = block(torch.cat([x, skip], dim=1), temb)
        return self.head(x)
