"""Synthetic images with known truth: shape scenes (boxes, instance and class masks) and clips of a
moving square (the direction is the class).

These are the test, demo and benchmark data of the detection, segmentation and video stages:
every answer is known exactly, and no download is needed. Each generator takes a NumPy
``Generator``, so the same seed gives the same data. Writers to dataset folders live with the
format they write (COCO/YOLO boxes, mask folders, video files).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> scene = shapes_scene(rng, size=96)
>>> scene.image.shape, scene.image.dtype, len(scene.boxes) == len(scene.labels) == len(scene.masks)
((96, 96, 3), dtype('uint8'), True)
>>> int(scene.class_mask.max()) <= len(SHAPE_CLASSES)
True
>>> clip = moving_square_clip(rng, direction="left", frames=8, size=32)
>>> clip.frames.shape, clip.label
((8, 32, 32, 3), 'left')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Class names of :func:`shapes_scene`, in class-index order (1-based in masks: 0 is background).
SHAPE_CLASSES = ("circle", "square", "triangle")

#: Class names of :func:`moving_square_clip`, sorted as an ImageFolder of them would be.
DIRECTIONS = ("down", "left", "right", "up")
_STEP = {"down": (0, 1), "left": (-1, 0), "right": (1, 0), "up": (0, -1)}


@dataclass(frozen=True)
class Scene:
    """One synthetic image and its truth.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 (H, W, 3).
    boxes : numpy.ndarray
        float64 (N, 4), ``x1, y1, x2, y2`` in pixels, x2/y2 exclusive (the tight box of the mask).
    labels : numpy.ndarray
        int64 (N,), 0-based indices into :data:`SHAPE_CLASSES`.
    masks : numpy.ndarray
        bool (N, H, W), one per object; objects never overlap.
    class_mask : numpy.ndarray
        uint8 (H, W): 0 background, ``label + 1`` on each object.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_mask: np.ndarray


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with fine noise: uint8 (H, W, 3), never flat.

    Examples
    --------
    >>> bg = textured_background(np.random.default_rng(0), 20, 30)
    >>> bg.shape, int(bg.std() > 1)
    ((20, 30, 3), 1)
    """
    import cv2

    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    field += rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    return np.clip(field, 0, 255).astype(np.uint8)


def shapes_scene(rng: np.random.Generator, *, size: int | tuple[int, int] = 160, min_objects: int = 1,
                 max_objects: int = 3, min_side: float = 0.12, max_side: float = 0.35) -> Scene:
    """A textured background with 1-3 non-overlapping circles, squares and triangles.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or (int, int)
        Image side, or (height, width).
    min_objects, max_objects : int
        How many shapes (uniform, inclusive).
    min_side, max_side : float
        Shape size as a fraction of the shorter image side.

    Returns
    -------
    Scene
    """
    import cv2

    height, width = (size, size) if isinstance(size, int) else size
    image = textured_background(rng, height, width)
    short = min(height, width)
    count = int(rng.integers(min_objects, max_objects + 1))
    taken = np.zeros((height, width), bool)
    masks, labels = [], []
    for _ in range(count):
        for _attempt in range(50):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            side = int(round(short * rng.uniform(min_side, max_side)))
            x = int(rng.integers(0, width - side))
            y = int(rng.integers(0, height - side))
            mask = np.zeros((height, width), np.uint8)
            if SHAPE_CLASSES[label] == "circle":
                cv2.circle(mask, (x + side // 2, y + side // 2), side // 2, 1, thickness=-1)
            elif SHAPE_CLASSES[label] == "square":
                cv2.rectangle(mask, (x, y), (x + side - 1, y + side - 1), 1, thickness=-1)
            else:
                points = np.array([[x + side // 2, y], [x, y + side - 1], [x + side - 1, y + side - 1]], np.int32)
                cv2.fillPoly(mask, [points], 1)
            mask = mask.astype(bool)
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if not (grown & taken).any():
                break
        else:
            continue  # no room left for another shape
        colour = _distinct_colour(rng, image[mask])
        image[mask] = colour
        taken |= mask
        masks.append(mask)
        labels.append(label)
    boxes = np.array([_tight_box(m) for m in masks], np.float64).reshape(-1, 4)
    class_mask = np.zeros((height, width), np.uint8)
    for mask, label in zip(masks, labels):
        class_mask[mask] = label + 1
    stacked = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    return Scene(image, boxes, np.asarray(labels, np.int64), stacked, class_mask)


def _distinct_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A saturated colour far from the mean of the pixels it covers."""
    mean = under.reshape(-1, 3).mean(axis=0) if under.size else np.full(3, 128.0)
    best, best_distance = None, -1.0
    for _ in range(8):
        colour = rng.integers(0, 256, 3)
        colour[rng.integers(3)] = rng.choice([10, 245])
        distance = float(np.abs(colour - mean).sum())
        if distance > best_distance:
            best, best_distance = colour, distance
    return best.astype(np.uint8)


def _tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@dataclass(frozen=True)
class Clip:
    """A clip and its class: ``frames`` uint8 (T, H, W, 3), ``label`` one of :data:`DIRECTIONS`."""

    frames: np.ndarray
    label: str


def moving_square_clip(rng: np.random.Generator, *, direction: str | None = None, frames: int = 16,
                       size: int = 64, noise: float = 25.0) -> Clip:
    """A square moving left, right, up or down over a drifting, noisy background.

    The background drifts in a random direction of its own and the square starts anywhere it can
    travel from, so no single frame tells the class; the motion between frames does.

    Parameters
    ----------
    rng : numpy.random.Generator
    direction : str, optional
        One of :data:`DIRECTIONS`; random when None.
    frames : int
    size : int
        Frame side in pixels.
    noise : float
        Standard deviation of the per-frame pixel noise.
    """
    import cv2

    direction = direction or DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
    if direction not in _STEP:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    side = int(rng.integers(size // 6, size // 3))
    speed = float(rng.uniform(1.0, 2.5))
    travel = int(np.ceil(speed * (frames - 1)))
    dx, dy = _STEP[direction]
    lo_x, hi_x = (travel if dx < 0 else 0), size - side - (travel if dx > 0 else 0)
    lo_y, hi_y = (travel if dy < 0 else 0), size - side - (travel if dy > 0 else 0)
    x0 = float(rng.integers(lo_x, max(lo_x, hi_x) + 1))
    y0 = float(rng.integers(lo_y, max(lo_y, hi_y) + 1))
    big = textured_background(rng, size * 2, size * 2)
    angle = rng.uniform(0, 2 * np.pi)
    drift = (np.cos(angle) * 1.5, np.sin(angle) * 1.5)
    colour = rng.integers(0, 256, 3).astype(np.uint8)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        ox = int(round(size / 2 + drift[0] * t)) % size
        oy = int(round(size / 2 + drift[1] * t)) % size
        frame = big[oy:oy + size, ox:ox + size].astype(np.float32)
        frame += rng.normal(0, noise, frame.shape).astype(np.float32)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        x, y = int(round(x0 + dx * speed * t)), int(round(y0 + dy * speed * t))
        cv2.rectangle(frame, (x, y), (x + side - 1, y + side - 1), colour.tolist(), thickness=-1)
        out[t] = frame
    return Clip(out, direction)
