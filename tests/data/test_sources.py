import io
import os
from pathlib import PurePath

import pytest

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


def test_files_named_directly_write_their_name_and_listed_paths_mirror(tmp_path, monkeypatch):
    # issue 13: with one file named directly, -o out/ writes out/coins.png, not out/samples/photos/coins.png
    f = touch(tmp_path / "x" / "pic.png")
    monkeypatch.chdir(tmp_path / "x")
    (a,) = resolve_inputs([str(f)])
    assert a.rel == PurePath("pic.png")
    monkeypatch.chdir(tmp_path)
    (b,) = resolve_inputs(["./x/pic.png"])
    assert b.rel == PurePath("pic.png")
    # paths listed in @list.txt (or on stdin) mirror as listed, like files found under a folder
    (tmp_path / "list.txt").write_text("./x/pic.png\n")
    (c,) = resolve_inputs(["@list.txt"])
    assert c.rel == PurePath("x/pic.png")
    (d,) = resolve_inputs(["-"], stdin=io.StringIO(str(f) + "\n"))
    assert d.rel == PurePath("pic.png")  # absolute: the file name


def test_non_ascii_names(tmp_path):
    touch(tmp_path / "фото" / "猫.png")
    (item,) = resolve_inputs([str(tmp_path)])
    assert str(item.rel) == os.path.join("фото", "猫.png")


# --- outputs are not inputs (the output ledger) ---------------------------------------------------

def _record(path):
    from cnntool.data.writers import Recipe, atomic_write_bytes

    atomic_write_bytes(path, b"x", recipe=Recipe.of("demo", {}))
    return path


def test_recorded_outputs_under_the_out_folder_are_not_inputs(tmp_path):
    d = tmp_path / "d"
    touch(d / "a.png")
    touch(d / "sub" / "b.png")
    _record(d / "a_gradcam.png")             # -o d: written next to the inputs
    _record(d / "edges" / "sub" / "b.png")   # -o d/edges: mirrored inside the input folder
    items = resolve_inputs([str(d)], exclude=d)
    assert [str(i.rel) for i in items] == ["a.png", "sub/b.png"]
    assert sorted(items.excluded) == sorted([str(d / "a_gradcam.png"), str(d / "edges" / "sub" / "b.png")])
    items = resolve_inputs([str(d / "*.png")], exclude=[d / "edges", d])  # globs too
    assert [str(i.rel) for i in items] == ["a.png"]
    # without exclude, or with another -o, the same files are ordinary inputs (pipelines chain folders)
    assert len(resolve_inputs([str(d)])) == 4
    assert len(resolve_inputs([str(d)], exclude=tmp_path / "elsewhere")) == 4
    # a file named directly is always taken
    (item,) = resolve_inputs([str(d / "a_gradcam.png")], exclude=d)
    assert item.ok


def test_require_inputs_refuses_an_empty_batch_with_a_hint(tmp_path):
    from cnntool.data.sources import require_inputs
    from cnntool.errors import UsageError

    empty = tmp_path / "empty"
    empty.mkdir()
    touch(tmp_path / "texts" / "notes.txt")
    for folder in (empty, tmp_path / "texts"):
        with pytest.raises(UsageError, match=f"no images found in {folder}") as info:
            require_inputs(resolve_inputs([str(folder)]), [str(folder)])
        assert ".png" in info.value.hint and "named directly" in info.value.hint
    d = tmp_path / "d"
    _record(d / "old.png")
    with pytest.raises(UsageError) as info:
        require_inputs(resolve_inputs([str(d)], exclude=d), [str(d)])
    assert "1 file(s) found there are earlier outputs in -o" in info.value.hint
    # found but unusable inputs are records, not an empty batch
    require_inputs(resolve_inputs([str(tmp_path / "missing.png")]), ["missing.png"])


# --- odd inputs give one-line reasons --------------------------------------------------------------

def test_symlink_loops_broken_links_and_pipes_are_named_for_what_they_are(tmp_path):
    loop = tmp_path / "loop.png"
    os.symlink(loop.name, loop)
    broken = tmp_path / "broken.png"
    os.symlink("nowhere.png", broken)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    expected = {"loop.png": "symbolic link loop", "broken.png": "broken symbolic link (its target nowhere.png",
                "pipe.png": "not a regular file: a named pipe (FIFO)"}
    for path, why in ((loop, expected["loop.png"]), (broken, expected["broken.png"]), (fifo, expected["pipe.png"])):
        (item,) = resolve_inputs([str(path)])
        assert not item.ok and item.error.startswith(why), item.error
    touch(tmp_path / "fine.png")
    found = {os.path.basename(i.path): i.error for i in resolve_inputs([str(tmp_path)])}
    assert found.pop("fine.png") is None
    assert {name: error.split(" (")[0].split(":")[0] for name, error in found.items()} == {
        "loop.png": "symbolic link loop", "broken.png": "broken symbolic link", "pipe.png": "not a regular file"}


def test_an_unreadable_folder_is_an_error_item(tmp_path, monkeypatch):
    touch(tmp_path / "d" / "a.png")
    touch(tmp_path / "d" / "locked" / "b.png")
    real = os.scandir

    def scandir(path):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # chmod 000 does not stop root
    items = resolve_inputs([str(tmp_path / "d")])
    assert [(os.path.basename(i.path), i.error) for i in items] == [
        ("a.png", None), ("locked", "cannot read folder: permission denied")]


def test_devices_and_binary_list_files_are_error_items(tmp_path):
    (dev,) = resolve_inputs([os.devnull])  # reading /dev/zero or a tty as an image would never end
    assert dev.error == "not a regular file: a character device"
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xff\xfe\x00a.png\n")
    (item,) = resolve_inputs([f"@{listing}"])
    assert item.error == "cannot read list file: not UTF-8 text"
