"""What a timm user reaches for (issue 13): recipe files, step/plateau schedules, class balance,
gradient accumulation, RandAugment/TrivialAugment and random erasing, TensorBoard, progress."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.data.transforms import AugmentConfig, TrainTransform
from cnntool.train.optim import lr_factor, plateau_step

runner = CliRunner()


def train_args(data, out, *extra, epochs=1):
    return ["train", str(data), "--arch", "lenet5", "-o", str(out), "--epochs", str(epochs), "--batch-size", "16",
            "--format", "jsonl", *extra]


def test_a_recipe_file_fills_options_and_the_command_line_wins(shapes, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('lr = 0.02\nweight-decay = 0.001\nhflip = true\ncrop-scale = "0.5,1"\nschedule = "step"\n')
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--config", str(recipe), "--lr", "0.03"))
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["lr"] == 0.03 and config["weight_decay"] == 0.001 and config["schedule"] == "step"
    assert config["aug"]["hflip"] is True and config["aug"]["crop_scale"] == [0.5, 1.0]


@pytest.mark.parametrize("text, message", [("lr_rate = 0.1\n", "unknown option 'lr_rate'"),
                                           ("momentum = 'high'\n", "bad value for momentum"),
                                           ("lr = [\n", "not a TOML file")])
def test_a_bad_recipe_file_is_a_usage_error(shapes, tmp_path, text, message):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--config", str(recipe)))
    assert result.exit_code == 2 and message in result.stderr


def test_step_and_plateau_schedules():
    assert lr_factor(29, total_steps=100, warmup_steps=0, schedule="step", lr_step=30) == 1.0
    assert lr_factor(60, total_steps=100, warmup_steps=0, schedule="step", lr_step=30) == pytest.approx(0.01)

    class Scheduler:  # the parts of LambdaLR plateau_step uses
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
        base_lrs, last_epoch, plateau = [0.5], 10, [1.0]
        lr_lambdas = [lambda step, holder=plateau: holder[0]]

    s = Scheduler()
    assert not plateau_step(s, bad_epochs=2, patience=3, gamma=0.1)
    assert plateau_step(s, bad_epochs=3, patience=3, gamma=0.1)
    assert s.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_balance_and_accumulation_run_and_are_recorded(shapes, tmp_path):
    for balance in ("weights", "sampler"):
        out = tmp_path / balance
        result = runner.invoke(app, train_args(shapes, out, "--balance", balance, "--accumulate", "2"))
        assert result.exit_code == 0, result.output
        config = json.loads((out / "config.json").read_text())
        assert config["balance"] == balance and config["accumulate"] == 2


def test_automatic_augmentation_policies_are_seeded_and_change_images():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pre = Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    for policy in ("randaugment", "trivialaugment"):
        t = TrainTransform(pre, AugmentConfig(rotate=0, shift=0, zoom=0, shear=0, policy=policy, erasing=1.0))
        params = t.draw(np.random.default_rng(1), 1)[0]
        a, b = t.apply(t.prepare(image), params), t.apply(t.prepare(image), params)
        assert np.array_equal(a, b) and not np.array_equal(a, image)
        assert (a == 0).all(axis=2).sum() > 0  # a patch was erased


def test_tensorboard_event_files(shapes, tmp_path):
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--tensorboard"))
    assert result.exit_code == 0, result.output
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    accumulator.Reload()
    assert "val/accuracy" in accumulator.Tags()["scalars"]


def test_progress_lines_when_stderr_is_not_a_terminal(shapes, tmp_path, monkeypatch):
    from cnntool.cli import _output

    original = _output.Output.bar
    monkeypatch.setattr(_output.Output, "bar", lambda self, total, desc="", **kw: original(self, total, desc,
                                                                                             interval=0.0))
    result = runner.invoke(app, train_args(shapes, tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "epoch 1/1: 1/3 batches" in result.stderr and "img/s, eta" in result.stderr
