"""Benchmark: `cnntool video --task detect` against a plain per-frame loop, same model and video.

The video: ``--frames`` frames of 640x360 at 30 fps, a pan over scikit-image photos, written as
H.264. The model: ``fasterrcnn_mobilenet_v3_large_320_fpn`` with COCO weights when they are in
torch's cache, else random weights drawn from seed 0 through the registry; the plain side loads
the very same state dict into torchvision's own builder. Both sides keep detections scoring at
least 0.25 and write an annotated video with one frame per source frame:

- plain: ``cv2.VideoCapture`` -> per frame: BGR->RGB, a float tensor, one forward pass,
  ``cv2.rectangle``/``cv2.putText`` per detection -> ``cv2.VideoWriter`` (``mp4v``: this OpenCV
  cannot encode H.264), one Python loop;
- cnntool: ``cnntool video clip.mp4 -m MODEL --task detect -o DIR --format jsonl``, run in this
  process through Typer's CliRunner (the whole command: decoding ahead on a thread, batched
  forward passes, records as JSON, drawing on worker threads, H.264 yuv420p output with its
  frame count checked), so neither side pays Python's and PyTorch's start-up.

Rounds alternate the two sides; each side's best round counts. ``--threads`` sets PyTorch's CPU
threads for both (default: PyTorch's own choice); on a machine other jobs keep busy, one thread
can be several times faster than two (their synchronisation waits on preempted threads).

Usage: python bench/bench_video.py [--frames 60] [--rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
CONF = 0.25
WIDTH, HEIGHT, FPS = 640, 360, 30


def make_video(path: Path, frames: int) -> Path:
    """A pan across a strip of photos: every frame differs, as in real footage."""
    import cv2
    import numpy as np
    from skimage import data

    from cnntool.data.video import write_video

    photos = [cv2.resize(p, (HEIGHT * p.shape[1] // p.shape[0], HEIGHT))
              for p in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())]
    strip = np.concatenate(photos * 2, axis=1)
    step = max(1, (strip.shape[1] - WIDTH) // max(1, frames))
    write_video(path, (strip[:, i * step:i * step + WIDTH] for i in range(frames)), fps=FPS)
    return path


def model_spec() -> tuple[str, str]:
    """``(spec, what)``: COCO weights when torch's cache has them, else the registry's random ones."""
    from cnntool.errors import CnnToolError
    from cnntool.models.loading import load

    try:
        load(f"{MODEL}:COCO_V1", task="detection")
        return f"{MODEL}:COCO_V1", "COCO weights"
    except CnnToolError:
        return MODEL, "random weights (seed 0; no COCO weights in the torch cache)"


def plain_model(spec: str):
    """torchvision's own builder with cnntool's weights for ``spec`` (the same numbers)."""
    import torch
    from torchvision.models import detection

    from cnntool.models.loading import load

    torch.manual_seed(0)  # as `cnntool video` does before loading a registry model
    state = load(spec, task="detection").model.state_dict()
    model = getattr(detection, MODEL)(weights=None, weights_backbone=None, num_classes=91)
    model.load_state_dict(state)
    return model.eval()


def plain_detect(video: Path, out: Path, model) -> int:
    """The plain way: read, one forward pass per frame, draw, write; one loop."""
    import cv2
    import torch

    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer = None
    frames = 0
    with torch.inference_mode():
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            x = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
            result = model([x])[0]
            for box, score, label in zip(result["boxes"].tolist(), result["scores"].tolist(),
                                         result["labels"].tolist()):
                if score < CONF:
                    continue
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 200, 255), 2)
                cv2.putText(bgr, f"{label} {score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 200, 255), 1, cv2.LINE_AA)
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (bgr.shape[1], bgr.shape[0]))
            writer.write(bgr)
            frames += 1
    capture.release()
    writer.release()
    return frames


def cnntool_detect(video: Path, out: Path, spec: str) -> int:
    from typer.testing import CliRunner

    from cnntool.cli.main import app

    shutil.rmtree(out, ignore_errors=True)
    result = CliRunner().invoke(app, ["video", str(video), "-m", spec, "--task", "detect", "--conf", str(CONF),
                                      "-o", str(out), "--format", "jsonl", "-q"])
    if result.exit_code != 0:
        raise SystemExit(f"cnntool video failed: {result.output[-500:]}")
    import json

    last = json.loads(result.stdout.splitlines()[-1])
    return int(last["frames"])


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="PyTorch CPU threads, both sides (0: its default)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} PyTorch threads")
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        tmp = Path(tmp)
        video = make_video(tmp / "clip.mp4", args.frames)
        spec, what = model_spec()
        model = plain_model(spec)
        cnntool_detect(video, tmp / "warm", spec)  # warm both paths (imports, page cache, allocator)
        plain_detect(video, tmp / "warm.mp4", model)
        plain_times, tool_times = [], []
        for _ in range(args.rounds):
            t, n = timed(cnntool_detect, video, tmp / "tool", spec)
            assert n == args.frames, (n, args.frames)
            tool_times.append(t)
            t, n = timed(plain_detect, video, tmp / "plain.mp4", model)
            assert n == args.frames, (n, args.frames)
            plain_times.append(t)
        plain, tool = args.frames / min(plain_times), args.frames / min(tool_times)
        print(f"per-frame detection: {args.frames} frames {WIDTH}x{HEIGHT}, {MODEL} ({what}), conf {CONF}")
        print(f"  plain loop (cv2 read, forward, draw, mp4v write): {plain:6.2f} frames/s   "
              f"(rounds: {', '.join(f'{args.frames / t:.2f}' for t in plain_times)})")
        print(f"  cnntool video --task detect (H.264 output)       : {tool:6.2f} frames/s   "
              f"(rounds: {', '.join(f'{args.frames / t:.2f}' for t in tool_times)})")
        print(f"  ratio cnntool/plain: {tool / plain:.2f}x  (target >= 1.0x)")


if __name__ == "__main__":
    main()
