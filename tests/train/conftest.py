"""Tiny seeded ImageFolder datasets of drawn shapes, written as PNGs in temporary folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

#: Image side of the synthetic shapes (LeNet-5 resizes them to 32x32).
SIDE = 16


def draw_shape(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A uint8 (SIDE, SIDE) image of one shape at a random place and size, with noise."""
    img = np.zeros((SIDE, SIDE), np.uint8)
    c = rng.integers(6, SIDE - 6, 2)
    r = int(rng.integers(3, 5))
    if kind == "disk":
        cv2.circle(img, (int(c[0]), int(c[1])), r, 255, -1)
    elif kind == "square":
        cv2.rectangle(img, (int(c[0] - r), int(c[1] - r)), (int(c[0] + r), int(c[1] + r)), 255, -1)
    elif kind == "cross":
        cv2.line(img, (int(c[0] - r), int(c[1])), (int(c[0] + r), int(c[1])), 255, 2)
        cv2.line(img, (int(c[0]), int(c[1] - r)), (int(c[0]), int(c[1] + r)), 255, 2)
    elif kind == "hbar":
        cv2.rectangle(img, (2, int(c[1]) - 1), (SIDE - 3, int(c[1]) + 1), 255, -1)
    elif kind == "vbar":
        cv2.rectangle(img, (int(c[0]) - 1, 2), (int(c[0]) + 1, SIDE - 3), 255, -1)
    else:
        raise ValueError(kind)
    noise = rng.integers(0, 40, img.shape)
    return np.clip(img.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def make_folder(root: Path, classes: dict[str, str], *, train: int, val: int, seed: int = 0,
                splits: bool = True) -> Path:
    """root/train/<class>/*.png and root/val/<class>/*.png (or root/<class>/ when not splits)."""
    rng = np.random.default_rng(seed)
    for name, kind in classes.items():
        for i in range(train + val):
            split = ("train" if i < train else "val") if splits else ""
            write_png(root / split / name / f"{i:03d}.png", draw_shape(kind, rng))
    return root


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    """3 classes (disk, square, cross), 16 train + 6 val images each."""
    return make_folder(tmp_path_factory.mktemp("shapes"), {"disk": "disk", "square": "square", "cross": "cross"},
                       train=16, val=6)


@pytest.fixture(scope="session")
def bars(tmp_path_factory) -> Path:
    """2 other classes (hbar, vbar) for fine-tuning, one folder, split by --val-split."""
    return make_folder(tmp_path_factory.mktemp("bars"), {"hbar": "hbar", "vbar": "vbar"}, train=12, val=0,
                       seed=1, splits=False)


@pytest.fixture
def shapes_copy(tmp_path, shapes) -> Path:
    """A private copy of ``shapes`` that a test may damage."""
    import shutil

    dest = tmp_path / "shapes"
    shutil.copytree(shapes, dest)
    return dest
