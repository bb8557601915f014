"""Every bad value given to `cnntool audit` is a usage error: exit 2, one line and a hint, never an
internal error, and never accepted without a word (a NaN threshold that turns a check off, a share
over 100% that can never trip, an empty rule or check list)."""

import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app

runner = CliRunner()


def audit(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


def assert_usage_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.stderr and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) == 2 and lines[1].startswith("hint: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture
def folder(photos, tmp_path):
    from .conftest import write

    root = tmp_path / "imgs"
    root.mkdir()
    write(root / "a.png", photos["a"])
    return root


@pytest.mark.parametrize("text, fragments", [
    (b"[thresholds]\ndark = 0.3 # caf\xe9\n", ["not UTF-8", "offset"]),
    (b'[thresholds]\ndark = "abc"\n', ["threshold dark", "must be a number in 0..1", "'abc'"]),
    (b"thresholds = 5\n", ["thresholds in", "must be a table"]),
    (b"[thresholds]\ndark = 5\n", ["must be a number in 0..1, got 5"]),
    (b"[thresholds]\ndark = nan\n", ["got nan"]),
    (b"[thresholds]\ndark = true\n", ["got True"]),
    (b"checks = 5\n", ["checks in", "list of check names"]),
    (b"checks = []\n", ["names no check"]),
    (b"fail_on = [1, 2]\n", ["fail_on in", "list of rules"]),
    (b'labels = "yes"\n', ["labels in", "true or false"]),
    (b'max_distance = "x"\n', ["max_distance in", "whole number"]),
    (b'folds = "ten"\n', ["folds in", "whole number"]),
    (b"min_similarity = true\n", ["min_similarity in", "a number in -1..1"]),
    (b'dedup = "phas"\n', ["unknown --dedup method 'phas'", "did you mean phash"]),
    (b"colour = 1\n", ["unknown key", "'colour'"]),
    (b"tresholds = 1\n", ["did you mean thresholds"]),
    (b'fail_on = ""\n', ["empty --fail-on rule"]),
])
def test_bad_config_files_are_usage_errors(folder, tmp_path, text, fragments):
    config = tmp_path / "audit.toml"
    config.write_bytes(text)
    assert_usage_error(audit(folder, "--no-cache", "--config", config), *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["-t", "dark=nan"], ["--threshold dark must be a number in 0..1, got nan", "0 turns the criterion off"]),
    (["-t", "dark=5"], ["0..1, got 5.0"]),
    (["-t", "dark=-1"], ["0..1, got -1.0"]),
    (["-t", "blurry_relative=inf"], ["blurry_relative must be a number in 0..1"]),
    (["-t", "odd_size_iqr=-2"], ["0..100", "Tukey"]),
    (["-t", "max_distance=70"], ["whole number in 0..64", "Hamming"]),
    (["-t", "max_distance=2.5"], ["whole number in 0..64"]),
    (["-t", "min_similarity=2"], ["in -1..1"]),
    (["-t", "class_imbalance=nan"], ["in 0..1"]),
    (["-t", "drak=0.3"], ["unknown threshold 'drak'", "did you mean dark"]),
    (["--fail-on", "blurry>200%"], ["can never trip", "at most 100%", "0 <= N < 100"]),
    (["--fail-on", "blurry>100%"], ["can never trip"]),
    (["--fail-on", ""], ["empty --fail-on rule"]),
    (["--fail-on", "dark,"], ["empty rule in --fail-on 'dark,'"]),
    (["--fail-on", "drak"], ["unknown check", "'drak'", "did you mean dark"]),
    (["--checks", ""], ["--checks names no check", "--checks all"]),
    (["--checks", "dark,,light"], ["empty name"]),
    (["--checks", "blury"], ["unknown check 'blury'", "did you mean blurry"]),
    (["--dedup", "md6"], ["unknown --dedup method"]),
])
def test_bad_options_are_usage_errors_with_the_valid_range(folder, args, fragments):
    assert_usage_error(audit(folder, "--no-cache", *args), *fragments)


def test_limits_of_the_ranges_are_accepted(folder):
    for args in (["-t", "dark=0", "-t", "light=1", "-t", "max_distance=64", "-t", "min_similarity=-1"],
                 ["--fail-on", "blurry>=100%"], ["--fail-on", "blurry>99.5%"], ["--checks", "corrupt"]):
        result = audit(folder, "--no-cache", "-q", *args)
        assert result.exit_code == 0, (args, result.output)
