# Names shared by every rule: the experiment grid of params.yaml and the file layout of
# sgpose.config.Paths (dvc.yaml interpolates the same keys).
from pathlib import Path

from sgpose.resources import read_resources

DATASETS = config["datasets"]
BACKBONES = config["backbones"]
ABLATION = config.get("ablation") or {}
CACHE = config.get("cache") or {}
CODE = "pipeline_src/sgpose"
RES = "results"
RESOURCES = read_resources(config)  # each rule's threads, mem_mb, runtime, gpu (params.yaml resources)


def code(*entries):
    """Package sources a rule depends on: a .py file, or every .py file of a directory (as DVC hashes
    a directory dependency whole)."""
    out = []
    for entry in entries:
        path = Path(CODE) / entry
        out += sorted(str(f) for f in path.rglob("*.py")) if path.is_dir() else [str(path)]
    return out


DETECTION_KEYS = ("detections", "det_score_threshold", "min_box_area")  # prepare keys only val_det reads


def prepare_params(ds, detections):
    """datasets.<ds>.prepare as the train/val rule (without the detection keys) or val_det sees it."""
    prep = DATASETS[ds].get("prepare") or {}
    return prep if detections else {k: v for k, v in prep.items() if k not in DETECTION_KEYS}


def dataset_of(bb):
    return BACKBONES[bb]["dataset"]


def bbdir(bb):
    """results/<dataset>/<backbone>"""
    return f"{RES}/{dataset_of(bb)}/{bb}"


def evals_of(bb, variant="baseline"):
    """sgpose.config.Params.evals_of: baseline and ours on the backbone's evals, the ablation on val."""
    return BACKBONES[bb].get("evals", ["val"]) if variant in ("baseline", "ours") else ["val"]


def variants_of(bb):
    """The refined variants a backbone trains: ours, and the ablation's on the ablation backbone."""
    return ["ours", *(ABLATION.get("variants", []) if ABLATION.get("backbone") == bb else [])]


def shards_of(split):
    """Shard names of a split (cache.shards, default 1): 00000, 00001, ..."""
    return [f"{i:05d}" for i in range((CACHE.get("shards") or {}).get(split, 1))]


def grid():
    """(dataset, backbone, variant) of every evaluation, baseline included."""
    return [(dataset_of(bb), bb, v) for bb in BACKBONES for v in ["baseline", *variants_of(bb)]]


wildcard_constraints:
    ds="|".join(DATASETS),
    bb="|".join(BACKBONES),
    split="train|val|val_det",
    shard=r"\d{5}",
    variant=r"baseline|A[1-4]|ours|ours_S\d+|ours_cosine|ours_linear",
