"""--quarantine moves flagged files (never deletes, never replaces), writes a manifest that
--restore undoes, and honours a keep-list for duplicates."""

import errno
import hashlib
import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from cnntool.audit import quarantine as q
from cnntool.cli.main import app

from .conftest import records

runner = CliRunner()


def audit(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def data(planted, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(planted, folder / "set")
    return folder


def test_flagged_files_move_with_a_manifest_and_restore_puts_everything_back(data, tmp_path):
    before = digests(data)
    dest = tmp_path / "quarantine"
    result = audit(data, "--no-cache", "-f", "jsonl", "--quarantine", dest)
    assert result.exit_code == 1, result.output  # corrupt files: the gate fails as without --quarantine
    recs = records(result.stdout)
    moved = {r["path"]: r["moved_to"] for r in recs if r.get("moved_to")}
    # flagged files moved, mirrored under dest; keepers and clean files stay
    for name in ("dark.jpg", "blurry.png", "corrupt.png", "empty.jpg", "dup_of_a.png", "copy_of_b.bmp",
                 "near_of_c.jpg", "odd_aspect.jpg"):
        assert not (data / "set" / name).exists() and (dest / "set" / name).exists(), name
        assert moved[str(data / "set" / name)] == str(dest / "set" / name)
    for name in ("clean_a.png", "clean_b.jpg", "clean_c.png", "clean_d.jpg", "notes.txt"):
        assert (data / "set" / name).exists(), name
    assert before == {**digests(data), **{k: v for k, v in digests(dest).items() if not k.endswith(".json")}}
    summary = recs[-1]["quarantine"]
    assert summary["moved"] == len(moved) and summary["failed"] == 0
    manifest = json.loads(open(summary["manifest"]).read())
    assert manifest["format"] == "cnntool-audit-quarantine" and len(manifest["moves"]) == len(moved)
    assert all(m["done"] and os.path.isabs(m["from"]) for m in manifest["moves"])
    assert "cnntool audit --restore" in result.stderr

    undo = audit("--restore", summary["manifest"], "-f", "jsonl")
    assert undo.exit_code == 0, undo.output
    back = records(undo.stdout)
    assert sum(r["restored"] for r in back[:-1]) == len(moved) and back[-1]["restored"] == len(moved)
    assert digests(data) == before
    assert not os.path.exists(summary["manifest"])
    assert os.path.exists(summary["manifest"].replace(".json", ".restored.json"))  # kept, not deleted


def test_a_name_taken_in_quarantine_is_never_replaced(data, tmp_path):
    dest = tmp_path / "q"
    (dest / "set").mkdir(parents=True)
    (dest / "set" / "dark.jpg").write_bytes(b"already here")
    result = audit(data, "--no-cache", "-f", "jsonl", "--checks", "dark", "--quarantine", dest)
    assert (dest / "set" / "dark.jpg").read_bytes() == b"already here"
    assert (dest / "set" / "dark~1.jpg").exists() and not (data / "set" / "dark.jpg").exists()
    assert any(r.get("moved_to", "").endswith("dark~1.jpg") for r in records(result.stdout))


def test_restore_never_replaces_a_file_that_is_back(data, tmp_path):
    dest = tmp_path / "q"
    result = audit(data, "--no-cache", "-f", "jsonl", "--checks", "dark", "--quarantine", dest)
    manifest = records(result.stdout)[-1]["quarantine"]["manifest"]
    (data / "set" / "dark.jpg").write_bytes(b"a new file with the old name")
    undo = audit("--restore", manifest, "-f", "jsonl")
    assert undo.exit_code == 1
    rec = next(r for r in records(undo.stdout) if r["path"].endswith("dark.jpg"))
    assert not rec["restored"] and "exists again" in rec["error"]
    assert (data / "set" / "dark.jpg").read_bytes() == b"a new file with the old name"
    assert (dest / "set" / "dark.jpg").exists()
    left = json.loads(open(manifest).read())["moves"]  # the manifest keeps what is still to undo
    assert [m["from"].rsplit("/", 1)[-1] for m in left] == ["dark.jpg"]


def test_keep_list_picks_the_keeper_and_is_never_moved(data, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text(f"# keep the copies\n{data / 'set' / 'dup_of_a.png'}\n{data / 'set' / 'dark.jpg'}\n")
    dest = tmp_path / "q"
    result = audit(data, "--no-cache", "-f", "jsonl", "--checks", "dark,exact_duplicates", "--keep", keep,
                   "--quarantine", dest)
    recs = records(result.stdout)
    group = [r for r in recs if r["check"] == "exact_duplicates" and "dup_of_a" in r["keeper"]]
    assert len(group) == 2  # the keep-list made the copy the keeper of its group
    assert (data / "set" / "dup_of_a.png").exists() and not (data / "set" / "clean_a.png").exists()
    assert (data / "set" / "dark.jpg").exists()  # flagged dark, but on the keep-list
    assert any(r["check"] == "dark" and r["path"].endswith("dark.jpg") and "moved_to" not in r for r in recs)


def test_quarantine_inside_the_audited_folder_is_refused(data):
    result = audit(data, "--no-cache", "--quarantine", data / "set" / "_quarantine")
    assert result.exit_code == 2 and "inside the audited folder" in result.stderr
    assert not (data / "set" / "_quarantine").exists()


def test_usage_errors_of_restore_and_keep(data, tmp_path):
    assert audit("--restore", tmp_path / "nope.json").exit_code == 2
    (tmp_path / "other.json").write_text('{"a": 1}')
    result = audit("--restore", tmp_path / "other.json")
    assert result.exit_code == 2 and "not a cnntool quarantine manifest" in result.stderr
    result = audit(data, "--restore", tmp_path / "other.json")
    assert result.exit_code == 2 and "--restore takes no inputs" in result.stderr
    assert audit(data, "--no-cache", "--keep", tmp_path / "missing.txt").exit_code == 2


def test_moves_across_file_systems_copy_then_link_and_never_replace(tmp_path, monkeypatch):
    real_link = os.link

    def no_cross_device_link(src, dst, *args, **kwargs):
        if "cnntool-move" not in os.fspath(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(q.os, "link", no_cross_device_link)
    (tmp_path / "a.png").write_bytes(b"a")
    (tmp_path / "b.png").write_bytes(b"b")
    first = q.move_file(tmp_path / "a.png", tmp_path / "q" / "x.png")
    second = q.move_file(tmp_path / "b.png", tmp_path / "q" / "x.png")
    assert (open(first, "rb").read(), open(second, "rb").read()) == (b"a", b"b")
    assert second.endswith("x~1.png") and not list(tmp_path.glob("*.png"))
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["x.png", "x~1.png"]  # no temporary left
