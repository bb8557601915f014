import os
from pathlib import PurePath

import numpy as np
import pytest

from cnntool.data.decode import decode_image
from cnntool.data.loaders import thread_map
from cnntool.data.writers import (
    atomic_write_bytes,
    check_not_input,
    encode_image,
    output_path,
    plan_outputs,
    write_image,
    write_npy,
)
from cnntool.errors import InputError


def test_output_path_mirrors_and_renames():
    assert output_path(PurePath("a/b.jpg"), "out") == __import__("pathlib").Path("out/a/b.jpg")
    assert str(output_path(PurePath("a/b.jpg"), "out", ext="npy", suffix="_x")) == os.path.join("out", "a", "b_x.npy")


def test_atomic_write_creates_parents_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "f.bin"
    atomic_write_bytes(target, b"abc")
    atomic_write_bytes(target, b"xyz")
    assert target.read_bytes() == b"xyz"
    assert sorted(os.listdir(target.parent)) == ["f.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # cannot be written
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_image_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    write_image(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(decode_image(tmp_path / "x.png"), rgb)
    gray16 = rng.integers(0, 65536, (5, 5), dtype=np.uint16)
    data = encode_image(gray16, ".png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        encode_image(gray16, ".jpg")
    with pytest.raises(ValueError):
        encode_image(rgb.astype(np.float32), ".png")
    write_npy(tmp_path / "a.npy", np.eye(2))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.eye(2))


def test_check_not_input(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"x")
    with pytest.raises(InputError, match="refusing to overwrite"):
        check_not_input(src, src)
    check_not_input(tmp_path / "other.png", src)


def test_plan_outputs_refuses_clashes_and_inputs(tmp_path):
    from cnntool.data.sources import InputItem

    src, out = tmp_path / "in", tmp_path / "out"
    items = [InputItem(str(src / "cat.jpg"), PurePath("cat.jpg")),
             InputItem(str(src / "cat.png"), PurePath("cat.png")),   # same stem: clashes with cat.jpg
             InputItem(str(src / "bad.png"), PurePath("bad.png"), error="unreadable"),
             InputItem(str(src / "dog.png"), PurePath("dog.png")),
             InputItem(str(src / "dog_x.png"), PurePath("dog_x.png"))]

    def two(rel):  # an image and an array per input, as explain writes
        return [output_path(rel, out, ext="png", suffix="_x"), output_path(rel, out, ext="npy", suffix="_x")]

    plans = plan_outputs(items, out, two)
    assert plans[0].paths == (out / "cat_x.png", out / "cat_x.npy") and plans[0].error is None
    assert plans[1].paths == () and plans[1].error == f"output {out / 'cat_x.png'} would also be written for {items[0].path}"
    assert plans[2] == ((), None)  # failed inputs plan nothing and claim nothing
    assert plans[3].error is None and plans[4].error is None
    # written into the input folder, dog.png's image would land on the input dog_x.png
    plans = plan_outputs(items, src, ext="png", suffix="_x")
    assert plans[3].paths == () and plans[3].error == f"refusing to overwrite the input file {src / 'dog_x.png'}"
    assert plans[0].paths == (src / "cat_x.png",) and plans[1].error and plans[4].error is None
    assert plan_outputs(items, None) == [((), None)] * len(items)


def test_thread_map_keeps_order_and_bounds_in_flight():
    import threading
    import time

    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def work(x):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.001 * (x % 3))
        with lock:
            in_flight -= 1
        return x * 2

    assert list(thread_map(work, range(50), workers=2)) == [x * 2 for x in range(50)]
    assert peak <= 2
    assert list(thread_map(work, range(5), workers=1)) == [0, 2, 4, 6, 8]


# --- stale temporary files (issue 12: kill -9 during a write) --------------------------------------

_STALLED_WRITER = """
import os, sys, time
from cnntool.data import writers

def stalled_rename(src, dst):  # the bytes are in the temporary file; stop before the rename
    print(src, flush=True)
    time.sleep(120)

writers.os.replace = stalled_rename
writers.atomic_write_bytes(sys.argv[1], b"x" * 100_000)
"""


def _run_writer(code, *args):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_with_sigkill_leaves_a_temp_that_the_next_run_removes(tmp_path):
    import signal
    import subprocess
    import sys

    folder = tmp_path / "out"
    folder.mkdir()
    foreign = folder / ".img051.png.bnwxgzrr.tmp"  # another program's (or an old cnntool's) temp: not ours to judge
    foreign.write_bytes(b"?")
    writer = _run_writer(_STALLED_WRITER, folder / "img051.png")
    try:
        temp = writer.stdout.readline().strip()
        assert os.path.basename(temp).startswith(".img051.png.") and os.path.exists(temp)
        atomic_write_bytes(folder / "other.png", b"1")  # the writer still runs: its temp is kept
        assert os.path.exists(temp)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert os.path.exists(temp) and not (folder / "img051.png").exists()
    # a later run writing into the folder removes the dead writer's temp, and nothing else
    code = "import sys; from cnntool.data.writers import atomic_write_bytes; atomic_write_bytes(sys.argv[1], b'2')"
    subprocess.run([sys.executable, "-c", code, str(folder / "next.png")], check=True)
    assert sorted(os.listdir(folder)) == [foreign.name, "next.png", "other.png"]


def test_remove_stale_temp_files_keeps_live_writers_and_other_machines(tmp_path):
    from cnntool.data import writers

    own = tmp_path / f".a.png.abcdefgh{writers._temp_tag()}"
    other_host = tmp_path / f".b.png.abcdefgh.cnntool-999999-{'0' * 6 if writers._HOST != '0' * 6 else '1' * 6}-abcdef.tmp"
    dead = tmp_path / f".c.png.abcdefgh.cnntool-999999-{writers._HOST}-abcdef.tmp"
    predecessor = tmp_path / f".d.png.abcdefgh.cnntool-{os.getpid()}-{writers._HOST}-zzzzzz.tmp"  # not hex: not ours
    same_pid_dead = tmp_path / f".e.png.abcdefgh.cnntool-{os.getpid()}-{writers._HOST}-{'f' * 6 if writers._token() != 'f' * 6 else 'e' * 6}.tmp"
    for p in (own, other_host, dead, predecessor, same_pid_dead):
        p.write_bytes(b"")
    removed = writers.remove_stale_temp_files(tmp_path)
    # a dead pid, and our own pid with another token (a process before us that had the same pid)
    assert sorted(removed) == sorted([dead.name, same_pid_dead.name])
    assert sorted(os.listdir(tmp_path)) == sorted([own.name, other_host.name, predecessor.name])


def test_temp_names_stay_short_for_long_file_names(tmp_path):
    name = "n" * 240 + ".png"
    atomic_write_bytes(tmp_path / name, b"x")
    assert os.listdir(tmp_path) == [name]


# --- the output ledger and the skip rule ----------------------------------------------------------

def test_recipes_digest_options_by_content():
    from cnntool.data.writers import Recipe

    k = np.eye(3)
    a = Recipe.of("filter", {"kernel": k, "sigma": 2.0, "path": PurePath("k.txt")})
    assert a == Recipe.of("filter", {"path": PurePath("k.txt"), "sigma": 2.0, "kernel": k.copy()})
    assert a.digest != Recipe.of("filter", {"kernel": 2 * k, "sigma": 2.0, "path": PurePath("k.txt")}).digest
    assert a.digest != Recipe.of("explain", {"kernel": k, "sigma": 2.0, "path": PurePath("k.txt")}).digest
    with pytest.raises(TypeError, match="recipe"):
        Recipe.of("filter", {"model": object()})


def test_skip_rule_same_recipe_skips_anything_else_is_an_error(tmp_path):
    from cnntool.data.writers import Recipe, ledger_entries, should_skip

    blur = Recipe.of("filter", {"ops": ["gaussian:sigma=2"]}, summary="gaussian:sigma=2")
    edges = Recipe.of("filter", {"ops": ["sobel"]}, summary="sobel")
    src, other_src = tmp_path / "in" / "a.png", tmp_path / "in2" / "a.png"
    out = tmp_path / "out" / "a.png"
    assert should_skip(out, blur, source=src) is False  # nothing there: compute it
    write_image(out, np.zeros((4, 4), np.uint8), recipe=blur, source=src)
    entry = ledger_entries(out.parent)["a.png"]
    assert entry["stage"] == "filter" and entry["recipe"] == blur.digest and entry["source"] == str(src)
    assert should_skip(out, blur, source=src) is True
    assert should_skip(out, edges, source=src, overwrite=True) is False
    with pytest.raises(InputError, match=r"a.png exists, made with other options \(gaussian:sigma=2\); --overwrite"):
        should_skip(out, edges, source=src)
    with pytest.raises(InputError, match=r"made from another input \(.*in/a.png\); --overwrite"):
        should_skip(out, blur, source=other_src)
    with pytest.raises(InputError, match="made by cnntool filter"):
        should_skip(out, Recipe.of("explain", {}), source=src)
    (out.parent / "mine.png").write_bytes(b"user's own file")
    with pytest.raises(InputError, match="no record of making it; --overwrite"):
        should_skip(out.parent / "mine.png", blur, source=src)
    # several outputs per input: skipped only when all are there and made alike
    npy = out.with_suffix(".npy")
    assert should_skip([out, npy], blur, source=src) is False
    write_npy(npy, np.eye(2), recipe=blur, source=src)
    assert should_skip([out, npy], blur, source=src) is True
    # --overwrite with other options replaces the entry
    write_image(out, np.ones((4, 4), np.uint8), recipe=edges, source=src)
    assert should_skip(out, edges, source=src) is True


def test_ledger_survives_damage_and_concurrent_writers(tmp_path):
    from cnntool.data.writers import LEDGER_NAME, Recipe, is_recorded_output, ledger_entries

    recipe = Recipe.of("demo", {})
    list(thread_map(lambda i: atomic_write_bytes(tmp_path / f"f{i}.bin", b"x", recipe=recipe), range(40), workers=4))
    ledger = tmp_path / LEDGER_NAME
    assert len(ledger.read_text().splitlines()) == 40
    with open(ledger, "ab") as f:
        f.write(b"\x00garbage{\n[1, 2]\n")
    atomic_write_bytes(tmp_path / "last.bin", b"x", recipe=recipe)
    assert sorted(ledger_entries(tmp_path)) == sorted([f"f{i}.bin" for i in range(40)] + ["last.bin"])
    assert is_recorded_output(tmp_path / "f7.bin") and not is_recorded_output(tmp_path / "g.bin")


def test_ledger_is_compacted_when_mostly_superseded(tmp_path, monkeypatch):
    from cnntool.data import writers

    monkeypatch.setattr(writers, "_COMPACT_BYTES", 2000)
    recipe = writers.Recipe.of("demo", {})
    for i in range(30):
        atomic_write_bytes(tmp_path / "same.bin", str(i).encode(), recipe=recipe)
    atomic_write_bytes(tmp_path / "gone.bin", b"x", recipe=recipe)
    (tmp_path / "gone.bin").unlink()
    for i in range(30):
        atomic_write_bytes(tmp_path / "same.bin", str(i).encode(), recipe=recipe)
    lines = (tmp_path / writers.LEDGER_NAME).read_text().splitlines()
    assert len(lines) < 20
    assert list(writers.ledger_entries(tmp_path)) == ["same.bin"]


def test_write_npy_rows_streams_blocks_and_checks_the_shape(tmp_path):
    from cnntool.data.writers import write_npy_rows

    blocks = [np.arange(6.0).reshape(2, 3), np.arange(6.0, 9.0).reshape(1, 3)]
    write_npy_rows(tmp_path / "r.npy", (3, 3), iter(blocks))
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), np.arange(9.0).reshape(3, 3))
    for shape in ((4, 3), (2, 3), (3, 4)):
        with pytest.raises(ValueError):
            write_npy_rows(tmp_path / "bad.npy", shape, iter(blocks))
    assert sorted(os.listdir(tmp_path)) == ["r.npy"]  # nothing half-written
