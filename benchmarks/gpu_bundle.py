"""What `benchmarks/gpu_bundle.sh` puts in the bundle for the GPU check (docs: benchmarks/gpu_check.py).

    python benchmarks/gpu_bundle.py pins                         # name==version of the packages to bundle
    python benchmarks/gpu_bundle.py mirror SRC DEST --images 120  # a subset of the sample, in the mirror's layout

The GPU machine's python (3.12, a CUDA torch) lacks these packages of sgpose's; the bundle pins them to
the versions installed here, where the tests pass: workflow/constraints.txt's (tests/test_environment.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
from importlib.metadata import version
from pathlib import Path

BUNDLED = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "hdf5plugin",
           "lz4", "pycocotools", "faster-coco-eval")
SAMPLE = "coco_sample"
ANNOTATIONS = "annotations/person_keypoints_sample.json"
DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person_sample.json"


def pins() -> list[str]:
    """`name==version` of every bundled package, as installed here."""
    return [f"{name}=={version(name)}" for name in BUNDLED]


def subset_mirror(src: Path, dest: Path, images: int) -> dict[str, int]:
    """The first `images` images (by id) of the mirror's sample, their annotations and detection boxes,
    written under `dest` in the mirror's layout (so SGPOSE_MIRROR=dest serves them); returns the counts."""
    coco = json.loads((src / SAMPLE / ANNOTATIONS).read_text())
    keep = sorted(coco["images"], key=lambda im: im["id"])[:images]
    ids = {im["id"] for im in keep}
    coco = coco | {"images": keep, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    dets = [d for d in json.loads((src / SAMPLE / DETECTIONS).read_text()) if d["image_id"] in ids]
    for rel, data in ((ANNOTATIONS, coco), (DETECTIONS, dets)):
        (dest / SAMPLE / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / SAMPLE / rel).write_text(json.dumps(data))
    (dest / SAMPLE / "images").mkdir(parents=True, exist_ok=True)
    for im in keep:
        shutil.copy2(src / SAMPLE / "images" / im["file_name"], dest / SAMPLE / "images" / im["file_name"])
    return {"images": len(keep), "persons": len(coco["annotations"]), "detections": len(dets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("pins")
    mirror = sub.add_parser("mirror")
    mirror.add_argument("src", type=Path)
    mirror.add_argument("dest", type=Path)
    mirror.add_argument("--images", type=int, default=120)
    args = parser.parse_args()
    if args.what == "pins":
        print(" ".join(pins()))
    else:
        print(subset_mirror(args.src, args.dest, args.images))


if __name__ == "__main__":
    main()
