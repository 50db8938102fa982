import pytest
from sgpose import cli
from sgpose.dag.table import COMMANDS

NAMES = [c.name for c in COMMANDS]


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in NAMES)


@pytest.mark.parametrize("stage", NAMES)
def test_every_stage_imports_and_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([stage, "--help"])
    assert exit_.value.code == 0
    assert "--params" in capsys.readouterr().out


def test_every_command_module_keeps_the_one_contract():
    """Every stage module has `main(run)` (and maybe `add_arguments(parser)`), nothing else to call."""
    import importlib
    import inspect

    for c in COMMANDS:
        module = importlib.import_module(c.module)
        assert list(inspect.signature(module.main).parameters) == ["run"], c.name
        assert not hasattr(module, "run"), c.name


def test_bad_params_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["prepare", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_a_resources_entry_for_no_rule_is_a_clear_error(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(open("params.yaml").read().replace("resources:", "resources:\n  inference: {gpu: 0}", 1))
    assert cli.main(["evaluate", "--params", str(params), "--variant", "baseline"]) == 2
    assert "inference is no rule of the DAG" in capsys.readouterr().err
