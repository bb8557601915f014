"""Benchmark: `cnntool train` against a plain PyTorch training loop, same model, data, batch and optimiser.

Both sides train LeNet-5 (cnntool's registry builder) on ``samples/digits/train`` (1,437 8x8
PNGs, resized to 32x32), batch 64, SGD with Nesterov momentum 0.9, lr 0.05, weight decay 5e-4,
no augmentation, plain cross-entropy, constant learning rate:

- plain: the images decoded once into one normalised float tensor; each epoch a
  ``torch.randperm`` order, slices of 64 (the last incomplete batch dropped, as cnntool drops a
  tail under half a batch), forward, loss, zero_grad, backward, step;
- cnntool: ``cnntool train samples/digits --arch lenet5 --no-augment --label-smoothing 0
  --schedule constant --warmup-epochs 0`` as a subprocess (its per-epoch ``train_images_per_s``
  from metrics.jsonl: the same span, data loading included).

Each side runs in its own process; rounds alternate the two so that load from other processes
hits both alike. Throughput is the median over epochs after the first (warm-up), best round.
Also prints the default recipe's throughput (augmentation and label smoothing on), for scale.

Usage: python bench/bench_train.py [--epochs 8] [--rounds 2] [--data samples/digits]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def plain_loop(data: Path, epochs: int, seed: int = 0) -> list[float]:
    """Train LeNet-5 the plain way; returns images/s per epoch."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cnntool.models.classic import lenet5

    torch.manual_seed(seed)
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((data / "train" / name).glob("*.png")):
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            images.append(cv2.resize(gray, (32, 32), interpolation=cv2.INTER_LINEAR))
            labels.append(index)
    x_all = (torch.from_numpy(np.stack(images)).float().div(255.0).sub(0.5).div(0.5)).unsqueeze(1)
    y_all = torch.tensor(labels)
    model = lenet5(num_classes=len(classes))
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    n = len(y_all)
    rates = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n)
        seen = 0
        start = time.perf_counter()
        for i in range(0, n - BATCH + 1, BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def cnntool_run(data: Path, epochs: int, out: Path, recipe: str) -> list[float]:
    """`cnntool train` as a subprocess; returns images/s per epoch from metrics.jsonl."""
    args = [str(data), "--arch", "lenet5", "-o", str(out), "--overwrite", "--epochs", str(epochs),
            "--batch-size", str(BATCH), "--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM),
            "--weight-decay", str(WEIGHT_DECAY), "--format", "jsonl", "-q"]
    if recipe == "plain":
        args += ["--no-augment", "--label-smoothing", "0", "--schedule", "constant", "--warmup-epochs", "0"]
    subprocess.run([_cnntool(), "train", *args], check=True, stdout=subprocess.DEVNULL)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train_images_per_s"] for line in lines]


def _cnntool() -> str:
    local = Path(sys.executable).with_name("cnntool")
    return str(local) if local.exists() else "cnntool"


def steady(rates: list[float]) -> float:
    """Median images/s over the epochs after the first."""
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "samples" / "digits")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        print(json.dumps(plain_loop(args.data, args.epochs)))
        return
    if not (args.data / "train").is_dir():
        sys.exit(f"no {args.data}/train: run `make samples` first")
    plain, tool = [], []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for _ in range(args.rounds):
            tool.append(steady(cnntool_run(args.data, args.epochs, Path(tmp) / "run", "plain")))
            out = subprocess.run([sys.executable, __file__, "--plain-worker", "--data", str(args.data),
                                  "--epochs", str(args.epochs)], check=True, capture_output=True, text=True).stdout
            plain.append(steady(json.loads(out)))
        recipe = steady(cnntool_run(args.data, args.epochs, Path(tmp) / "recipe", "default"))
    best_tool, best_plain = max(tool), max(plain)
    print(f"data: {args.data} (train split), LeNet-5, batch {BATCH}, SGD lr {LR}, {args.epochs} epochs, "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"plain PyTorch loop : {best_plain:8.0f} images/s   (rounds: {', '.join(f'{r:.0f}' for r in plain)})")
    print(f"cnntool train      : {best_tool:8.0f} images/s   (rounds: {', '.join(f'{r:.0f}' for r in tool)})")
    print(f"ratio cnntool/plain: {best_tool / best_plain:.2f}x  (target >= 0.95x)")
    print(f"cnntool default recipe (augmentation, label smoothing): {recipe:.0f} images/s")


if __name__ == "__main__":
    main()
