"""The one NAME=DIR parser, and both commands that take --sys NAME=DIR answering alike."""

from pathlib import Path

import pytest

from wavegen.cli import main
from wavegen.core.errors import WavegenError
from wavegen.core.named_folders import parse_named_folders


def test_names_and_folders_in_the_order_given():
    parsed = parse_named_folders(["b=out/b", " a =out/a=x"])
    assert list(parsed.items()) == [("b", Path("out/b")), ("a", Path("out/a=x"))]
    assert parse_named_folders(None) == {}


@pytest.mark.parametrize("value", ["nodir", "=dir", "name=", " =dir"])
def test_a_value_that_is_not_name_equals_dir_is_refused(value):
    with pytest.raises(WavegenError, match="expected NAME=DIR"):
        parse_named_folders([value])


def test_a_name_given_twice_is_refused():
    with pytest.raises(WavegenError, match="--sys 'a' given twice"):
        parse_named_folders(["a=x", "a=y"])


@pytest.mark.parametrize("command", [["evaluate", "--ref", "refs"], ["listen", "prepare", "--type", "mos"]])
def test_evaluate_and_listen_prepare_parse_sys_alike(command, tmp_path, capsys):
    for values, message in (
        (["nodir"], "--sys 'nodir': expected NAME=DIR"),
        (["a=x", "a=y"], "--sys 'a' given twice"),
    ):
        args = [arg for value in values for arg in ("--sys", value)]
        with pytest.raises(SystemExit) as exit_info:
            main([*command, *args, "-o", str(tmp_path / "out")])
        assert exit_info.value.code == 1
        assert capsys.readouterr().err.strip().splitlines() == [f"wavegen: error: {message}"]
    assert not (tmp_path / "out").exists()
