"""The incremental cache: keyed on content and measurement version, atomic, shared safely."""

import os

import numpy as np
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


def test_a_damaged_cache_is_not_fatal(planted, tmp_path):
    (tmp_path / CACHE_FILE).write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(app, ["audit", str(planted), "--format", "jsonl", "--checks", "dark",
                                      "--cache", str(tmp_path)])
    assert result.exit_code == 1  # the corrupt inputs, not the cache
    assert "warning: cannot use the cache" in result.stderr
    assert records(result.stdout)[-1]["counts"]["dark"] == 2


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
