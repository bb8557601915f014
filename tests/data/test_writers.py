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
