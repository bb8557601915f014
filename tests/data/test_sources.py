import io
import os
from pathlib import PurePath

import numpy as np

from cnntool.data.sources import resolve_inputs


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_is_recursed_sorted_with_hidden_and_non_images_skipped(tmp_path):
    for rel in ["b.png", "a.JPG", "sub/c.bmp", "sub/d.tif", ".hidden.png", ".git/e.png", "notes.txt", "Z.Jpeg"]:
        touch(tmp_path / rel)
    items = resolve_inputs([str(tmp_path)])
    assert [str(i.rel) for i in items] == ["Z.Jpeg", "a.JPG", "b.png", "sub/c.bmp", "sub/d.tif"]
    assert all(i.ok for i in items)
    assert items[0].path == str(tmp_path / "Z.Jpeg")


def test_explicit_file_is_taken_whatever_its_extension(tmp_path):
    f = touch(tmp_path / "weird.dat")
    (item,) = resolve_inputs([str(f)])
    assert item.ok and item.rel == PurePath("weird.dat")


def test_missing_input_becomes_an_error_item_and_others_survive(tmp_path):
    good = touch(tmp_path / "a.png")
    items = resolve_inputs([str(tmp_path / "missing.png"), str(good)])
    assert [i.ok for i in items] == [False, True]
    assert items[0].error == "no such file or directory"


def test_glob_list_file_and_stdin_mix_in_order_without_duplicates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ["imgs/1.png", "imgs/2.png", "imgs/deep/3.png", "other/4.jpg", "other/5.jpg"]:
        touch(tmp_path / rel)
    (tmp_path / "list.txt").write_text("# a comment\n\nother/4.jpg\nimgs/1.png\n")
    stdin = io.StringIO("other/5.jpg\n\n")
    items = resolve_inputs(["imgs/*.png", "@list.txt", "-"], stdin=stdin)
    assert [i.path for i in items] == ["imgs/1.png", "imgs/2.png", "other/4.jpg", "other/5.jpg"]
    # outputs mirror below the glob's fixed folder, and as given for listed relative paths
    assert [str(i.rel) for i in items] == ["1.png", "2.png", "other/4.jpg", "other/5.jpg"]


def test_recursive_glob_and_unmatched_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "imgs/deep/3.png")
    items = resolve_inputs(["imgs/**/*.png", "nothing/*.png"])
    assert items[0].path == os.path.join("imgs", "deep", "3.png") and items[0].rel == PurePath("deep/3.png")
    assert items[1].error == "no files match this pattern"


def test_unreadable_list_file_is_an_error_item(tmp_path):
    (item,) = resolve_inputs([f"@{tmp_path / 'nope.txt'}"])
    assert not item.ok and "cannot read list file" in item.error


def test_absolute_and_dotdot_paths_mirror_by_file_name(tmp_path, monkeypatch):
    f = touch(tmp_path / "x" / "pic.png")
    monkeypatch.chdir(tmp_path / "x")
    (a,) = resolve_inputs([str(f)])
    assert a.rel == PurePath("pic.png")
    monkeypatch.chdir(tmp_path)
    (b,) = resolve_inputs(["./x/pic.png"])
    assert b.rel == PurePath("x/pic.png")


def test_non_ascii_names(tmp_path):
    touch(tmp_path / "фото" / "猫.png")
    (item,) = resolve_inputs([str(tmp_path)])
    assert str(item.rel) == os.path.join("фото", "猫.png")
