"""Video models' input contracts are data on their entries, enforced where a clip model is trained or loaded.

No forward pass of a big model: the contract is checked from the entry and the preprocessing;
the CLI test builds MViT on the meta device.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import UsageError
from cnntool.models.registry import get_entry, list_models
from cnntool.train.config import TrainConfig
from cnntool.train.setup import source_preprocessing
from cnntool.train.tasks import get_task


def with_frames(preprocessing: Preprocessing, frames: int) -> Preprocessing:
    c, _, h, w = preprocessing.input_size
    return dataclasses.replace(preprocessing, input_size=(c, frames, h, w))


def test_the_contracts_are_data_on_the_entries():
    assert get_entry("s3d").min_frames == 14 and get_entry("s3d").exact_frames is None
    assert get_entry("mvit_v1_b").exact_frames == get_entry("mvit_v2_s").exact_frames == 16
    assert get_entry("two_stream").frames_kwarg == "frames" and get_entry("two_stream").min_frames == 2
    for entry in list_models("video"):   # every entry's own preprocessing keeps its contract
        entry.check_clip_input(entry.preprocessing)


@pytest.mark.parametrize("name, frames, message", [
    ("mvit_v1_b", 8, "mvit_v1_b takes clips of exactly 16 frames, not 8"),
    ("mvit_v2_s", 32, "mvit_v2_s takes clips of exactly 16 frames, not 32"),
    ("s3d", 12, "s3d takes clips of at least 14 frames, not 12"),
])
def test_clips_a_model_cannot_take_are_refused_and_16_frames_pass(name, frames, message):
    entry = get_entry(name)
    with pytest.raises(UsageError, match=message) as caught:
        entry.check_clip_input(with_frames(entry.preprocessing, frames), source="runs/x/best.pt")
    assert str(caught.value).startswith("runs/x/best.pt: ") and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2
    entry.check_clip_input(with_frames(entry.preprocessing, 16))


def test_16_frames_really_fit_mvit_and_s3d_on_the_meta_device():
    """The contract says what the networks take: 16 frames go through (shapes only, no compute)."""
    for name in ("mvit_v1_b", "s3d"):
        entry = get_entry(name)
        with torch.device("meta"):
            model = entry.build().eval()
            out = model(torch.zeros(1, *with_frames(entry.preprocessing, 16).input_size))
        assert tuple(out.shape) == (1, 400)


def test_the_two_stream_clip_length_follows_its_frames_option():
    entry = get_entry("two_stream")
    assert entry.clip_preprocessing(entry.preprocessing, {"frames": 6}).frames == 6
    with pytest.raises(UsageError, match="two_stream takes clips of exactly 8 frames, not 6"):
        entry.check_clip_input(with_frames(entry.preprocessing, 6))   # built for 8 (its builder_kwargs)
    with pytest.raises(UsageError, match="at least 2 frames, not 1"):
        entry.clip_preprocessing(entry.preprocessing, {"frames": 1})
    with pytest.raises(UsageError, match="frames must be a whole number"):
        entry.clip_preprocessing(entry.preprocessing, {"frames": "many"})


def test_training_refuses_a_checkpoint_with_the_wrong_clip_length(tmp_path):
    """Fine-tuning starts from the checkpoint's preprocessing: its T is checked against the entry."""
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint

    entry = get_entry("two_stream")
    model = entry.build(num_classes=4, frames=4)
    save_checkpoint(tmp_path / "short.pt", make_checkpoint(
        model, arch="two_stream", task="video", classes=list("abcd"),
        preprocessing=with_frames(entry.preprocessing, 6), arch_kwargs={"frames": 4}))
    cfg = TrainConfig(data="d", task="video", init_from=str(tmp_path / "short.pt"))
    with pytest.raises(UsageError, match="two_stream takes clips of exactly 4 frames, not 6"):
        source_preprocessing(cfg, get_task("video"))


@pytest.mark.parametrize("frames, exit_code", [(8, 2), (16, 0)])
def test_cnntool_video_refuses_an_mvit_checkpoint_of_8_frames_before_reading_any_video(tmp_path, monkeypatch,
                                                                                      frames, exit_code):
    from cnntool.data.video import write_video
    from cnntool.models import loading
    from cnntool.models.loading import LoadedModel

    entry = get_entry("mvit_v1_b")
    with torch.device("meta"):
        model = entry.build().eval()
    loaded = LoadedModel(model=model, entry=entry, task="video", classes=[f"c{i}" for i in range(400)],
                         preprocessing=with_frames(entry.preprocessing, frames), source="checkpoint",
                         weights="runs/mvit/best.pt", checkpoint={"arch_kwargs": {}})
    monkeypatch.setattr(loading, "load", lambda *args, **kwargs: loaded)
    import cnntool.infer.video as infer_video

    calls = []
    monkeypatch.setattr(infer_video, "_classify_clips", lambda *a, **k: calls.append(1) or iter(()))
    write_video(tmp_path / "v.mp4", [torch.zeros(16, 16, 3, dtype=torch.uint8).numpy()] * 3, fps=10)
    result = CliRunner().invoke(app, ["video", str(tmp_path / "v.mp4"), "-m", "mvit_v1_b", "-f", "jsonl", "-q",
                                      "--device", "cpu"])
    assert result.exit_code == exit_code, result.output
    if exit_code == 2:
        assert "runs/mvit/best.pt: mvit_v1_b takes clips of exactly 16 frames, not 8" in result.output
        assert result.stdout.strip() == "" and not calls
    else:
        assert calls == [1] and [json.loads(line) for line in result.stdout.splitlines() if line.strip()] == []
