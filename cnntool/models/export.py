"""Exporting a model for deployment: ONNX or TorchScript, checked against PyTorch, with a sidecar.

:func:`export_model` turns a :class:`~cnntool.models.loading.LoadedModel` into one file a
deployer can run without cnntool, runs that file once on seeded inputs next to the PyTorch
model (:func:`check_export`: onnxruntime for ONNX, ``torch.jit.load`` for TorchScript) and
writes it only when the two agree within a tolerance. Next to the model goes a sidecar JSON
(``resnet18.onnx.json``, :func:`sidecar_path`) with what the deployer needs: the task, the class
names, the :class:`~cnntool.data.preprocessing.Preprocessing`, the input and output names and
shapes, the opset, and the difference measured. The same metadata is embedded in the file
itself (ONNX ``metadata_props["cnntool"]``, TorchScript extra file ``cnntool.json``).

What each task's exported model takes and gives:

==============  ==================================  =============================================
task            input                               outputs
==============  ==================================  =============================================
classification  ``input`` float (N, C, H, W),       ``logits`` (N, K)
                normalised as ``preprocessing``
video           ``input`` float (N, C, T, H, W)     ``logits`` (N, K)
segmentation    ``input`` float (N, C, H, W)        ``logits`` (N, K, H, W) (a dict's ``out``)
detection       ``image`` float (C, H, W) in        ``boxes`` (D, 4) x1, y1, x2, y2 in input
                [0, 1], one image                   pixels, ``labels`` (D,) indexing ``classes``
                                                    (0: background), ``scores`` (D,)
==============  ==================================  =============================================

N is dynamic by default (``dynamic_batch``). ONNX goes through PyTorch's ``torch.export``-based
exporter (``dynamo``), and through its TorchScript-based one (``legacy``) for detection models
(measured: torchvision's Faster R-CNN exports only that way), for opsets under 18 (which
``dynamo`` cannot write) and when ``dynamo`` fails. The legacy exporter traces a detector at one
image size (measured: the Faster R-CNN graph gives boxes off by 266 px at another size), so an
ONNX detector takes exactly the exported (H, W). TorchScript traces tensor models and scripts
detectors (which then take any image size).

Examples
--------
>>> import tempfile
>>> from cnntool.models.loading import load
>>> folder = tempfile.mkdtemp()
>>> record = export_model(load("lenet5"), f"{folder}/lenet5.torchscript", format="torchscript")
>>> record["input_shape"], record["max_abs_diff"] < 1e-4, record["error"]
(['batch', 1, 32, 32], True, None)
>>> meta = read_sidecar(f"{folder}/lenet5.torchscript")
>>> meta["task"], meta["inputs"][0]["name"], meta["preprocessing"]["mean"], len(meta["classes"])
('classification', 'input', [0.5], 10)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnntool.errors import UsageError, one_line, unknown_choice

#: Export formats, with the file extension each gets by default.
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".torchscript"}
EXPORT_FORMATS = tuple(EXTENSIONS)

#: The largest difference from PyTorch an export may show, by task. Logits are O(10), so
#: float32 rounding is O(1e-6); detection boxes are pixels (O(1000)), their rounding O(1e-4).
DEFAULT_TOLERANCE = {"classification": 1e-4, "video": 1e-4, "segmentation": 1e-4, "detection": 1e-3}

#: Where the sidecar goes: the model's file name plus this.
SIDECAR_SUFFIX = ".json"

#: The lowest opset PyTorch's ``dynamo`` exporter writes; lower ones go through ``legacy``.
DYNAMO_MIN_OPSET = 18

#: Batch of the example a dynamic-batch model is exported with (``torch.export`` specialises 0
#: and 1), and of the check (another size, so a batch baked into the graph shows).
EXPORT_BATCH, CHECK_BATCH = 2, 3

#: Name of the embedded metadata (ONNX metadata_props key; TorchScript extra file).
METADATA_KEY = "cnntool"
TORCHSCRIPT_METADATA = "cnntool.json"

#: Input sides ``imgsz`` may give.
MIN_SIDE, MAX_SIDE = 8, 4096


def default_tolerance(task: str) -> float:
    """The largest difference from PyTorch an export of a ``task`` model may show.

    Examples
    --------
    >>> default_tolerance("classification"), default_tolerance("detection")
    (0.0001, 0.001)
    """
    return DEFAULT_TOLERANCE.get(task, 1e-4)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar JSON of an exported model: its file name plus ``.json``.

    Examples
    --------
    >>> str(sidecar_path("out/resnet18.onnx"))
    'out/resnet18.onnx.json'
    """
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: str | os.PathLike) -> dict:
    """The sidecar written next to the exported model ``path``."""
    with open(sidecar_path(path), encoding="utf-8") as f:
        return json.load(f)


