"""The two-stream model with real optical flow: trained on flow, recorded, and given flow again by ``cnntool video``."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.clips import OpenCVFlow, append_flow, write_moving_squares
from cnntool.data.preprocessing import FLOW_OFFSET, FLOW_SCALE
from cnntool.errors import UsageError
from cnntool.models.checkpoint import load_checkpoint, save_checkpoint
from cnntool.models.loading import load
from cnntool.models.registry import get_entry
from cnntool.train.config import TrainConfig
from cnntool.train.runner import train
from cnntool.train.setup import source_preprocessing
from cnntool.train.tasks import get_task


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """Moving squares, 32 x 32, 12 frames: 3 training and 1 validation clip per direction."""
    return write_moving_squares(tmp_path_factory.mktemp("squares"), per_class=3, val_per_class=1, frames=12,
                                size=32, seed=5)


def config(data, out, **changes) -> TrainConfig:
    cfg = TrainConfig(data=str(data), task="video", out=str(out), arch="two_stream", arch_kwargs={"motion": "flow"},
                      imgsz=(32, 32), device="cpu", threads=1, workers=0, epochs=1, batch_size=4, seed=0,
                      augment=False)
    return dataclasses.replace(cfg, **changes)


def test_a_flow_model_gets_flow_in_its_preprocessing_and_data(squares):
    task = get_task("video")
    pre, arch, _ = source_preprocessing(config(squares, "unused"), task)
    assert arch == "two_stream" and pre.flow == "dis" and pre.model_input_size == (5, 8, 32, 32)
    data = task.load_data(config(squares, "unused"), pre, SimpleNamespace(rank=0, world_size=1))
    clips, _ = data.val.__getitems__([0])
    assert tuple(clips.shape) == (1, 5, 8, 32, 32) and "with dis optical flow" in data.describe
    # the flow channels are the DIS flow of the clip's own frames, from each frame to the next
    frames = clips[0, :3].permute(1, 2, 3, 0).numpy()
    expected = append_flow(frames, OpenCVFlow("dis"))[..., 3:]
    assert np.array_equal(clips[0, 3:].permute(1, 2, 3, 0).numpy(), expected)
    assert np.abs(expected[:-1].astype(int) - FLOW_OFFSET).max() >= 2 * FLOW_SCALE   # the square moves >= 2 px
    plain, _, _ = source_preprocessing(config(squares, "unused", arch_kwargs={}), task)
    assert plain.flow is None and plain.model_input_size == (3, 8, 32, 32)


@pytest.mark.slow
def test_a_two_stream_flow_model_trains_and_classifies_clips_with_the_same_flow(squares, tmp_path):
    """About 10 s here: one epoch on 12 clips, then clip classification from the checkpoint."""
    summary = train(config(squares, tmp_path / "run"))
    assert summary["arch"] == "two_stream" and 0.0 <= summary["best_val_accuracy"] <= 1.0, summary
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["preprocessing"]["flow"] == "dis" and best["preprocessing"]["input_size"] == [3, 8, 32, 32]
    assert best["arch_kwargs"]["motion"] == "flow"
    assert best["state_dict"]["temporal.features.0.0.weight"].shape[1] == 2 * 7   # 7 stacked flow maps
    loaded = load(str(tmp_path / "run"), task="video")
    assert loaded.preprocessing.flow == "dis"

    seen = []
    handle = loaded.model.temporal.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    from cnntool.infer.video import classify_clips, frame_preprocessing, frame_samples
    from cnntool.data.sources import InputItem
    from cnntool.data.video import VideoReader
    from pathlib import PurePath

    video = sorted((squares / "val" / "left").glob("*.mp4"))[0]
    prepare = frame_preprocessing(loaded.preprocessing).resize
    records = list(classify_clips(loaded, frame_samples(VideoReader(video), InputItem(str(video), PurePath("v.mp4")),
                                                        prepare=prepare), device=torch.device("cpu")))
    handle.remove()
    assert records[-1]["verdict"] is True and records[-1]["error"] is None
    assert seen and seen[0].abs().amax() > 1.0           # the motion stream saw flow in pixels, not zeros

    result = CliRunner().invoke(app, ["video", str(squares / "val"), "-m", str(tmp_path / "run"), "-f", "jsonl",
                                      "-q", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    verdicts = [r for r in records if r["verdict"]]
    assert len(verdicts) == 4 and all(r["label"] in ("down", "left", "right", "up") for r in verdicts)
    assert all(r["error"] is None for r in records)


def test_a_flow_checkpoint_without_its_flow_method_is_refused(squares, tmp_path):
    """A checkpoint whose model takes flow but whose preprocessing names none (what the old
    ``--arch-arg motion=flow`` wrote: it trained on garbage) is a usage error, not a silent run."""
    entry = get_entry("two_stream")
    pre = entry.clip_preprocessing(entry.preprocessing.with_size((32, 32)), {"motion": "flow"})
    stripped = dataclasses.replace(pre, flow=None)
    from cnntool.models.checkpoint import make_checkpoint

    model = entry.build(num_classes=4, motion="flow")
    save_checkpoint(tmp_path / "old.pt", make_checkpoint(model, arch="two_stream", task="video",
                                                         classes=["down", "left", "right", "up"],
                                                         preprocessing=stripped, arch_kwargs={"motion": "flow"}))
    with pytest.raises(UsageError, match="takes optical flow channels, but its preprocessing names no flow method"):
        entry.check_clip_input(stripped, {"motion": "flow"})
    video = sorted((squares / "val" / "left").glob("*.mp4"))[0]
    result = CliRunner().invoke(app, ["video", str(video), "-m", str(tmp_path / "old.pt"), "-f", "jsonl", "-q",
                                      "--device", "cpu"])
    assert result.exit_code == 2 and "names no flow method" in result.output
    assert result.stdout.strip() == ""
