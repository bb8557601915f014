"""The command line as one contract: one meaning per flag across every command, every training
option tied to its config field, and one summary-record convention."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

from typer.main import get_command
from typer.testing import CliRunner

from cnntool.cli.main import app

runner = CliRunner()


def all_commands():
    """(command path, click command) for every subcommand, nested groups included."""
    root = get_command(app)
    stack = [("", root)]
    while stack:
        prefix, group = stack.pop()
        for name, command in getattr(group, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            if getattr(command, "commands", None):
                stack.append((path, command))
            else:
                yield path, command


def test_every_flag_means_one_thing_across_commands():
    meanings = defaultdict(set)
    for path, command in all_commands():
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-"):
                    meanings[opt].add(param.name)
    clashes = {opt: names for opt, names in meanings.items() if len(names) > 1}
    assert clashes == {}
    # the clashes the issue found are gone
    assert meanings["-k"] == {"kernel"}
    assert "--cache" in meanings and meanings["--cache"] == {"cache"}
    commands = dict(all_commands())
    assert "--cache" not in {o for p in commands["train"].params for o in p.opts}
    assert "-t" not in {o for p in commands["explain"].params for o in p.opts}


def test_every_training_config_field_has_its_option():
    from cnntool.cli.train import config_options

    commands = dict(all_commands())
    train = {p.name for p in commands["train"].params}
    finetune = {p.name for p in commands["finetune"].params}
    only_finetune = {"init_from", "freeze", "backbone_lr_scale"}
    only_train = {"arch", "init", "arch_kwargs"}
    for field, option in config_options().items():
        if field not in only_finetune:
            assert option in train, f"train has no option for TrainConfig.{field}"
        if field not in only_train:
            assert option in finetune, f"finetune has no option for TrainConfig.{field}"


def test_every_given_training_option_reaches_the_config():
    """Each option, given, changes its field: none is parsed and dropped."""
    import dataclasses

    from cnntool.cli.train import _field_values
    from cnntool.data.transforms import AugmentConfig
    from cnntool.train.config import TrainConfig

    given = {"task": "classify", "arch": "lenet5", "imgsz": "48", "arch_arg": ["width=8"], "out": "o",
             "val_split": 0.3, "epochs": 3, "batch_size": 8, "accumulate": 2, "optimizer": "adamw", "lr": 0.1,
             "momentum": 0.8, "weight_decay": 0.01, "schedule": "constant", "warmup_epochs": 0.5,
             "label_smoothing": 0.05, "mixup": 0.2, "cutmix": 1.0, "grad_clip": 5.0, "patience": 3, "ema": 0.99,
             "init": "xavier", "freeze": "backbone", "backbone_lr_scale": 0.5, "augment": False, "rotate": 3.0,
             "shift": 0.05, "zoom": 0.2, "shear": 2.0, "crop_scale": "0.5,1", "crop_ratio": "0.5,2",
             "hflip": True, "vflip": True, "color_jitter": 0.3, "auto_augment": "randaugment", "erasing": 0.25,
             "device": "cpu", "amp": False, "channels_last": False, "workers": 1, "threads": 1,
             "cache_images": "off", "verify": False, "max_pixels": 1000, "seed": 7, "deterministic": True,
             "tensorboard": True}
    values = _field_values(given, init_from="resnet18:DEFAULT")
    defaults = {**dataclasses.asdict(TrainConfig()), **dataclasses.asdict(AugmentConfig())}
    unchanged = [name for name in defaults if name not in ("data", "aug") and values.get(name) == defaults[name]]
    assert unchanged == []


def records_of(text: str, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text)))


def test_one_summary_record_convention(tmp_path):
    """predict --eval and audit end their jsonl and csv output with a record whose path is <summary>."""
    import cv2
    import numpy as np
    import torch

    from cnntool.data.preprocessing import Preprocessing
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
    from cnntool.models.classic import lenet5

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "val" / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "val" / name / f"{i}.png"), rng.integers(0, 256, (12, 12), dtype=np.uint8))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", make_checkpoint(lenet5(num_classes=2), arch="lenet5", task="classification",
                                                       classes=["a", "b"],
                                                       preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    for fmt in ("jsonl", "csv"):
        predicted = runner.invoke(app, ["predict", str(tmp_path / "val"), "-m", str(tmp_path / "m.pt"), "--eval",
                                        "--format", fmt])
        audited = runner.invoke(app, ["audit", str(tmp_path / "val"), "--no-cache", "--format", fmt])
        for result in (predicted, audited):
            assert result.exit_code == 0, result.output
            rows = records_of(result.stdout, fmt)
            assert rows[-1]["path"] == "<summary>"
            assert all(r["path"] != "<summary>" for r in rows[:-1])
    table = runner.invoke(app, ["predict", str(tmp_path / "val"), "-m", str(tmp_path / "m.pt"), "--eval",
                                "--format", "table"])
    assert "<summary>" not in table.stdout and "accuracy" in table.stderr  # a person reads it on stderr