def parse_opset(opset: int | None) -> int | None:
    """Check an ONNX opset: 7 up to the newest the installed ``onnx`` knows.

    Examples
    --------
    >>> parse_opset(17), parse_opset(None)
    (17, None)
    """
    if opset is None:
        return None
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise UsageError(f"--opset {opset} is out of range", hint=f"ONNX opsets 7 to {newest} (default: PyTorch's)")
    return opset


@dataclass
class Exported:
    """A model exported to bytes (``data``), before it is checked and written: the ``exporter``
    (``dynamo``/``legacy`` for ONNX, ``trace``/``script`` for TorchScript), input and output
    names, one input's shape (``"batch"``, ``"height"``, ``"width"`` for dynamic sides), the
    ``opset`` written (None for TorchScript), the export's ``seconds``, and ``notes`` (why
    another exporter was used)."""

    data: bytes
    exporter: str
    input_names: list[str]
    output_names: list[str]
    input_shape: list
    opset: int | None
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportCheck:
    """What :func:`check_export` measured: the largest absolute difference over all outputs
    (``inf`` on a ``mismatch``), each output's (``outputs``: name -> difference), why the outputs
    cannot be compared (``mismatch``: another shape, say a detector that found another number
    of boxes; else None), the ``runtime`` that ran the export, the seeded ``input_shape``, the
    ``seconds`` the check took, and ``scale``: PyTorch's largest absolute output, against which
    the difference means something (random-weights MobileNets give logits of 1e-10), and a
    ``note`` on a detector whose scores tie (which of equal scores are kept is arbitrary)."""

    max_abs_diff: float
    outputs: dict
    mismatch: str | None
    runtime: str
    input_shape: list
    seconds: float
    scale: float = 0.0
    note: str | None = None


