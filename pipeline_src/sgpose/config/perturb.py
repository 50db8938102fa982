"""Parameters of a controlled backbone's synthetic errors (`backbones.<name>.perturb`), validated.

The error types are Ronchi & Perona's (ICCV 2017) as PoseFix (Moon et al., CVPR 2019) synthesises
them; magnitudes are COCO keypoint-similarity (ks) ranges, so they scale with the person and the
joint as OKS does. Kept apart from `sgpose.config` so `sgpose.controlled.perturb` (pure tensor code) can use
it without the config machinery; `sgpose.config` embeds it in `BackboneParams`.
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
