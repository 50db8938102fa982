"""Heatmaps -> joints, in torch, batched over samples and joints (no Python loop over either).

    argmax_coords   integer argmax and max response
    decode          the final decoding of infer, predict and the report, by `DecodeMode`:
                    standard  SimpleBaseline/HRNet's get_final_preds with TEST.POST_PROCESS
                    dark      DARK (Zhang et al., CVPR 2020): Gaussian modulation, then a Newton
                              (second-order Taylor) step at the maximum of the log-heatmap
    predicted_pose  P_pred of docs/method.md §2 (integer argmax, or sub-pixel: `PredDecode`; threshold): the
                    guidance's input, not a final decode
    flip_back       the mirrored crop's heatmaps mapped back (flip test)

Both final decoders follow the official conventions that move Table 2 (pinned in
tests/data/test_decoding.py): a joint whose heatmap maximum is <= 0 gets coordinates (0, 0) and keeps
its (non-positive) maximum as score; the quarter-pixel shift applies only where the argmax is more
than one pixel from every side, both axes tested together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sgpose.core.modes import DecodeMode, PredDecode, values

QUARTER = 0.25  # the standard shift toward the higher neighbour, heatmap px
DARK_KERNEL_RADII = 2.5  # modulation kernel half-width in sigmas: 11 taps at sigma 2, as DARK's code
LOG_FLOOR = 1e-10  # the log-heatmap's floor (DARK's code)
MAX_STEP = 1.5  # px per axis: a longer Newton step is not trusted (the zero-padded modulation moves a
# peak on a side up to ~1.2 px inward, which the step from there takes back)


def argmax_coords(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer argmax (N, K, 2) as (x, y) floats (the first maximum in row-major order) and the max
    response (N, K)."""
    n, k, h, w = heatmaps.shape
    maxvals, idx = heatmaps.reshape(n, k, h * w).max(dim=-1)
    coords = torch.stack([idx % w, idx // w], dim=-1).to(heatmaps.dtype)
    return coords, maxvals


def decode(heatmaps: Tensor, mode: DecodeMode | str = DecodeMode.STANDARD, sigma: float | None = None) -> tuple[Tensor, Tensor]:
    """Sub-pixel joints (N, K, 2) in heatmap px and scores (N, K) (the max response) of heatmaps (N, K, h, w).

    `mode` standard or dark; dark needs `sigma`, the training targets' Gaussian sigma in heatmap px
    (`BackboneParams.heatmap_sigma`): the modulation kernel is that Gaussian.
    """
    mode = _mode(mode)
    heatmaps = heatmaps.float()
    coords, maxvals = standard(heatmaps)
    if mode is DecodeMode.DARK:
        if sigma is None or not sigma > 0:
            raise ValueError(f"dark decoding needs the targets' sigma (> 0), got {sigma}")
        refined, ok = dark_refine(heatmaps, sigma)
        coords = torch.where(ok[..., None] & (maxvals > 0)[..., None], refined, coords)
    return coords, maxvals


def _mode(mode: DecodeMode | str) -> DecodeMode:
    try:
        return DecodeMode(mode)
    except ValueError:
        raise ValueError(f"unknown decode mode {mode!r}; expected one of {', '.join(values(DecodeMode))}") from None


def standard(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """get_final_preds (TEST.POST_PROCESS): argmax, (0, 0) where the max is <= 0, then a quarter pixel
    toward the higher neighbour on each axis where 1 < x < w-1 and 1 < y < h-1 (both together)."""
    n, k, h, w = heatmaps.shape
    coords, maxvals = argmax_coords(heatmaps)
    coords = coords * (maxvals > 0)[..., None]
    x, y = coords[..., 0].long(), coords[..., 1].long()
    interior = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
    at = _sampler(heatmaps, x.clamp(1, w - 2), y.clamp(1, h - 2))
    diff = torch.stack([at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)], dim=-1)  # (N, K, 2)
    return coords + torch.sign(diff) * interior[..., None] * QUARTER, maxvals


def _sampler(maps: Tensor, x: Tensor, y: Tensor):
    """at(dx, dy) -> maps[n, k, y + dy, x + dx] for every (n, k) at once; x, y (N, K) long, in range."""
    n, k, h, w = maps.shape
    flat = maps.reshape(n, k, h * w)
    return lambda dx, dy: flat.gather(-1, ((y + dy) * w + x + dx)[..., None])[..., 0]


def kernel_radius(sigma: float) -> int:
    """Half-width in px of the modulation kernel of the targets' sigma."""
    return max(1, math.ceil(DARK_KERNEL_RADII * sigma - 1e-9))


def modulate(heatmaps: Tensor, sigma: float) -> Tensor:
    """DARK's distribution modulation (eq. 9): each map convolved with the Gaussian of the targets'
    sigma (zero padding, as DARK's code), then rescaled to [0, max of the map]: min -> 0, max -> the
    original max."""
    n, k, h, w = heatmaps.shape
    r = kernel_radius(sigma)
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = heatmaps.reshape(n * k, 1, h, w)
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1), padding=(0, r)), g.view(1, 1, -1, 1), padding=(r, 0))
    x = x.reshape(n, k, h, w)
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    top = heatmaps.amax(dim=(-2, -1), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-30) * top, torch.zeros_like(x))


