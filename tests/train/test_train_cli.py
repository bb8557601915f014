"""`cnntool train` / `cnntool finetune` end to end on tiny synthetic shapes (LeNet-5, CPU)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from cnntool.data.preprocessing import Preprocessing
from cnntool.cli.main import app
from cnntool.models.checkpoint import load_checkpoint
from cnntool.models.loading import load
from cnntool.train.runner import epoch_fields, train
from cnntool.train.tasks.classify import ClassifyTask
from cnntool.train.config import TrainConfig

runner = CliRunner()

RUN_FILES = {"best.pt", "last.pt", "config.json", "metrics.csv", "metrics.jsonl", "curves.png", "confusion.png",
             "summary.json"}
#: Fields of an epoch record that are wall-clock measurements, not results.
TIMING = {"train_images_per_s", "epoch_seconds"}


def train_args(data, out, *extra, epochs=2):
    return ["train", str(data), "--arch", "lenet5", "-o", str(out), "--epochs", str(epochs), "--batch-size", "16",
            "--format", "jsonl", *extra]


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def epoch_results(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def test_train_writes_a_complete_run_folder(shapes, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, train_args(shapes, out))
    assert result.exit_code == 0, result.output
    [summary] = records(result)
    assert summary["path"] == str(out)
    assert (summary["epochs"], summary["classes"], summary["train_images"], summary["val_images"]) == (2, 3, 48, 18)
    assert summary["skipped"] == 0 and summary["split"] == "folders"
    assert 0.0 <= summary["best_val_accuracy"] <= 1.0
    assert {p.name for p in out.iterdir()} == RUN_FILES
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(epoch_fields(ClassifyTask())) and len(csv_lines) == 3
    assert [r["epoch"] for r in epoch_results(out)] == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "lenet5" and config["epochs"] == 2 and config["aug"]["hflip"] is False
    loaded = load(str(out / "best.pt"), task="classification")
    assert loaded.classes == ["cross", "disk", "square"]
    assert loaded.checkpoint["metrics"]["val_accuracy"] == summary["best_val_accuracy"]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "epoch 2/2" in result.stderr
    assert result.stderr.count("'*' marks a new best val_accuracy") == 1  # the mark is explained once
    assert result.stderr.count(" *\n") == sum(r["best"] for r in epoch_results(out))


def test_same_seed_gives_the_same_metrics(shapes, tmp_path):
    for name in ("a", "b"):
        result = runner.invoke(app, train_args(shapes, tmp_path / name, "--seed", "5", "--mixup", "0.2"))
        assert result.exit_code == 0, result.output
    assert epoch_results(tmp_path / "a") == epoch_results(tmp_path / "b")


@pytest.mark.slow
def test_killed_run_resumed_ends_with_the_same_weights(shapes, tmp_path):
    """EMA, mixup and a cosine schedule all carry state across the interruption."""
    cfg = TrainConfig(data=str(shapes), arch="lenet5", out=str(tmp_path / "whole"), epochs=3, batch_size=16,
                      ema=0.9, mixup=0.2, seed=1)
    train(cfg)

    class Killed(Exception):
        pass

    def kill_after_two(record):
        if record["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train(dataclasses.replace(cfg, out=str(tmp_path / "cut")), on_epoch=kill_after_two)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2

    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "cut"), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert records(result)[0]["epochs"] == 3
    assert "epoch 3/3" in result.stderr and "epoch 2/3" not in result.stderr  # only the missing epoch ran
    for name in ("last.pt", "best.pt"):
        whole = load_checkpoint(tmp_path / "whole" / name)
        cut = load_checkpoint(tmp_path / "cut" / name)
        assert whole["epoch"] == cut["epoch"]
        for key, tensor in whole["state_dict"].items():
            assert torch.equal(tensor, cut["state_dict"][key]), (name, key)
    assert epoch_results(tmp_path / "whole") == epoch_results(tmp_path / "cut")


def test_corrupt_images_are_skipped_reported_and_exit_1(shapes_copy, tmp_path):
    """The run completes without the unreadable image, but not every input was used: exit 1."""
    broken = shapes_copy / "train" / "disk" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "run"
    result = runner.invoke(app, train_args(shapes_copy, out, epochs=1))
    assert result.exit_code == 1, result.output
    [summary] = records(result)
    assert summary["skipped"] == 1 and summary["train_images"] == 48
    assert summary["skipped_files"] == [{"path": str(broken), "error": summary["skipped_files"][0]["error"]}]
    assert summary["skipped_files"][0]["error"]
    assert f"skipped {broken}" in result.stderr
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert load_checkpoint(out / "best.pt")["epoch"] == 1


def test_resume_extends_a_finished_run_with_more_epochs(shapes, tmp_path, monkeypatch):
    import cnntool.train.loop as loop

    out = tmp_path / "run"
    assert runner.invoke(app, train_args(shapes, out, epochs=2)).exit_code == 0
    before = epoch_results(out)
    starting_lrs = []
    train_one_epoch = loop.train_one_epoch

    def recording(model, loader, optimizer, settings, step, **kwargs):
        starting_lrs.append(optimizer.param_groups[0]["lr"])
        return train_one_epoch(model, loader, optimizer, settings, step, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", recording)
    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "3", "--device", "cpu",
                                 "--workers", "0", "--threads", "1", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert records(result)[0]["epochs"] == 3
    assert "epoch 3/3" in result.stderr and "epoch 2/3" not in result.stderr  # exactly one more epoch
    after = epoch_results(out)
    assert [r["epoch"] for r in after] == [1, 2, 3] and after[:2] == before
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["device"] == "cpu" and config["machine"]["threads"] == 1
    assert config["machine"]["channels_last"] is True  # the default on the CPU (faster there)
    assert load_checkpoint(out / "last.pt")["epoch"] == 3
    # the cosine schedule is recomputed for 3 epochs of 3 steps (1 of warmup): epoch 3 starts half
    # way down it, at lr 0.05 x 16/64 x 0.5, not at the 2-epoch schedule's final 0
    assert starting_lrs == [pytest.approx(0.00625)]
    assert after[2]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_resume_with_the_same_epochs_trains_nothing_more(shapes, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, train_args(shapes, out, epochs=1)).exit_code == 0
    result = runner.invoke(app, ["train", str(shapes), "--resume", str(out), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert records(result)[0]["epochs"] == 1 and "epoch 1/1" not in result.stderr


@pytest.mark.parametrize("extra, flag", [
    (["--lr", "0.1"], "--lr"),
    (["--batch-size", "8"], "--batch-size"),
    (["--momentum", "0.9"], "--momentum"),     # even the default value: it may not be the run's
    (["--no-augment"], "--no-augment"),
    (["--seed", "3"], "--seed"),
    (["--arch", "lenet5"], "--arch"),
    (["-o", "elsewhere"], "--out"),
    (["--overwrite"], "--overwrite"),
    (["--epochs", "1"], "--epochs"),           # fewer than the run's 2
])
def test_resume_refuses_options_that_change_the_recipe(shapes, tmp_path, extra, flag):
    out = tmp_path / "run"
    assert runner.invoke(app, train_args(shapes, out, epochs=2)).exit_code == 0
    before = (out / "last.pt").read_bytes()
    result = runner.invoke(app, ["train", "--resume", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert flag in result.stderr and "Traceback" not in result.output
    assert (out / "last.pt").read_bytes() == before


def test_finetune_resume_refuses_a_new_source(bars, source_checkpoint, tmp_path):
    out = tmp_path / "tuned"
    assert finetune(bars, source_checkpoint, out, "--freeze", "backbone").exit_code == 0
    result = runner.invoke(app, ["finetune", "--resume", str(out), "--freeze", "none"])
    assert result.exit_code == 2 and "--freeze" in result.stderr
    assert "a resumed run keeps its recipe" in result.stderr
    result = runner.invoke(app, ["finetune", "--resume", str(out), "--epochs", "3", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert records(result)[0]["epochs"] == 3


def test_an_existing_run_needs_resume_or_overwrite(shapes, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, train_args(shapes, out, epochs=1)).exit_code == 0
    again = runner.invoke(app, train_args(shapes, out, epochs=1))
    assert again.exit_code == 2
    assert "already holds a training run" in again.stderr and "--resume" in again.stderr
    assert runner.invoke(app, train_args(shapes, out, "--overwrite", epochs=1)).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--arch", "nosuchnet"], "unknown model"),
    (["--arch", "lenet5", "--optimizer", "rmsprop"], "--optimizer"),
    (["--arch", "lenet5", "--crop-scale", "0.5"], "--crop-scale"),
    (["--arch", "lenet5", "--device", "tpu"], "--device"),
])
def test_bad_options_exit_2_with_a_message(shapes, tmp_path, args, message):
    result = runner.invoke(app, ["train", str(shapes), "-o", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_missing_dataset_and_missing_arch_exit_2(tmp_path):
    assert runner.invoke(app, ["train", str(tmp_path / "nope"), "--arch", "lenet5"]).exit_code == 2
    result = runner.invoke(app, ["train", str(tmp_path)])
    assert result.exit_code == 2 and "--arch is required" in result.stderr


def test_gpu_out_of_memory_ends_with_advice(shapes, tmp_path, monkeypatch):
    import cnntool.train.loop as loop

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "train_one_epoch", out_of_memory)
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", epochs=1))
    assert result.exit_code == 2
    assert "out of GPU memory" in result.stderr and "--batch-size 8" in result.stderr
    assert "Traceback" not in result.output


# --- finetune --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source_checkpoint(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    result = runner.invoke(app, train_args(shapes, out, epochs=2))
    assert result.exit_code == 0, result.output
    return out / "best.pt"


def finetune(data, source, out, *extra):
    return runner.invoke(app, ["finetune", str(data), "--from", str(source), "-o", str(out), "--epochs", "2",
                               "--batch-size", "8", "--format", "jsonl", *extra])


def test_finetune_puts_a_new_head_on_a_frozen_backbone(bars, source_checkpoint, tmp_path):
    result = finetune(bars, source_checkpoint, tmp_path / "tuned", "--freeze", "backbone")
    assert result.exit_code == 0, result.output
    [summary] = records(result)
    assert summary["finetuned_from"] == str(source_checkpoint) and summary["split"] == "val_split=0.2"
    source = load_checkpoint(source_checkpoint)["state_dict"]
    tuned = load_checkpoint(tmp_path / "tuned" / "best.pt")
    assert tuned["classes"] == ["hbar", "vbar"] and tuned["arch"] == "lenet5"
    assert tuple(tuned["state_dict"]["11.weight"].shape) == (2, 84)
    for key, tensor in source.items():
        if not key.startswith("11."):
            assert torch.equal(tensor, tuned["state_dict"][key]), key
    assert load(str(tmp_path / "tuned" / "best.pt")).classes == ["hbar", "vbar"]


def test_finetune_last_n_blocks_trains_only_those(bars, source_checkpoint, tmp_path):
    result = finetune(bars, source_checkpoint, tmp_path / "tuned", "--freeze", "1")
    assert result.exit_code == 0, result.output
    source = load_checkpoint(source_checkpoint)["state_dict"]
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")["state_dict"]
    assert torch.equal(source["0.weight"], tuned["0.weight"])      # C1: frozen
    assert torch.equal(source["6.weight"], tuned["6.weight"])      # C5: frozen
    assert not torch.equal(source["9.weight"], tuned["9.weight"])  # F6: the last block trains


def test_finetune_refuses_a_checkpoint_for_another_task(bars, tmp_path):
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
    from cnntool.models.classic import lenet5

    path = tmp_path / "detector.pt"
    save_checkpoint(path, make_checkpoint(lenet5(), arch="lenet5", task="detection", classes=list("0123456789"),
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    result = finetune(bars, path, tmp_path / "tuned")
    assert result.exit_code == 2
    assert "detection" in result.stderr and "Traceback" not in result.output


def test_finetune_needs_weights_to_start_from(bars, tmp_path):
    result = finetune(bars, "lenet5", tmp_path / "tuned")
    assert result.exit_code == 2 and "names no weights" in result.stderr


def test_test_split_is_scored_with_the_best_model(shapes_copy, tmp_path):
    import shutil

    shutil.copytree(shapes_copy / "val", shapes_copy / "test")
    result = runner.invoke(app, train_args(shapes_copy, tmp_path / "run", epochs=1))
    assert result.exit_code == 0, result.output
    [summary] = records(result)
    # test/ holds the same images as val/, and both are scored with best.pt's weights
    assert summary["test_accuracy"] == summary["best_val_accuracy"]


def test_uncached_data_through_loader_workers_gives_the_same_run(shapes, tmp_path):
    cached = runner.invoke(app, train_args(shapes, tmp_path / "cached", "--cache-images", "on", "--workers", "0", "--threads", "1"))
    lazy = runner.invoke(app, train_args(shapes, tmp_path / "lazy", "--cache-images", "off", "--workers", "1", "--threads", "1"))
    assert cached.exit_code == 0 and lazy.exit_code == 0, lazy.output
    assert json.loads((tmp_path / "lazy" / "config.json").read_text())["machine"]["workers"] == 1
    assert epoch_results(tmp_path / "cached") == epoch_results(tmp_path / "lazy")


def test_table_format_shows_the_summary_as_field_value_rows(shapes, tmp_path):
    result = runner.invoke(app, ["train", str(shapes), "--arch", "lenet5", "-o", str(tmp_path / "run"),
                                 "--epochs", "1", "--format", "table"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["field", "value"]
    assert any(line.split()[:2] == ["best_epoch", "1"] for line in lines)


def test_finetune_from_pretrained_weights_offline_names_the_file(bars, tmp_path, monkeypatch):
    import urllib.error

    import torch.hub

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    result = finetune(bars, "resnet18:DEFAULT", tmp_path / "tuned", "--freeze", "backbone")
    assert result.exit_code == 2
    assert "resnet18:DEFAULT" in result.stderr and "resnet18-f37072fd.pth" in result.stderr


def test_patience_stops_a_run_that_no_longer_improves(shapes, tmp_path):
    # a zero learning rate leaves the weights, and so the validation numbers, unchanged
    result = runner.invoke(app, train_args(shapes, tmp_path / "run", "--lr", "0", "--patience", "2", epochs=6))
    assert result.exit_code == 0, result.output
    [summary] = records(result)
    assert summary["stopped_early"] is True
    assert (summary["epochs"], summary["best_epoch"]) == (3, 1)
    assert "stopping early" in result.stderr
