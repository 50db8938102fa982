"""`sgpose check_params` and the value checks at load: a misspelt section, a negative channel
multiplier, an unknown device are a ParamsError naming the key before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, params_tree, write_params
from sgpose.cli import main as cli
from sgpose.config import ParamsError, load_params

STAMP = Path("results/params_check.json")


def test_the_shipped_params_file_passes_and_is_stamped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["check_params", "--params", str(REPO / "params.yaml")]) == 0
    stamp = json.loads(STAMP.read_text())
    assert set(stamp["backbones"]) == set(yaml.safe_load((REPO / "params.yaml").read_text())["backbones"])
    assert len(stamp["sha256"]) == 64 and [p.name for p in STAMP.parent.iterdir()] == [STAMP.name]


def test_a_misspelt_section_fails_check_params_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["trian_refiner"] = tree.pop("train_refiner")
    params_file = write_params(tmp_path, tree)
    assert cli(["check_params", "--params", str(params_file)]) == 2
    err = capsys.readouterr().err
    assert err == (f"sgpose: {params_file}: invalid parameters: trian_refiner: unknown key (did you mean "
                   "train_refiner?)\n")  # one line naming the file and the key: no pydantic block, no URL
    assert not STAMP.exists()


@pytest.mark.parametrize("section, value, key", [
    ("refiner", {"channel_mults": [1, -2, 4]}, "refiner.channel_mults.1"),
    ("refiner", {"channel_mults": []}, "refiner.channel_mults"),
    ("compute", {"device": "tpu"}, "compute.device"),
    ("compute", {"device": "cuda:x"}, "compute.device"),
])
def test_out_of_range_values_and_unknown_devices_are_refused_at_load(tmp_path, section, value, key):
    params_file = write_params(tmp_path, params_tree(**{section: value}))
    with pytest.raises(ParamsError, match=rf"{params_file}: invalid parameters: {key.replace('.', '[.]')}: "):
        load_params(params_file)


def test_a_negative_input_size_is_refused(tmp_path):
    params_file = write_params(tmp_path, params_tree(backbone_params={"input_size": [-64, 64],
                                                                      "heatmap_size": [-16, 16]}))
    with pytest.raises(ParamsError, match=r"backbones\.tiny\.input_size\.0: input should be greater than 0 \(got -64\)"):
        load_params(params_file)
