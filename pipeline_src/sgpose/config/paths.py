"""Output locations of every stage, derived from the selected backbone and its dataset."""

from __future__ import annotations

from pathlib import Path

from sgpose.config.schema import BackboneParams, gt_split
from sgpose.config.selection import Params


class Paths:
    """Output locations of every stage, derived from params (mirrored by dvc.yaml and the Snakefile)."""

    def __init__(self, params: Params, root: str | Path = "."):
        self._place(root, params.dataset, params.backbone.name)

    @classmethod
    def of(cls, dataset: str, backbone: str, root: str | Path = ".") -> "Paths":
        """The paths of any (dataset, backbone) directory pair, e.g. a run the report found under results/."""
        paths = cls.__new__(cls)
        paths._place(root, dataset, backbone)
        return paths

    def _place(self, root: str | Path, dataset: str, backbone: str) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        self.dataset = self.results / dataset
        self.backbone_dir = self.dataset / backbone

    @property
    def params_check(self) -> Path:
        """The `check_params` stage's stamp: the whole params file validated (sgpose.stages.check_params)."""
        return self.results / "params_check.json"

    def code_digest(self, entry: str) -> Path:
        """The `code` stage's digest of one entry module's sources, DVC's code dependency (sgpose.dag.digests)."""
        return self.results / "code" / f"{entry}.json"

    @property
    def download_stamp(self) -> Path:
        """What `download` verified for this dataset (every file's checksum): the stage's tracked output."""
        return self.dataset / "download.json"

    @property
    def prepared(self) -> Path:
        """The `prepare` stage's directory: instance tables and ground truth per split."""
        return self.dataset / "prepared"

    def instances(self, split: str) -> Path:
        return self.prepared / f"instances_{split}.parquet"

    def split_annotations(self, split: str) -> Path:
        """COCO-format ground truth of one split's images (what evaluate scores; val_det: val's)."""
        return self.prepared / f"annotations_{gt_split(split)}.json"

    @property
    def backbone(self) -> Path:
        return self.backbone_dir / "backbone.pt"

    def weights(self, bp: BackboneParams) -> Path:
        """The backbone.pt whose features backbone `bp` caches and trains on: its own, or a controlled
        backbone's `features_from`'s (it has no weights of its own)."""
        return (Paths.of(self.dataset.name, bp.features_from, self.root) if bp.controlled else self).backbone

    @property
    def backbone_log(self) -> Path:
        return self.backbone_dir / "train_log.csv"

    @property
    def cache_dir(self) -> Path:
        return self.backbone_dir / "cache"

    def cache(self, split: str) -> Path:
        return self.cache_dir / f"{split}.h5"

    @property
    def start_pose(self) -> Path:
        """The mean training pose in crop coordinates (`guidance.start_pose: mean`)."""
        return self.backbone_dir / "start_pose.json"

    def variant_dir(self, variant: str) -> Path:
        return self.backbone_dir / variant

    def refiner(self, variant: str) -> Path:
        return self.variant_dir(variant) / "refiner.pt"

    def refiner_log(self, variant: str) -> Path:
        return self.variant_dir(variant) / "train_log.csv"

    def predictions_dir(self, variant: str) -> Path:
        return self.variant_dir(variant) / "predictions"

    def keypoints(self, variant: str, split: str) -> Path:
        """One split's predictions in COCO results format."""
        return self.predictions_dir(variant) / f"{split}.json"

    def metrics(self, variant: str) -> Path:
        """{split: COCO / CrowdPose metrics} of one variant (DVC metrics), in the one directory that
        collects every evaluation: results/metrics/<dataset>/<backbone>/<variant>.json."""
        return self.results / "metrics" / self.dataset.name / self.backbone_dir.name / f"{variant}.json"

    @property
    def report(self) -> Path:
        return self.results / "report"