def export_model(loaded, path: str | os.PathLike, *, format: str = "onnx", imgsz: tuple[int, int] | int | None = None,
                 opset: int | None = None, dynamic_batch: bool | None = None, tolerance: float | None = None,
                 seed: int = 0, overwrite: bool = False, spec: str | None = None, log=None) -> dict:
    """Export ``loaded`` to ``path``, check it against PyTorch, write it and its sidecar.

    Parameters
    ----------
    loaded : LoadedModel
        From :func:`cnntool.models.loading.load`, on the CPU, in eval mode.
    path : path-like
        The file to write; its sidecar is :func:`sidecar_path` of it.
    format : {"onnx", "torchscript"}
    imgsz : int or (int, int), optional
        The input (H, W) [default: the model's ``preprocessing.size``]; the sidecar's
        preprocessing says the same size.
    opset : int, optional
        ONNX only: the operator set [default: PyTorch's].
    dynamic_batch : bool, optional
        ONNX tensor models only: a dynamic batch axis (default) or a batch of one.
    tolerance : float, optional
        The largest difference from PyTorch accepted [default: :func:`default_tolerance`].
    seed : int
        Seeds the check's inputs.
    overwrite : bool
        Replace an existing file (and sidecar).
    spec : str, optional
        What the model was loaded from, for the sidecar (default: the entry's name).
    log : callable, optional
        Called with one line when the export starts (after the options are checked), and with
        the reason when the ``dynamo`` exporter failed and the ``legacy`` one was used.

    Returns
    -------
    dict
        The record: ``path``, ``format``, ``task``, ``model``, ``exporter``, ``input_shape``,
        ``opset``, ``max_abs_diff``, ``tolerance``, ``seconds`` (the export), ``check_seconds``,
        ``size_bytes``, ``sidecar``, ``error``. When the export fails or the exported model
        differs from PyTorch by more than ``tolerance``, ``error`` says why and nothing is
        written.

    Raises
    ------
    UsageError
        An unknown format, an option the format or task does not use, an existing ``path``
        without ``overwrite``, a model not on the CPU, onnx/onnxruntime missing.
    """
    if format not in EXTENSIONS:
        raise unknown_choice("export format", format, EXPORT_FORMATS)
    task = loaded.task
    if task not in DEFAULT_TOLERANCE:
        raise UsageError(f"exporting {task} models is not supported", hint="export classification, segmentation, "
                                                                          "video or detection models")
    _check_options(format, task, opset, dynamic_batch)
    dynamic_batch = task != "detection" and dynamic_batch is not False  # TorchScript: traced for any batch
    opset = parse_opset(opset) if format == "onnx" else None
    tolerance = default_tolerance(task) if tolerance is None else float(tolerance)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise UsageError(f"the tolerance must be a number >= 0, not {tolerance}")
    path, sidecar = Path(path), sidecar_path(path)
    for target in (path, sidecar):
        if target.exists() and not overwrite:
            raise UsageError(f"{target} exists", hint="add --overwrite to replace it, or give another -o FILE")
    if format == "onnx":
        _require_onnx()
    if any(p.device.type != "cpu" for p in loaded.model.parameters()):
        raise UsageError("export a model loaded on the CPU", hint='load(spec, device="cpu")')
    preprocessing = loaded.preprocessing if imgsz is None else loaded.preprocessing.with_size(_side_pair(imgsz))
    record = {"path": str(path), "format": format, "task": task, "model": spec or loaded.entry.name,
              "exporter": None, "input_shape": None, "opset": None, "max_abs_diff": None, "tolerance": tolerance,
              "seconds": None, "check_seconds": None, "size_bytes": None, "sidecar": None, "error": None}
    model = _exportable(loaded.model, task)
    if log is not None:
        log(f"exporting {record['model']} ({task}) to {path} ...")
    try:
        exported = export_bytes(model, preprocessing, task=task, format=format, opset=opset,
                                dynamic_batch=dynamic_batch)
    except Exception as exc:  # the exporters raise anything: one line for the record
        return {**record, "error": f"export failed: {one_line(exc)}"}
    record.update(exporter=exported.exporter, input_shape=exported.input_shape, opset=exported.opset,
                  seconds=round(exported.seconds, 3), size_bytes=len(exported.data))
    for note in exported.notes if log is not None else ():
        log(note)
    inputs = sample_inputs(preprocessing, task=task, batch=CHECK_BATCH if dynamic_batch else 1, seed=seed)
    try:
        check = check_export(exported.data, model, inputs, format=format, task=task,
                             output_names=exported.output_names)
    except Exception as exc:  # the runtime cannot load or run what the exporter wrote
        return {**record, "error": f"the exported model does not run: {one_line(exc)}"}
    record.update(max_abs_diff=check.max_abs_diff if math.isfinite(check.max_abs_diff) else None,
                  check_seconds=round(check.seconds, 3))
    note = f"; {check.note}" if check.note else ""
    if check.mismatch:
        return {**record, "error": f"the exported model's outputs differ from PyTorch's: {check.mismatch}{note}"}
    if check.max_abs_diff > tolerance:
        worst = max(check.outputs, key=check.outputs.get)
        return {**record, "error": f"the exported model differs from PyTorch by {check.max_abs_diff:.3g} "
                                   f"(output {worst}), over the tolerance {tolerance:g}{note}"}
    if log is not None and check.scale == 0:
        log("note: PyTorch's outputs were all zero or empty (random weights?), so the check compared nothing")
    meta = sidecar_metadata(loaded, preprocessing, exported, check, format=format, tolerance=tolerance, seed=seed,
                            dynamic_batch=dynamic_batch, spec=record["model"], file=path.name)
    from cnntool.data.writers import atomic_write_bytes, atomic_write_json

    atomic_write_bytes(path, _embed_metadata(exported.data, meta, format))
    atomic_write_json(sidecar, meta)
    return {**record, "size_bytes": path.stat().st_size, "sidecar": str(sidecar)}


