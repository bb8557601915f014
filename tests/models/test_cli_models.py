"""``cnntool models list|info|summary`` through the CLI: records, published totals, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cnntool.data.preprocessing import Preprocessing
from cnntool.cli.main import app
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
from cnntool.models.registry import get_entry, list_models


def records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def run(runner, *args):
    return runner.invoke(app, ["models", *args])


def summary_records(runner, *args):
    result = run(runner, "summary", *args, "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    rows = records(result.stdout)
    assert rows[-1]["layer"] == "(total)"
    return rows[:-1], rows[-1]


@pytest.fixture
def lenet_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = get_entry("lenet5").build(num_classes=3)
    path = tmp_path / "digits.pt"
    save_checkpoint(path, make_checkpoint(
        model, arch="lenet5", task="classification", classes=["a", "b", "c"], preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,)), config={"epochs": 2, "lr": 0.1}, metrics={"val_acc": 0.9}, epoch=2,
    ))
    return path


def test_list_gives_one_record_per_entry(runner):
    result = run(runner, "list", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    rows = records(result.stdout)
    assert [r["name"] for r in rows] == [e.name for e in list_models()]
    by_name = {r["name"]: r for r in rows}
    assert set(by_name["alexnet"]) == {"name", "task", "family", "params", "input_size", "weights", "description"}
    assert by_name["alexnet"]["params"] == 61_100_840
    assert by_name["vgg16"]["params"] == 138_357_544
    assert by_name["lenet5"] == {**by_name["lenet5"], "params": 61_706, "input_size": "1x32x32", "weights": []}
    assert by_name["resnet50"]["weights"] == ["IMAGENET1K_V1", "IMAGENET1K_V2"]
    assert by_name["simple_cnn"]["input_size"] == "3x64x64"


def test_list_filters_by_task(runner):
    result = run(runner, "list", "--task", "classification", "--format", "jsonl")
    assert result.exit_code == 0
    assert len(records(result.stdout)) == len(list_models("classification"))
    result = run(runner, "list", "--task", "video", "--format", "jsonl")
    assert result.exit_code == 0
    rows = records(result.stdout)
    assert len(rows) == len(list_models("video")) and all(r["task"] == "video" for r in rows)
    result = run(runner, "list", "--task", "regression")
    assert result.exit_code == 2
    assert "unknown task" in result.stderr and "classification" in result.stderr


@pytest.mark.parametrize(("name", "total"), [
    ("alexnet", 61_100_840), ("vgg16", 138_357_544), ("resnet18", 11_689_512), ("lenet5", 61_706),
])
def test_summary_totals_match_published_figures(runner, name, total):
    rows, totals = summary_records(runner, name)
    assert totals["params"] == totals["trainable_params"] == total
    assert totals["output_shape"] == str(get_entry(name).num_classes)


def test_summary_lenet5_shows_the_lecture_table(runner):
    rows, totals = summary_records(runner, "lenet5")
    shapes = [(r["type"], r["output_shape"]) for r in rows]
    assert shapes == [
        ("Conv2d", "6x28x28"), ("Tanh", "6x28x28"),        # C1
        ("AvgPool2d", "6x14x14"),                          # S2
        ("Conv2d", "16x10x10"), ("Tanh", "16x10x10"),      # C3
        ("AvgPool2d", "16x5x5"),                           # S4
        ("Conv2d", "120x1x1"), ("Tanh", "120x1x1"),        # C5
        ("Flatten", "120"),
        ("Linear", "84"), ("Tanh", "84"),                  # F6
        ("Linear", "10"),                                  # output
    ]
    assert [r["params"] for r in rows if r["params"]] == [156, 2416, 48120, 10164, 850]
    assert sum(r["params"] for r in rows) == totals["params"] == 61_706
    assert rows[0]["kernel"] == "5x5" and rows[0]["stride"] == "1x1"
    assert rows[2]["kernel"] == "2x2" and rows[2]["stride"] == "2x2"
    assert totals["input_size"] == "1x32x32"


def test_summary_depth_limits_nesting(runner):
    rows, totals = summary_records(runner, "resnet18", "--depth", "1")
    assert [r["layer"] for r in rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                                         "layer4", "avgpool", "fc"]
    assert rows[7]["output_shape"] == "512x7x7"
    assert sum(r["params"] for r in rows) == totals["params"] == 11_689_512
    deep, _ = summary_records(runner, "resnet18")
    assert "layer4.1.conv2" in [r["layer"] for r in deep]


def test_summary_with_another_input(runner):
    rows, totals = summary_records(runner, "resnet18", "--input", "1x64x64")
    assert rows[0]["layer"] == "conv1" and rows[0]["output_shape"] == "64x32x32"
    assert rows[0]["params"] == 64 * 1 * 7 * 7
    assert totals["input_size"] == "1x64x64"
    rows, _ = summary_records(runner, "simple_cnn", "--input", "100x37")
    assert rows[-1]["output_shape"] == "10"


def test_summary_table_prints_the_totals_line_on_stderr(runner):
    result = run(runner, "summary", "alexnet", "--format", "table")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["layer", "type", "output_shape", "params"]
    assert lines[-1].split()[:4] == ["(total)", "AlexNet", "1000", "61100840"]  # records only on stdout
    assert result.stderr.splitlines()[-1].startswith("total params: 61,100,840  trainable: 61,100,840")


def test_summary_of_a_checkpoint_uses_its_classes(runner, lenet_checkpoint):
    rows, totals = summary_records(runner, str(lenet_checkpoint))
    assert totals["output_shape"] == "3"
    assert totals["params"] == 61_706 - 7 * 85  # a 3-way head instead of 10


@pytest.mark.parametrize("bad", ["abc", "3x", "0x32x32", "1x2x3x4"])
def test_bad_input_size_exits_2_with_a_hint(runner, bad):
    result = run(runner, "summary", "lenet5", "--input", bad)
    assert result.exit_code == 2
    assert "error:" in result.stderr and "hint:" in result.stderr
    assert result.stdout == ""


def test_input_too_small_exits_2(runner):
    result = run(runner, "summary", "alexnet", "--input", "3x16x16")
    assert result.exit_code == 2
    assert "alexnet cannot take a 3x16x16 input" in result.stderr
    assert "3x224x224" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["info", "summary"])
def test_unknown_model_exits_2_with_suggestions(runner, command):
    result = run(runner, command, "resnet5")
    assert result.exit_code == 2
    assert "unknown model 'resnet5'" in result.stderr
    assert "resnet50" in result.stderr
    assert result.stdout == ""


def test_info_has_every_entry_field(runner):
    result = run(runner, "info", "vgg16", "--format", "jsonl")
    assert result.exit_code == 0
    [record] = records(result.stdout)
    assert record["name"] == "vgg16" and record["params"] == record["reference_params"] == 138_357_544
    assert record["head"] == "classifier.6" and record["cam_layer"] == "features"
    assert record["first_conv"] == "features.0" and record["input_size"] == "3x224x224"
    assert record["mean"] == pytest.approx([0.485, 0.456, 0.406]) and record["resize_size"] == 256
    assert record["weights"] == ["IMAGENET1K_V1"] and record["default_weights"] == "IMAGENET1K_V1"
    assert record["builder"] == "torchvision.models:vgg16"


def test_info_with_weights_shows_the_file_and_its_transform(runner, torch_home):
    result = run(runner, "info", "resnet50:DEFAULT", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    [record] = records(result.stdout)
    assert record["weights_name"] == "IMAGENET1K_V2"
    assert record["url"].endswith("/resnet50-11ad3fa6.pth")
    assert record["cache_path"] == str(torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth")
    assert record["cached"] is False and record["weights_cached"] == []
    assert record["resize_size"] == 232 and record["categories"] == 1000
    assert record["metrics"]["ImageNet-1K"]["acc@1"] == pytest.approx(80.858)


def test_info_of_a_checkpoint_shows_its_metadata(runner, lenet_checkpoint):
    result = run(runner, "info", str(lenet_checkpoint), "--format", "jsonl")
    assert result.exit_code == 0
    [record] = records(result.stdout)
    assert record["path"] == str(lenet_checkpoint)
    assert record["arch"] == "lenet5" and record["task"] == "classification"
    assert record["classes"] == ["a", "b", "c"] and record["num_classes"] == 3
    assert record["metrics"] == {"val_acc": 0.9} and record["config"] == {"epochs": 2, "lr": 0.1}
    assert record["epoch"] == 2 and record["input_size"] == "1x32x32"
    assert record["params"] == 61_706 - 7 * 85


def test_info_of_a_bad_checkpoint_exits_2(runner, tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"junk")
    result = run(runner, "info", str(path))
    assert result.exit_code == 2
    assert "not a cnntool checkpoint" in result.stderr


def test_info_table_is_field_value_rows(runner):
    result = run(runner, "info", "lenet5", "--format", "table")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["field", "value"]
    assert "cam_layer" in {line.split()[0] for line in lines[1:]}


def test_models_help_imports_no_torch():
    code = ("import sys; from cnntool.cli.main import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['models', '--help']); "
            "assert r.exit_code == 0, r.output; assert 'summary' in r.stdout; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _sizes(rows) -> list[tuple[int, int, int]]:
    """The (channels, height, width) after each layer, runs of one size kept once."""
    shapes = [tuple(int(v) for v in r["output_shape"].split("x")) for r in rows if r["output_shape"].count("x") == 2]
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


def test_summary_unet_shows_the_shapes_going_down_and_up(runner, tmp_path):
    rows, totals = summary_records(runner, "unet", "--input", "3x32x32")
    heights = [h for _, h, _ in _sizes(rows)]
    sides = [h for i, h in enumerate(heights) if i == 0 or h != heights[i - 1]]
    assert sides == [32, 16, 8, 4, 8, 16, 32]  # three 2x2 poolings down, three transposed convolutions up
    assert [r["output_shape"] for r in rows if r["type"] == "ConvTranspose2d"] == ["64x8x8", "32x16x16", "16x32x32"]
    assert [r["output_shape"] for r in rows if r["type"] == "MaxPool2d"] == ["16x16x16", "32x8x8", "64x4x4"]
    assert totals["output_shape"] == "4x32x32" and totals["params"] == 482_788
    # a smaller U-Net (a checkpoint's arch_kwargs: width 4) at another input size
    rows, totals = summary_records(runner, str(unet_checkpoint(tmp_path, width=4)))
    assert _sizes(rows) == [(4, 24, 40), (4, 12, 20), (8, 12, 20), (8, 6, 10), (16, 6, 10), (16, 3, 5), (32, 3, 5),
                            (16, 6, 10), (8, 12, 20), (4, 24, 40), (3, 24, 40)]
    assert totals["output_shape"] == "3x24x40" and totals["input_size"] == "3x24x40"


def unet_checkpoint(tmp_path, **arch_kwargs):
    from cnntool.models.unet import unet

    path = tmp_path / "unet.pt"
    save_checkpoint(path, make_checkpoint(unet(num_classes=3, **arch_kwargs), arch="unet", task="segmentation",
                                          classes=["bg", "a", "b"], arch_kwargs=arch_kwargs,
                                          preprocessing=Preprocessing((3, 24, 40), (0.5,) * 3, (0.5,) * 3)))
    return path


def test_summary_of_a_unet_checkpoint_with_its_own_depth(runner, tmp_path):
    rows, totals = summary_records(runner, str(unet_checkpoint(tmp_path, depth=2, width=4)), "--depth", "2")
    assert [r["output_shape"] for r in rows if r["type"] == "ConvTranspose2d"] == ["8x12x20", "4x24x40"]
    assert totals["output_shape"] == "3x24x40"
