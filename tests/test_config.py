from pathlib import Path

import pytest
from sgpose.config import ParamsError, Paths, load_params

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_validate():
    p = load_params(ROOT / "params.yaml")
    assert p.guidance.T == p.guidance.S + 2
    assert p.backbone.heatmap_sigma == pytest.approx(2.0 * p.backbone.heatmap_size[1] / 48)


def test_overrides_and_errors(tmp_path):
    p = load_params(ROOT / "params.yaml", ["guidance.S=5", "refiner.channel_mults=[1,2,2]"])
    assert p.guidance.S == 5 and p.refiner.channel_mults == [1, 2, 2]
    with pytest.raises(ParamsError, match="guidance"):
        load_params(ROOT / "params.yaml", ["guidance.schedule=quadratic"])
    with pytest.raises(ParamsError, match="not a parameter section"):
        load_params(ROOT / "params.yaml", ["nope.x=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "params.yaml").read_text() + "\nunknown_key: 1\n")
    with pytest.raises(ParamsError, match=str(bad)):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    with pytest.raises(ParamsError, match="input_size"):
        load_params(ROOT / "params.yaml", ["backbone.heatmap_size=[10,10]"])


def test_paths_layout():
    p = load_params(ROOT / "params.yaml")
    paths = Paths(p, root="/x")
    assert paths.cache("val") == Path(f"/x/results/{p.dataset}/{p.backbone.name}/cache/val.h5")
    assert paths.metrics("ours").name == "metrics.json"
