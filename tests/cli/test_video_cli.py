"""``cnntool video`` through the CLI: per-frame records, annotated videos, clips, flow, errors, the skip rule.

Needs ``video`` registered in :mod:`cnntool.cli.main`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.data.synthetic import moving_square_clip
from cnntool.data.video import VideoReader, probe_video, write_video
from cnntool.data.writers import is_recorded_output
from cnntool.filters.ops import ConvDefaults, parse_ops, run_ops
from cnntool.filters.scale import to_uint8
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
from cnntool.models.registry import get_entry

CLASSES = ["cat", "dog", "bird"]
DIRECTIONS = ["down", "left", "right", "up"]


def run(*args):
    result = CliRunner().invoke(app, ["video", *map(str, args), "-f", "jsonl", "-q", "--device", "cpu"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, records


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random simple_cnn classifier and a random c3d_small clip model (32 x 32, 8 frames, stride 2)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    entry = get_entry("simple_cnn")
    save_checkpoint(root / "classifier.pt", make_checkpoint(entry.build(num_classes=3), arch="simple_cnn",
                                                            task="classification", classes=CLASSES,
                                                            preprocessing=entry.preprocessing))
    clip = Preprocessing((3, 8, 32, 32), (0.5,) * 3, (0.25,) * 3, frame_stride=2)
    save_checkpoint(root / "clips.pt", make_checkpoint(get_entry("c3d_small").build(num_classes=4), arch="c3d_small",
                                                       task="video", classes=DIRECTIONS, preprocessing=clip))
    return {"classifier": str(root / "classifier.pt"), "clip": str(root / "clips.pt")}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """left.mp4: 24 frames of a moving square, 64 x 64 at 10 fps; pan.mp4: a texture panning 2 px a
    frame to the right; junk.mp4: not a video; half.mp4: a noisy video cut in half."""
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "left.mp4", moving_square_clip(np.random.default_rng(0), direction="left", frames=24).frames,
                fps=10)
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (72, 96, 3)).astype(np.float32), (0, 0), 2.5).astype(np.uint8)
    write_video(root / "pan.mp4", [np.roll(texture, 2 * i, axis=1) for i in range(6)], fps=10, crf=12)
    (root / "junk.mp4").write_bytes(b"this is not a video at all" * 40)
    noisy = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(40)]
    write_video(root / "full.mp4", noisy, fps=25, crf=10)
    data = (root / "full.mp4").read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "half.mp4").write_bytes(data[: len(data) // 2])
    os.replace(root / "junk.mp4", root / "bad" / "junk.mp4")
    return root


def frame_records(records):
    return [r for r in records if r.get("frame") is not None]


def test_classify_records_every_frame_and_writes_the_annotated_video_at_the_output_fps(models, videos, tmp_path):
    out = tmp_path / "out"
    result, records = run(videos / "left.mp4", "-m", models["classifier"], "-o", out, "--stride", "2")
    assert result.exit_code == 0, result.output
    frames, last = records[:-1], records[-1]
    assert [r["frame"] for r in frames] == list(range(0, 24, 2))
    assert [r["time"] for r in frames] == pytest.approx([i / 10 for i in range(0, 24, 2)])
    assert all(r["label"] in CLASSES and len(r["topk"]) == 3 and r["error"] is None for r in frames)
    assert last == {"path": str(videos / "left.mp4"), "task": "classify", "frames": 12, "fps": "5",
                    "output": str(out / "left_classify.mp4"), "skipped": False, "error": None}
    info = probe_video(out / "left_classify.mp4")
    assert (info.frames, info.fps, info.codec, info.width) == (12, Fraction(5), "h264", 64)
    assert is_recorded_output(out / "left_classify.mp4")
    source = [f.image for f in VideoReader(videos / "left.mp4", stride=2)]
    drawn = [f.image for f in VideoReader(out / "left_classify.mp4")]
    text_band = np.abs(drawn[3][:8].astype(int) - source[3][:8]).mean()
    below = np.abs(drawn[3][40:].astype(int) - source[3][40:]).mean()
    assert text_band > 20 and below < 6   # the label is drawn over the frame, the rest is the frame


def test_explain_draws_each_frames_heatmap_into_the_video(models, videos, tmp_path):
    result, records = run(videos / "left.mp4", "-m", models["classifier"], "--task", "explain", "-o", tmp_path,
                          "--max-frames", "5", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    frames = records[:-1]
    assert [r["frame"] for r in frames] == [0, 1, 2, 3, 4]
    assert all(r["method"] == "gradcam" and r["class"] in CLASSES and len(r["box"]) == 4 for r in frames)
    info = probe_video(tmp_path / "left_explain.mp4")
    assert info.frames == 5 and info.width > 2 * 64   # a small frame is shown beside its overlay, enlarged


def test_detect_records_each_frames_boxes_and_draws_them(videos, tmp_path):
    result, records = run(videos / "left.mp4", "-m", "tiny_fcos", "--conf", "0", "--max-det", "3", "--max-frames",
                          "4", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    boxes, last = records[:-1], records[-1]
    assert sorted({r["frame"] for r in boxes}) == [0, 1, 2, 3]
    assert all(len([r for r in boxes if r["frame"] == f]) <= 3 for f in range(4))
    assert all(len(r["box"]) == 4 and r["time"] == pytest.approx(r["frame"] / 10) for r in boxes)
    assert last["task"] == "detect" and probe_video(last["output"]).frames == 4


def test_segment_records_each_frames_classes_and_paints_them(videos, tmp_path):
    result, records = run(videos / "left.mp4", "-m", "lraspp_mobilenet_v3_large", "--imgsz", "96", "--max-frames",
                          "3", "-o", tmp_path)   # a segmentation model: --task segment by default
    assert result.exit_code == 0, result.output
    frames, last = records[:-1], records[-1]
    assert [r["frame"] for r in frames] == [0, 1, 2]
    assert all(r["error"] is None and abs(sum(r["fractions"].values()) - 1) < 1e-3 for r in frames)
    assert last["task"] == "segment" and probe_video(last["output"]).frames == 3


def test_filter_writes_the_filtered_frames(videos, tmp_path):
    result, records = run(videos / "left.mp4", "--task", "filter", "-k", "mean:size=5", "--border", "reflect",
                          "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert all(r["ops"] == "mean:size=5" and r["output_shape"] == [64, 64, 3] for r in frame_records(records))
    source = next(iter(VideoReader(videos / "left.mp4", start=1.0))).image
    reflect, zero = (to_uint8(run_ops(source, parse_ops(["mean:size=5"], ConvDefaults(border=border))), "clip")
                     for border in ("reflect", "zero"))
    written = next(iter(VideoReader(tmp_path / "left_filter.mp4", start=1.0))).image.astype(int)
    assert probe_video(tmp_path / "left_filter.mp4").frames == 24
    assert np.abs(written - reflect).mean() < 6                  # the frame, filtered as asked (after H.264 twice)
    assert np.abs(written[:, :2] - reflect[:, :2]).mean() < 8 and np.abs(written[:, :2] - zero[:, :2]).mean() > 20


def test_flow_writes_an_array_per_frame_pair_and_a_colour_wheel_video(videos, tmp_path):
    result, records = run(videos / "pan.mp4", "-o", tmp_path)   # no model: optical flow (DIS)
    assert result.exit_code == 0, result.output
    pairs, last = records[:-1], records[-1]
    assert [(r["frame"], r["next_frame"]) for r in pairs] == [(i, i + 1) for i in range(5)]
    for r in pairs:
        flow = np.load(r["flow"])
        assert flow.shape == (72, 96, 2) and flow.dtype == np.float32
        assert r["mean_motion"] == pytest.approx(float(np.hypot(flow[..., 0], flow[..., 1]).mean()), rel=1e-5)
        assert r["mean_dx"] == pytest.approx(2, abs=0.3) and abs(r["mean_dy"]) < 0.3
    assert last["output"] == str(tmp_path / "pan_flow.mp4") and last["flows"] == str(tmp_path / "pan_flow")
    assert sorted(p.name for p in (tmp_path / "pan_flow").glob("*.npy")) == [f"{i:06d}.npy" for i in range(5)]
    info = probe_video(tmp_path / "pan_flow.mp4")
    assert (info.frames, info.fps) == (5, Fraction(10))
    colour = next(iter(VideoReader(tmp_path / "pan_flow.mp4"))).image[10:-10, 10:-10].reshape(-1, 3).mean(0)
    assert colour[0] > 200 and colour[1] < 170 and colour[2] < 170   # moving right is red on the wheel


def test_raft_flow_comes_from_the_registry_model(videos):
    result, records = run(videos / "pan.mp4", "-m", "raft_small", "--max-frames", "2")   # -m: --method raft
    assert result.exit_code == 0, result.output
    assert [(r["frame"], r["next_frame"]) for r in records[:-1]] == [(0, 1)]
    assert records[0]["mean_motion"] >= 0 and records[0]["flow"] is None and records[-1]["frames"] == 2


def test_a_clip_model_classifies_windows_and_gives_a_verdict(models, videos):
    result, records = run(videos / "left.mp4", "-m", models["clip"])   # no --task: the model's
    assert result.exit_code == 0, result.output
    assert [(r["start_frame"], r["end_frame"]) for r in records[:-1]] == [(0, 15), (8, 23)]   # the last ends the video
    assert records[-1]["verdict"] is True and records[-1]["windows"] == 2 and records[-1]["label"] in DIRECTIONS
    result, records = run(videos / "left.mp4", "-m", models["clip"], "--window", "8", "--window-stride", "4",
                          "--topk", "2")
    assert [r["start_frame"] for r in records[:-1]] == [0, 4, 8, 12, 16]
    assert all(len(r["topk"]) == 2 for r in records)


def test_a_clip_model_that_fails_on_one_video_gives_its_error_record_and_the_run_goes_on(models, videos,
                                                                                      monkeypatch):
    from cnntool.models import loading

    real_load = loading.load

    class FailsOnce(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.inner, self.calls = model, 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("the model broke\non this clip")
            return self.inner(x)

    def load(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        loaded.model = FailsOnce(loaded.model)
        return loaded

    monkeypatch.setattr(loading, "load", load)
    result, records = run(videos / "left.mp4", videos / "pan.mp4", "-m", models["clip"])
    assert result.exit_code == 1, result.output
    left = [r for r in records if r["path"].endswith("left.mp4")]
    pan = [r for r in records if r["path"].endswith("pan.mp4")]
    assert len(left) == 1 and left[0]["verdict"] is False
    assert left[0]["error"] == "RuntimeError: the model broke on this clip"
    assert pan[-1]["verdict"] is True and pan[-1]["error"] is None and pan[-1]["label"] in DIRECTIONS


def test_unreadable_and_broken_videos_are_error_records_and_the_run_goes_on(models, videos, tmp_path):
    result, records = run(videos / "bad", videos / "left.mp4", "-m", models["classifier"], "-o", tmp_path)
    assert result.exit_code == 1
    half = [r for r in records if r["path"].endswith("half.mp4")]
    junk = [r for r in records if r["path"].endswith("junk.mp4")]
    left = [r for r in records if r["path"].endswith("left.mp4")]
    assert len(junk) == 1 and junk[0]["error"] and "\n" not in junk[0]["error"]
    assert len(half) > 2 and all(r["error"] is None for r in half[:-1]) and "broken after frame" in half[-1]["error"]
    assert [r["frame"] for r in half[:-1]] == list(range(len(half) - 1)) and half[-1]["frames"] == len(half) - 1
    assert not (tmp_path / "bad").exists() or not os.listdir(tmp_path / "bad")   # no video, no temporary file
    assert left[-1]["error"] is None and probe_video(tmp_path / "left_classify.mp4").frames == 24


def test_reruns_skip_what_the_same_options_made_and_refuse_other_options(models, videos, tmp_path):
    args = (videos / "left.mp4", "-m", models["classifier"], "-o", tmp_path)
    assert run(*args)[0].exit_code == 0
    made = (tmp_path / "left_classify.mp4").stat().st_mtime_ns
    result, records = run(*args)
    assert result.exit_code == 0 and records == [
        {"path": str(videos / "left.mp4"), "task": "classify", "frames": None, "fps": None,
         "output": str(tmp_path / "left_classify.mp4"), "skipped": True, "error": None}]
    result, records = run(*args, "--threshold", "0.5")
    assert result.exit_code == 1 and "made with other options" in records[0]["error"]
    assert (tmp_path / "left_classify.mp4").stat().st_mtime_ns == made
    result, records = run(*args, "--threshold", "0.5", "--overwrite")
    assert result.exit_code == 0 and len(records) == 25
    assert (tmp_path / "left_classify.mp4").stat().st_mtime_ns != made


def test_a_folder_of_numbered_images_is_a_video(models, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(frames / f"img{i}.png"), np.full((40, 40, 3), 20 * i, np.uint8))
    result, records = run(frames, "-m", models["classifier"], "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [(r["frame"], r["time"]) for r in records[:-1]] == [(0, 0.0), (1, 0.04), (2, 0.08)]   # 25 fps
    assert records[-1]["output"] == str(tmp_path / "out" / "frames_classify.mp4") and records[-1]["fps"] == "25"


@pytest.mark.parametrize("args, message", [
    (["--task", "filter"], "needs ops"),
    (["--task", "flow", "--topk", "3"], "--topk does nothing for --task flow"),
    (["-m", "{clip}", "-o", "{tmp}"], "--out does nothing for --task clip"),
    (["--start", "2", "--end", "1"], "is not after --start"),
    (["--task", "classify", "-m", "{clip}"], "is a video model"),
    (["--task", "classify"], "needs a model"),
    (["--task", "explain", "-m", "{classifier}", "--method", "kernels"], "does not explain frames"),
    (["--task", "flow", "--method", "dis", "-m", "{classifier}"], "takes no model"),
    (["--task", "detect-all"], "unknown --task"),
])
def test_options_that_cannot_work_are_usage_errors(models, videos, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, **models) for a in args]
    result, records = run(videos / "left.mp4", *args)
    assert result.exit_code == 2 and records == []
    assert message in result.output


@pytest.mark.slow
def test_a_long_video_streams_in_bounded_memory_and_keeps_every_frame(models, tmp_path):
    """600 frames of 320 x 240 (138 MB decoded) peak no higher than 60 frames through classify -o."""
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), (640, 480))
    peaks = {}
    for name, n in (("short", 60), ("long", 600)):
        path = tmp_path / f"{name}.mp4"
        write_video(path, (np.roll(texture, 3 * i, axis=1)[:240, :320] for i in range(n)), fps=Fraction(30000, 1001),
                    preset="ultrafast")
        code = ("import resource, sys\nfrom cnntool.cli.main import app\n"
                f"try:\n    app(['video', {str(path)!r}, '-m', {models['classifier']!r}, '-o', {str(tmp_path)!r},"
                " '-q', '-f', 'jsonl', '--device', 'cpu'])\nexcept SystemExit as exc:\n    code = exc.code\n"
                "sys.stderr.write(f'PEAK {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {code}\\n')\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                              cwd=os.getcwd())
        peak, code = done.stderr.strip().splitlines()[-1].split()[1:]
        assert code == "0", done.stderr
        peaks[name] = int(peak) / 1024   # MiB
        assert len(done.stdout.splitlines()) == n + 1
        info = probe_video(tmp_path / f"{name}_classify.mp4")
        assert (info.frames, info.fps) == (n, Fraction(30000, 1001))
    assert peaks["long"] < peaks["short"] + 40, peaks
