"""One split's shards: instance ranges, what shapes their contents (attributes and fingerprints), which
are finished, and the manifest over them (docs/scale.md, "Cache").

A shard's fingerprint hashes its attributes (the cache keys that shape that split, the backbone's params
and weights, the compute set-up in effect), its instance rows and start, and the source of the code that
computes it: the cache stage's import closure (`sgpose.runtime.imports`), the same files DVC's digest of
the stage holds. Modules that change how the stage runs but never what it writes (threads, locks, the
import scanner: `UNTRACKED`) are in neither, so editing them rebuilds no shard.
"""

from __future__ import annotations

import logging

from sgpose.cache import shards
from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.keypoints import get_layout
from sgpose.core.modes import CacheStore
from sgpose.data.coco import read_instances
from sgpose.models.checkpoints import backbone_source_sha256
from sgpose.runtime import compute, imports, locks

log = logging.getLogger(__name__)
STAGE = "sgpose.stages.cache"  # the module whose import closure computes a shard (named, not imported)
# the cache keys that shape a split's shards: every split's, then the train split's views (augment only
# draws views >= 1), then the evaluation splits' flip test; batch_size and shards never change a number
SHAPE_KEYS = ("dtype", "compression", "feature_levels")
TRAIN_KEYS = ("train_views",)  # and `store`, as the layout in effect (`store`)
VIEW_KEYS = ("augment",)
EVAL_KEYS = ("flip_test",)


def shard_attrs(params: Params, paths: Paths, split: str) -> dict:
    """The attributes every shard and the manifest of `split` carry: layout, sizes, backbone, weights,
    the cache keys that shape this split's shards (`SHAPE_KEYS`...), the compute set-up in effect on
    this node, and the split's `flip_test` and `views`. The shard fingerprints hash them, so a key
    that does not shape a split's shards never rebuilds them (a train_views change keeps val's)."""
    bp, layout, cp = params.backbone, get_layout(params.layout), params.cache
    train = split == "train"
    keys = {*SHAPE_KEYS, *((*TRAIN_KEYS, *(VIEW_KEYS if cp.train_views > 1 else ())) if train else EVAL_KEYS)}
    return {"layout": layout.name, "input_size": list(bp.input_size), "heatmap_size": list(bp.heatmap_size),
            "num_joints": layout.num_joints, "backbone": bp.model_dump(mode="json", exclude={"train"}),
            "checkpoint_sha256": backbone_source_sha256(paths.weights(bp)),
            "cache": cp.model_dump(mode="json", include=keys),
            "compute": compute.effective(params.compute, compute.device(params.compute)),
            "flip_test": cp.flip_test and not train,  # the flip test is an inference-time device
            "views": cp.train_views if train else 1, **({"store": store(params, split).value} if train else {})}


def store(params: Params, split: str) -> CacheStore:
    """What a split's shards hold of the backbone's features (`cache.store`): the trunk only in a SimpleBaseline's
    train split (read every epoch; evaluation splits are read once per variant and by the report's figures)."""
    bp = params.features_backbone
    trunk = params.cache.store == CacheStore.TRUNK and split == "train" and bp.arch == "simple_baseline"
    return CacheStore.TRUNK if trunk else CacheStore.HEAD


def code_digest() -> str:
    """The digest of the code that computes a shard: the cache stage's import closure."""
    return shards.code_digest(imports.module_files(STAGE), imports.ROOT)


class SplitPlan:
    """One split's shards: instance ranges, fingerprints, which are finished, and the manifest over them."""

    def __init__(self, params: Params, paths: Paths, split: str):
        self.split, self.manifest, self.results = split, paths.cache(split), paths.results
        self.rows = read_instances(paths.instances(split))
        self.attrs = shard_attrs(params, paths, split)
        self.flip, self.views = self.attrs["flip_test"], self.attrs["views"]
        self.ranges = shards.shard_ranges(len(self.rows), params.cache.num_shards(split))
        code = code_digest()
        self.prints = [shards.fingerprint(self.attrs, self.rows.iloc[a:b], a, code) for a, b in self.ranges]
        self.files = [shards.shard_path(self.manifest, i) for i in range(len(self.ranges))]

    def samples(self, i: int) -> tuple[int, int]:
        """Sample range [start, stop) of shard i (instances times views)."""
        a, b = self.ranges[i]
        return a * self.views, b * self.views

    def shard_attrs(self, i: int) -> dict:
        """What shard i's file carries: the split's attributes, its fingerprint, index and start."""
        return self.attrs | {"fingerprint": self.prints[i], "shard_index": i, "shard_start": self.samples(i)[0]}

    def problem(self, i: int, content: bool = True) -> str | None:
        """Why shard i must be (re)built, or None when it is finished and current (and, with `content`,
        every chunk passes its checksum)."""
        a, b = self.samples(i)
        return shards.shard_problem(self.files[i], b - a, self.prints[i], content)

    def indices(self, which: list[int] | None = None) -> list[int]:
        """The shards `which` names (default all), checked to exist in this split's plan."""
        for i in which or []:
            if not 0 <= i < len(self.ranges):
                raise ValueError(f"--shard {i}: {self.split} has shards 0..{len(self.ranges) - 1} (cache.shards)")
        return list(range(len(self.ranges))) if which is None else list(which)

    def todo(self, which: list[int] | None = None) -> list[int]:
        """The shards (of `which`, default all) that are missing, unfinished, stale or damaged."""
        out = []
        for i in self.indices(which):
            problem = self.problem(i)
            if problem is None:
                log.info("%s: finished, kept", self.files[i])
            else:
                out.append(i)
                if problem != "missing":
                    log.warning("%s: %s; rebuilding it", self.files[i], problem)
        return out

    def gather(self) -> None:
        """Write the manifest (under its lock); every shard must be finished (its content was checked when
        it was kept or written: not read again here). Removes stray files in the shards folder, never the
        temporary file of a live writer (its shard's lock is held)."""
        with locks.output_lock(self.manifest, self.results, wait=True):
            self._gather()

    def _gather(self) -> None:
        unfinished = [str(self.files[i]) for i in range(len(self.ranges)) if self.problem(i, content=False) is not None]
        if unfinished:
            raise ValueError(f"{self.manifest}: cannot gather, unfinished shards {unfinished}")
        for stray in shards.remove_strays(self.manifest, self.files, lambda p: locks.live_temporary(p, self.results)):
            log.info("removed stray %s", stray)
        n = len(self.rows) * self.views
        if shards.write_manifest(self.manifest, self.files, [self.samples(i)[0] for i in range(len(self.files))], n):
            log.info("wrote %s (%d samples in %d shards)", self.manifest, n, len(self.files))
        else:
            log.info("%s: current (same shards), kept", self.manifest)

    def lock(self, i: int):
        """The lock of shard i (another `sgpose cache` may be writing it: wait for it)."""
        return locks.output_lock(self.files[i], self.results, wait=True)
