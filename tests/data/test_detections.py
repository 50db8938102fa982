"""Detection boxes -> instance rows on the real fixture and sample detection files (from the mirror)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MIRROR, require
from sgpose.core.keypoints import COCO, CROWDPOSE
from sgpose.data.coco import INSTANCE_COLUMNS, load_coco
from sgpose.data.detections import instances_from_detections, load_detections

FIX_GT, FIX_DET = MIRROR / "fixtures/coco/test_coco.json", MIRROR / "fixtures/coco/test_coco_det_AP_H_56.json"
SAMPLE_GT = MIRROR / "coco_sample/annotations/person_keypoints_sample.json"
SAMPLE_DET = MIRROR / "coco_sample/person_detection_results/COCO_val2017_detections_AP_H_56_person_sample.json"


def _table(gt, det, layout=COCO, threshold=0.0, ids=None, min_area=0.0):
    coco = load_coco(require(gt), layout)
    ids = [i["id"] for i in coco["images"]] if ids is None else ids
    return instances_from_detections(coco, load_detections(require(det)), ids, layout, 0.75, 1.25, threshold, min_area)


def test_fixture_detections_counts_and_rows():
    table = _table(FIX_GT, FIX_DET)
    assert tuple(table.columns) == INSTANCE_COLUMNS and len(table) == 118  # all person rows at threshold 0
    assert len(_table(FIX_GT, FIX_DET, threshold=0.3)) == 33 and len(_table(FIX_GT, FIX_DET, threshold=0.5)) == 18
    assert (table.ann_id == -1).all() and (table.num_keypoints == 0).all()
    assert table.keypoints.map(lambda k: len(k) == 51 and not any(k)).all()
    first = table[table.image_id == 785].iloc[0]  # best box of image 785, hand-checked
    assert first.score == pytest.approx(0.999973, abs=1e-6)
    assert (first.bbox_w, first.bbox_h) == pytest.approx((225.091266, 333.560265))
    # centre = box centre; w < 0.75 h -> w = 0.75 * 333.560265 = 250.170199; x1.25
    assert (first.center_x, first.center_y) == pytest.approx((389.663949, 212.479800))
    assert (first.scale_w, first.scale_h) == pytest.approx((312.712749, 416.950332))
    assert first.area == pytest.approx(225.091266 * 333.560265)
    per_image = table.groupby("image_id").score.apply(lambda s: bool(np.all(np.diff(s.to_numpy()) <= 0)))
    assert per_image.all()  # sorted by score within each image


def test_sample_detections_counts():
    assert len(_table(SAMPLE_GT, SAMPLE_DET)) == 7342  # 240 images, every row a person box
    assert len(_table(SAMPLE_GT, SAMPLE_DET, threshold=0.3)) == 2282
    assert len(_table(SAMPLE_GT, SAMPLE_DET, ids=[1000])) == (_table(SAMPLE_GT, SAMPLE_DET).image_id == 1000).sum()
    assert len(_table(SAMPLE_GT, SAMPLE_DET, min_area=32 ** 2)) < 7342


def test_crowdpose_detections_use_14_joints():
    table = _table(MIRROR / "fixtures/crowdpose/test_crowdpose.json",
                   MIRROR / "fixtures/crowdpose/test_crowdpose_det_AP_40.json", CROWDPOSE)
    assert len(table) == 6 and table.keypoints.map(len).eq(42).all()


@pytest.mark.parametrize("content, message", [
    ({"annotations": []}, "not a detection results file"),
    ([{"image_id": 1, "bbox": [1, 2, 3], "score": 0.5}], "lacks image_id/bbox"),
])
def test_bad_detection_files(tmp_path, content, message):
    path = tmp_path / "det.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=f"det.json: .*{message}"):
        load_detections(path)
