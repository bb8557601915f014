"""Planted folders for the audit tests: every kind of problem, made from scikit-image's photos.

``planted`` holds one file per problem (see :data:`PLANTED`) plus clean crops; ``clean_photos``
holds readable JPEG/PNG crops only (what CleanVision can read); ``labelled`` is an ImageFolder
with one image in the wrong class and one tiny class.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from skimage import data

#: What each planted file is expected to trip (beyond these, clean files trip nothing).
PLANTED = {
    "dark.jpg": "dark",
    "light.png": "light",
    "overexposed.jpg": "light",
    "blurry.png": "blurry",
    "lowinfo.png": "low_information",
    "gray_rgb.png": "grayscale",
    "gray_l.png": "grayscale",
    "odd_size.png": "odd_size",
    "odd_aspect.jpg": "odd_aspect_ratio",
    "corrupt.png": "corrupt",
    "truncated.jpg": "corrupt",
    "empty.jpg": "corrupt",
    "text.jpg": "corrupt",
}
CLEAN = ("clean_a.png", "clean_b.jpg", "clean_c.png", "clean_d.jpg", "clean_e.png", "UPPER.JPG",
         "png_named.jpg", "copy_of_b.bmp", "dup_of_a.png", "near_of_c.jpg")


def _photos():
    astronaut, coffee, chelsea = data.astronaut(), data.coffee(), data.chelsea()
    rocket, immuno = data.rocket(), data.immunohistochemistry()
    return {
        "a": astronaut[20:180, 180:340],
        "b": coffee[100:260, 300:460],
        "c": chelsea[60:220, 120:280],
        "d": rocket[150:310, 200:360],
        "e": immuno[200:360, 200:360],
        "f": astronaut[300:460, 50:210],
        "g": coffee[200:360, 40:200],
        "h": chelsea[100:260, 250:410],
    }


def write(path, rgb, quality=92):
    """Write RGB (or 2-D gray) with OpenCV; returns the path."""
    image = rgb if rgb.ndim == 2 else np.ascontiguousarray(rgb[:, :, ::-1])
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(".jpg" if ext in (".jpg", ".jpeg") else ext, image, params)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def decoded(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


@pytest.fixture(scope="session")
def photos():
    return _photos()


@pytest.fixture(scope="session")
def planted(tmp_path_factory, photos):
    """A folder with every planted problem, and clean files that must trip nothing."""
    root = tmp_path_factory.mktemp("planted")
    p = photos
    write(root / "clean_a.png", p["a"])
    write(root / "clean_b.jpg", p["b"])
    write(root / "clean_c.png", p["c"])
    write(root / "clean_d.jpg", p["d"])
    write(root / "clean_e.png", p["e"])
    write(root / "UPPER.JPG", p["f"])
    png = cv2.imencode(".png", np.ascontiguousarray(p["g"][:, :, ::-1]))[1].tobytes()
    (root / "png_named.jpg").write_bytes(png)  # a PNG named .jpg: decoded by content, fine
    write(root / "copy_of_b.bmp", decoded(root / "clean_b.jpg"))  # same pixels as clean_b.jpg
    shutil.copy(root / "clean_a.png", root / "dup_of_a.png")
    small = cv2.resize(p["c"], (120, 120), interpolation=cv2.INTER_AREA)
    write(root / "near_of_c.jpg", cv2.resize(small, (160, 160), interpolation=cv2.INTER_LINEAR), quality=70)

    write(root / "dark.jpg", (p["h"] * 0.2).astype(np.uint8))
    write(root / "light.png", (255 - (255 - p["h"].astype(np.float64)) * 0.05).astype(np.uint8))
    write(root / "overexposed.jpg", np.clip(p["d"] * 2.5 + 60.0, 0, 255).astype(np.uint8))
    write(root / "blurry.png", cv2.GaussianBlur(p["e"][::-1], (0, 0), 3.0))
    write(root / "lowinfo.png", np.full((160, 160, 3), (90, 140, 60), np.uint8))
    write(root / "uniform_black.png", np.zeros((160, 160, 3), np.uint8))
    write(root / "uniform_white.png", np.full((160, 160, 3), 255, np.uint8))
    gray = cv2.cvtColor(np.ascontiguousarray(p["f"][::-1, ::-1]), cv2.COLOR_RGB2GRAY)
    write(root / "gray_rgb.png", np.repeat(gray[:, :, None], 3, axis=2))
    write(root / "gray_l.png", cv2.cvtColor(np.ascontiguousarray(p["c"][:, ::-1]), cv2.COLOR_RGB2GRAY))
    write(root / "odd_size.png", cv2.resize(p["b"][::-1], (24, 24), interpolation=cv2.INTER_AREA))
    write(root / "odd_aspect.jpg", p["a"][60:92, :][:, ::-1])

    rng = np.random.default_rng(0)
    (root / "corrupt.png").write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    full = write(root / "truncated_full.jpg", p["g"][::-1]).read_bytes()
    (root / "truncated_full.jpg").unlink()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a picture\n")
    (root / "notes.txt").write_text("ignored: not an image extension\n")
    return root


@pytest.fixture(scope="session")
def clean_photos(tmp_path_factory, photos):
    """Readable JPEG and PNG crops only, with sizes that vary (CleanVision can read them all)."""
    root = tmp_path_factory.mktemp("clean_photos")
    for k, (name, image) in enumerate(sorted(photos.items())):
        ext = ".jpg" if k % 2 else ".png"
        write(root / f"{name}{ext}", image)
        write(root / f"{name}_small{ext}", cv2.resize(image, (100, 90), interpolation=cv2.INTER_AREA))
    write(root / "dark.jpg", (photos["a"] * 0.15).astype(np.uint8))
    write(root / "washed.png", (255 - (255 - photos["b"].astype(np.float64)) * 0.04).astype(np.uint8))
    write(root / "flat.png", np.full((120, 120, 3), (30, 200, 100), np.uint8))
    write(root / "banner.jpg", photos["c"][:30])
    write(root / "gray_l.png", cv2.cvtColor(np.ascontiguousarray(photos["d"]), cv2.COLOR_RGB2GRAY))
    ramp = np.linspace(0, 255, 140)
    write(root / "ramp.png", np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), axis=-1)
          .astype(np.uint8))  # no edges and a flat histogram: CleanVision's idea of blurry
    write(root / "tiny.png", cv2.resize(photos["f"], (12, 12), interpolation=cv2.INTER_AREA))
    shutil.copy(root / "a.png", root / "a_copy.png")
    return root


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    """ImageFolder: sky (bright, smooth) 22, night (dark, speckled) 22, rare 2; one night image in sky/."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(1)

    def sky():
        base = np.linspace(170, 230, 48)[:, None, None] + rng.normal(0, 4, (48, 48, 1))
        return np.clip(base + np.array([0, 10, 25]), 0, 255).astype(np.uint8)

    def night():
        img = rng.normal(20, 6, (48, 48, 3))
        stars = rng.random((48, 48)) < 0.03
        img[stars] = 230
        return np.clip(img, 0, 255).astype(np.uint8)

    for cls, make in (("sky", sky), ("night", night)):
        (root / cls).mkdir()
        for k in range(22):
            write(root / cls / f"{cls}_{k:02d}.png", make())
    write(root / "sky" / "mislabelled_night.png", night())
    (root / "rare").mkdir()
    for k in range(2):
        img = np.zeros((48, 48, 3), np.uint8)
        img[:, ::4] = (250, 40, 40)
        write(root / "rare" / f"rare_{k}.png", np.roll(img, k, axis=1))
    return root


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def findings(stdout: str) -> dict[str, set[str]]:
    """{file name: {checks}} from jsonl output (summary excluded)."""
    out: dict[str, set[str]] = {}
    for r in records(stdout):
        if r["check"] != "summary":
            out.setdefault(r["path"].replace("\\", "/").rsplit("/", 1)[-1], set()).add(r["check"])
    return out


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """No test writes to the user's cache folder, whatever options it passes."""
    monkeypatch.setenv("CNNTOOL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "default-audit-cache"))