def dark_refine(heatmaps: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """(coords (N, K, 2), usable (N, K)): the Newton step mu = m - H^-1 g on the log-heatmap at the
    modulated map's integer maximum m, with central differences.

    The log is that of the modulated map where its kernel lies inside the map around m (m at least
    the kernel radius from every side); nearer a side, the zero padding pulls the modulated peak
    inward (by ~1 px at the edge), so there the log of the map itself is used (exact for a
    Gaussian peak; beyond DARK's code, which keeps the bias). Usable where the Hessian is negative
    definite (a maximum, not a flat map or a saddle) and the step is at most MAX_STEP per axis; where
    m lies on one side, the other axis alone takes its 1-D step. Elsewhere (a corner, a flat map, no
    maximum) the caller keeps the standard decode.
    """
    n, k, h, w = heatmaps.shape
    r = kernel_radius(sigma)
    modulated = modulate(heatmaps, sigma)
    m, _ = argmax_coords(modulated)
    x, y = m[..., 0].long(), m[..., 1].long()
    near = (x < r) | (x > w - 1 - r) | (y < r) | (y > h - 1 - r)  # (N, K)
    logm = torch.log(torch.where(near[..., None, None], heatmaps, modulated).clamp_min(LOG_FLOOR))
    at = _sampler(logm, x.clamp(1, w - 2), y.clamp(1, h - 2))
    c = at(0, 0)
    dx, dy = 0.5 * (at(1, 0) - at(-1, 0)), 0.5 * (at(0, 1) - at(0, -1))
    dxx, dyy = at(1, 0) - 2 * c + at(-1, 0), at(0, 1) - 2 * c + at(0, -1)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    ex, ey = (x > 0) & (x < w - 1), (y > 0) & (y < h - 1)  # (N, K): axes with a neighbour on both sides
    det = dxx * dyy - dxy**2
    both = ex & ey & (det > 0) & (dxx < 0)
    one = lambda d, dd: -d / torch.where(dd < 0, dd, -torch.ones_like(dd))  # noqa: E731  1-D Newton step
    step = torch.stack([
        torch.where(both, -(dyy * dx - dxy * dy) / torch.where(both, det, torch.ones_like(det)), one(dx, dxx)),
        torch.where(both, -(dxx * dy - dxy * dx) / torch.where(both, det, torch.ones_like(det)), one(dy, dyy)),
    ], dim=-1)  # -H^-1 g, (N, K, 2)
    # an axis at a side keeps its integer coordinate (the peak is at or beyond that side) and the other
    # takes the 1-D step; at a corner, or without a maximum, no step
    step = torch.stack([step[..., 0] * (both | (ex & ~ey & (dxx < 0))), step[..., 1] * (both | (ey & ~ex & (dyy < 0)))], dim=-1)
    flat = heatmaps.amax(dim=(-2, -1)) <= heatmaps.amin(dim=(-2, -1))
    ok = ((both | (ex ^ ey) & torch.where(ex, dxx, dyy).lt(0)) & ~flat & (step.abs() <= MAX_STEP).all(dim=-1)
          & torch.isfinite(step).all(dim=-1))
    return m + torch.where(ok[..., None], step, torch.zeros_like(step)), ok


def predicted_pose(heatmaps: Tensor, threshold: float, mode: PredDecode | str = PredDecode.ARGMAX,
                   sigma: float | None = None) -> Tensor:
    """P_pred of docs/method.md §2: per joint the integer argmax (`argmax`, the paper's), or the standard
    decode's quarter-pixel position (`subpixel`), or DARK's (`dark`, needs the targets' `sigma`); set to (0, 0)
    (missing) where the max response is at most `threshold`."""
    heatmaps = heatmaps.float()
    mode = PredDecode(mode)
    if mode is PredDecode.ARGMAX:
        coords, maxvals = argmax_coords(heatmaps)
    else:
        coords, maxvals = decode(heatmaps, DecodeMode.STANDARD if mode is PredDecode.SUBPIXEL else DecodeMode.DARK, sigma)
    return coords * (maxvals > threshold)[..., None]


def flip_back(heatmaps: Tensor, flip_perm, shift: bool = True) -> Tensor:
    """Heatmaps of a horizontally flipped crop, mapped back onto the original crop (flip test).

    Mirrors along width, swaps left/right channels (`flip_perm` from KeypointLayout), and, as
    SimpleBaseline/HRNet do, shifts one pixel right to undo the flip's half-pixel misalignment.
    """
    out = heatmaps.flip(-1)[:, torch.as_tensor(flip_perm, dtype=torch.long)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out
