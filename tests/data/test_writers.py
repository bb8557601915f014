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
