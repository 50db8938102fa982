"""Parameters of the controlled backbones (sgpose.controlled), validated: the synthetic errors of their
initial heatmaps (`backbones.<name>.perturb`) and the synthetic evidence of the pose in their features
(`backbones.<name>.evidence`). `sgpose.config.schema` embeds both in `BackboneParams`.

The error types are Ronchi & Perona's (ICCV 2017) as PoseFix (Moon et al., CVPR 2019) synthesises
them; magnitudes are COCO keypoint-similarity (ks) ranges, so they scale with the person and the
joint as OKS does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

KsRange = tuple[float, float]


class PerturbParams(BaseModel):
    """Per labelled joint, one error kind drawn with these rates (the rest are `good`), and where
    each kind puts the peak:

    good       the ground truth moved to a keypoint similarity in `good_ks` (1 = exactly on it)
    jitter     moved to a ks in `jitter_ks` (Ronchi & Perona: 0.5 <= ks < 0.85)
    inversion  on its left/right counterpart's ground truth (+ a `good_ks` displacement)
    swap       on the same joint of another person in the crop (+ a `good_ks` displacement)
    miss       moved to a ks in `miss_ks` (far: ks < 0.5)
    absent     no peak at all (the joint is missing in Y0)
    An inversion without a labelled counterpart, or a swap without another person's joint in the
    heatmap, stays `good`: the realised rates are at most the nominal ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0  # draws: (seed, ann_id) for evaluation splits, (seed, epoch, ann_id) in refiner training
    jitter: float = Field(0.0, ge=0, le=1)
    inversion: float = Field(0.0, ge=0, le=1)
    swap: float = Field(0.0, ge=0, le=1)
    miss: float = Field(0.0, ge=0, le=1)
    absent: float = Field(0.0, ge=0, le=1)
    good_ks: KsRange = (0.85, 1.0)
    jitter_ks: KsRange = (0.5, 0.85)
    miss_ks: KsRange = (0.05, 0.5)

    @model_validator(mode="after")
    def _valid(self) -> "PerturbParams":
        total = self.jitter + self.inversion + self.swap + self.miss + self.absent
        if total > 1 + 1e-9:
            raise ValueError(f"perturb: the error rates sum to {total:.4g} > 1")
        for name in ("good_ks", "jitter_ks", "miss_ks"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"perturb.{name} [{lo}, {hi}]: a keypoint-similarity range, 0 < low <= high <= 1")
        return self

    @property
    def rates(self) -> tuple[float, float, float, float, float]:
        """The error rates in `sgpose.controlled.perturb.KINDS` order (jitter, inversion, swap, miss, absent)."""
        return (self.jitter, self.inversion, self.swap, self.miss, self.absent)


ORACLE = PerturbParams(good_ks=(1.0, 1.0))  # no error: the ground truth itself
# Calibrated on the sample's val split (benchmarks/perturb_calibration.py, docs/paper_notes.md): the
# decoded heatmaps score AP 67.0 (63.5-70.5 over perturb seeds 0-4; COCO AP x 100), inside the 60-75
# of a realistic trained backbone; every joint not drawn as an error is still moved to ks 0.85-1.
PERTURBED = PerturbParams(jitter=0.08, inversion=0.02, swap=0.02, miss=0.03, absent=0.01)


class EvidenceParams(BaseModel):
    """Synthetic, partial and noisy evidence of the true pose written into a controlled backbone's features
    (`sgpose.controlled.evidence`): the benchmark where a refiner can gain over its input. At
    `informativeness` 0 the features are the real backbone's, untouched; at 1 its `channels` channels of every
    level hold clean Gaussians at the ground truth. In between, each joint's evidence is moved (keypoint
    similarity down to `ks_floor`), dropped (`drop`), blurred (`blur`) and buried in noise (`noise`), each
    scaled by 1 - informativeness, with errors of its own (independent of Y0's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    informativeness: float = Field(0.75, ge=0, le=1)
    channels: int = Field(17, ge=1)  # one per joint (the first `channels` joints), from channel `offset`
    offset: int = Field(0, ge=0)
    ks_floor: float = Field(0.5, gt=0, le=1)  # at informativeness 0 a joint is moved to ks in [ks_floor, 1]
    drop: float = Field(0.5, ge=0, le=1)  # at informativeness 0 a joint shows no evidence with this probability
    blur: float = Field(1.0, ge=0)  # at informativeness 0 the evidence sigma is (1 + blur) x the targets'
    noise: float = Field(0.5, ge=0)  # at informativeness 0 the noise's std, relative to the evidence peak
    amplitude: float = Field(1.0, gt=0)  # the peak, relative to the sample's 99th percentile activation per level
    seed: int = 0  # draws: (seed, ann_id) for evaluation splits, (seed, epoch, ann_id) in refiner training
