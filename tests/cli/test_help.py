"""`--help` is a page a person can scan: plain metavars, one default per option, groups, examples,
and shell completion (issue 13)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app

runner = CliRunner()
COMMANDS = ["filter", "audit", "train", "finetune", "predict", "explain", "detect", "segment", "video", "export", "doctor",
            "models list", "models info", "models summary"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_plain_metavars_and_one_default_per_option(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert not re.search(r"<(int|float|str|path|dir|file|list\[|bool)", text), text  # no Python types
    assert "{" not in text.splitlines()[0]                                           # usage: INPUTS...
    for entry in re.split(r"\n  (?=-)", text):
        assert entry.count("[default:") <= 1, entry


def test_train_help_is_grouped():
    text = runner.invoke(app, ["train", "--help"]).stdout
    groups = [line[:-1] for line in text.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    assert groups == ["Arguments", "What to train", "Schedule and optimiser", "Regularisation", "Augmentation",
                      "Machine", "Output"]
    assert "Examples:" in text


def test_root_help_lists_every_command_in_full_with_examples_and_completion():
    text = runner.invoke(app, ["--help"]).stdout
    listed = re.findall(r"^  (\w+)\s{2,}", text.split("Commands:")[1], flags=re.M)
    assert set(listed) >= {"filter", "audit", "train", "finetune", "predict", "explain", "export", "doctor", "models"}
    assert "..." not in text.split("Commands:")[1].split("Examples:")[0]  # no truncated descriptions
    assert "Examples:" in text and "--install-completion" in text
