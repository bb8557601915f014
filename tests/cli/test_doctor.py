"""``cnntool doctor`` through the app: one record per check, what it finds, and the exit code.

Needs ``doctor`` registered in ``cnntool.cli.main``."""

from __future__ import annotations

import json
import sys

import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.loaders import usable_cores
from cnntool.models.registry import cached_weights_path, get_entry

runner = CliRunner()


def _records(*args):
    result = runner.invoke(app, ["doctor", "--format", "jsonl", *args])
    return result, {r["check"]: r for r in map(json.loads, result.stdout.splitlines())}


def test_every_check_is_a_record_and_a_healthy_install_exits_0():
    result, records = _records()
    assert result.exit_code == 0, result.output
    for check in ("cnntool", "python", "numpy", "torch", "torchvision", "opencv", "pyav", "timm", "onnx",
                  "onnxruntime", "cuda", "mps", "cpu cores", "torch threads", "torch hub cache",
                  "pretrained weights", "hugging face cache", "audit cache", "libx264", "headless browser"):
        assert check in records, check
    assert all(list(r) == ["check", "value", "ok", "required", "detail"] for r in records.values())
    assert records["torch"]["value"] == torch.__version__ and records["torch"]["required"] is True
    assert records["cpu cores"]["value"] == usable_cores()
    assert records["torch threads"]["value"] == torch.get_num_threads()
    assert records["cuda"]["value"] == ("not available" if not torch.cuda.is_available()
                                        else f"{torch.cuda.device_count()} device"
                                             + ("s" if torch.cuda.device_count() != 1 else ""))
    assert records["torch hub cache"]["value"] == torch.hub.get_dir()


def test_caches_and_the_weights_present_there_are_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNTOOL_CACHE_DIR", str(tmp_path / "audit"))
    cached = cached_weights_path(get_entry("resnet18"), "IMAGENET1K_V1")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not really weights: doctor only looks")
    result, records = _records()
    assert result.exit_code == 0, result.output
    assert records["pretrained weights"]["value"] == "resnet18:IMAGENET1K_V1"
    assert records["torch hub cache"]["value"] == str(tmp_path / "torch" / "hub")
    assert records["audit cache"]["value"] == str(tmp_path / "audit")
    assert records["audit cache"]["detail"] == "not created yet"
    assert f"TORCH_HOME={tmp_path / 'torch'}" in records["environment"]["value"]


def test_torch_failing_to_import_fails_the_required_check_and_exits_1(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    result, records = _records()
    assert result.exit_code == 1
    torch_record = records["torch"]
    assert torch_record["ok"] is False and torch_record["value"].endswith("(broken)")
    assert "import torch fails" in torch_record["detail"]
    assert records["cuda"]["ok"] is False and records["numpy"]["ok"] is True
    assert "torch broken" in result.stderr


def test_the_table_has_one_row_per_check():
    result = runner.invoke(app, ["doctor", "--format", "table"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["check", "value", "ok", "required", "detail"]
    assert any(line.split()[:2] == ["torch", torch.__version__] for line in lines[1:])
