import pytest
from sgpose import cli


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in cli.STAGES)


@pytest.mark.parametrize("stage", list(cli.STAGES))
def test_every_stage_imports_and_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([stage, "--help"])
    assert exit_.value.code == 0
    assert "--params" in capsys.readouterr().out


def test_bad_params_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["prepare", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