def _check_options(format: str, task: str, opset, dynamic_batch) -> None:
    if format == "torchscript" and opset is not None:
        raise UsageError("--opset does nothing for torchscript", hint="leave it out, or export --format onnx")
    if format == "torchscript" and dynamic_batch is not None:
        raise UsageError("--dynamic-batch/--no-dynamic-batch does nothing for torchscript",
                         hint="a TorchScript model takes any batch (the check runs a batch of "
                              f"{CHECK_BATCH}); leave the option out")
    if task == "detection" and dynamic_batch is not None:
        raise UsageError("--dynamic-batch/--no-dynamic-batch does nothing for a detection model",
                         hint="an exported detector takes one image; leave the option out")


def _side_pair(imgsz) -> tuple[int, int]:
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    if not (MIN_SIDE <= min(height, width) and max(height, width) <= MAX_SIDE):
        raise UsageError(f"--imgsz {height}x{width} is out of range",
                         hint=f"sides from {MIN_SIDE} to {MAX_SIDE} pixels, e.g. 224")
    return height, width


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"ONNX export needs onnx and onnxruntime: {one_line(exc)}",
                         hint="pip install onnx onnxruntime onnxscript, or export --format torchscript") from None


def _exportable(model, task: str):
    """The module to export: a segmenter's dict output reduced to its logits (``out``)."""
    if task != "segmentation":
        return model
    import torch

    from cnntool.models.tasks import dense_logits

    class DenseLogits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return dense_logits(self.inner(x))

    return DenseLogits(model).eval()


def sample_inputs(preprocessing, *, task: str, batch: int = 1, seed: int = 0):
    """Seeded inputs as the model sees them: uniform pixels in [0, 1], normalised by
    ``preprocessing`` (unless the model normalises itself). A (batch, *input_size) tensor, or
    for detection a list of one (C, H, W) image.

    Examples
    --------
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> x = sample_inputs(Preprocessing((1, 8, 8), (0.5,), (0.5,)), task="classification", batch=2)
    >>> tuple(x.shape), bool(x.min() >= -1 and x.max() <= 1)
    ((2, 1, 8, 8), True)
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    size = tuple(preprocessing.model_input_size)  # a flow model's clips carry 2 flow channels more
    x = torch.rand((1 if task == "detection" else batch, *size), generator=generator)
    mean, std = preprocessing.scale_and_offset()
    shape = (1, -1) + (1,) * (len(size) - 1)
    x = (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    return [x[0]] if task == "detection" else x


def export_bytes(model, preprocessing, *, task: str, format: str, opset: int | None = None,
                 dynamic_batch: bool = True) -> Exported:
    """Export ``model`` (eval mode, CPU) to the bytes of an ONNX or TorchScript file.

    Silent: the exporters' warnings and messages are swallowed (they go to stdout, where only
    records belong). Raises whatever the exporter raises when the model cannot be exported.
    """
    import torch

    example = sample_inputs(preprocessing, task=task, batch=EXPORT_BATCH if dynamic_batch else 1, seed=0)
    with torch.no_grad():
        reference = model(example)
    output_names = [str(k) for k in reference[0]] if task == "detection" else ["logits"]
    input_names = ["image" if task == "detection" else "input"]
    start = time.perf_counter()
    with _quiet():
        if format == "torchscript":
            data, exporter = _torchscript(model, example, task)
            opset_written = None  # a scripted detector takes any size, a traced model any batch
            shape = [preprocessing.channels, "height", "width"] if task == "detection" else \
                ["batch", *preprocessing.model_input_size]
            notes = []
        else:
            data, exporter, notes = _onnx(model, example, task=task, opset=opset, dynamic_batch=dynamic_batch,
                                          input_names=input_names, output_names=output_names)
            opset_written = _onnx_opset(data)
            shape = list(preprocessing.input_size) if task == "detection" else \
                ["batch" if dynamic_batch else 1, *preprocessing.model_input_size]
    seconds = time.perf_counter() - start
    if format == "onnx" and opset is not None and opset_written != opset:
        raise RuntimeError(f"asked for opset {opset}, the exporter wrote opset {opset_written}")
    return Exported(data, exporter, input_names, output_names, shape, opset_written, seconds, notes)


@contextlib.contextmanager
def _quiet():
    """No warnings, log lines or prints from the exporters (TracerWarnings, deprecations,
    ``[torch.onnx] ...`` progress)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _torchscript(model, example, task: str) -> tuple[bytes, str]:
    import torch

    if task == "detection":  # lists of images in, dicts out: only scripting keeps them
        module, exporter = torch.jit.script(model), "script"
    else:
        module, exporter = torch.jit.trace(model, example, check_trace=False), "trace"
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue(), exporter


