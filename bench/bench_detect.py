"""Benchmark: `cnntool detect` against a plain detection loop, same model, same weights, same photos.

The model is torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn`` with its COCO_V1 weights
from the torch cache. When the cache has no such file (an offline machine), the benchmark makes a
temporary cache holding randomly initialised weights (seed 0) under the real file name, so both
sides still load the very same weights through the same "COCO_V1" path; it says which it used.
Speed does not depend on the weights' values (the work per image is fixed by the model's
proposal and detection limits), only the detection counts do.

The photos are ``--count`` JPEGs cut from scikit-image's sample photos (random crops of 60-100%
of the area, at various aspect ratios) and resized so that the longer side is 512 px.

Both sides run as whole, fresh processes (start-up, imports and model loading included), in
alternating rounds; each side's best round counts:

- plain: ``cv2.imread`` each file in sorted order, BGR -> RGB, to a [0, 1] float tensor, one
  forward pass per image under ``torch.inference_mode``, detections scoring at least 0.25 counted;
- cnntool: ``cnntool detect DIR -m fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1 --format jsonl``
  (its defaults: --conf 0.25, batches of 8), records to a pipe that is counted.

``--threads N`` sets ``OMP_NUM_THREADS`` for both sides (PyTorch's intra-op threads); by default
each side uses PyTorch's own choice. On a machine whose cores are busy with other work, two
threads can make one forward pass many times slower than one thread, and batching (which
``cnntool detect`` does) hides much of that: compare with ``--threads 1`` there.

Usage: python bench/bench_detect.py [--count 64] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
WEIGHTS = "COCO_V1"
SIDE = 512
CONF = 0.25
#: How cnntool is run (a fresh process each time).
CNNTOOL = [sys.executable, "-m", "cnntool"]

PLAIN = r'''
import sys
from pathlib import Path

import cv2
import torch
from torchvision.models import detection

model = getattr(detection, sys.argv[2])(weights=sys.argv[3], weights_backbone=None).eval()
paths = sorted(p for p in Path(sys.argv[1]).iterdir() if p.suffix == ".jpg")
found = 0
with torch.inference_mode():
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255)
        out = model([x])[0]
        found += int((out["scores"] >= float(sys.argv[4])).sum())
print(len(paths), found)
'''


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    import cv2
    import numpy as np
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(),
              data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        area = rng.uniform(0.6, 1.0)
        ratio = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
        ch = int(min(h, round(np.sqrt(area * h * w / ratio))))
        cw = int(min(w, round(ch * ratio)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y:y + ch, x:x + cw]
        scale = SIDE / max(ch, cw)
        crop = cv2.resize(crop, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"photo_{i:04d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def weights_cache(tmp: Path) -> tuple[dict, str]:
    """The environment both sides run in, and which weights they load."""
    env = dict(os.environ)
    from cnntool.models.detectors import weights_cache_path

    if os.path.exists(weights_cache_path(MODEL, WEIGHTS)):
        return env, f"{MODEL}:{WEIGHTS} from the torch cache"
    import torch
    from torchvision.models import detection

    env["TORCH_HOME"] = str(tmp / "torch_home")
    os.environ["TORCH_HOME"] = env["TORCH_HOME"]
    path = weights_cache_path(MODEL, WEIGHTS)
    os.makedirs(os.path.dirname(path))
    torch.manual_seed(0)
    torch.save(getattr(detection, MODEL)(weights=None, weights_backbone=None).state_dict(), path)
    return env, f"random weights (seed 0) saved as {MODEL}:{WEIGHTS} in a temporary cache (no COCO file cached here)"


def run_plain(folder: Path, env: dict) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PLAIN, str(folder), MODEL, WEIGHTS, str(CONF)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return time.perf_counter() - start, int(out[1])


def run_cnntool(folder: Path, env: dict) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run([*CNNTOOL, "detect", str(folder), "-m", f"{MODEL}:{WEIGHTS}", "--format", "jsonl", "-q"],
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"cnntool detect failed: {result.stderr[-800:]}")
    found = sum(1 for line in result.stdout.splitlines() if '"label": null' not in line)
    return seconds, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64, help="512 px photos")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both sides")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        make_photos(folder, args.count)
        env, which = weights_cache(tmp)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        threads = f"OMP_NUM_THREADS={args.threads}" if args.threads else "PyTorch's default threads"
        print(f"{args.count} photos, {SIDE} px on the longer side; {threads}; weights: {which}")
        run_cnntool(folder, env)  # warm the page cache and the weights file
        plain_times, tool_times = [], []
        for _ in range(args.rounds):
            t, tool_found = run_cnntool(folder, env)
            tool_times.append(t)
            t, plain_found = run_plain(folder, env)
            plain_times.append(t)
        plain, tool = args.count / min(plain_times), args.count / min(tool_times)
        print(f"  plain loop (cv2.imread, one forward per image): {plain:6.2f} images/s   "
              f"(rounds: {', '.join(f'{args.count / t:.2f}' for t in plain_times)}; {plain_found} detections)")
        print(f"  cnntool detect                                : {tool:6.2f} images/s   "
              f"(rounds: {', '.join(f'{args.count / t:.2f}' for t in tool_times)}; {tool_found} detections)")
        print(f"  ratio cnntool/plain: {tool / plain:.2f}x  (target >= 1.0x; both whole processes)")
        print(f"  load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
