"""The cache stage's outputs brought to the host in the cache dtype (sgpose.cache.transfer.ToHost): the
writer's own conversion, bit for bit; finite values beyond float16 named; other dtypes as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sgpose.cache.transfer import ToHost
from sgpose.cache.writer import stored

CPU = torch.device("cpu")


def test_the_conversion_is_the_writers_and_overflow_is_named():
    gen = torch.Generator().manual_seed(0)
    outputs = {"heatmaps": torch.rand(3, 17, 8, 6, generator=gen) * 1e-3,  # float16 subnormals: rounding matters
               "feat/0": torch.randn(3, 8, 8, 6, generator=gen) * 3e4, "meta/x": torch.arange(3)}
    outputs["feat/0"][0, 0, 0, 0] = 70000.0  # finite, rounds to inf in float16
    outputs["heatmaps"][1, 0, 0, 0] = float("inf")  # already inf: no overflow to report
    arrays, overflowed = ToHost(CPU, "float16").start(outputs)()
    assert overflowed == ["feat/0"]
    for key in ("heatmaps", "feat/0"):
        want, _ = stored(outputs[key].numpy(), np.dtype(np.float16))
        assert arrays[key].dtype == np.float16 and arrays[key].tobytes() == want.tobytes(), key
    assert arrays["meta/x"].dtype == np.int64 and arrays["meta/x"].tolist() == [0, 1, 2]


def test_a_float32_cache_keeps_the_values():
    x = {"feat/0": torch.full((2, 3), 1e6)}
    arrays, overflowed = ToHost(CPU, "float32").start(x)()
    assert overflowed == [] and arrays["feat/0"].dtype == np.float32 and (arrays["feat/0"] == 1e6).all()


def test_the_cache_stage_names_a_dataset_that_overflows_and_refuses_the_shard(tmp_path, caplog):
    """write_shard over the COCO fixture's crops with a backbone whose heatmaps are all 70000: found on the
    device, the log names the dataset once with the shard's path, and the shard is refused as the writer
    refuses such values (a NonFiniteError; nothing written: float16 would store them as inf)."""
    import logging

    from conftest import FIXTURE_COCO, fixture_instances
    from sgpose.cache.build import write_shard
    from sgpose.config.schema import BackboneParams, CacheParams, ComputeParams
    from sgpose.core.errors import NonFiniteError
    from sgpose.core.keypoints import COCO
    from sgpose.data.dataset import CropDataset
    from sgpose.models.backbones import build_backbone

    bp = BackboneParams(name="t", depth=18, deconv_channels=8, input_size=(64, 64), heatmap_size=(16, 16))
    model = build_backbone(bp, 17).eval()
    torch.nn.init.constant_(model.final_layer.bias, 7e4)
    crops = CropDataset(fixture_instances((64, 64)).iloc[:5], FIXTURE_COCO, (64, 64), (16, 16), 2.0, COCO)
    with caplog.at_level(logging.WARNING, logger="sgpose.cache.build"), pytest.raises(
            NonFiniteError, match=r"s\.h5: heatmaps of samples 0-1 holds values beyond the float16 range .* "
                                  r"set cache\.dtype: float32"):
        write_shard(tmp_path / "s.h5", crops, (0, 5), model, CacheParams(batch_size=2), ComputeParams(), CPU, False,
                    {"layout": "coco"})
    assert caplog.text.count("heatmaps has values beyond the float16 range") == 1 and "feat/" not in caplog.text
    assert str(tmp_path / "s.h5") in caplog.text
    assert list(tmp_path.iterdir()) == []