def _onnx(model, example, *, task: str, opset: int | None, dynamic_batch: bool, input_names: list[str],
          output_names: list[str]) -> tuple[bytes, str, list[str]]:
    notes: list[str] = []
    if task != "detection" and (opset is None or opset >= DYNAMO_MIN_OPSET):
        try:
            return _onnx_dynamo(model, example, opset=opset, dynamic_batch=dynamic_batch, input_names=input_names,
                                output_names=output_names), "dynamo", notes
        except Exception as exc:  # noqa: BLE001 - the legacy exporter may still manage
            notes.append(f"the dynamo exporter failed ({one_line(exc, limit=200)}); used the legacy one")
    return _onnx_legacy(model, example, task=task, opset=opset, dynamic_batch=dynamic_batch,
                        input_names=input_names, output_names=output_names), "legacy", notes


def _onnx_dynamo(model, example, *, opset, dynamic_batch, input_names, output_names) -> bytes:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, opset_version=opset,
                                input_names=input_names, output_names=output_names, dynamic_shapes=dynamic_shapes,
                                external_data=False)
    return program.model_proto.SerializeToString()


def _onnx_legacy(model, example, *, task, opset, dynamic_batch, input_names, output_names) -> bytes:
    import torch

    if task == "detection":
        args = ([example[0]],) if isinstance(example, list) else (example,)
        dynamic_axes = {name: {0: "detections"} for name in output_names}
    else:
        args = (example,)
        dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)} if dynamic_batch else None
    buffer = io.BytesIO()
    torch.onnx.export(model, args, buffer, dynamo=False, verbose=False, opset_version=opset,
                      input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes)
    return buffer.getvalue()


