"""`cnntool audit` through Typer's CliRunner: planted problems found (and nothing else), records,
summary, exit codes, the cache, the HTML report, leaks."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app

from .conftest import CLEAN, PLANTED, findings, records, write

runner = CliRunner()
FIELDS = ["path", "check", "score", "threshold", "group", "keeper", "detail", "error"]


def audit(*args, env=None):
    return runner.invoke(app, ["audit", *map(str, args)], env=env)


@pytest.fixture(scope="module")
def planted_run(planted, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    result = audit(planted, "--format", "jsonl", "--cache", cache)
    return result, cache


def test_every_planted_problem_is_found_and_clean_files_are_left_alone(planted_run):
    result, _ = planted_run
    assert result.exit_code == 1, result.output  # unreadable files trip the implicit corrupt rule
    found = findings(result.stdout)
    for name, check in PLANTED.items():
        assert check in found.get(name, set()), (name, found.get(name))
    image_checks = {"dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio",
                    "corrupt"}
    for name in CLEAN:
        assert not (found.get(name, set()) & image_checks), (name, found.get(name))
    assert "notes.txt" not in found  # not an image extension: never read
    assert found["odd_aspect.jpg"] <= {"odd_aspect_ratio", "odd_size"}


def test_corrupt_records_carry_the_reason(planted_run):
    result, _ = planted_run
    corrupt = {os.path.basename(r["path"]): r for r in records(result.stdout) if r["check"] == "corrupt"}
    assert set(corrupt) == {"corrupt.png", "truncated.jpg", "empty.jpg", "text.jpg"}
    assert corrupt["empty.jpg"]["error"] == "empty file (0 bytes)"
    assert corrupt["truncated.jpg"]["error"].startswith("truncated image")
    assert corrupt["text.jpg"]["error"].startswith("not an image")
    assert all(r["error"] == r["detail"] for r in corrupt.values())


def test_duplicate_groups_are_reported_once_with_a_keeper(planted_run):
    result, _ = planted_run
    recs = records(result.stdout)
    exact = [r for r in recs if r["check"] == "exact_duplicates"]
    groups = {}
    for r in exact:
        groups.setdefault(r["group"], set()).add(os.path.basename(r["path"]))
    assert sorted(map(sorted, groups.values())) == [["clean_a.png", "dup_of_a.png"], ["clean_b.jpg", "copy_of_b.bmp"]]
    keepers = {os.path.basename(r["keeper"]) for r in exact}
    assert keepers == {"clean_a.png", "clean_b.jpg"}
    assert all(r["score"] == 0 and r["threshold"] == 0 for r in exact)
    near = [r for r in recs if r["check"] == "near_duplicates"]
    assert {os.path.basename(r["path"]) for r in near} == {"clean_c.png", "near_of_c.jpg"}
    assert {os.path.basename(r["keeper"]) for r in near} == {"clean_c.png"}  # larger and clean
    assert all(r["threshold"] == 4 and r["score"] <= 4 and r["distance"] == r["score"] for r in near)


def test_uniform_images_are_kept_out_of_near_duplicate_groups(planted_run):
    result, _ = planted_run
    found = findings(result.stdout)
    for name in ("uniform_black.png", "uniform_white.png", "lowinfo.png"):
        assert "near_duplicates" not in found.get(name, set())
    # ...whereas imagededup groups a black and a white frame (identical pHash)
    from imagededup.methods import PHash

    from cnntool.audit.duplicates import image_hash

    black, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    assert PHash(verbose=False).encode_image(image_array=black) == PHash(verbose=False).encode_image(image_array=white)
    assert image_hash(black) == image_hash(white)


def test_records_have_the_schema_and_a_final_summary(planted_run, planted):
    result, _ = planted_run
    recs = records(result.stdout)
    assert all(list(r)[:8] == FIELDS for r in recs)
    summary = recs[-1]
    assert summary["check"] == "summary" and summary["path"] == "<summary>" and summary["root"] == str(planted)
    assert summary["images"] == 25 and summary["readable"] == 21
    assert summary["counts"]["corrupt"] == 4 and summary["counts"]["exact_duplicates"] == 4
    assert summary["groups"] == {"exact_duplicates": 2, "near_duplicates": 1}
    assert summary["thresholds"]["dark"] == 0.32 and summary["thresholds"]["max_distance"] == 4
    assert summary["rules"] == [{"rule": "corrupt", "count": 4, "total": 25, "tripped": True, "implicit": True}]
    assert summary["gate"] == "failed"
    assert "gate: FAILED by corrupt" in result.stderr


def test_second_run_comes_from_the_cache_with_the_same_records(planted_run, planted):
    first, cache = planted_run
    second = audit(planted, "--format", "jsonl", "--cache", cache)
    a, b = records(first.stdout), records(second.stdout)
    assert a[:-1] == b[:-1]
    assert b[-1]["from_cache"] == 25 and b[-1]["measured"] == 0


def test_grown_folder_measures_only_the_new_files(planted, photos, tmp_path):
    folder = tmp_path / "grow"
    shutil.copytree(planted, folder)
    cache = tmp_path / "cache"
    audit(folder, "--format", "jsonl", "--cache", cache)
    write(folder / "new_one.png", photos["h"])
    os.utime(folder / "clean_a.png")  # touched, same content: recognised by content, not re-measured
    result = audit(folder, "--format", "jsonl", "--cache", cache)
    summary = records(result.stdout)[-1]
    assert (summary["measured"], summary["from_cache"]) == (1, 25)


def test_changed_thresholds_reuse_the_cache(planted_run, planted):
    _, cache = planted_run
    result = audit(planted, "--format", "jsonl", "--cache", cache, "-t", "dark=0.0", "--threshold", "light=0",
                   "-t", "light_clipped=0", "-t", "light_median=0")
    found = findings(result.stdout)
    assert "dark" not in found.get("dark.jpg", set()) and "light" not in found.get("light.png", set())
    summary = records(result.stdout)[-1]
    assert summary["measured"] == 0 and summary["thresholds"]["dark"] == 0.0


def test_fail_on_rules_decide_the_exit_code(planted, tmp_path):
    ok = tmp_path / "ok"
    ok.mkdir()
    for name in ("clean_a.png", "clean_b.jpg", "clean_d.jpg", "dark.jpg", "blurry.png"):
        shutil.copy(planted / name, ok / name)
    assert audit(ok, "--no-cache", "-q").exit_code == 0  # findings alone do not fail a run
    assert audit(ok, "--no-cache", "-q", "--fail-on", "dark").exit_code == 1
    assert audit(ok, "--no-cache", "-q", "--fail-on", "blurry>20%").exit_code == 0
    assert audit(ok, "--no-cache", "-q", "--fail-on", "blurry>=20%").exit_code == 1
    assert audit(ok, "--no-cache", "-q", "--fail-on", "near_duplicates,exact_duplicates").exit_code == 0
    assert audit(planted, "--no-cache", "-q", "--fail-on", "corrupt>50%").exit_code == 0


def test_config_file_sets_rules_and_thresholds(planted, tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text('fail_on = ["corrupt>50%", "dark"]\n[thresholds]\ndark = 0.0\n')
    result = audit(planted, "--no-cache", "--format", "jsonl", "--config", config)
    assert result.exit_code == 0, result.output
    summary = records(result.stdout)[-1]
    assert summary["thresholds"]["dark"] == 0.0
    assert [r["rule"] for r in summary["rules"]] == ["corrupt>50%", "dark"]


def test_checks_option_limits_the_checks(planted):
    result = audit(planted, "--no-cache", "--format", "jsonl", "--checks", "dark,exact_duplicates")
    checks = {r["check"] for r in records(result.stdout)}
    assert checks == {"corrupt", "dark", "exact_duplicates", "summary"}
    assert list(records(result.stdout)[-1]["counts"]) == ["corrupt", "dark", "exact_duplicates"]


def test_table_and_csv_formats(planted):
    table = audit(planted, "--no-cache", "--format", "table", "--checks", "dark")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["path", "check", "score", "threshold", "detail"]
    assert any("dark.jpg" in line and "dark" in line for line in lines)
    assert "summary" not in table.stdout  # a table reader gets the summary on stderr
    assert "dark" in table.stderr and "gate:" in table.stderr
    csv = audit(planted, "--no-cache", "--format", "csv", "--checks", "dark")
    header = csv.stdout.splitlines()[0].split(",")
    assert header[:8] == FIELDS


def test_html_report_is_self_contained(planted, tmp_path):
    report = tmp_path / "r" / "audit.html"
    result = audit(planted, "--no-cache", "-q", "--report", report)
    assert result.exit_code == 1
    text = report.read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "data:image/jpeg;base64," in text and "<style>" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text
    for section in ("corrupt", "dark", "exact_duplicates", "near_duplicates"):
        assert f"id='{section}'" in text
    assert "class=keeper" in text and "empty file (0 bytes)" in text and "FAILED" in text
    assert not [p for p in report.parent.iterdir() if p.name != "audit.html"]  # atomic: no temporary left


def test_against_finds_leaks_between_train_and_test(planted, photos, tmp_path):
    test = tmp_path / "test"
    test.mkdir()
    shutil.copy(planted / "clean_a.png", test / "same.png")
    small = cv2.resize(photos["d"], (80, 80), interpolation=cv2.INTER_AREA)
    write(test / "resized_d.jpg", small, quality=80)
    write(test / "unrelated.png", photos["e"][:, ::-1])
    result = audit(planted, "--no-cache", "--format", "jsonl", "--against", test, "--fail-on", "leaks,corrupt>50%")
    assert result.exit_code == 1
    leaks = {os.path.basename(r["path"]): r for r in records(result.stdout) if r["check"] == "leaks"}
    assert set(leaks) == {"clean_a.png", "dup_of_a.png", "clean_d.jpg"}
    assert leaks["clean_a.png"]["detail"].startswith("same pixels as")
    assert [os.path.basename(m) for m in leaks["clean_d.jpg"]["matches"]] == ["resized_d.jpg"]
    assert records(result.stdout)[-1]["against"] == 3


def test_usage_errors_exit_2(planted, tmp_path):
    for args in (["--checks", "darkness"], ["--fail-on", "dark<1"], ["--dedup", "md5"], ["-t", "dark"],
                 ["--config", tmp_path / "missing.toml"], ["--format", "xml"]):
        result = audit(planted, "--no-cache", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = audit(empty, "--no-cache")
    assert result.exit_code == 2 and "no image files" in result.output


def test_labels_need_an_image_folder(planted):
    result = audit(planted, "--no-cache", "--labels", "-m", "lenet5")
    assert result.exit_code == 2 and "class folder" in result.output


def test_summary_is_json_for_ci(planted):
    result = audit(planted, "--no-cache", "--format", "jsonl", "--checks", "dark")
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["counts"] == {"corrupt": 4, "dark": 2}


def test_a_plain_audit_imports_no_torch_and_no_reference_tool(planted):
    import subprocess
    import sys

    code = ("import sys\nfrom cnntool.cli.main import main\n"
            f"sys.argv = ['cnntool', 'audit', {str(planted)!r}, '--no-cache', '-q', '-f', 'jsonl']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'cleanvision', 'imagededup') if m in sys.modules),"
            " file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_exact_copies_show_as_near_duplicates_when_exact_is_not_checked(planted):
    result = audit(planted, "--no-cache", "--format", "jsonl", "--checks", "near_duplicates")
    near = {os.path.basename(r["path"]) for r in records(result.stdout) if r["check"] == "near_duplicates"}
    assert {"clean_a.png", "dup_of_a.png", "clean_b.jpg", "copy_of_b.bmp", "clean_c.png", "near_of_c.jpg"} == near


def test_gate_rules_that_could_never_trip_are_usage_errors(planted, tmp_path):
    result = audit(planted, "--no-cache", "--fail-on", "leaks")
    assert result.exit_code == 2 and "--fail-on names leaks" in result.stderr and "--against" in result.stderr
    result = audit(planted, "--no-cache", "--checks", "dark", "--fail-on", "blurry")
    assert result.exit_code == 2 and "add blurry to --checks" in result.stderr
    result = audit(planted, "--no-cache", "--fail-on", "label_issues")
    assert result.exit_code == 2 and "--labels" in result.stderr


def test_a_mistyped_against_folder_is_refused_not_silently_clean(planted, tmp_path):
    result = audit(planted, "--no-cache", "--against", tmp_path / "tset", "--fail-on", "leaks")
    assert result.exit_code == 2
    assert "--against names no image files" in result.stderr
    unreadable = tmp_path / "bad"
    unreadable.mkdir()
    (unreadable / "x.png").write_bytes(b"not a png")
    result = audit(planted, "--no-cache", "--against", unreadable, "--fail-on", "leaks")
    assert result.exit_code == 2 and "no --against file could be read" in result.stderr


def test_a_mistyped_device_is_refused_even_when_no_model_is_needed(planted):
    result = audit(planted, "--no-cache", "--device", "gpu")
    assert result.exit_code == 2 and "unknown --device 'gpu'" in result.stderr
