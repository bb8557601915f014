"""Pretrained video weights offline: Kinetics-400 ``r3d_18`` classifies clip windows and fine-tunes
to new classes, and ``raft_small:C_T_V2`` computes flow, each from torchvision's hub cache.

The "weights" are randomly initialised state dicts of the torchvision models saved under their
real file names in a temporary ``TORCH_HOME``; any download attempt fails the test at once.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.clips import write_moving_squares
from cnntool.data.synthetic import DIRECTIONS, moving_square_clip
from cnntool.data.video import write_video
from cnntool.models.checkpoint import load_checkpoint
from cnntool.models.registry import cached_weights_path, get_entry

KINETICS = "r3d_18:KINETICS400_V1"
RAFT = "raft_small:C_T_V2"


def invoke(*args):
    result = CliRunner().invoke(app, [*map(str, args), "-f", "jsonl", "--device", "cpu"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, records


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A torch cache holding random r3d_18 Kinetics-400 and raft_small C_T_V2 weights, at the
    paths torchvision's weights would be downloaded to; made once."""
    from torchvision.models.optical_flow import raft_small
    from torchvision.models.video import r3d_18

    home = tmp_path_factory.mktemp("torch_home")
    models = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        torch.manual_seed(0)
        for spec, model in ((KINETICS, r3d_18(weights=None, num_classes=400)), (RAFT, raft_small(weights=None))):
            name, weights = spec.split(":")
            path = cached_weights_path(get_entry(name), weights)
            assert str(path).startswith(str(home))
            path.parent.mkdir(parents=True, exist_ok=True)
            state = model.state_dict()
            torch.save(state, path)
            models[spec] = state
    return home, models


@pytest.fixture
def torch_home(cache, monkeypatch, no_network):
    """The cache above as ``TORCH_HOME``, with the network blocked (a download raises, not hangs)."""
    home, models = cache
    monkeypatch.setenv("TORCH_HOME", str(home))
    return models


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """24 frames of a square moving left, 44 x 44 (not a multiple of 8) at 10 fps."""
    path = tmp_path_factory.mktemp("clip") / "left.mp4"
    frames = moving_square_clip(np.random.default_rng(0), direction="left", frames=24, size=44).frames
    write_video(path, frames, fps=10)
    return path


def test_the_network_is_really_blocked(torch_home, clip):
    """Weights not in the cache fail at once with the file to place (the guard the tests below rely on)."""
    result, _ = invoke("video", clip, "-m", "mc3_18:KINETICS400_V1")
    assert result.exit_code != 0
    assert "cannot be downloaded" in result.output and "network blocked by the test" in result.output


@pytest.mark.slow
def test_kinetics_r3d_18_from_the_cache_classifies_clip_windows(torch_home, clip):
    """16-frame windows at 32 x 32: 1-2 s here."""
    from torchvision.models.video import R3D_18_Weights

    from cnntool.models.loading import load

    categories = R3D_18_Weights.KINETICS400_V1.meta["categories"]
    result, records = invoke("video", clip, "-m", KINETICS, "--imgsz", "32", "-q")
    assert result.exit_code == 0, result.output
    windows, verdict = records[:-1], records[-1]
    assert [(r["start_frame"], r["end_frame"]) for r in windows] == [(0, 15), (8, 23)]  # 16 frames; the last ends it
    for r in windows:
        assert r["label"] in categories and 0 < r["score"] <= 1 and r["error"] is None
        assert len(r["topk"]) == 5
    assert verdict["verdict"] is True and verdict["windows"] == 2 and verdict["label"] in categories
    loaded = load(KINETICS)  # the weights are the cached file's
    assert loaded.classes == categories
    torch.testing.assert_close(loaded.model.fc.weight, torch_home[KINETICS]["fc.weight"])
    torch.testing.assert_close(loaded.model.stem[0].weight, torch_home[KINETICS]["stem.0.weight"])


@pytest.mark.slow
def test_finetuning_kinetics_r3d_18_offline_gives_a_four_class_model(torch_home, tmp_path):
    """8 training clips, one epoch at 32 x 32, the head only: 3-6 s here."""
    data = write_moving_squares(tmp_path / "squares", per_class=2, val_per_class=1, frames=16, size=32, seed=2)
    out = tmp_path / "run"
    result, records = invoke("finetune", data, "--from", KINETICS, "--epochs", "1", "--imgsz", "32",
                             "--batch-size", "4", "--freeze", "backbone", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    [summary] = records
    assert summary["task"] == "video" and summary["arch"] == "r3d_18" and summary["finetuned_from"] == KINETICS
    assert (summary["train_images"], summary["val_images"]) == (8, 4)
    best = load_checkpoint(out / "best.pt")
    assert best["task"] == "video" and best["classes"] == sorted(DIRECTIONS)
    state = best["state_dict"]
    assert state["fc.weight"].shape == (4, 512) and state["fc.bias"].shape == (4,)
    assert best["preprocessing"]["input_size"] == [3, 16, 32, 32]
    cached = torch_home[KINETICS]
    assert torch.equal(state["stem.0.weight"], cached["stem.0.weight"])  # the frozen backbone is the cached one
    assert torch.equal(state["layer4.1.conv2.0.weight"], cached["layer4.1.conv2.0.weight"])


@pytest.mark.slow
def test_raft_small_from_the_cache_writes_flow_arrays(torch_home, clip, tmp_path):
    """One frame pair of 44 x 44 (padded to RAFT's least side inside, cropped
    back); its array is what the cached weights give on the decoded frames. 1-9 s here."""
    from torchvision.models.optical_flow import raft_small

    from cnntool.data.video import VideoReader
    from cnntool.infer.flow import FlowEstimator

    result, records = invoke("video", clip, "-m", RAFT, "--task", "flow", "--max-frames", "2", "-o", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    pairs, last = records[:-1], records[-1]
    assert [(r["frame"], r["next_frame"]) for r in pairs] == [(0, 1)]
    for r in pairs:
        flow = np.load(r["flow"])
        assert flow.shape == (44, 44, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
        assert r["mean_motion"] == pytest.approx(float(np.hypot(flow[..., 0], flow[..., 1]).mean()), rel=1e-5)
        assert os.path.dirname(r["flow"]) == str(tmp_path / "left_flow")
    assert last["output"] == str(tmp_path / "left_flow.mp4") and last["frames"] == 2
    model = raft_small(weights=None)
    model.load_state_dict(torch_home[RAFT])
    first, second, *_ = (frame.image for frame in VideoReader(clip))
    expected = FlowEstimator("raft", model=model)(first, second)
    np.testing.assert_allclose(np.load(pairs[0]["flow"]), expected, rtol=1e-3, atol=1e-3)
