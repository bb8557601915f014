"""Two processes under torchrun with the gloo backend on the CPU: one run, written by rank 0 only;
for images and for video clips (where each process decodes only its own shard of the videos)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnntool.models.checkpoint import load_checkpoint

RUN_FILES = {"best.pt", "last.pt", "config.json", "metrics.csv", "metrics.jsonl", "curves.png", "confusion.png",
             "summary.json"}

#: Run by torchrun in place of ``-m cnntool``: the CLI, with every video each process opens
#: appended to ``$DECODE_LOG.<rank>``.
LOGGING_CLI = """\
import os

import cnntool.data.video as video

opened = video.VideoReader.__init__


def logged(self, path, *args, **kwargs):
    with open(os.environ["DECODE_LOG"] + "." + os.environ["RANK"], "a") as log:
        log.write(os.fspath(path) + "\\n")
    opened(self, path, *args, **kwargs)


video.VideoReader.__init__ = logged

from cnntool.cli.main import main

main()
"""


def torchrun(work: Path, *args: str, script: Path | None = None, env: dict | None = None):
    """``cnntool ARGS`` (or ``script ARGS``) in two gloo processes under torchrun in ``work``:
    the finished process and the JSON records it printed."""
    work.mkdir(exist_ok=True)
    program = [str(script)] if script is not None else ["-m", "cnntool"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *program, *args,
           "--device", "cpu", "--format", "jsonl"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def check_one_run_folder(work: Path, name: str, epochs: int) -> Path:
    """Rank 1 chose no run folder of its own: the only one is ``runs/NAME``, complete."""
    assert sorted(p.name for p in (work / "runs").iterdir()) == [name]
    run = work / "runs" / name
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert len((run / "metrics.jsonl").read_text().splitlines()) == epochs
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == epochs and not any(k.startswith("module.") for k in ckpt["state_dict"])
    return run


@pytest.mark.slow
def test_two_process_gloo_run_writes_once(shapes, tmp_path):
    work = tmp_path / "work"
    proc, summaries = torchrun(work, "train", str(shapes), "--arch", "lenet5", "--epochs", "2", "--batch-size", "8")
    assert len(summaries) == 1                       # one record: rank 0's
    summary = summaries[0]
    assert summary["processes"] == 2 and summary["epochs"] == 2
    assert summary["val_images"] == 18              # both shards counted, each sample once
    check_one_run_folder(work, "lenet5-1", 2)
    assert proc.stderr.count("epoch 2/2") == 1       # only rank 0 logs


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """Moving squares, 32 x 32, 16 frames: 3 training and 2 validation clips per direction."""
    from cnntool.data.clips import write_moving_squares

    return write_moving_squares(tmp_path_factory.mktemp("squares"), per_class=3, val_per_class=2, frames=16, size=32,
                                seed=1)


@pytest.mark.slow
def test_two_process_gloo_video_run_shards_the_videos_and_writes_once(squares, tmp_path):
    """``train --task video`` with the default 3D CNN: about 6 s here."""
    work = tmp_path / "work"
    script = tmp_path / "logging_cli.py"
    script.write_text(LOGGING_CLI)
    log = tmp_path / "opened"
    proc, summaries = torchrun(work, "train", str(squares), "--task", "video", "--imgsz", "32", "--epochs", "1",
                               "--batch-size", "4", script=script, env={"DECODE_LOG": str(log)})
    assert len(summaries) == 1                       # one record: rank 0's
    summary = summaries[0]
    assert summary["task"] == "video" and summary["arch"] == "c3d_small"
    assert summary["processes"] == 2 and summary["epochs"] == 1 and summary["skipped"] == 0
    assert (summary["train_images"], summary["val_images"]) == (12, 8)  # videos of both shards, each once
    run = check_one_run_folder(work, "c3d_small-1", 1)
    assert load_checkpoint(run / "best.pt")["classes"] == ["down", "left", "right", "up"]
    assert summary["checkpoint"] == os.path.join("runs", "c3d_small-1", "best.pt")
    assert proc.stderr.count("epoch 1/1") == 1       # only rank 0 logs
    # each process decoded its own half of the videos, once each (the clips stay cached)
    opened = [Path(f"{log}.{rank}").read_text().splitlines() for rank in (0, 1)]
    every = sorted(str(p) for p in squares.rglob("*.mp4"))
    assert len(every) == 20 and sorted(opened[0] + opened[1]) == every
    assert len(opened[0]) == len(opened[1]) == 10
