"""A planted set of photo crops with known truth, for the audit's precision and recall.

Clean crops of every photo scikit-image ships (no download): sharp photos (astronaut, coffee,
chelsea, rocket, motorcycle, camera, coins, hubble_deep_field, brick, grass, gravel, page, text)
and natively soft ones (the ``cell`` micrograph, the ``retina`` fundus photo, the motion-blurred
``clock`` face, the ``moon``, ``immunohistochemistry``, ``microaneurysms``), saved as PNG or
JPEG (quality 75-95); then planted problems made from other crops: moderate Gaussian blur
(sigma 2-3, crops of 256 px or more, where CleanVision's thumbnail does not see it), dark,
washed-out and over-exposed, flat colour (low information), and gray stored as RGB.

Used by ``tests/audit/test_precision.py`` (a small set) and ``bench/bench_audit.py --precision``
(300 images, like the set the issue was measured on).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: Photos that are sharp at their native resolution.
SHARP = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "camera", "coins", "hubble_deep_field",
         "brick", "grass", "gravel", "page", "text")
#: Photos whose content is soft at their native resolution (not blurred by us).
SOFT = ("cell", "retina", "clock", "moon", "immunohistochemistry", "microaneurysms")
#: What each planted kind must trip.
PLANTED_CHECK = {"blurred": "blurry", "dark": "dark", "washed": "light", "overexposed": "light",
                 "flat": "low_information", "grayrgb": "grayscale"}
#: Colour photos (the others are single-channel): only these can be planted as gray stored as RGB.
COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "hubble_deep_field", "retina",
          "immunohistochemistry")


def photos() -> dict[str, np.ndarray]:
    """Every bundled photo, uint8, (H, W) or (H, W, 3)."""
    from skimage import data

    out = {}
    for name in SHARP + SOFT:
        image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        out[name] = np.ascontiguousarray(image[..., :3]) if image.ndim == 3 else image
    return out


def _crop(image: np.ndarray, rng, sides) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(int(rng.choice(sides)), h, w)
    width = min(w, int(side * rng.uniform(0.8, 1.25)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - width + 1))
    crop = image[y:y + side, x:x + width]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def _save(path: Path, image: np.ndarray, rng) -> str:
    bgr = image if image.ndim == 2 else image[:, :, ::-1]
    if rng.random() < 0.5:
        name = path.with_suffix(".jpg")
        cv2.imwrite(str(name), bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 96))])
    else:
        name = path.with_suffix(".png")
        cv2.imwrite(str(name), bgr)
    return name.name


def make_photo_set(folder, *, clean: int = 275, planted: dict | None = None, seed: int = 0,
                   sides=(128, 160, 200, 256, 320, 400, 512)) -> dict[str, tuple[str, str]]:
    """Write the set into ``folder``; returns ``{file name: (kind, source photo)}`` where kind is
    ``clean`` or a key of :data:`PLANTED_CHECK`.

    ``clean`` crops are spread evenly over all photos; ``planted`` gives how many of each kind
    (default: 8 blurred, 4 dark, 3 washed, 3 overexposed, 3 flat, 4 grayrgb: 25 in all).
    """
    planted = planted or {"blurred": 8, "dark": 4, "washed": 3, "overexposed": 3, "flat": 3, "grayrgb": 4}
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = photos()
    names = list(sources)
    truth: dict[str, tuple[str, str]] = {}
    for k in range(clean):
        name = names[k % len(names)]
        truth[_save(folder / f"clean_{k:03d}_{name}", _crop(sources[name], rng, sides), rng)] = ("clean", name)
    for kind, count in planted.items():
        for k in range(count):
            pool = COLOUR if kind == "grayrgb" else SHARP + SOFT
            name = pool[int(rng.integers(len(pool)))]
            crop = _crop(sources[name], rng, [s for s in sides if s >= 256] if kind == "blurred" else sides)
            if kind == "blurred":
                image = cv2.GaussianBlur(crop, (0, 0), float(rng.uniform(2.0, 3.0)))
            elif kind == "dark":
                image = (crop * 0.2).astype(np.uint8)
            elif kind == "washed":
                image = (255 - (255 - crop.astype(np.float64)) * 0.05).astype(np.uint8)
            elif kind == "overexposed":
                image = np.clip(crop * 2.5 + 60.0, 0, 255).astype(np.uint8)
            elif kind == "flat":
                image = np.full((*crop.shape[:2], 3), rng.integers(0, 256, 3), np.uint8)
            else:  # grayrgb
                image = np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
            truth[_save(folder / f"{kind}_{k:02d}_{name}", image, rng)] = (kind, name)
    return truth


def score(records: list[dict], truth: dict[str, tuple[str, str]], *, check: str | None = None) -> dict:
    """False alarms and recall from audit records.

    A false alarm is a clean crop flagged by an image check (``check``, or any image check but
    grayscale on photos that are single-channel by nature); recall is per planted kind.
    """
    image_checks = {"dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio"}
    found: dict[str, set[str]] = {}
    for r in records:
        if r.get("check") in image_checks:
            found.setdefault(Path(r["path"]).name, set()).add(r["check"])
    clean = [n for n, (kind, _) in truth.items() if kind == "clean"]
    alarms = []
    for n in clean:
        flags = found.get(n, set())
        if truth[n][1] not in COLOUR:
            flags = flags - {"grayscale"}
        if (check in flags) if check else flags:
            alarms.append(n)
    recall = {}
    for kind, wanted in PLANTED_CHECK.items():
        members = [n for n, (k, _) in truth.items() if k == kind]
        if members:
            recall[kind] = (sum(wanted in found.get(n, set()) for n in members), len(members))
    return {"false_alarms": alarms, "clean": len(clean), "rate": len(alarms) / max(1, len(clean)), "recall": recall}
