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



@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    """Two classes 9:1 in training (72 "a_many" disks, 8 "b_few" squares), 4 + 4 for validation."""
    from .conftest import make_folder

    root = tmp_path_factory.mktemp("skewed")
    make_folder(root / "train", {"a_many": "disk"}, train=72, val=0, splits=False)
    make_folder(root / "train", {"b_few": "square"}, train=8, val=0, seed=1, splits=False)
    make_folder(root / "val", {"a_many": "disk", "b_few": "square"}, train=4, val=0, seed=2, splits=False)
    return root


def training_losses(monkeypatch):
    """Record (weight, targets) of every cross-entropy computed with gradients on (training steps;
    validation runs under inference mode)."""
    import torch.nn.functional as F

    calls = []
    original = F.cross_entropy

    def spy(logits, target, *args, **kwargs):
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            weight = kwargs.get("weight")
            calls.append((None if weight is None else weight.detach().cpu().clone(), target.detach().cpu().clone()))
        return original(logits, target, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    return calls


def test_balance_weights_are_inverse_class_frequencies(skewed, tmp_path, monkeypatch):
    calls = training_losses(monkeypatch)
    result = runner.invoke(app, train_args(skewed, tmp_path / "weights", "--balance", "weights", "--seed", "3"))
    assert result.exit_code == 0, result.output
    assert len(calls) == 5  # 80 images in batches of 16
    weight = calls[0][0]
    assert weight is not None and all(torch.equal(w, weight) for w, _ in calls)
    counts = torch.tensor([72.0, 8.0])
    assert (weight * counts).tolist() == pytest.approx([40.0, 40.0])  # w_c = N / (classes x n_c)
    calls.clear()
    result = runner.invoke(app, train_args(skewed, tmp_path / "plain", "--seed", "3"))
    assert result.exit_code == 0, result.output
    assert calls and all(w is None for w, _ in calls)  # no --balance: unweighted


def test_balance_sampler_draws_the_classes_about_equally(skewed, tmp_path, monkeypatch):
    calls = training_losses(monkeypatch)

    def minority_share(*extra):
        calls.clear()
        result = runner.invoke(app, train_args(skewed, tmp_path / "-".join(extra or ("plain",)), "--seed", "3",
                                               *extra))
        assert result.exit_code == 0, result.output
        labels = torch.cat([target for _, target in calls])
        assert len(labels) == 80  # one epoch: as many draws as training images
        return float((labels == 1).float().mean())

    assert minority_share() == pytest.approx(0.1)  # the shuffled order: each image once
    assert 0.35 <= minority_share("--balance", "sampler") <= 0.65


def count_optimizer_steps():
    """A list that grows by one at every optimiser step (any torch optimiser), and the hook's
    handle (``remove()`` it)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    steps = []
    return steps, register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))


@pytest.mark.parametrize("accumulate, expected", [(1, 6), (2, 3), (4, 2), (6, 1)])
def test_accumulate_steps_once_per_n_batches_and_after_the_last_partial_group(shapes, tmp_path, accumulate,
                                                                                expected):
    """48 training images in batches of 8: 6 batches an epoch; with --accumulate 4 the optimiser
    steps after batch 4 and after batch 6 (the last, partial group still steps)."""
    steps, handle = count_optimizer_steps()
    try:
        result = runner.invoke(app, [*train_args(shapes, tmp_path / "run", "--accumulate", str(accumulate)),
                                     "--batch-size", "8"])
    finally:
        handle.remove()
    assert result.exit_code == 0, result.output
    assert len(steps) == expected


def test_accumulated_gradients_equal_one_batch_of_the_whole_group():
    """Two batches of 5 with --accumulate 2 take the same SGD step as one batch of 10 (the loss is
    divided by N, so the gradient is the group's mean)."""
    from cnntool.train.loop import StepSettings, train_one_epoch

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=generator), torch.randn(20, 1, generator=generator)

    def step(model, batch, settings):
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        return loss, {"loss": loss.detach() * len(inputs), "count": len(inputs)}

    def trained(batch_size, accumulate):
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        train_one_epoch(model, loader, optimizer, StepSettings(device=torch.device("cpu"), preprocessing=None,
                                                               accumulate=accumulate), step)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    accumulated, whole = trained(5, 2), trained(10, 1)
    torch.testing.assert_close(accumulated, whole, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(trained(5, 1), whole, atol=1e-4)  # stepping every batch differs

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
