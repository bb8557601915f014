"""``cnntool export`` through the app: one record, the files, exit codes and refusals.

Needs ``export`` registered in ``cnntool.cli.main``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
from cnntool.models.classic import lenet5
from cnntool.models.export import sample_inputs, sidecar_path
from cnntool.models.loading import load

runner = CliRunner()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder with a trained-looking LeNet-5 checkpoint (three classes)."""
    folder = tmp_path_factory.mktemp("runs") / "lenet5-1"
    torch.manual_seed(0)
    preprocessing = Preprocessing((1, 32, 32), (0.5,), (0.5,))
    save_checkpoint(folder / "best.pt", make_checkpoint(lenet5(num_classes=3, in_channels=1), arch="lenet5",
                                                        task="classification", classes=["cat", "dog", "owl"],
                                                        preprocessing=preprocessing))
    return folder


def _invoke(*args):
    return runner.invoke(app, ["export", *map(str, args)])


def test_a_run_folder_exports_next_to_its_checkpoint_and_matches_pytorch(run_folder):
    result = _invoke(run_folder, "--format", "jsonl", "--overwrite")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    path = run_folder / "best.onnx"
    assert record["path"] == str(path) and record["format"] == "onnx" and record["task"] == "classification"
    assert record["input_shape"] == ["batch", 1, 32, 32] and record["error"] is None
    assert 0 <= record["max_abs_diff"] < 1e-4 and record["seconds"] > 0
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["classes"] == ["cat", "dog", "owl"] and meta["preprocessing"]["std"] == [0.5]
    import onnxruntime

    loaded = load(str(run_folder))
    x = sample_inputs(loaded.preprocessing, task="classification", batch=2, seed=4)
    (got,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, loaded.model(x).numpy(), atol=1e-5)
    assert "wrote" in result.stderr and "random weights" not in result.stderr


def test_the_file_name_picks_torchscript_and_an_existing_file_needs_overwrite(run_folder, tmp_path):
    target = tmp_path / "deploy" / "lenet.ts"
    result = _invoke(run_folder / "best.pt", "-o", target, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["format"] == "torchscript" and record["path"] == str(target) and target.is_file()
    assert torch.jit.load(str(target))(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
    again = _invoke(run_folder / "best.pt", "-o", target)
    assert again.exit_code == 2 and again.stdout == ""
    assert again.stderr.startswith(f"error: {target} exists\nhint: add --overwrite")
    assert _invoke(run_folder / "best.pt", "-o", target, "--overwrite").exit_code == 0


def test_a_folder_for_o_gets_the_default_name_and_random_weights_are_warned_about(tmp_path):
    result = _invoke("lenet5", "-o", tmp_path, "--to", "torchscript", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(tmp_path / "lenet5.torchscript")
    assert "random weights" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5.torchscript", "lenet5.torchscript.json"]


class _DriftingNet(torch.nn.Module):
    """Adds 0.01 when traced or exported: the exported graph is not what PyTorch runs."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1024, 3)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y + 0.01 if torch.jit.is_tracing() or torch.compiler.is_exporting() else y


def test_an_export_that_differs_from_pytorch_exits_1_with_the_record_and_no_file(run_folder, tmp_path, monkeypatch):
    import dataclasses

    import cnntool.models.loading

    real = load(str(run_folder))
    monkeypatch.setattr(cnntool.models.loading, "load",
                        lambda spec, **kwargs: dataclasses.replace(real, model=_DriftingNet().eval()))
    target = tmp_path / "m.onnx"
    result = _invoke(run_folder, "-o", target, "--format", "jsonl", "--tolerance", "0.001")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert record["max_abs_diff"] == pytest.approx(0.01, abs=1e-5) and "over the tolerance 0.001" in record["error"]
    assert "not written" in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--to", "torchscript", "--opset", "17"], "--opset does nothing for torchscript"),
    (["--to", "onnx", "-o", "m.torchscript"], "looks like a torchscript file, but --to is onnx"),
    (["--to", "tflite"], "unknown --to 'tflite'"),
    (["--imgsz", "2x2"], "bad --imgsz '2x2'"),
    (["--imgsz", "64"], "lenet5 cannot take a 1x64x64 input"),
    (["--format", "xml"], "unknown --format 'xml'"),
    (["--format", "onnx"], "use --to onnx"),
])
def test_usage_errors_exit_2_with_one_line(run_folder, tmp_path, args, message):
    result = runner.invoke(app, ["export", str(run_folder), *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "m.torchscript").exists()


def test_an_unknown_model_is_a_usage_error():
    result = _invoke("resnt18")
    assert result.exit_code == 2 and "did you mean resnet18" in result.stderr


def test_a_table_shows_the_record_as_field_value_rows(run_folder, tmp_path):
    result = _invoke(run_folder, "--to", "torchscript", "-o", tmp_path / "m.torchscript", "--format", "table")
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["field", "value"]
    assert any(row.split()[:2] == ["format", "torchscript"] for row in rows)
