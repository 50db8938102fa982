# Names shared by every rule: the experiment grid of params.yaml and the file layout of
# sgpose.config.Paths (dvc.yaml interpolates the same keys).
DATASETS = config["datasets"]
BACKBONES = config["backbones"]
ABLATION = config.get("ablation") or {}
CACHE = config.get("cache") or {}
CODE = "pipeline_src/sgpose"
RES = "results"


def dataset_of(bb):
    return BACKBONES[bb]["dataset"]


def bbdir(bb):
    """results/<dataset>/<backbone>"""
    return f"{RES}/{dataset_of(bb)}/{bb}"


def evals_of(bb):
    return BACKBONES[bb].get("evals", ["val"])


def splits_of(bb):
    return ["train", *evals_of(bb)]


def variants_of(bb):
    """The refined variants a backbone trains: ours, and the ablation's on the ablation backbone."""
    return ["ours", *(ABLATION.get("variants", []) if ABLATION.get("backbone") == bb else [])]


def shards_of(split):
    """Shard names of a split (cache.shards, default 1): 00000, 00001, ..."""
    return [f"{i:05d}" for i in range((CACHE.get("shards") or {}).get(split, 1))]


def has_detections(ds):
    return bool((DATASETS[ds].get("prepare") or {}).get("detections"))


def prepare_splits(ds):
    return ["train", "val", *(["val_det"] if has_detections(ds) else [])]


def grid():
    """(dataset, backbone, variant) of every evaluation, baseline included."""
    return [(dataset_of(bb), bb, v) for bb in BACKBONES for v in ["baseline", *variants_of(bb)]]


wildcard_constraints:
    ds="|".join(DATASETS),
    bb="|".join(BACKBONES),
    split="train|val|val_det",
    shard=r"\d{5}",
    variant=r"baseline|A[1-4]|ours|ours_S\d+|ours_cosine|ours_linear",
