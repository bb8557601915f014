"""Benchmark: `cnntool segment` with LR-ASPP MobileNet-V3 against a plain torchvision loop over the
same photos, both as whole processes (Python and PyTorch start-up, model loading included).

Weights: ``COCO_WITH_VOC_LABELS_V1`` from torch's cache when it is there; otherwise the same
random weights on both sides (a cnntool checkpoint of ``lraspp_mobilenet_v3_large``, whose
``state_dict`` the plain loop loads). Speed does not depend on the weights' values.

Both sides produce, per photo, the class mask at the photo's own size and the fraction of its
pixels per class:

- plain: sorted file list; per photo ``PIL.Image.open`` -> the weights' own
  ``SemanticSegmentation`` transform (shorter side to 520, bilinear, normalise) -> the model under
  ``torch.inference_mode`` -> ``["out"].argmax`` -> nearest-neighbour resize to the photo's size ->
  ``bincount`` per class, one Python loop (photos of different aspect ratios cannot be stacked);
- cnntool: ``cnntool segment DIR -m SPEC --format jsonl -q`` (records of the class fractions).

Rounds alternate the two sides; each side's best round counts.

Usage: python bench/bench_segment.py [--photos 24] [--rounds 2] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "lraspp_mobilenet_v3_large"
WEIGHTS = "COCO_WITH_VOC_LABELS_V1"

PLAIN = r"""
import sys, numpy as np, torch
from pathlib import Path
from PIL import Image
from torchvision.models.segmentation import lraspp_mobilenet_v3_large, LRASPP_MobileNet_V3_Large_Weights
folder, source = Path(sys.argv[1]), sys.argv[2]
weights = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
if source == "pretrained":
    model = lraspp_mobilenet_v3_large(weights=weights)
else:
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True)["state_dict"])
model.eval()
transform = weights.transforms()
count = 0
with torch.inference_mode():
    for path in sorted(p for p in folder.iterdir() if p.suffix == ".jpg"):
        image = Image.open(path).convert("RGB")
        out = model(transform(image)[None])["out"]
        mask = out.argmax(1, keepdim=True).to(torch.uint8)
        mask = torch.nn.functional.interpolate(mask, size=(image.height, image.width), mode="nearest")[0, 0]
        fractions = np.bincount(mask.numpy().ravel(), minlength=21) / mask.numel()
        count += 1
print(count)
"""

CNNTOOL = r"""
import sys
from cnntool.cli import main as m
if "segment" not in {c.name for c in m.app.registered_commands}:  # before the command is registered
    from cnntool.cli.segment import segment_command
    m.command(m.app, "segment", segment_command, "Segment images")
sys.argv[0] = "cnntool"
m.main()
"""


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` JPEGs of 480x640 or 640x480 cut and scaled from scikit-image's photos."""
    import cv2
    import numpy as np
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = (480, 640) if i % 3 else (640, 480)
        scale = max(h / photo.shape[0], w / photo.shape[1]) * rng.uniform(1.0, 1.3)
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        y = rng.integers(0, big.shape[0] - h + 1)
        x = rng.integers(0, big.shape[1] - w + 1)
        cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), cv2.cvtColor(big[y:y + h, x:x + w], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def weights_source(folder: Path) -> tuple[str, str]:
    """(cnntool -m spec, plain loop's source): the cached weights, or one random checkpoint."""
    from cnntool.models.registry import cached_weights_path, get_entry

    if cached_weights_path(get_entry(NAME), WEIGHTS).is_file():
        return f"{NAME}:{WEIGHTS}", "pretrained"
    import torch

    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint

    entry = get_entry(NAME)
    torch.manual_seed(0)
    path = folder / "lraspp_random.pt"
    save_checkpoint(path, make_checkpoint(entry.build(), arch=NAME, task="segmentation",
                                          classes=[f"class_{i}" for i in range(21)],
                                          preprocessing=entry.preprocessing))
    return str(path), str(path)


def timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {done.stderr[-800:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        make_photos(folder, args.photos)
        spec, source = weights_source(Path(tmp))
        plain_cmd = [sys.executable, "-c", PLAIN, str(folder), source]
        cnntool_cmd = [sys.executable, "-c", CNNTOOL, "segment", str(folder), "-m", spec, "--format", "jsonl", "-q",
                       "-b", str(args.batch_size)]
        best = {"plain": float("inf"), "cnntool": float("inf")}
        for _ in range(args.rounds):
            seconds, out = timed(plain_cmd)
            assert int(out.split()[-1]) == args.photos
            best["plain"] = min(best["plain"], seconds)
            seconds, out = timed(cnntool_cmd)
            records = [json.loads(line) for line in out.splitlines()]
            assert len(records) == args.photos and not any(r["error"] for r in records)
            best["cnntool"] = min(best["cnntool"], seconds)
    weights = "cached COCO_WITH_VOC_LABELS_V1" if source == "pretrained" else "random (the same on both sides)"
    print(f"segment: {args.photos} photos (480x640 and 640x480 JPEGs), {NAME}, weights {weights}, "
          f"{os.cpu_count()} cores, best of {args.rounds} rounds, whole processes")
    plain_rate, cnntool_rate = args.photos / best["plain"], args.photos / best["cnntool"]
    print(f"  plain torchvision loop: {best['plain']:.1f} s, {plain_rate:.2f} photos/s")
    print(f"  cnntool segment:        {best['cnntool']:.1f} s, {cnntool_rate:.2f} photos/s")
    print(f"  ratio (cnntool / plain throughput): {cnntool_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
