import torch
from sgpose.data.targets import encode_targets


def test_targets_are_unit_gaussians_weighted_by_label_and_inside():
    joints = torch.tensor([[[10.0, 20.0], [5.0, 5.7], [30.0, 60.0], [-0.5, 3.0]]])
    vis = torch.tensor([[1, 2, 0, 1]])
    target, weight = encode_targets(joints, vis, (64, 48), 2.0)
    assert target.shape == (1, 4, 64, 48)
    assert weight.tolist() == [[1, 1, 0, 0]]  # unlabelled, and a centre left of the map: not trained on
    assert torch.all(target[0, 2] == 0) and torch.all(target[0, 3] == 0)
    assert target[0, 0, 20, 10] == 1.0
    torch.testing.assert_close(target[0, 0, 20, 12], torch.tensor(float(torch.exp(torch.tensor(-4.0 / 8)))))
