"""Scale figures of the feature cache (docs/scale.md), on the current device. Prints; not a test.

    python benchmarks/cache_throughput.py                     # every section, SimpleBaseline-R50 at 256x192
    python benchmarks/cache_throughput.py --sections bytes compression --cache results/sample/sb_r18/cache/train.h5

Sections:
  bytes        bytes per cached sample for the five paper backbones at 256x192 (fp16; train, and an
               evaluation split with its flip view) and the disk full COCO needs per backbone
  compression  each `cache.compression` on real cached features (--cache, default the sample's
               train cache when there is one): size ratio, write MB/s, random batch read ms, full read MB/s
  cache        the cache stage (crops -> backbone -> HDF5 writer) against the pure backbone forward and the
               crop loading alone, samples/s, on the sample's real images (SGPOSE_MIRROR)
  writer       the cache writer alone (lz4 + Fletcher-32) with HDF5's filters on one thread and with
               sgpose's chunk encoders on 1..all cores (sgpose.cache.chunks), samples/s and MB/s
  loader       random training batches read from a cache (CacheBatches, `--workers`) against the refiner's
               training step (UNet forward + backward + Adam) at 256x192, samples/s
  crops        crops/s per core (one thread) of CropDataset over the first --rows rows of each prepared
               sample split, decoding each person's image anew and each image once (rows sorted by image)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import torch
from sgpose.cache.format import COMPRESSION
from sgpose.cache.reader import CacheBatches, batch_loader, features, load_cache, shuffled_batches
from sgpose.cache.writer import cache_writer, write_cache
from sgpose.config.schema import BackboneParams, CacheParams, ComputeParams, GuidanceParams
from sgpose.core.keypoints import COCO
from sgpose.core.variants import get_variant
from sgpose.data.coco import instances_from_gt, load_coco
from sgpose.data.dataset import CropDataset
from sgpose.method.guidance import fusion_weights
from sgpose.method.refine import GuidanceSpec, draw_steps, training_loss
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.backbones import build_backbone, forward_views
from sgpose.models.features import feature_info
from sgpose.runtime import compute, threads
from timing import timed
from torch.utils.data import DataLoader, Subset

SIZE, HEATMAP, K = (256, 192), (64, 48), 17
BACKBONES = {"SimpleBaseline-R50": dict(depth=50), "SimpleBaseline-R101": dict(depth=101),
             "SimpleBaseline-R152": dict(depth=152), "HRNet-W32": dict(arch="hrnet", width=32),
             "HRNet-W48": dict(arch="hrnet", width=48)}
COCO_PERSONS = {"train": 149_813, "val": 6_352, "val_det": 104_000}  # GT persons; about 104k AP-56 val boxes
FIXED_BYTES = 4 * K + 4 * 3 * K + 8 * (2 + 2 + 4) + 8 * 2 + 4  # target_weight, joints, meta (float64/int64)


def sample_bytes(bp: BackboneParams, flip: bool, store: str = "head") -> int:
    """Uncompressed bytes of one cached sample: fp16 Y0, target and features (x2 with the flip view); with
    `store` trunk (a SimpleBaseline's train split) the trunk's map instead of the features."""
    from sgpose.models.backbones import forward_trunk

    model = build_backbone(bp, K).eval()
    with torch.no_grad():
        images = torch.zeros(1, 3, *SIZE)
        out = forward_trunk(model, images) if store == "trunk" else forward_views(model, images, flip)
    large = sum(v[0].numel() for v in out.values()) + K * HEATMAP[0] * HEATMAP[1]  # + target
    return 2 * large + FIXED_BYTES


def section_bytes(ratio: float) -> None:
    print(f"\n## bytes per cached sample at 256x192 (fp16), and full COCO on disk (x{ratio:.2f} compression)")
    print(f"{'backbone':20s} {'train MB':>9s} {'trunk MB':>9s} {'eval MB':>8s} {'train GB':>9s} {'trunk GB':>9s} "
          f"{'val GB':>7s} {'val_det GB':>10s} {'total GB':>9s}")
    for name, kw in BACKBONES.items():
        bp = BackboneParams(name=name, **kw)
        train, ev = sample_bytes(bp, False), sample_bytes(bp, True)
        trunk = sample_bytes(bp, False, "trunk") if bp.arch == "simple_baseline" else train  # HRNet: no trunk
        gb = {s: n * (train if s == "train" else ev) * ratio / 1e9 for s, n in COCO_PERSONS.items()}
        print(f"{name:20s} {train / 1e6:9.2f} {trunk / 1e6:9.2f} {ev / 1e6:8.2f} {gb['train']:9.1f} "
              f"{COCO_PERSONS['train'] * trunk * ratio / 1e9:9.1f} {gb['val']:7.1f} {gb['val_det']:10.1f} "
              f"{sum(gb.values()):9.1f}")


def section_compression(cache: Path | None, batch: int) -> float:
    """Returns the lz4 size ratio (what the bytes section scales by)."""
    if cache is None or not cache.is_file():
        print("\n## compression: no cache to measure (--cache PATH; the sample's appears after `dvc repro`)")
        return 1.0
    data = load_cache(cache)
    large = [k for k in data if data[k].dtype == np.float16]
    n, raw = len(data["heatmaps"]), sum(data[k].nbytes for k in large)
    print(f"\n## compression of {cache} ({n} samples, {raw / n / 1e6:.3f} MB of fp16 arrays each)")
    print(f"{'compression':12s} {'ratio':>6s} {'write MB/s':>11s} {'batch read ms':>14s} {'full read MB/s':>15s}")
    idx = np.sort(np.random.default_rng(0).choice(n, min(batch, n), replace=False)).tolist()
    lz4 = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in COMPRESSION:
            path = Path(tmp) / f"{name}.h5"
            t0 = time.perf_counter()
            write_cache(path, data, {}, compression=name)
            write = raw / (time.perf_counter() - t0) / 1e6
            reader = CacheBatches(path)  # what training does: one read_direct per run of samples
            read = timed(lambda: reader[idx])
            reader.close()
            with h5py.File(path, "r") as h5:
                full = raw / timed(lambda: [h5[k][()] for k in large], 1) / 1e6
                ratio = sum(h5[k].id.get_storage_size() for k in large) / raw
            lz4 = ratio if name == "lz4" else lz4
            print(f"{name:12s} {ratio:6.3f} {write:11.1f} {read * 1e3:14.1f} {full:15.1f}")
    return lz4


def sample_crops(n: int) -> CropDataset:
    mirror = Path(os.environ.get("SGPOSE_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data") / "coco_sample"
    coco = load_coco(mirror / "annotations" / "person_keypoints_sample.json", COCO)
    rows = instances_from_gt(coco, [im["id"] for im in coco["images"]], COCO, aspect=SIZE[1] / SIZE[0])
    return CropDataset(rows.iloc[:n], mirror / "images", SIZE, HEATMAP, 2.0, COCO)


FORWARD, LOADING, CACHE_STAGE = ("backbone forward (random images)", "crop loading only (decode + warp)",
                                 "cache stage (load + forward + lz4 write)")


def train_crops(n: int) -> CropDataset:
    """`n` plain crops of the mirror's COCO sample (its persons repeated as needed), as a train split's."""
    crops = sample_crops(10**9)
    reps = -(-n // len(crops.rows))
    rows = pd.concat([crops.rows] * reps).iloc[:n].reset_index(drop=True)
    return CropDataset(rows, crops.images_dir, SIZE, HEATMAP, 2.0, COCO)


def stage_rates(crops: CropDataset, batch: int, workers: int, store: str, cp: ComputeParams | None = None) -> dict:
    """The cache stage's own shard writer (`sgpose.cache.build.write_shard`) over a train split's `crops` with
    SimpleBaseline-R50 (no flip view), `store` head or trunk: samples/s of the stage, of the pure forward
    (what it computes of random images, on the device) and of the crop loading alone; where the stage's
    time went (crops, device, writer); stored MB per sample."""
    from sgpose.cache.build import write_shard
    from sgpose.models.backbones import forward_trunk

    cp = cp or ComputeParams()
    dev = compute.device(cp)
    model = compute.prepare_model(build_backbone(BackboneParams(name="r50", depth=50), K), cp, dev).eval()
    images = compute.to_device(torch.randn(batch, 3, *SIZE), cp, dev)
    run = (lambda: forward_trunk(model, images)) if store == "trunk" else (lambda: forward_views(model, images))
    with compute.inference(cp, dev):
        forward = len(crops) / (len(crops) / batch * timed(run, 3))
    loader = DataLoader(Subset(crops, range(len(crops))), batch_size=batch, num_workers=workers)
    loading = len(crops) / timed(lambda: [None for _ in loader], 1)
    cache = CacheParams(batch_size=batch, store=store)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shard.h5"
        write = lambda: write_shard(path, crops, (0, len(crops)), model, cache, cp, dev, False,  # noqa: E731
                                    {"store": store}, workers)
        write()  # warm-up: cuDNN's autotuner, the page cache, the loader's first workers
        t0 = time.perf_counter()
        parts = write()
        seconds = time.perf_counter() - t0
        with h5py.File(path, "r") as h5:
            mb = sum(h5[k].id.get_storage_size() for k in ("heatmaps", "target", *(("trunk",) if store == "trunk" else
                     (f"feat/{i}" for i in range(3))))) / len(crops) / 1e6
    return {"stage_samples_per_s": len(crops) / seconds, "forward_samples_per_s": forward,
            "loading_samples_per_s": loading, "stage_over_forward": len(crops) / seconds / forward,
            "parts_seconds": parts, "stored_mb_per_sample": mb, "crops": len(crops), "workers": workers}


def cache_rates(crops: CropDataset, batch: int, workers: int, cp: ComputeParams | None = None) -> dict[str, float]:
    """Samples/s of the SimpleBaseline-R50 forward with the flip view (random images), of the crop loading
    alone, and of the whole cache stage (load + forward + lz4 write) over `crops`."""
    cp = cp or ComputeParams()
    dev = compute.device(cp)
    model = compute.prepare_model(build_backbone(BackboneParams(name="r50", depth=50), K), cp, dev).eval()
    loader = lambda: DataLoader(Subset(crops, range(len(crops))), batch_size=batch, num_workers=workers,  # noqa: E731
                                pin_memory=dev.type == "cuda")
    images = torch.randn(batch, 3, *SIZE)

    def forward():
        with compute.inference(cp, dev):
            forward_views(model, compute.to_device(images, cp, dev), flip=True)

    def load():
        for _ in loader():
            pass

    def cache_stage():
        with tempfile.TemporaryDirectory() as tmp, cache_writer(Path(tmp) / "c.h5", len(crops), {},
                                                                        background=True) as w:
            for b in loader():
                with compute.inference(cp, dev):
                    out = forward_views(model, compute.to_device(b["image"], cp, dev), flip=True)
                w.append({k: v.cpu().numpy() for k, v in out.items()}
                         | {k: b[k].numpy() for k in ("target", "target_weight", "joints")}
                         | {f"meta/{k}": b[k].numpy() for k in ("center", "scale", "bbox", "image_id", "ann_id", "score")})

    seconds = {FORWARD: len(crops) / batch * timed(forward, 2), LOADING: timed(load, 1), CACHE_STAGE: timed(cache_stage, 1)}
    return {name: len(crops) / sec for name, sec in seconds.items()}


def section_cache(samples: int, batch: int, workers: int) -> None:
    dev = compute.device(ComputeParams())
    where = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n## cache stage, SimpleBaseline-R50 at 256x192 with the flip view, {samples} real sample crops, "
          f"batch {batch}, {workers} loader workers ({where})")
    for name, rate in cache_rates(sample_crops(samples), batch, workers).items():
        print(f"{name:42s} {rate:8.1f} samples/s")


def r50_arrays(n: int, flip: bool = False, chans: tuple[int, ...] = (256, 256, 256)) -> dict[str, np.ndarray]:
    """`n` random samples of a SimpleBaseline-R50 cache at 256x192 (ReLU-like features: half zeros),
    float32 as the backbone hands them to the writer; with the flip view's datasets (`flip`)."""
    rng = np.random.default_rng(0)
    views = ("", "flip/") if flip else ("",)
    return {"target": rng.random((n, K, *HEATMAP), np.float32),
            "target_weight": np.ones((n, K), np.float32), "joints": rng.random((n, K, 3), np.float32) * 40,
            **{f"{v}heatmaps": rng.random((n, K, *HEATMAP), np.float32) for v in views},
            **{f"{v}feat/{i}": np.maximum(rng.standard_normal((n, c, HEATMAP[0] >> i, HEATMAP[1] >> i), np.float32), 0)
               for v in views for i, c in enumerate(chans)},
            **{f"meta/{k}": np.zeros((n, d)) for k, d in (("center", 2), ("scale", 2), ("bbox", 4))},
            "meta/image_id": np.arange(n), "meta/ann_id": np.arange(n), "meta/score": np.ones(n, np.float32)}


def writer_rates(n: int, batch: int, encoders: list[int], flip: bool = True, iters: int = 3) -> dict[int, float]:
    """Samples/s of the cache writer alone (fp16, lz4, Fletcher-32) for each number of encoder threads
    (0: HDF5's filters on the writing thread), over `n` R50 samples in batches (median of `iters` writes
    after one warm-up)."""
    arrays = r50_arrays(n, flip)

    def write(k: int) -> None:
        with tempfile.TemporaryDirectory() as tmp, cache_writer(Path(tmp) / "c.h5", n, {}, encoders=k) as w:
            for i in range(0, n, batch):
                w.append({key: v[i:i + batch] for key, v in arrays.items()})

    return {k: n / timed(lambda: write(k), iters) for k in encoders}


def section_writer(samples: int, batch: int) -> None:
    cores = threads.pool_threads()
    counts = sorted({0, 1, *range(2, cores + 1, 2), cores})
    mb = sum(v[0].nbytes for k, v in r50_arrays(1, True).items() if v.dtype == np.float32) / 2 / 1e6
    print(f"\n## cache writer alone, {samples} SimpleBaseline-R50 samples with the flip view ({mb:.2f} MB of fp16 "
          f"each), lz4 + Fletcher-32, batch {batch}, {cores} cores")
    for k, rate in writer_rates(samples, batch, counts).items():
        what = "HDF5's filters (one thread)" if k == 0 else f"{k} encoder thread{'s' * (k > 1)}"
        print(f"{what:42s} {rate:8.1f} samples/s {rate * mb:8.0f} MB/s")


def section_loader(batch: int, workers: int) -> None:
    n = 4 * batch
    chans = [256, 256, 256]
    arrays = r50_arrays(n)
    cp = ComputeParams()
    dev = compute.device(cp)
    unet = compute.prepare_model(StructureGuidedUNet(K, feature_info(list(chans)), 32, [1, 2, 4], 64), cp, dev)
    spec = GuidanceSpec(GuidanceParams(), get_variant("ours"), torch.from_numpy(COCO.canonical_pose(HEATMAP)),
                        2.0, HEATMAP, fusion_weights(3))
    opt = torch.optim.Adam(unet.parameters(), lr=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        write_cache(Path(tmp) / "c.h5", arrays, {})
        data = CacheBatches(Path(tmp) / "c.h5")
        batches = shuffled_batches(n, batch, torch.Generator().manual_seed(0))
        pin = dev.type == "cuda"  # as training reads
        read = timed(lambda: list(batch_loader(data, batches, workers, pin)), 2) / len(batches)
        b = {k: compute.to_device(v, cp, dev) for k, v in next(iter(batch_loader(data, batches[:1]))).items()}
        data.close()

        def step():
            with compute.autocast(cp, dev):
                loss = training_loss(unet, spec, features(b), b["heatmaps"], b["target"], b["target_weight"],
                                     draw_steps(spec, len(b["heatmaps"])))
            opt.zero_grad()
            loss.backward()
            opt.step()

        train = timed(step, 2)
    print(f"\n## training from the cache, SimpleBaseline-R50 features at 256x192, batch {batch}")
    print(f"{'cache reader (random batches, ' + str(workers) + ' workers)':42s} {batch / read:8.1f} samples/s")
    print(f"{'refiner training step (UNet base 32)':42s} {batch / train:8.1f} samples/s")


def crop_rates(crops: CropDataset, iters: int = 3) -> dict[str, float]:
    """Crops/s of a pass in row order over `crops`, the image decoded for every person (what random
    training order costs) and once per image (the cache stage, online inference)."""
    def per_person():
        for i in range(len(crops)):
            crops._last = None  # CropDataset's decoded-image memo, dropped: a decode per crop
            crops.item(i, 0)

    def per_image():
        crops._last = None
        for i in range(len(crops)):
            crops.item(i, 0)

    return {name: len(crops) / timed(run, iters) for name, run in (("a decode per person", per_person),
                                                                   ("a decode per image", per_image))}


def section_crops(rows: int) -> None:
    from sample_project import Project, mirror, sample_tree  # the sample's prepared splits

    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"\n## crop loading per core, first {rows} rows of each prepared sample split at 256x192 "
          "(decode, warp, targets, tensors)")
    print(f"{'split':10s} {'persons/image':>13s} {'a decode per person':>20s} {'a decode per image':>19s}  crops/s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Project(Path(tmp) / "sample", sample_tree())
            project.run("prepare")
            for split in ("train", "val", "val_det"):
                table = pd.read_parquet(project.paths.instances(split)).iloc[:rows]
                crops = CropDataset(table, mirror() / "coco_sample" / "images", SIZE, HEATMAP, 2.0, COCO)
                rates = crop_rates(crops)
                print(f"{split:10s} {len(table) / table.file_name.nunique():13.1f} "
                      f"{rates['a decode per person']:20.0f} {rates['a decode per image']:19.0f}")
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["bytes", "compression", "cache", "writer", "loader", "crops"],
                        choices=["bytes", "compression", "cache", "writer", "loader", "crops"])
    parser.add_argument("--cache", type=Path, default=Path("results/sample/sb_r18/cache/train.h5"),
                        help="a cache file whose features the compression section measures")
    parser.add_argument("--samples", type=int, default=64, help="crops the cache section runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rows", type=int, default=200, help="rows per split the crops section loads")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, device {compute.device(ComputeParams())}, {torch.get_num_threads()} threads")
    ratio = section_compression(args.cache, args.batch) if "compression" in args.sections else 1.0
    if "bytes" in args.sections:
        section_bytes(ratio)
    if "cache" in args.sections:
        section_cache(args.samples, args.batch, args.workers)
    if "writer" in args.sections:
        section_writer(args.samples, args.batch)
    if "loader" in args.sections:
        section_loader(args.batch, args.workers)
    if "crops" in args.sections:
        section_crops(args.rows)


if __name__ == "__main__":
    main()
