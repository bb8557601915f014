"""--fail-on rules and audit settings (TOML file, command line, precedence)."""

import pytest

from cnntool.audit.config import (ALL_CHECKS, DEFAULT_CHECKS, DEFAULT_MAX_DISTANCE, build_config, load_config_file,
                                  parse_checks, parse_threshold_options)
from cnntool.audit.rules import evaluate_rules, parse_rules
from cnntool.errors import UsageError

KNOWN = set(ALL_CHECKS)


def trips(specs, counts, total=100):
    return {r.rule.text: r.tripped for r in evaluate_rules(parse_rules(specs, KNOWN), counts, total)}


def test_rule_forms():
    counts = {"dark": 2, "blurry": 3, "corrupt": 0, "any": 5}
    assert trips(["dark"], counts) == {"dark": True, "corrupt": False}
    assert trips(["dark>2", "dark>=2"], counts) == {"dark>2": False, "dark>=2": True, "corrupt": False}
    assert trips(["blurry>2%"], counts) == {"blurry>2%": True, "corrupt": False}
    assert trips(["blurry>3%"], counts) == {"blurry>3%": False, "corrupt": False}
    assert trips(["near_duplicates"], counts) == {"near_duplicates": False, "corrupt": False}
    assert trips(["any>4"], counts) == {"any>4": True}  # any covers corrupt: no implicit rule


def test_corrupt_rule_is_implicit_unless_named():
    assert [r.text for r in parse_rules([], KNOWN)] == ["corrupt"]
    assert parse_rules([], KNOWN)[0].implicit
    assert [r.text for r in parse_rules(["corrupt>5%"], KNOWN)] == ["corrupt>5%"]
    assert trips(["corrupt>5%"], {"corrupt": 5}) == {"corrupt>5%": False}
    assert trips([], {"corrupt": 1}) == {"corrupt": True}


def test_rules_split_on_commas_and_repeat():
    rules = parse_rules(["dark, near_duplicates", "blurry>=1.5%"], KNOWN)
    assert [(r.check, r.op, r.limit, r.percent) for r in rules] == [
        ("dark", ">", 0.0, False), ("near_duplicates", ">", 0.0, False), ("blurry", ">=", 1.5, True),
        ("corrupt", ">", 0.0, False)]


@pytest.mark.parametrize("bad", ["drak", "dark<3", "blurry>x", ">3", "dark>3%%"])
def test_bad_rules_are_usage_errors(bad):
    with pytest.raises(UsageError) as err:
        parse_rules([bad], KNOWN)
    assert err.value.hint


def test_unknown_rule_suggests_a_check():
    with pytest.raises(UsageError) as err:
        parse_rules(["near_duplicate"], KNOWN)
    assert "near_duplicates" in err.value.hint


def test_checks_parsing():
    assert parse_checks("dark,near_duplicates") == ("corrupt", "dark", "near_duplicates")
    assert parse_checks("all") == ALL_CHECKS
    with pytest.raises(UsageError, match="unknown check"):
        parse_checks("darkness")


def test_threshold_options():
    assert parse_threshold_options(["dark=0.4", "max_distance = 6"]) == {"dark": 0.4, "max_distance": 6.0}
    with pytest.raises(UsageError):
        parse_threshold_options(["dark"])
    with pytest.raises(UsageError):
        parse_threshold_options(["dark=low"])


def test_defaults():
    c = build_config()
    assert c.checks == DEFAULT_CHECKS
    assert c.max_distance == DEFAULT_MAX_DISTANCE == 4
    assert c.thresholds.dark == 0.32 and c.thresholds.light == 0.05 and c.thresholds.blurry == 0.29
    assert c.thresholds.low_information == 0.3 and c.thresholds.odd_aspect_ratio == 0.35
    t = c.effective_thresholds()
    assert t["dedup"] == "phash" and t["max_distance"] == 4 and "min_similarity" not in t


def test_config_file_and_command_line_precedence(tmp_path):
    path = tmp_path / "audit.toml"
    path.write_text('checks = ["dark", "blurry"]\nfail_on = "dark,blurry>2%"\nmax_distance = 6\n'
                    '[thresholds]\ndark = 0.2\nblurry_sharpness = 0.4\n')
    settings = load_config_file(path)
    c = build_config(file_settings=settings)
    assert c.checks == ("corrupt", "dark", "blurry")
    assert c.fail_on == ("dark,blurry>2%",)
    assert (c.max_distance, c.thresholds.dark, c.thresholds.blurry_sharpness) == (6, 0.2, 0.4)
    c = build_config(file_settings=settings, checks="light", max_distance=2, thresholds={"dark": 0.3},
                     fail_on=("light",))
    assert c.checks == ("corrupt", "light")
    assert (c.max_distance, c.thresholds.dark, c.fail_on) == (2, 0.3, ("light",))


def test_config_file_under_an_audit_table(tmp_path):
    path = tmp_path / "pyproject_like.toml"
    path.write_text("[audit]\ndedup = 'dhash'\nlabels = true\n")
    c = build_config(file_settings=load_config_file(path))
    assert c.dedup == "dhash" and c.needs_labels and "label_issues" in c.checks


@pytest.mark.parametrize("text, message", [
    ("colour = 1\n", "unknown key"),
    ("[thresholds]\ndarkness = 0.1\n", "unknown threshold"),
    ("dedup = 'md5'\n", "unknown --dedup"),
    ("max_distance = 70\n", "max-distance"),
    ("checks = [\n", "cannot read config"),
])
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "audit.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        build_config(file_settings=load_config_file(path))


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config_file(tmp_path / "nope.toml")