def _onnx_opset(data: bytes) -> int:
    import onnx

    proto = onnx.load_from_string(data)
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def check_export(data: bytes | str | os.PathLike, model, inputs, *, format: str, task: str,
                 output_names: list[str] | None = None) -> ExportCheck:
    """Run an exported model and the PyTorch ``model`` on the same ``inputs``; compare.

    Parameters
    ----------
    data : bytes or path-like
        The exported file (or its content).
    model : torch.nn.Module
        The PyTorch model it was exported from (eval mode, CPU).
    inputs : torch.Tensor or list of torch.Tensor
        A batch, or for detection a list of one image (see :func:`sample_inputs`).
    format : {"onnx", "torchscript"}
    task : str
    output_names : list of str, optional
        The exported outputs' names, in order [default: ``logits``, or the detector's keys].

    Returns
    -------
    ExportCheck

    Examples
    --------
    >>> import torch
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()).eval()
    >>> pre = Preprocessing((1, 5, 5), (0.5,), (0.5,))
    >>> exported = export_bytes(model, pre, task="classification", format="torchscript")
    >>> x = sample_inputs(pre, task="classification", batch=3, seed=1)
    >>> check = check_export(exported.data, model, x, format="torchscript", task="classification")
    >>> check.max_abs_diff, check.outputs, check.mismatch
    (0.0, {'logits': 0.0}, None)
    """
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        reference = _as_arrays(model(inputs), task, output_names)
    names = output_names or list(reference)
    if format == "onnx":
        actual, runtime = _run_onnx(data, inputs, names)
    else:
        actual, runtime = _run_torchscript(data, inputs, task, names)
    if task == "detection":
        actual = _align_detections(reference, actual)
    diffs: dict[str, float] = {}
    mismatch = None
    for name in names:
        want, got = reference.get(name), actual.get(name)
        if want is None or got is None:
            mismatch = f"output {name} is missing"
            break
        if want.shape != got.shape:
            mismatch = f"output {name} has shape {list(got.shape)}, PyTorch's {list(want.shape)}"
            break
        diffs[name] = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
    worst = math.inf if mismatch else max(diffs.values(), default=0.0)
    scale = max((float(np.abs(v).max()) for v in reference.values() if v.size), default=0.0)
    scores = reference.get("scores") if task == "detection" else None
    note = None
    if scores is not None and len(np.unique(scores)) < len(scores):
        note = (f"PyTorch's {len(scores)} detections have {len(np.unique(scores))} distinct scores, and which of "
                "equal scores a runtime keeps is arbitrary (random weights?)")
    return ExportCheck(worst, diffs, mismatch, runtime, _shape(inputs), time.perf_counter() - start, scale, note)


def _align_detections(want: dict, got: dict) -> dict:
    """``got``'s detections reordered to pair one to one with ``want``'s (same label, nearest box
    and score): detectors order equal scores arbitrarily, and a random-weights Faster R-CNN
    gives 100 equal scores (measured: boxes then 277 px apart in index order)."""
    from scipy.optimize import linear_sum_assignment

    boxes, other = want.get("boxes"), got.get("boxes")
    if boxes is None or other is None or boxes.shape != other.shape or not len(boxes):
        return got
    cost = np.abs(boxes[:, None, :].astype(np.float64) - other[None, :, :]).max(axis=-1)
    if "scores" in want and "scores" in got:
        cost = np.maximum(cost, np.abs(want["scores"][:, None].astype(np.float64) - got["scores"][None, :]))
    if "labels" in want and "labels" in got:
        cost += 1e9 * (want["labels"][:, None] != got["labels"][None, :])
    rows, cols = linear_sum_assignment(cost)
    order = cols[np.argsort(rows)]
    return {k: v[order] if v.ndim and v.shape[0] == len(order) else v for k, v in got.items()}


def _shape(inputs) -> list:
    first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    return [int(n) for n in first.shape]


def _as_arrays(output, task: str, names: list[str] | None) -> dict:
    """A model's output as name -> numpy array (a detector's first image; a TorchScript
    detector's ``(losses, detections)`` tuple unpacked)."""
    if task == "detection":
        if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], list):
            output = output[1]
        return {str(k): v.detach().cpu().numpy() for k, v in output[0].items()}
    if isinstance(output, dict):  # a segmenter not wrapped by _exportable
        from cnntool.models.tasks import dense_logits

        output = dense_logits(output)
    return {(names or ["logits"])[0]: output.detach().cpu().numpy()}


def _run_onnx(data, inputs, names: list[str]) -> tuple[dict, str]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # nothing on stderr: a failed run raises with the reason
    source = data if isinstance(data, bytes) else str(data)
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    feed = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    outputs = session.run(None, feed)  # in the order the outputs were named at export
    return dict(zip(names, outputs)), f"onnxruntime {onnxruntime.__version__}"


def _run_torchscript(data, inputs, task: str, names: list[str]) -> tuple[dict, str]:
    import torch

    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(source, map_location="cpu")
        with torch.no_grad():
            output = module(inputs)
    return _as_arrays(output, task, names), f"torch.jit {torch.__version__}"


