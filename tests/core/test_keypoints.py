import numpy as np
import pytest
from sgpose.core.keypoints import COCO, CROWDPOSE, get_layout


@pytest.mark.parametrize("layout", [COCO, CROWDPOSE])
def test_layout_is_consistent(layout):
    k = layout.num_joints
    assert len(layout.sigmas) == len(layout.canonical) == k
    assert all(0 <= a < k and 0 <= b < k for a, b in layout.skeleton)
    perm = layout.flip_permutation()
    assert sorted(perm) == list(range(k)) and np.all(perm[perm] == np.arange(k))
    # the canonical pose faces the camera: mirroring it swaps left and right onto each other
    pose = np.asarray(layout.canonical)
    mirrored = pose[perm].copy()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored, pose, atol=1e-9)


def test_coco_facts():
    assert COCO.num_joints == 17 and CROWDPOSE.num_joints == 14
    assert COCO.sigmas[0] == pytest.approx(0.026) and COCO.sigmas[-1] == pytest.approx(0.089)
    assert (5, 6) in COCO.flip_pairs and (15, 16) in COCO.flip_pairs
    assert COCO.index("left_wrist") == 9
    pose = COCO.canonical_pose((64, 48))
    assert pose.shape == (17, 2) and pose[:, 0].max() < 48 and pose[:, 1].max() < 64
    with pytest.raises(KeyError, match="no joint"):
        COCO.index("tail")
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        get_layout("mpii")
