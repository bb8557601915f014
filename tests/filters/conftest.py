"""Fixtures for the filter tests: tiny seeded images on disk, real photos, the lectures' arrays."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

PHOTOS = Path(__file__).resolve().parents[2] / "samples" / "photos"

#: Lecture 003: the 5x5 input of the Laplacian example.
LECTURE_5X5 = np.array([
    [0, 10, 9, 3, 4],
    [4, 3, 2, 1, 5],
    [10, 2, 10, 3, 0],
    [3, -1, -3, -3, -4],
    [-4, -10, -8, -1, -2],
], dtype=np.float64)

#: Lecture example of 2x2 max pooling.
POOL_4X4 = np.array([[1, 2, 5, 3], [3, 0, 1, 2], [2, 1, 3, 4], [1, 1, 2, 0]], dtype=np.float64)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or 2-D) uint8 array with OpenCV, by the path's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def small_rgb(rng):
    return rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)


@pytest.fixture
def image_dir(tmp_path, rng):
    """A folder with two PNGs (one in a subfolder), a JPEG and a grayscale PNG."""
    root = tmp_path / "in"
    write_rgb(root / "a.png", rng.integers(0, 256, (16, 20, 3), dtype=np.uint8))
    write_rgb(root / "sub" / "b.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    write_rgb(root / "c.jpg", rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    write_rgb(root / "g.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    return root


@pytest.fixture(scope="session")
def photo():
    """A real photo (RGB uint8, 300x451): scikit-image's chelsea from samples/photos."""
    return read_rgb(PHOTOS / "chelsea.jpg")


@pytest.fixture(scope="session")
def gray_photo():
    """A real grayscale photo (303x384): coins."""
    return read_rgb(PHOTOS / "coins.png")
