"""Export to ONNX and TorchScript: the written file runs outside PyTorch and gives PyTorch's
outputs; the sidecar and embedded metadata describe it; a mismatch or failure writes nothing."""

from __future__ import annotations

import dataclasses
import io
import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import UsageError
from cnntool.models.export import (METADATA_KEY, TORCHSCRIPT_METADATA, _align_detections, check_export, export_model,
                                   read_sidecar, sample_inputs, sidecar_path)
from cnntool.models.loading import LoadedModel, load
from cnntool.models.registry import ModelEntry


def _loaded(model, task, input_size, classes, **pre):
    channels = input_size[0]
    preprocessing = Preprocessing(tuple(input_size), (0.5,) * channels, (0.25,) * channels, **pre)
    entry = ModelEntry(name="test_net", task=task, builder=lambda **kwargs: model, family="test",
                       preprocessing=preprocessing, num_classes=len(classes), reference_params=0)
    return LoadedModel(model=model.eval(), entry=entry, task=task, classes=list(classes),
                       preprocessing=preprocessing, source="checkpoint")


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return load("lenet5")


def test_onnx_file_gives_pytorchs_logits_with_a_dynamic_batch(lenet, tmp_path):
    path = tmp_path / "lenet.onnx"
    messages = []
    record = export_model(lenet, path, format="onnx", spec="lenet5", log=messages.append)
    assert messages == [f"exporting lenet5 (classification) to {path} ..."]
    assert record["error"] is None and record["exporter"] == "dynamo"
    assert record["input_shape"] == ["batch", 1, 32, 32] and record["opset"] >= 18
    assert 0 <= record["max_abs_diff"] < 1e-4 and record["size_bytes"] == path.stat().st_size
    session = _session(path)
    x = sample_inputs(lenet.preprocessing, task="classification", batch=5, seed=7)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = lenet.model(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta == read_sidecar(path)
    assert meta["classes"] == lenet.classes and meta["preprocessing"]["input_size"] == [1, 32, 32]
    assert meta["inputs"][0]["shape"] == ["batch", 1, 32, 32] and meta["outputs"][0]["name"] == "logits"
    assert meta["check"]["max_abs_diff"] == record["max_abs_diff"] and meta["opset"] == record["opset"]


def test_torchscript_file_runs_with_torch_jit_and_carries_its_metadata(lenet, tmp_path):
    path = tmp_path / "lenet.torchscript"
    record = export_model(lenet, path, format="torchscript")
    assert record["error"] is None and record["exporter"] == "trace" and record["max_abs_diff"] < 1e-6
    extra = {TORCHSCRIPT_METADATA: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    x = sample_inputs(lenet.preprocessing, task="classification", batch=4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(module(x), lenet.model(x))
    assert json.loads(extra[TORCHSCRIPT_METADATA])["task"] == "classification"
    assert read_sidecar(path)["format"] == "torchscript"


def test_no_dynamic_batch_and_imgsz_fix_the_input_shape(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    loaded = _loaded(model, "classification", (3, 32, 32), ["a", "b"])
    path = tmp_path / "m.onnx"
    record = export_model(loaded, path, format="onnx", dynamic_batch=False, imgsz=(24, 40))
    assert record["error"] is None and record["input_shape"] == [1, 3, 24, 40]
    assert _session(path).get_inputs()[0].shape == [1, 3, 24, 40]
    assert read_sidecar(path)["preprocessing"]["input_size"] == [3, 24, 40]


def test_an_opset_under_18_goes_through_the_legacy_exporter(lenet, tmp_path):
    record = export_model(lenet, tmp_path / "m.onnx", format="onnx", opset=13)
    assert (record["error"], record["exporter"], record["opset"]) == (None, "legacy", 13)
    assert record["max_abs_diff"] < 1e-4


class _DriftingNet(nn.Module):
    """Adds 0.01 when traced or exported: the exported graph is not what PyTorch runs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y + 0.01 if torch.jit.is_tracing() or torch.compiler.is_exporting() else y


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_outputs_over_the_tolerance_are_an_error_and_nothing_is_written(tmp_path, format):
    loaded = _loaded(_DriftingNet(), "classification", (3, 2, 2), ["a", "b", "c"])
    path = tmp_path / f"m.{format}"
    record = export_model(loaded, path, format=format)
    assert record["max_abs_diff"] == pytest.approx(0.01, abs=1e-5)
    assert "over the tolerance 0.0001" in record["error"] and record["sidecar"] is None
    assert not path.exists() and not sidecar_path(path).exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_a_model_that_cannot_run_at_the_size_is_a_one_line_error(lenet, tmp_path):
    record = export_model(lenet, tmp_path / "m.onnx", format="onnx", imgsz=64)
    assert record["error"].startswith("export failed: ") and "\n" not in record["error"]
    assert not (tmp_path / "m.onnx").exists()


class _Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        logits = self.conv(x)
        return OrderedDict(out=logits, aux=logits * 2)


class _ClipNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("task, model, size, out_shape", [
    ("segmentation", _Segmenter, (3, 16, 16), [3, 4, 16, 16]),
    ("video", _ClipNet, (3, 4, 16, 16), [3, 5]),
])
def test_segmenters_export_their_logits_and_clip_models_their_5d_input(tmp_path, task, model, size, out_shape):
    torch.manual_seed(0)
    loaded = _loaded(model(), task, size, [f"c{i}" for i in range(out_shape[1])])
    path = tmp_path / "m.onnx"
    record = export_model(loaded, path, format="onnx")
    assert record["error"] is None and record["input_shape"] == ["batch", *size]
    x = sample_inputs(loaded.preprocessing, task=task, batch=3, seed=1)
    (got,) = _session(path).run(None, {"input": x.numpy()})
    assert list(got.shape) == out_shape
    with torch.no_grad():
        want = loaded.model(x)
    want = want["out"] if isinstance(want, dict) else want
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert ("per pixel" in read_sidecar(path)["outputs"][0]["meaning"]) == (task == "segmentation")


def test_options_the_format_or_task_does_not_use_are_refused(lenet, tmp_path):
    with pytest.raises(UsageError, match="--opset does nothing for torchscript"):
        export_model(lenet, tmp_path / "m.torchscript", format="torchscript", opset=17)
    with pytest.raises(UsageError, match="does nothing for torchscript"):
        export_model(lenet, tmp_path / "m.torchscript", format="torchscript", dynamic_batch=False)
    with pytest.raises(UsageError, match="detection model"):
        export_model(dataclasses.replace(lenet, task="detection"), tmp_path / "m.onnx", dynamic_batch=True)
    with pytest.raises(UsageError, match="unknown export format 'tflite'"):
        export_model(lenet, tmp_path / "m.tflite", format="tflite")
    with pytest.raises(UsageError, match="out of range"):
        export_model(lenet, tmp_path / "m.onnx", imgsz=(4, 32))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_needs_overwrite(lenet, tmp_path):
    path = tmp_path / "m.torchscript"
    path.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="exists") as info:
        export_model(lenet, path, format="torchscript")
    assert "--overwrite" in info.value.hint and path.read_bytes() == b"keep me"
    assert export_model(lenet, path, format="torchscript", overwrite=True)["error"] is None
    assert path.read_bytes()[:2] == b"PK"  # a TorchScript zip now


def test_detections_are_paired_by_label_box_and_score_not_by_index():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 90, 90], [5, 5, 20, 30]], np.float32)
    want = {"boxes": boxes, "scores": np.full(3, 0.25, np.float32), "labels": np.array([1, 1, 2])}
    order = [2, 0, 1]  # equal scores: another runtime may list them in another order
    got = {"boxes": boxes[order] + 1e-5, "scores": want["scores"][order], "labels": want["labels"][order]}
    aligned = _align_detections(want, got)
    np.testing.assert_allclose(aligned["boxes"], boxes, atol=2e-5)
    np.testing.assert_array_equal(aligned["labels"], want["labels"])


def _fasterrcnn(size):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=4)
    return _loaded(model, "detection", size, ["__background__", "circle", "square", "triangle"],
                   resize_mode="none", normalize_in_model=True)


@pytest.mark.slow
def test_a_torchvision_detector_exports_to_onnx_for_its_image_size(tmp_path):
    loaded = _fasterrcnn((3, 240, 320))
    path = tmp_path / "det.onnx"
    record = export_model(loaded, path, format="onnx")
    assert record["error"] is None and record["exporter"] == "legacy"
    assert record["input_shape"] == [3, 240, 320] and record["max_abs_diff"] <= 1e-3
    meta = read_sidecar(path)
    assert [o["name"] for o in meta["outputs"]] == ["boxes", "labels", "scores"]
    assert meta["background_class"] == 0 and meta["classes"][0] == "__background__"
    other = sample_inputs(loaded.preprocessing, task="detection", seed=11)  # another image, same size
    check = check_export(path, loaded.model, other, format="onnx", task="detection",
                         output_names=["boxes", "labels", "scores"])
    assert check.mismatch is None and check.max_abs_diff <= 1e-3 and check.outputs["labels"] == 0
    import onnxruntime

    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        _session(path).run(None, {"image": np.zeros((3, 320, 240), np.float32)})  # the size is fixed


@pytest.mark.slow
def test_a_torchvision_detector_scripts_to_torchscript_for_any_size(tmp_path):
    loaded = _fasterrcnn((3, 160, 160))
    path = tmp_path / "det.torchscript"
    record = export_model(loaded, path, format="torchscript")
    assert record["error"] is None and record["exporter"] == "script"
    assert record["input_shape"] == [3, "height", "width"] and record["max_abs_diff"] <= 1e-3
    image = torch.rand(3, 200, 120, generator=torch.Generator().manual_seed(5))
    check = check_export(io.BytesIO(path.read_bytes()).getvalue(), loaded.model, [image], format="torchscript",
                         task="detection")
    assert check.mismatch is None and check.max_abs_diff <= 1e-3