def _embed_metadata(data: bytes, meta: dict, format: str) -> bytes:
    """The exported bytes with the sidecar's metadata inside (compute unchanged)."""
    text = json.dumps(meta, ensure_ascii=False)
    if format == "onnx":
        import onnx

        proto = onnx.load_from_string(data)
        onnx.helper.set_model_props(proto, {METADATA_KEY: text})
        return proto.SerializeToString()
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={TORCHSCRIPT_METADATA: text})
    return buffer.getvalue()


def sidecar_metadata(loaded, preprocessing, exported: Exported, check: ExportCheck, *, format: str,
                     tolerance: float, seed: int, dynamic_batch: bool, spec: str, file: str) -> dict:
    """The sidecar's content: everything a deployer needs to feed the file and read its outputs."""
    import torch

    from cnntool import __version__

    task = loaded.task
    deployed = _deployed(preprocessing, exported.input_shape)
    return {
        "format": format,
        "file": file,
        "model": spec,
        "architecture": loaded.entry.name,
        "source": loaded.source,
        "weights": loaded.weights,
        "task": task,
        "classes": list(loaded.classes),
        "background_class": 0 if task == "detection" else None,
        "preprocessing": deployed.to_dict(),
        "inputs": [{"name": exported.input_names[0], "shape": exported.input_shape, "dtype": "float32",
                    "layout": _layout(task, preprocessing),
                    "values": _input_values(task, deployed)}],
        "outputs": [{"name": name, "meaning": _MEANINGS.get(f"{task} {name}", _MEANINGS.get(name, ""))}
                    for name in exported.output_names],
        "dynamic_batch": dynamic_batch,
        "opset": exported.opset,
        "exporter": exported.exporter,
        "exporter_notes": exported.notes,
        "check": {"runtime": check.runtime, "input_shape": check.input_shape, "seed": seed,
                  "max_abs_diff": check.max_abs_diff, "outputs": check.outputs, "tolerance": tolerance,
                  "max_abs_output": check.scale},
        "cnntool_version": __version__,
        "torch_version": torch.__version__,
    }


def _deployed(preprocessing, input_shape: list):
    """The preprocessing the exported file needs: a model that takes images of any size
    (``shorter``, ``none``) exported at a fixed (H, W) takes them resized to exactly that."""
    import dataclasses

    if preprocessing.resize_mode in ("shorter", "none") and all(isinstance(n, int) for n in input_shape[-2:]):
        return dataclasses.replace(preprocessing, resize_mode="stretch", resize_size=None)
    return preprocessing


def _layout(task: str, preprocessing) -> str:
    if task == "detection":
        return "CHW, RGB" if preprocessing.channels == 3 else "CHW"
    return ("NCTHW" if task == "video" else "NCHW") + (", RGB" if preprocessing.channels == 3 else ", gray")


def _input_values(task: str, p) -> str:
    height, width = p.size
    resize = {"stretch": f"resized to exactly {height}x{width}", "none": "of any size",
              "crop": (f"resized to {p.resize_size[0]}x{p.resize_size[1]}" if isinstance(p.resize_size, tuple)
                       else f"shorter side resized to {p.resize_size}") + f", centre {height}x{width} cropped",
              "shorter": f"shorter side resized to {p.resize_size}"}[p.resize_mode]
    scale = "pixels / 255 in [0, 1] (the model normalises itself)" if p.normalize_in_model \
        else "(pixels / 255 - mean) / std per channel"
    return f"{scale}; images {resize}"


_MEANINGS = {
    "logits": "class scores (N, K) before softmax, in classes order",
    "segmentation logits": "class scores per pixel (N, K, H, W) before softmax; argmax over K is the mask",
    "boxes": "x1, y1, x2, y2 (D, 4) in the input image's pixels",
    "labels": "class indices (D,) into classes (0 is the background)",
    "scores": "confidence (D,) in [0, 1], highest first",
    "masks": "instance masks (D, 1, H, W), probabilities in [0, 1]",
}
