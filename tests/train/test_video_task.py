"""The video plug-in: clips from class folders of videos through the task-agnostic runner.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from cnntool.data.clips import write_moving_squares
from cnntool.data.synthetic import DIRECTIONS, moving_square_clip
from cnntool.data.video import write_video
from cnntool.errors import UsageError
from cnntool.models.checkpoint import load_checkpoint
from cnntool.models.registry import get_entry
from cnntool.train.config import TrainConfig
from cnntool.train.runner import train
from cnntool.train.tasks import get_task


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """Moving squares, 32 x 32, 16 frames: 24 training and 10 validation clips per direction."""
    return write_moving_squares(tmp_path_factory.mktemp("squares"), per_class=24, val_per_class=10, frames=16,
                                size=32, seed=3)


@pytest.fixture(scope="module")
def clear_squares(tmp_path_factory):
    """Moving squares with little pixel noise (the background still drifts: no frame tells the
    direction), 32 x 32: 48 training and 12 validation clips per direction, learnt in seconds."""
    root = tmp_path_factory.mktemp("clear")
    for split_id, (split, count) in enumerate((("train", 48), ("val", 12))):
        for class_id, direction in enumerate(DIRECTIONS):
            for i in range(count):
                clip = moving_square_clip(np.random.default_rng([3, split_id, class_id, i]), direction=direction,
                                          frames=16, size=32, noise=8.0)
                write_video(root / split / direction / f"{i:03d}.mp4", clip.frames, fps=10)
    return root


def config(data, out, **changes) -> TrainConfig:
    cfg = TrainConfig(data=str(data), task="video", out=str(out), imgsz=(32, 32), device="cpu", threads=1,
                      workers=0, epochs=12, batch_size=16, seed=0)
    return dataclasses.replace(cfg, **changes)


def test_the_video_task_brings_its_default_model_recipe_and_refusals():
    task = get_task("video")
    assert (task.name, task.default_arch, task.best) == ("video", "c3d_small", ("val_accuracy", "max"))
    assert get_entry(task.default_arch).task == "video"
    resolved = TrainConfig(data="d", task="video").resolve(train_size=600, defaults=task.recipe)
    assert (resolved.optimizer, resolved.lr, resolved.weight_decay, resolved.epochs, resolved.batch_size) == (
        "adamw", 3e-3, 1e-4, 8, 16)
    with pytest.raises(UsageError, match="--cutmix does nothing when training video"):
        TrainConfig(data="d", task="video", cutmix=1.0).check_task(task)


def test_each_process_decodes_only_its_shard_of_the_videos(squares):
    task = get_task("video")
    pre = get_entry("c3d_small").preprocessing.with_size((32, 32))
    cfg = TrainConfig(data=str(squares), task="video", seed=0)
    shards = [task.load_data(cfg, pre, SimpleNamespace(rank=r, world_size=2)) for r in (0, 1)]
    assert all(d.sizes == {"train": 96, "val": 40} for d in shards)
    assert [len(d.train) for d in shards] == [48, 48] and [len(d.val) for d in shards] == [20, 20]
    assert not set(shards[0].train.paths) & set(shards[1].train.paths)
    assert not set(shards[0].val.paths) & set(shards[1].val.paths)
    assert len(set(shards[0].val.paths) | set(shards[1].val.paths)) == 40
    clips, labels = shards[0].train.__getitems__([0, 1])
    assert tuple(clips.shape) == (2, 3, 8, 32, 32) and shards[0].describe.endswith("clips of 8 frames every 2")


@pytest.mark.slow
def test_a_3d_cnn_sees_the_motion_a_single_frame_model_cannot(clear_squares, tmp_path):
    """About 30 s here (measured: c3d_small 94 %, single_frame 38 %; chance is 25 %)."""
    quick = dict(epochs=14, batch_size=8, augment=False)
    c3d = train(config(clear_squares, tmp_path / "c3d", **quick))
    single = train(config(clear_squares, tmp_path / "single", arch="single_frame", **quick))
    assert c3d["task"] == "video" and c3d["arch"] == "c3d_small"   # the task's default model
    assert c3d["best_val_accuracy"] >= 0.75, c3d
    assert single["best_val_accuracy"] <= 0.5, single
    assert c3d["best_val_accuracy"] >= single["best_val_accuracy"] + 0.3
    best = load_checkpoint(tmp_path / "c3d" / "best.pt")
    assert best["task"] == "video" and best["classes"] == ["down", "left", "right", "up"]
    assert best["preprocessing"]["input_size"] == [3, 8, 32, 32] and best["preprocessing"]["frame_stride"] == 2


def test_training_runs_end_to_end_and_resumes_to_the_same_weights(squares, tmp_path):
    import torch

    straight = config(squares, tmp_path / "a", epochs=2, augment=False)
    train(straight)

    def stop_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(squares, tmp_path / "b", epochs=2, augment=False), on_epoch=stop_after_one)
    train(TrainConfig(), resume=str(tmp_path / "b"))
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.isfinite(load_checkpoint(tmp_path / "a" / "last.pt")["metrics"]["val_loss"])
