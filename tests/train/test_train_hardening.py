"""Issue 12 on checkpoints and training: damaged or malformed files are one-line usage errors,
bad option values are refused before any work, a diverging run stops with a non-zero exit, and a
run folder may not sit inside its dataset."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.errors import CheckpointError
from cnntool.models.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()


def train_args(data, out, *extra, epochs=1):
    return ["train", str(data), "--arch", "lenet5", "-o", str(out), "--epochs", str(epochs), "--batch-size", "16",
            "--format", "jsonl", *extra]


@pytest.fixture(scope="module")
def run(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("hardening") / "run"
    result = runner.invoke(app, train_args(shapes, out))
    assert result.exit_code == 0, result.output
    return out


def test_bytes_flipped_inside_the_weights_are_refused(run, tmp_path):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes((run / "best.pt").read_bytes())
    with zipfile.ZipFile(damaged) as archive:  # the biggest tensor's bytes, zip structure intact
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        name_len, extra_len = len(info.filename.encode()), len(info.extra)
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data = bytearray(damaged.read_bytes())
    for i in range(start, start + 200):
        data[i] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged|not a readable"):
        load_checkpoint(damaged)
    result = runner.invoke(app, ["predict", str(run), "-m", str(damaged)])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.parametrize("field, value, message", [
    ("arch_kwargs", ["not", "a", "dict"], "arch_kwargs"),
    ("preprocessing", {"input_size": [1, 32, 32], "mean": "abc", "std": [0.5]}, "mean"),
    ("preprocessing", {"input_size": [3, 100000, 100000], "mean": [0.5] * 3, "std": [0.5] * 3}, "input_size"),
    ("format_version", "1", "format_version"),
    ("classes", [1, 2, 3], "classes"),
    ("epoch", -3, "epoch"),
])
def test_malformed_metadata_is_a_one_line_checkpoint_error(run, tmp_path, field, value, message):
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt[field] = value
    path = tmp_path / "bad.pt"
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    result = runner.invoke(app, ["models", "info", str(path)])
    assert result.exit_code == 2 and "internal error" not in result.stderr


@pytest.mark.parametrize("field, value", [
    ("rng", {"torch": "garbage"}), ("optimizer", {"state": 3}), ("scheduler", {"last_epoch": "x"}),
    ("epoch", -3), ("config", {"epochs": "ten"}),
])
def test_a_damaged_last_pt_cannot_be_resumed(run, tmp_path, field, value):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = torch.load(copy / "last.pt", weights_only=True)
    if field == "config":
        ckpt["config"] = {**ckpt["config"], **value}
    else:
        ckpt[field] = value
    save_checkpoint(copy / "last.pt", ckpt)
    result = runner.invoke(app, ["train", "--resume", str(copy)])
    assert result.exit_code == 2, result.output
    assert "malformed" in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("extra, flag", [
    (["--lr", "-1"], "--lr"), (["--weight-decay", "-1"], "--weight-decay"), (["--momentum", "1.5"], "--momentum"),
    (["--zoom", "1.5"], "--zoom"), (["--imgsz", "4"], "--imgsz"), (["--auto-augment", "augmix"], "--auto-augment"),
])
def test_bad_values_are_refused_before_any_work(shapes, tmp_path, extra, flag):
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", *extra))
    assert result.exit_code == 2 and flag in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_stops_with_exit_1(shapes, tmp_path):
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--lr", "1e9", "--warmup-epochs", "0",
                                           "--momentum", "0", epochs=5))
    assert result.exit_code == 1, result.output
    assert "loss" in result.stderr and ("NaN" in result.stderr or "exploded" in result.stderr)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) < 5 if (
        tmp_path / "run" / "metrics.jsonl").exists() else True


def test_a_run_folder_inside_the_dataset_is_refused(shapes_copy, tmp_path):
    result = runner.invoke(app, train_args(shapes_copy, shapes_copy / "train" / "cross" / "run"))
    assert result.exit_code == 2 and "inside the dataset" in result.stderr
    assert not (shapes_copy / "train" / "cross" / "run").exists()


def test_a_size_the_model_cannot_take_is_a_usage_error(shapes, tmp_path):
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--imgsz", "24"))  # LeNet-5 needs 32
    assert result.exit_code == 2 and "lenet5 cannot take a 1x24x24 input" in result.stderr


def test_the_recorded_input_size_is_used_at_inference(shapes, tmp_path):
    out = tmp_path / "run"
    args = train_args(shapes, out, "--imgsz", "24")
    args[args.index("lenet5")] = "simple_cnn"
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "best.pt")["preprocessing"]["input_size"] == [3, 24, 24]
    info = runner.invoke(app, ["models", "info", str(out), "--format", "jsonl"])
    assert json.loads(info.stdout)["input_size"] == "3x24x24"
    import torch

    seen = set()  # the size of what reaches the first convolution (simple_cnn would take any size)

    def record(module, inputs):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            seen.add(tuple(inputs[0].shape[-2:]))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        predicted = runner.invoke(app, ["predict", str(shapes / "val"), "-m", str(out), "--format", "jsonl"])
    finally:
        handle.remove()
    assert predicted.exit_code == 0, predicted.output
    assert seen == {(24, 24)}  # the images are 16 px and simple_cnn's own size is another


def test_inputs_unlike_the_training_data_get_a_warning(shapes, run, tmp_path):
    import cv2
    import numpy as np

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "big.png"), np.random.default_rng(0).integers(0, 256, (512, 512, 3),
                                                                                           dtype=np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "photos"), "-m", str(run), "--format", "jsonl"])
    assert result.exit_code == 0 and "far larger than the images this model was trained on" in result.stderr
    same = runner.invoke(app, ["predict", str(shapes / "val"), "-m", str(run), "--format", "jsonl"])
    assert same.exit_code == 0 and "trained on" not in same.stderr
