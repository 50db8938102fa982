"""sgpose.data.coco on the real shipped sample (via the mirror), the shared fixture and bad inputs."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import (
    INSTANCE_COLUMNS,
    instances_from_gt,
    load_coco,
    sanitize_bbox,
    split_images,
    subset_annotations,
    validate_coco,
)

REPO = Path(__file__).resolve().parents[2]
from conftest import MIRROR, require

SAMPLE = MIRROR / "coco_sample/annotations/person_keypoints_sample.json"
FIXTURE = MIRROR / "fixtures/coco/test_coco.json"
COCO = get_layout("coco")


def _need(path: Path) -> Path:
    require(path)
    return path


@pytest.fixture(scope="module")
def sample() -> dict:
    return load_coco(_need(SAMPLE), COCO)


@pytest.fixture(scope="module")
def fixture_coco() -> dict:
    return load_coco(_need(FIXTURE), COCO)


def test_split_deterministic_disjoint_order_free(sample):
    ids = [img["id"] for img in sample["images"]]
    train, val = split_images(ids, 0.2, 0)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert split_images(shuffled, 0.2, 0) == (train, val)
    assert not set(train) & set(val) and set(train) | set(val) == set(ids)
    assert len(val) == 48 and len(train) == 192
    assert split_images(ids, 0.2, 1) != (train, val)


def test_split_small_sets():
    assert split_images([5, 3, 9, 1], 0.2, 0)[1].__len__() == 1  # never an empty val when n >= 2
    assert split_images([7], 0.2, 0) == ([7], [])


def test_sample_instances(sample):
    ids = [img["id"] for img in sample["images"]]
    df = instances_from_gt(sample, ids, COCO, aspect=96 / 128, padding=1.25, min_keypoints=1)
    assert tuple(df.columns) == INSTANCE_COLUMNS
    assert len(df) == 707  # every non-crowd person with >= 1 keypoint (all boxes are valid)
    assert df["ann_id"].is_unique and (df["score"] == 1).all()
    assert df["keypoints"].map(len).eq(51).all() and (df["num_keypoints"] >= 1).all()
    assert (df["scale_w"] / df["scale_h"]).sub(0.75).abs().max() < 1e-9
    assert len(instances_from_gt(sample, ids, COCO, 0.75, min_keypoints=10)) < 707


def test_hand_checked_center_scale(fixture_coco):
    df = instances_from_gt(fixture_coco, [785], COCO, aspect=0.75, padding=1.25)
    row = df.set_index("ann_id").loc[442619]
    # bbox [280.79, 44.73, 218.7, 346.68] in a 640x425 image -> cleaned w, h = 217.7, 345.68 (w - 1, h - 1)
    assert (row.bbox_x, row.bbox_y) == pytest.approx((280.79, 44.73))
    assert (row.bbox_w, row.bbox_h) == pytest.approx((217.7, 345.68))
    assert (row.center_x, row.center_y) == pytest.approx((389.64, 217.57))
    # w < 0.75 h -> width grows to 0.75 * 345.68 = 259.26; x1.25 padding
    assert (row.scale_w, row.scale_h) == pytest.approx((324.075, 432.1))
    assert row.keypoints[:3] == [367.0, 81.0, 2.0] and row.file_name == "000000000785.jpg"


def test_skips_crowd_and_degenerate(fixture_coco):
    coco = copy.deepcopy(fixture_coco)
    ids = [img["id"] for img in coco["images"]]
    n = len(instances_from_gt(coco, ids, COCO, 0.75))
    coco["annotations"][0]["iscrowd"] = 1
    coco["annotations"][1]["bbox"] = [10000, 10, 50, 50]  # outside the image -> clipped away
    assert len(instances_from_gt(coco, ids, COCO, 0.75)) == n - 2
    assert sanitize_bbox([-5, -5, 20, 30], 100, 100) == (0, 0, 19, 29)
    assert sanitize_bbox([10, 10, 1.5, 40], 100, 100) is None


def test_subset_keeps_all_annotations(sample):
    train, val = split_images([img["id"] for img in sample["images"]], 0.2, 0)
    parts = [subset_annotations(sample, ids) for ids in (train, val)]
    assert sum(len(p["images"]) for p in parts) == 240
    assert sum(len(p["annotations"]) for p in parts) == len(sample["annotations"]) == 1029
    assert {a["image_id"] for a in parts[1]["annotations"]} <= set(val)
    assert parts[1]["categories"] == sample["categories"]


@pytest.mark.parametrize("content, message", [
    ([1, 2], "expected a COCO annotation object"),
    ({"images": [], "annotations": []}, r"missing or non-list key\(s\) \['categories'\]"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=f"bad.json.*{message}"):
        load_coco(path, COCO)


def test_wrong_keypoint_length_names_file_and_id(fixture_coco, tmp_path):
    coco = copy.deepcopy(fixture_coco)
    coco["annotations"][2]["keypoints"] = coco["annotations"][2]["keypoints"][:42]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=rf"short.json: annotation id {coco['annotations'][2]['id']} has 42"):
        load_coco(path, COCO)
    with pytest.raises(ValueError, match="needs 42"):  # COCO-17 annotations under the CrowdPose layout
        validate_coco(fixture_coco, get_layout("crowdpose"), "x.json")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco(tmp_path / "nope.json", COCO)
