"""The incremental cache: keyed on content and measurement version, atomic, shared safely."""

import os
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.audit.cache import CACHE_FILE, AuditCache, default_cache_dir
from cnntool.data.sources import content_digest
from cnntool.cli.main import app

from .conftest import records


def test_values_round_trip_and_persist(tmp_path):
    cache = AuditCache(tmp_path)
    cache.put("c1", "props:v1", {"width": 3, "pixels": "ab"})
    cache.put("c1", "embed:x:v1", np.arange(4, dtype=np.float32).tobytes())
    cache.close()
    again = AuditCache(tmp_path)
    found = again.get_many([("c1", "props:v1"), ("c1", "embed:x:v1"), ("c1", "props:v2"), ("c2", "props:v1")])
    assert found[("c1", "props:v1")] == {"width": 3, "pixels": "ab"}
    assert np.frombuffer(found[("c1", "embed:x:v1")], np.float32).tolist() == [0, 1, 2, 3]
    assert len(found) == 2 and (again.hits, again.misses) == (2, 2)
    again.close()


def test_files_are_recognised_by_path_size_and_mtime(tmp_path):
    cache = AuditCache(tmp_path / "c")
    cache.remember_file("/x/a.jpg", 10, 111, "content-a")
    cache.flush()
    assert cache.known_contents([("/x/a.jpg", 10, 111)]) == {"/x/a.jpg": "content-a"}
    assert cache.known_contents([("/x/a.jpg", 10, 112)]) == {}  # touched: read again
    assert cache.known_contents([("/x/a.jpg", 11, 111)]) == {}
    assert cache.known_contents([("/x/b.jpg", 10, 111)]) == {}
    cache.close()


def test_content_digest_depends_on_bytes_only(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    c.write_bytes(b"diff")
    assert content_digest(a) == content_digest(b) != content_digest(c)
    assert content_digest(a).startswith("4-")


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNTOOL_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("CNNTOOL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cnntool" / "audit"


def test_corrupt_files_are_cached_too(planted, tmp_path):
    runner = CliRunner()
    args = ["audit", str(planted), "--format", "jsonl", "--checks", "dark", "--cache", str(tmp_path)]
    first = records(runner.invoke(app, args).stdout)
    second = records(runner.invoke(app, args).stdout)
    assert [r for r in first if r["check"] == "corrupt"] == [r for r in second if r["check"] == "corrupt"]
    assert second[-1]["measured"] == 0


def _overwrite_pages(path):
    data = bytearray(path.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)  # the header page survives, every other page is garbage
    path.write_bytes(bytes(data))


def _wrong_schema(path):
    path.unlink()
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE files (name TEXT); CREATE TABLE results (k TEXT, v TEXT);")
    db.close()


def _bad_values(path):
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE results SET value = ?", (b"Jnot json {",))
    db.close()


def _wrong_types(path):
    db = sqlite3.connect(path)
    rows = db.execute("SELECT content, measure FROM results").fetchall()
    with db:
        for k, (content, measure) in enumerate(rows):
            value = [b'J"text"', b"J[1, 2]", b'J{"width": "abc"}', b"Jnull", b"X??"][k % 5]
            db.execute("UPDATE results SET value = ? WHERE content = ? AND measure = ?", (value, content, measure))
    db.close()


def _not_sqlite(path):
    path.write_bytes(b"this is not sqlite" * 100)


@pytest.mark.parametrize("damage", [_not_sqlite, _overwrite_pages, _wrong_schema, _bad_values, _wrong_types])
def test_a_damaged_cache_warns_once_and_the_audit_is_that_of_a_clean_run(planted, tmp_path, damage):
    runner = CliRunner()
    args = ["audit", str(planted), "--format", "jsonl", "--checks", "dark,blurry,exact_duplicates,near_duplicates"]
    clean = runner.invoke(app, [*args, "--no-cache"])
    cache = tmp_path / "cache"
    runner.invoke(app, [*args, "--cache", str(cache)])  # fill it
    (cache / (CACHE_FILE + "-wal")).unlink(missing_ok=True)
    damage(cache / CACHE_FILE)
    result = runner.invoke(app, [*args, "--cache", str(cache)])
    assert result.exit_code == clean.exit_code == 1, result.output  # the corrupt inputs, not the cache
    assert "internal error" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "audit cache" in warnings[0], result.stderr
    strip = lambda recs: [r for r in recs if r["check"] != "summary"]  # noqa: E731
    assert strip(records(result.stdout)) == strip(records(clean.stdout))
    assert records(result.stdout)[-1]["counts"] == records(clean.stdout)[-1]["counts"]
    # the cache works again: the next run warns no more and is served from it
    again = runner.invoke(app, [*args, "--cache", str(cache)])
    assert "warning:" not in again.stderr and records(again.stdout)[-1]["measured"] == 0
    assert strip(records(again.stdout)) == strip(records(clean.stdout))


def test_a_damaged_cache_file_is_set_aside_not_deleted(tmp_path):
    (tmp_path / CACHE_FILE).write_bytes(b"garbage" * 50)
    said = []
    cache = AuditCache(tmp_path, warn=said.append)
    cache.put("c", "props:v1", {"a": 1})
    cache.close()
    assert (tmp_path / (CACHE_FILE + ".damaged")).read_bytes() == b"garbage" * 50
    assert len(said) == 1 and "set it aside" in said[0]
    assert AuditCache(tmp_path).get("c", "props:v1") == {"a": 1}


def test_the_environment_picks_the_default_cache(planted, tmp_path):
    result = CliRunner().invoke(app, ["audit", str(planted), "--format", "jsonl", "--checks", "dark"],
                                env={"CNNTOOL_CACHE_DIR": str(tmp_path / "envcache")})
    assert result.exit_code == 1
    assert os.path.exists(tmp_path / "envcache" / CACHE_FILE)


def test_an_incomplete_cached_measurement_is_measured_again(planted, tmp_path):
    from cnntool.audit.checks import MEASURE_VERSION
    from cnntool.audit.config import DEFAULT_MAX_PIXELS

    cache = AuditCache(tmp_path)
    cache.put(content_digest(planted / "dark.jpg"), f"props:v{MEASURE_VERSION}:px{DEFAULT_MAX_PIXELS}", {"width": 1})
    cache.close()
    result = CliRunner().invoke(app, ["audit", str(planted / "dark.jpg"), "--format", "jsonl",
                                      "--cache", str(tmp_path)])
    recs = records(result.stdout)
    assert [r["check"] for r in recs] == ["dark", "summary"] and recs[-1]["measured"] == 1
