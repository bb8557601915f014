"""``cnntool video --task segment`` reaches every way ``cnntool segment`` has: semantic models,
Mask R-CNN instances and the classical methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.video import probe_video, write_video


def run(*args):
    result = CliRunner().invoke(app, ["video", *map(str, args), "-f", "jsonl", "-q", "--device", "cpu"])
    return result, [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    """6 frames, 128 x 128: a bright disc of radius 10 moving right 3 px a frame on a dark background."""
    path = tmp_path_factory.mktemp("blob") / "blob.mp4"
    yy, xx = np.mgrid[:128, :128]
    frames = []
    for i in range(6):
        disc = (yy - 64) ** 2 + (xx - 32 - 3 * i) ** 2 <= 10 ** 2
        frame = np.full((128, 128, 3), 30, np.uint8)
        frame[disc] = 220
        frames.append(frame)
    write_video(path, frames, fps=10, crf=12)
    return path


def test_a_classical_method_segments_every_frame_without_a_model(blob, tmp_path):
    result, records = run(blob, "--task", "segment", "--method", "kmeans", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    frames = [r for r in records if "fractions" in r]
    objects = sorted((r for r in records if "object" in r), key=lambda r: r["frame"])
    assert [r["frame"] for r in frames] == list(range(6))
    assert all(r["error"] is None and r["instances"] == 1 for r in frames)
    disc = np.pi * 10 ** 2
    assert all(abs(o["area"] - disc) < 0.15 * disc for o in objects), objects
    lefts = [o["box"][0] for o in objects]                # the disc moves right 3 px a frame
    assert len(lefts) == 6 and np.allclose(np.diff(lefts), 3, atol=1), lefts
    last = records[-1]
    assert last["task"] == "segment" and probe_video(last["output"]).frames == 6


def test_a_mask_rcnn_gives_each_frames_class_mask_and_objects(blob, tmp_path):
    result, records = run(blob, "--task", "segment", "-m", "maskrcnn_resnet50_fpn", "--imgsz", "128", "--conf", "0",
                          "--max-det", "2", "--max-frames", "2", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    frames = [r for r in records if "fractions" in r]
    objects = [r for r in records if "object" in r]
    assert [r["frame"] for r in frames] == [0, 1] and all(r["error"] is None for r in frames)
    assert all(r["instances"] == len([o for o in objects if o["frame"] == r["frame"]]) <= 2 for r in frames)
    assert all(o["label"] and len(o["box"]) == 4 for o in objects)
    assert records[-1]["task"] == "segment" and probe_video(records[-1]["output"]).frames == 2


@pytest.mark.parametrize("args, message", [
    (["--task", "segment"], "needs a model or a classical method"),
    (["--task", "segment", "--method", "otsu", "-m", "lraspp_mobilenet_v3_large"], "not both"),
    (["--task", "segment", "--method", "snakes"], "unknown --method"),
    (["--task", "segment", "--method", "otsu", "--conf", "0.3"], "--conf does nothing for --task segment with "
                                                                 "classical methods"),
    (["--task", "segment", "-m", "lraspp_mobilenet_v3_large", "--max-det", "5"],
     "--max-det does nothing for --task segment with semantic models"),
])
def test_options_a_way_of_segmenting_does_not_use_are_refused(blob, args, message):
    result, records = run(blob, *args)
    assert result.exit_code == 2 and records == []
    assert message in result.output
