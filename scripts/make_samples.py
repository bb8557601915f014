"""Rebuild ``samples/`` from data that ships inside installed packages (no network).

    python scripts/make_samples.py          # or: make samples

Writes:
- ``samples/photos/``: five scikit-image photos (JPEG) and ``coins.png`` (grayscale).
- ``samples/digits/{train,val}/<0-9>/``: scikit-learn's 1,797 handwritten digits as 8x8 PNGs,
  a stratified 80/20 split with seed 0 (an SVC(gamma=0.001) scores 98.9% on it).
- ``samples/faces/{train,val}/{face,nonface}/``: scikit-image's ``lfw_subset`` (25x25),
  a stratified 75/25 split with seed 0.
- ``samples/audit/``: photo crops with one planted problem each (see ``PLANTED``), for
  ``cnntool audit``.
- ``samples/video/pan.mp4``: a 4-second pan across four of the photos (320x180, 15 fps, H.264),
  for ``cnntool video``.

Everything is deterministic: running the script twice gives the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1] / "samples"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")


def _write(path: Path, rgb: np.ndarray, **params) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    flags = [cv2.IMWRITE_JPEG_QUALITY, params.get("quality", 90)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix.lower(), image, flags)
    assert ok, path
    path.write_bytes(buf.tobytes())


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle":
        left, _right, _disp = data.stereo_motorcycle()
        return left
    return getattr(data, name)()


def make_photos(out: Path) -> None:
    from skimage import data

    for name in PHOTOS:
        _write(out / f"{name}.jpg", _photo(name))
    _write(out / "coins.png", data.coins())


def make_digits(out: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(len(images))
    train_idx, val_idx = train_test_split(index, test_size=0.2, random_state=0, stratify=digits.target)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        for i in sorted(idx):
            _write(out / split / str(digits.target[i]) / f"{i:04d}.png", images[i])


def make_faces(out: Path) -> None:
    from skimage import data
    from sklearn.model_selection import train_test_split

    images = data.lfw_subset()  # 100 faces then 100 non-faces, float in [0, 1]
    labels = np.array([0] * 100 + [1] * 100)
    names = ("face", "nonface")
    index = np.arange(len(images))
    train_idx, val_idx = train_test_split(index, test_size=0.25, random_state=0, stratify=labels)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        for i in sorted(idx):
            gray = np.rint(images[i] * 255).astype(np.uint8)
            _write(out / split / names[labels[i]] / f"{i:03d}.png", gray)


#: What samples/audit plants, file by file (the audit demo and README refer to it). Each
#: planted problem comes from its own photo, so only the planted duplicates are duplicates.
PLANTED = {
    "clean_astronaut.jpg": "none",
    "clean_coffee.jpg": "none",
    "clean_chelsea.jpg": "none",
    "clean_motorcycle.jpg": "none",
    "clean_astronaut_face.png": "none",
    "dark_immunohistochemistry.jpg": "dark",
    "light_retina.jpg": "light",
    "blurry_rocket.jpg": "blurry",
    "lowinfo_flat.png": "low_information",
    "gray_as_rgb_gravel.png": "grayscale (R=G=B stored as RGB)",
    "odd_size_tiny_hubble.png": "odd_size",
    "odd_aspect_banner.jpg": "odd_aspect_ratio",
    "dup_coffee_copy.jpg": "exact duplicate of clean_coffee.jpg",
    "near_dup_chelsea_small.jpg": "near duplicate of clean_chelsea.jpg (resized, re-encoded)",
    "corrupt_random_bytes.png": "corrupt (random bytes)",
    "truncated_rocket.jpg": "corrupt (truncated JPEG)",
    "empty.jpg": "corrupt (zero bytes)",
    "not_an_image.jpg": "corrupt (a text file named .jpg)",
    "bitmap_astronaut_corner.bmp": "none (.bmp, which CleanVision skips)",
    "UPPER_CASE_ASTRONAUT_SUIT.JPG": "none (upper-case extension)",
}


def _square(image: np.ndarray, side: int = 320) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return cv2.resize(image[top:top + s, left:left + s], (side, side), interpolation=cv2.INTER_AREA)


def make_audit(out: Path) -> None:
    from skimage import data

    rng = np.random.default_rng(0)
    photos = {name: _photo(name) for name in PHOTOS}
    clean = {name: _square(photos[name]) for name in PHOTOS}
    for name in ("astronaut", "coffee", "chelsea", "motorcycle"):
        _write(out / f"clean_{name}.jpg", clean[name])
    _write(out / "clean_astronaut_face.png", photos["astronaut"][30:230, 160:360])
    dim = _square(data.immunohistochemistry()).astype(np.float64) * 0.12
    _write(out / "dark_immunohistochemistry.jpg", dim.astype(np.uint8))
    retina = _square(data.retina()[300:1100, 300:1100]).astype(np.float64)
    _write(out / "light_retina.jpg", (255 - (255 - retina) * 0.08).astype(np.uint8))
    _write(out / "blurry_rocket.jpg", cv2.GaussianBlur(clean["rocket"], (0, 0), 4))
    flat = np.full((256, 256, 3), 128, np.uint8) + rng.integers(0, 2, (256, 256, 3), dtype=np.uint8)
    _write(out / "lowinfo_flat.png", flat)
    gravel = data.gravel()
    _write(out / "gray_as_rgb_gravel.png", np.repeat(gravel[:, :, None], 3, axis=2))
    hubble = data.hubble_deep_field()[400:700, 300:600]
    _write(out / "odd_size_tiny_hubble.png", cv2.resize(hubble, (24, 24), interpolation=cv2.INTER_AREA))
    _write(out / "odd_aspect_banner.jpg", clean["motorcycle"][140:180, :])
    shutil.copyfile(out / "clean_coffee.jpg", out / "dup_coffee_copy.jpg")
    _write(out / "near_dup_chelsea_small.jpg", cv2.resize(clean["chelsea"], (240, 240), interpolation=cv2.INTER_AREA),
           quality=75)
    (out / "corrupt_random_bytes.png").write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    ok, whole = cv2.imencode(".jpg", cv2.cvtColor(clean["rocket"], cv2.COLOR_RGB2BGR))
    (out / "truncated_rocket.jpg").write_bytes(whole.tobytes()[: len(whole) // 3])
    (out / "empty.jpg").write_bytes(b"")
    (out / "not_an_image.jpg").write_text("this is a text file with an image extension\n")
    _write(out / "bitmap_astronaut_corner.bmp", photos["astronaut"][0:260, 260:512])
    _write(out / "UPPER_CASE_ASTRONAUT_SUIT.JPG", photos["astronaut"][280:512, 0:260])
    (out / "PLANTED.txt").write_text(
        "".join(f"{name}\t{what}\n" for name, what in PLANTED.items()), encoding="utf-8")


def make_video(out: Path) -> None:
    """60 frames of a camera panning 4 px a frame across astronaut, coffee, chelsea and rocket."""
    from cnntool.data.video import write_video

    height = 180
    photos = [_photo(name) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    strip = np.concatenate([cv2.resize(p, (height * p.shape[1] // p.shape[0], height), interpolation=cv2.INTER_AREA)
                            for p in photos], axis=1)
    write_video(out / "pan.mp4", (strip[:, 4 * i:4 * i + 320] for i in range(60)), fps=15)


def main() -> None:
    for name, build in (("photos", make_photos), ("digits", make_digits), ("faces", make_faces),
                        ("audit", make_audit), ("video", make_video)):
        target = ROOT / name
        shutil.rmtree(target, ignore_errors=True)
        build(target)
        count = sum(1 for p in target.rglob("*") if p.is_file())
        print(f"samples/{name}: {count} files")


if __name__ == "__main__":
    main()
