"""The runner's seam: a second, toy task plug-in (regressing an image's brightness) trains, picks
its best checkpoint by its own metric, writes its own curves and columns, and resumes exactly,
with no line of the runner changed. If this passes, a new task is a plug-in and nothing else."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.data.preprocessing import Preprocessing
from cnntool.models import registry
from cnntool.models.checkpoint import load_checkpoint
from cnntool.models.tasks import TASK_INFO, TaskInfo
from cnntool.train import tasks
from cnntool.train.config import TrainConfig
from cnntool.train.runner import epoch_fields, train
from cnntool.train.tasks import TaskData


def tiny_regressor(*, num_classes: int, in_channels: int = 1, **_):
    """conv -> global average -> one number per image (num_classes is 1)."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, num_classes))


class BrightnessData(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.levels = rng.uniform(0.1, 0.9, n).astype(np.float32)
        self.images = [np.clip(rng.normal(level * 255, 20, (1, 12, 12)), 0, 255).astype(np.uint8)
                       for level in self.levels]

    def __len__(self):
        return len(self.levels)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]), torch.tensor(self.levels[i])


class BrightnessTask:
    """Regress the mean brightness: MSE loss, best by the lowest validation MAE."""

    name = "toy"
    best = ("val_mae", "min")
    tie = None
    epoch_fields = ("train_loss", "val_loss", "val_mae")
    default_init = "torch"
    default_arch = "toy_regressor"
    recipe = {"optimizer": "adamw", "lr": 0.05, "weight_decay": 0.0, "warmup_epochs": 0.0}
    ignores = ("label_smoothing", "mixup", "cutmix")

    def load_data(self, cfg, preprocessing, dist):
        return TaskData(classes=["brightness"], model_classes=["brightness"], train=BrightnessData(64, 0),
                        val=BrightnessData(32, 1), sizes={"train": 64, "val": 32}, split="generated",
                        cached=True, describe="brightness regression")

    def step(self, cfg, data):
        def step(model, batch, settings):
            images, target = batch
            pred = model(settings.inputs(images))[:, 0]
            loss = nn.functional.mse_loss(pred, settings.to_device(target))
            return loss, {"loss": loss.detach().double() * len(target), "count": len(target)}
        return step

    def evaluator(self, data, cfg):
        task = self

        class MAE:
            def reset(self):
                self.errors = []

            def update(self, model, batch, settings):
                images, target = batch
                pred = model(settings.inputs(images))[:, 0]
                self.errors.append((pred - settings.to_device(target)).float())

            def compute(self, dist=None):
                err = torch.cat(self.errors)
                task.computed += 1
                return {"loss": float((err ** 2).mean()), "mae": float(err.abs().mean()), "images": len(err)}

        return MAE()

    computed = 0

    def epoch_metrics(self, sums):
        return {"train_loss": sums["loss"] / sums["count"]}

    def figures(self, out_dir, best, classes, epoch):
        (out_dir / "toy.txt").write_text(f"best mae {best['mae']:.4f} at epoch {epoch}\n")

    def summary(self, best, last, test):
        return {"best_val_mae": best.get("mae")}


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(TASK_INFO, "toy", TaskInfo("toy", "toy", "predict", 3, "one number per image"))
    entry = registry.ModelEntry(name="toy_regressor", task="toy", builder=tiny_regressor, family="toy",
                                preprocessing=Preprocessing((1, 12, 12), (0.0,), (1.0,)), num_classes=1,
                                reference_params=45, head="4")
    registry._ensure_loaded()
    monkeypatch.setitem(registry._REGISTRY, "toy_regressor", entry)
    monkeypatch.setitem(tasks.PLUGINS, "toy", f"{__name__}:BrightnessTask")
    return entry


def config(tmp_path, **changes):
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(data=str(tmp_path / "data"), task="toy", out=str(tmp_path / "run"), epochs=6, batch_size=16,
                      device="cpu", threads=1, workers=0)
    return dataclasses.replace(cfg, **changes)


def test_a_second_task_trains_through_the_same_runner(toy_task, tmp_path):
    summary = train(config(tmp_path))
    run = tmp_path / "run"
    assert summary["task"] == "toy" and summary["arch"] == "toy_regressor"  # the task's default model
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    maes = [r["val_mae"] for r in history]
    assert summary["best_metric"] == "val_mae" and summary["best_val_mae"] == min(maes) < 0.5 * maes[0]
    best_epoch = 1 + int(np.argmin(maes))
    assert summary["best_epoch"] == best_epoch and [r["best"] for r in history].count(True) >= 1
    assert (run / "metrics.csv").read_text().splitlines()[0].split(",") == list(epoch_fields(BrightnessTask()))
    best = load_checkpoint(run / "best.pt")
    assert best["task"] == "toy" and best["epoch"] == best_epoch and best["classes"] == ["brightness"]
    assert best["preprocessing"]["input_size"] == [1, 12, 12]
    config_json = json.loads((run / "config.json").read_text())
    assert (config_json["optimizer"], config_json["lr"]) == ("adamw", 0.05)  # the task's recipe filled the gaps
    assert (run / "toy.txt").read_text().startswith("best mae") and (run / "curves.png").stat().st_size > 0


def test_the_toy_run_resumes_exactly(toy_task, tmp_path):
    straight = train(config(tmp_path / "a"))

    def killed_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b"), on_epoch=killed_after_two)
    resumed = train(TrainConfig(), resume=str(tmp_path / "b" / "run"))
    a = load_checkpoint(tmp_path / "a" / "run" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "run" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["best_val_mae"] == straight["best_val_mae"]


def test_options_the_task_does_not_use_are_refused(toy_task, tmp_path):
    from cnntool.errors import UsageError

    with pytest.raises(UsageError, match="--mixup does nothing when training toy"):
        train(config(tmp_path, mixup=0.2))
