"""`sgpose inspect PATH [--verify]`: what a feature cache holds, before a refiner trains on it.

PATH is a split's cache (`results/<dataset>/<backbone>/cache/val.h5`, a manifest over its shards), one
shard, or a cache directory (every split in it). For each: samples, shards and their fingerprints, each
dataset's shape, dtype, compression, chunk and bytes per sample, and the parameters that made it (the
backbone, its weights' sha256, the cache section, the numerics). `--verify` reads every chunk back so
that HDF5 checks its Fletcher-32 checksum, and exits 1 naming the damaged ones.
"""

from __future__ import annotations

import argparse
import json
import logging

from sgpose.cache import summary as cs
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ")
    parser.add_argument("path", help="a split's cache (.h5), a shard, or a cache directory")
    parser.add_argument("--verify", action="store_true", help="read every chunk back and check its checksum")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _params_line(params: dict) -> str:
    bb = params.get("backbone") or {}
    arch = bb.get("arch", "?")
    model = {"simple_baseline": f"SimpleBaseline ResNet-{bb.get('depth')}", "hrnet": f"HRNet-W{bb.get('width')}"}.get(
        arch, f"{arch} (features of {bb.get('features_from')})")
    size = "x".join(map(str, params.get("input_size", []))) + " -> " + "x".join(map(str, params.get("heatmap_size", [])))
    cache = params.get("cache") or {}
    numerics = (params.get("compute") or {}).get("cpu_numerics", "?")
    return (f"  made by: backbone {bb.get('name', '?')} ({model}, {size}, {params.get('num_joints')} joints, "
            f"{params.get('layout')} layout), weights sha256 {str(params.get('checkpoint_sha256', '?'))[:16]}...; "
            f"cache {', '.join(f'{k} {v}' for k, v in cache.items() if k != 'flip_test')}; flip test "
            f"{params.get('flip_test')}, views {params.get('views')}; numerics {numerics}")


def report(s: cs.CacheSummary) -> list[str]:
    """The summary in lines: the file, its shards, what made it, a table of its datasets."""
    shards = (f"{len(s.shards)} shard{'s' * (len(s.shards) != 1)}: "
              + ", ".join(f"{p.name} ({f[:12]})" for p, f in zip(s.shards, s.fingerprints)))
    per = s.stored / s.samples if s.samples else 0
    lines = [f"{s.path}: {s.samples} samples in {shards}; {cs.size(s.stored)} stored, {cs.size(per)} per sample",
             _params_line(s.params)]
    width = max([len(d.key) for d in s.datasets] + [7])
    lines.append(f"  {'dataset':{width}s}  {'shape':22s} {'dtype':8s} {'compression':11s} {'chunk':16s} "
                 f"{'stored':>9s} {'per sample':>10s}")
    for d in s.datasets:
        chunk = "x".join(map(str, d.chunks)) if d.chunks else "contiguous"
        lines.append(f"  {d.key:{width}s}  {str(d.shape):22s} {d.dtype:8s} {d.compression:11s} {chunk:16s} "
                     f"{cs.size(d.stored):>9s} {cs.size(d.per_sample):>10s}")
    return lines


def main(run: Run) -> int:
    args = run.args
    status, found = 0, []
    for path in cs.caches_in(args.path):
        s = cs.describe(path)
        v = cs.verify(s) if args.verify else None
        found.append(cs.as_json(s, v))
        if not args.json:
            print("\n".join(report(s)))
        if v is not None:
            status = max(status, 1 if v.damaged else 0)
            if not args.json:
                rate = v.stored / v.seconds / 1e6 if v.seconds else 0.0
                verdict = ("all pass their checksum" if not v.damaged else
                           f"{len(v.damaged)} damaged: " + "; ".join(v.damaged[:5]))
                print(f"  verify: {v.chunks} chunks in {v.datasets} datasets of {v.shards} shard"
                      f"{'s' * (v.shards != 1)} read back in {v.seconds:.1f} s ({rate:.0f} MB/s): {verdict}")
    if args.json:
        print(json.dumps(found if len(found) > 1 else found[0], indent=1))
    return status
