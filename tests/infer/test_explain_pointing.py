"""The proof: Grad-CAM of a model trained by ``cnntool train`` points at the object (the pointing game).

A synthetic dataset: 64 x 64 images with a textured background and one object, a red disc or a
blue square (the class), of random size at a random place. ``cnntool train --arch simple_cnn``
learns it in a few epochs; then ``cnntool explain`` runs Grad-CAM on held-out images, and the
heatmap's peak must fall inside the object's box in at least 90 % of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from cnntool.cli.main import app  # noqa: E402

SIZE = 64
#: class -> RGB colour; discs and squares differ in shape and colour.
OBJECTS = {"disc": (230, 60, 40), "square": (40, 90, 230)}
RADIUS = (6, 10)           # half the object's size, pixels (random in this range)
TRAIN_PER_CLASS = 150
HELD_OUT_PER_CLASS = 50
POINTING_GOAL = 0.9


def make_image(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One RGB image and its object's box (x0, y0, x1, y1), x1 and y1 exclusive."""
    low = rng.uniform(60, 190, size=(8, 8, 3)).astype(np.float32)  # smooth coloured blotches
    background = cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    background += rng.normal(0, 18, size=background.shape)  # and pixel noise
    image = np.clip(background, 0, 255).astype(np.uint8)
    r = int(rng.integers(*RADIUS))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
    colour = OBJECTS[kind]
    if kind == "disc":
        cv2.circle(image, (cx, cy), r, colour, thickness=-1, lineType=cv2.LINE_AA)
    else:
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, thickness=-1)
    return image, (cx - r, cy - r, cx + r + 1, cy + r + 1)


def write_dataset(root: Path, per_class: int, seed: int) -> dict[str, tuple[int, int, int, int]]:
    """``root/<class>/NNNN.png``; returns each file's object box."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for kind in OBJECTS:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image, box = make_image(rng, kind)
            path = root / kind / f"{i:04d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            boxes[str(path)] = box
    return boxes


@pytest.mark.slow
def test_gradcam_points_at_the_object(tmp_path):
    write_dataset(tmp_path / "data", TRAIN_PER_CLASS, seed=0)
    boxes = write_dataset(tmp_path / "held_out", HELD_OUT_PER_CLASS, seed=1)
    run = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "cnntool", "train", str(tmp_path / "data"), "--arch", "simple_cnn", "-o", str(run),
         "--epochs", "5", "--batch-size", "32", "--no-augment", "--seed", "0", "-q", "-f", "jsonl"],
        capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr
    checkpoint = run / "best.pt"
    assert checkpoint.exists()

    result = CliRunner().invoke(app, ["explain", str(tmp_path / "held_out"), "-m", str(checkpoint),
                                      "--method", "gradcam", "-f", "jsonl", "-q", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(boxes)
    hits = 0
    for record in records:
        x0, y0, x1, y1 = boxes[record["path"]]
        x, y = record["peak"]
        hits += x0 <= x < x1 and y0 <= y < y1
    pointing = hits / len(records)
    accuracy = np.mean([r["class"] == Path(r["path"]).parent.name for r in records])
    print(f"pointing game: {pointing:.1%} of {len(records)} held-out images (accuracy {accuracy:.1%})")
    assert pointing >= POINTING_GOAL
