"""Benchmark: `cnntool filter -k gaussian:sigma=2` against a plain OpenCV loop, same files, one run.

The data: N 512x512 JPEGs cut from scikit-image's sample photos at random scales and
positions, with noise so no two are alike. Both sides read the JPEGs, blur with a sigma=2
Gaussian (13x13, zero border, cnntool's default) and write PNGs:

- plain: ``for f in files: cv2.imwrite(out, cv2.GaussianBlur(cv2.imread(f), (0, 0), 2,
  borderType=cv2.BORDER_CONSTANT))`` in one Python loop;
- cnntool: ``cnntool filter DIR -k gaussian:sigma=2 -o OUT --ext png`` as a subprocess, the
  way a user runs it (its start-up counts).

Prints both throughputs, the ratio (cnntool / plain; > 1 means cnntool is faster) and how far
the two sets of PNGs differ (OpenCV's uint8 Gaussian rounds in fixed point, so +-1 is expected).

Usage: python bench/bench_filter.py [--images 300] [--rounds 2] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SIZE = 512
SIGMA = 2.0


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` distinct 512x512 JPEGs from scikit-image photos (random scale, crop, noise)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
              data.immunohistochemistry(), data.hubble_deep_field(), data.retina()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        scale = SIZE / min(h, w) * rng.uniform(1.0, 1.6)
        big = cv2.resize(photo, (max(SIZE, round(w * scale)), max(SIZE, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
        y = rng.integers(0, big.shape[0] - SIZE + 1)
        x = rng.integers(0, big.shape[1] - SIZE + 1)
        crop = big[y:y + SIZE, x:x + SIZE].astype(np.float64)
        crop += rng.normal(0.0, 4.0, crop.shape)
        bgr = cv2.cvtColor(np.clip(crop, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        path = folder / f"img_{i:04d}.jpg"
        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def plain_loop(files: list[Path], out_dir: Path) -> tuple[float, float]:
    """The plain way; returns (wall seconds, CPU seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    for src in files:
        img = cv2.imread(str(src))
        blurred = cv2.GaussianBlur(img, (0, 0), SIGMA, borderType=cv2.BORDER_CONSTANT)
        cv2.imwrite(str(out_dir / f"{src.stem}.png"), blurred)
    return time.perf_counter() - start, time.process_time() - cpu


def cnntool_run(in_dir: Path, out_dir: Path) -> tuple[float, float]:
    """cnntool as a user runs it, start-up included; returns (wall seconds, CPU seconds)."""
    cmd = [sys.executable, "-m", "cnntool", "filter", str(in_dir), "-k", f"gaussian:sigma={SIGMA:g}",
           "-o", str(out_dir), "--ext", "png", "--quiet", "--format", "jsonl"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"cnntool failed ({result.returncode}): {result.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compare(files: list[Path], plain_dir: Path, cnn_dir: Path) -> tuple[int, float]:
    """Largest absolute difference and the fraction of differing values over all outputs."""
    worst, differing, total = 0, 0, 0
    for src in files:
        a = cv2.imread(str(plain_dir / f"{src.stem}.png")).astype(np.int16)
        b = cv2.imread(str(cnn_dir / f"{src.stem}.png")).astype(np.int16)
        diff = np.abs(a - b)
        worst = max(worst, int(diff.max()))
        differing += int(np.count_nonzero(diff))
        total += diff.size
    return worst, differing / total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="number of 512x512 JPEGs (default 300)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put data and outputs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data and outputs")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate plain/cnntool this many times and keep each one's best (default 2)")
    args = parser.parse_args(argv)

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_filter_"))
    root.mkdir(parents=True, exist_ok=True)
    in_dir, plain_dir, cnn_dir = root / "jpeg", root / "plain", root / "cnntool"
    for d in (plain_dir, cnn_dir):
        shutil.rmtree(d, ignore_errors=True)
    try:
        files = sorted(in_dir.glob("*.jpg"))
        if len(files) != args.images:
            shutil.rmtree(in_dir, ignore_errors=True)
            files = make_images(in_dir, args.images)
        for f in files:  # warm the page cache for both sides
            f.read_bytes()
        n = len(files)
        print(f"{n} images {SIZE}x{SIZE} JPEG -> Gaussian sigma={SIGMA:g} -> PNG; {os.cpu_count()} CPUs")
        print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews the timings)")
        plain_runs, cnn_runs = [], []
        for _ in range(max(1, args.rounds)):
            for d in (plain_dir, cnn_dir):
                shutil.rmtree(d, ignore_errors=True)
            plain_runs.append(plain_loop(files, plain_dir))
            cnn_runs.append(cnntool_run(in_dir, cnn_dir))
        (t_plain, cpu_plain), (t_cnn, cpu_cnn) = min(plain_runs), min(cnn_runs)
        worst, frac = compare(files, plain_dir, cnn_dir)
        print(f"best of {len(plain_runs)} alternating rounds each")
        print(f"plain cv2 loop : {t_plain:7.2f} s  {n / t_plain:7.1f} img/s  CPU {cpu_plain:6.2f} s")
        print(f"cnntool filter : {t_cnn:7.2f} s  {n / t_cnn:7.1f} img/s  CPU {cpu_cnn:6.2f} s"
              "  (subprocess, start-up included)")
        print(f"ratio (cnntool / plain throughput): {t_plain / t_cnn:.2f}x")
        print(f"outputs: max |difference| {worst}, {frac:.2%} of values differ")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
