"""Benchmark: `cnntool predict` against a plain batched PyTorch inference loop, same model and files.

The model is a LeNet-5 checkpoint (weights are irrelevant to speed). Two workloads:

- ``digits``: the 1,797 8x8 PNGs of ``samples/digits`` copied ``--copies`` times (overhead-bound:
  tiny files, tiny model);
- ``photos``: ``--photos`` 256x256 JPEGs cut from scikit-image photos (decode-bound).

Both sides produce, per image, the top-5 labels and probabilities:

- plain: sorted file list; for each batch of 64, ``PIL.Image.open`` -> torchvision
  ``Grayscale, Resize((32, 32)), ToTensor, Normalize`` -> ``torch.stack`` -> model under
  ``torch.inference_mode`` -> softmax -> top-5, one Python loop;
- cnntool: ``cnntool predict DIR -m ckpt --format jsonl``, run in this process through Typer's
  CliRunner (the whole command: input resolution, model loading, decoding threads, records
  formatted as JSON), so that neither side pays Python's and PyTorch's start-up.

Rounds alternate the two sides; each side's best round counts. Also times both as
subprocesses (start-up included) once, for scale.

Usage: python bench/bench_predict.py [--copies 4] [--photos 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64
TOPK = 5


def make_checkpoint(path: Path) -> Path:
    import torch

    from cnntool.models.checkpoint import make_checkpoint as make, save_checkpoint
    from cnntool.data.preprocessing import Preprocessing
    from cnntool.models.classic import lenet5

    torch.manual_seed(0)
    save_checkpoint(path, make(lenet5(num_classes=10), arch="lenet5", task="classification",
                               classes=[str(i) for i in range(10)],
                               preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    return path


def make_digits(folder: Path, copies: int) -> int:
    source = ROOT / "samples" / "digits"
    for i in range(copies):
        shutil.copytree(source, folder / f"copy{i}")
    return sum(1 for _ in folder.rglob("*.png"))


def make_photos(folder: Path, count: int, size: int = 256, seed: int = 0) -> int:
    import cv2
    import numpy as np
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        y = rng.integers(0, photo.shape[0] - size + 1)
        x = rng.integers(0, photo.shape[1] - size + 1)
        crop = cv2.cvtColor(photo[y:y + size, x:x + size], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return count


def plain_predict(folder: Path, checkpoint: Path) -> list[tuple[str, int, float]]:
    """The plain way: PIL + torchvision transforms, sequential batches, softmax, top-k."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from cnntool.models.classic import lenet5

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model = lenet5(num_classes=10)
    model.load_state_dict(state)
    model.eval()
    tf = transforms.Compose([transforms.Grayscale(), transforms.Resize((32, 32)), transforms.ToTensor(),
                             transforms.Normalize((0.5,), (0.5,))])
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    results = []
    with torch.inference_mode():
        for i in range(0, len(paths), BATCH):
            chunk = paths[i:i + BATCH]
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in chunk])
            top = torch.softmax(model(x), dim=1).topk(TOPK, dim=1)
            for p, idx, score in zip(chunk, top.indices.tolist(), top.values.tolist()):
                results.append((str(p), idx[0], score[0]))
    return results


def cnntool_predict(folder: Path, checkpoint: Path) -> int:
    from typer.testing import CliRunner

    from cnntool.cli.main import app

    result = CliRunner().invoke(app, ["predict", str(folder), "-m", str(checkpoint), "--format", "jsonl",
                                      "--topk", str(TOPK), "-b", str(BATCH), "-q"])
    if result.exit_code != 0:
        raise SystemExit(f"cnntool predict failed: {result.output[-500:]}")
    return len(result.stdout.splitlines())


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def subprocess_times(folder: Path, checkpoint: Path) -> tuple[float, float]:
    """Wall time of both sides as fresh processes (start-up included)."""
    cnntool = Path(sys.executable).with_name("cnntool")
    start = time.perf_counter()
    subprocess.run([str(cnntool) if cnntool.exists() else "cnntool", "predict", str(folder), "-m", str(checkpoint),
                    "--format", "jsonl", "-q"], check=True, stdout=subprocess.DEVNULL)
    tool = time.perf_counter() - start
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_predict as b; "
            f"from pathlib import Path; b.plain_predict(Path({str(folder)!r}), Path({str(checkpoint)!r}))")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return tool, time.perf_counter() - start


def compare(name: str, folder: Path, count: int, checkpoint: Path, rounds: int) -> float:
    plain_times, tool_times = [], []
    cnntool_predict(folder, checkpoint)  # warm both paths (imports, page cache)
    plain_predict(folder, checkpoint)
    for _ in range(rounds):
        t, n = timed(cnntool_predict, folder, checkpoint)
        assert n == count, (n, count)
        tool_times.append(t)
        t, results = timed(plain_predict, folder, checkpoint)
        assert len(results) == count
        plain_times.append(t)
    plain, tool = count / min(plain_times), count / min(tool_times)
    ratio = tool / plain
    print(f"{name}: {count} images, batch {BATCH}, top-{TOPK}")
    print(f"  plain batched loop : {plain:8.0f} images/s   (rounds: {', '.join(f'{count / t:.0f}' for t in plain_times)})")
    print(f"  cnntool predict    : {tool:8.0f} images/s   (rounds: {', '.join(f'{count / t:.0f}' for t in tool_times)})")
    print(f"  ratio cnntool/plain: {ratio:.2f}x  (target >= 1.0x)")
    sub_tool, sub_plain = subprocess_times(folder, checkpoint)
    print(f"  as fresh processes (start-up included): cnntool {sub_tool:.2f} s, plain {sub_plain:.2f} s")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of samples/digits")
    parser.add_argument("--photos", type=int, default=400, help="256x256 JPEGs")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (ROOT / "samples" / "digits").is_dir():
        sys.exit("no samples/digits: run `make samples` first")
    print(f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        checkpoint = make_checkpoint(tmp / "lenet5.pt")
        digits = make_digits(tmp / "digits", args.copies)
        compare("digits (8x8 PNG)", tmp / "digits", digits, checkpoint, args.rounds)
        photos = make_photos(tmp / "photos", args.photos)
        compare("photos (256x256 JPEG)", tmp / "photos", photos, checkpoint, args.rounds)


if __name__ == "__main__":
    main()
