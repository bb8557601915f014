"""``cnntool export``: a model as one ONNX or TorchScript file for deployment, checked against PyTorch.

Thin on purpose: load the model on the CPU, pick the output file, call
:func:`cnntool.models.export.export_model`, emit its record.

Record (one): ``path`` (the exported file), ``format``, ``task``, ``model``, ``exporter``,
``input_shape`` (``"batch"`` for a dynamic axis), ``opset``, ``max_abs_diff`` (the exported
model against PyTorch on the same seeded inputs), ``tolerance``, ``seconds`` (the export),
``check_seconds``, ``size_bytes``, ``sidecar`` (the JSON written next to the file), ``error``.
Exit 1 when the export fails or differs from PyTorch by more than ``--tolerance`` (then nothing
is written); 2 for usage errors (an existing file without ``--overwrite``, an option the format
does not use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import Overwrite, Quiet, Seed, Verbose, make_output
from cnntool.errors import UsageError, unknown_choice

Spec = Annotated[str, typer.Argument(help="A checkpoint, a run folder (its best.pt), or a registry NAME[:WEIGHTS].",
                                     show_default=False)]
ExportFormat = Annotated[
    Optional[str],
    typer.Option("--format", "-f", metavar="onnx|torchscript",
                 help="What to write [default: from -o's extension (.onnx, .torchscript/.ts/.pt), else onnx].",
                 show_default=False),
]
OutFile = Annotated[
    Optional[Path],
    typer.Option("--out", "-o", metavar="FILE", dir_okay=True,
                 help="The file to write (a folder: the default name inside it) [default: next to a checkpoint "
                      "(best.onnx), else NAME.onnx here].", show_default=False),
]
Imgsz = Annotated[Optional[str], typer.Option("--imgsz", metavar="SIZE", help="Input size, H or HxW, e.g. 320 "
                                                                             "[default: the model's].",
                                              show_default=False)]
Opset = Annotated[Optional[int], typer.Option("--opset", min=7, metavar="N",
                                              help="ONNX operator set [default: PyTorch's; under 18 uses the "
                                                   "legacy exporter].", show_default=False)]
DynamicBatch = Annotated[
    Optional[bool],
    typer.Option("--dynamic-batch/--no-dynamic-batch",
                 help="ONNX: a batch axis of any size, or a batch of exactly one [default: dynamic; a detector "
                      "takes one image].", show_default=False),
]
Tolerance = Annotated[
    Optional[float],
    typer.Option("--tolerance", min=0.0, metavar="X",
                 help="Largest |exported - PyTorch| accepted; above it, exit 1 and write nothing "
                      "[default: 1e-4, detection 1e-3].", show_default=False),
]
RecordFormat = Annotated[
    Optional[str],
    typer.Option("--record-format", metavar="jsonl|csv|table",
                 help="Record format [default: table on a terminal, jsonl otherwise].", show_default=False),
]


def export_command(
    spec: Spec,
    format: ExportFormat = None,
    out: OutFile = None,
    imgsz: Imgsz = None,
    opset: Opset = None,
    dynamic_batch: DynamicBatch = None,
    tolerance: Tolerance = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    record_format: RecordFormat = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Export a model to ONNX or TorchScript for deployment, and check it against PyTorch.

    The exported file runs once (onnxruntime for ONNX, torch.jit for TorchScript) on seeded
    inputs next to the PyTorch model; the largest difference is the record's max_abs_diff. A
    sidecar FILE.json holds what a deployer needs: classes, task, preprocessing (size, mean,
    std), input and output names and shapes, opset, the difference measured. The same metadata
    is embedded in the file. A detector exported to ONNX takes one image of exactly the
    exported size (see --imgsz); a TorchScript detector takes any size.

    Examples:

    \b
      cnntool export runs/resnet18-1 --format onnx
      cnntool export resnet18:IMAGENET1K_V1 -o deploy/resnet18.onnx --imgsz 256 --opset 17
      cnntool export runs/lenet5-1/best.pt -f torchscript --overwrite
    """
    output = make_output(record_format, quiet, verbose)
    from cnntool.models.export import EXPORT_FORMATS, default_export_path, export_model, format_for_path

    implied = format_for_path(out) if out is not None and not out.is_dir() else None
    if format is not None and format not in EXPORT_FORMATS:
        raise unknown_choice("--format", format, EXPORT_FORMATS)
    if format is not None and implied is not None and format != implied:
        raise UsageError(f"-o {out} looks like a {implied} file, but --format is {format}",
                         hint="leave --format out, or give -o a name ending in .onnx or .torchscript")
    format = format or implied or "onnx"
    size = _imgsz(imgsz) if imgsz is not None else None
    from cnntool.models.loading import load

    loaded = load(spec, device="cpu")
    if loaded.random_weights:
        output.warn(f"{spec} has random weights (no checkpoint or pretrained weights): the exported model's "
                    "outputs mean nothing")
    path = default_export_path(spec, format)
    if out is not None:
        path = out / path.name if out.is_dir() else out
    output.log(f"exporting {spec} ({loaded.task}) to {path} ...")
    record = export_model(loaded, path, format=format, imgsz=size, opset=opset, dynamic_batch=dynamic_batch,
                          tolerance=tolerance, seed=seed, overwrite=overwrite, spec=spec)
    output.emit_one(record)
    output.close()
    if record["error"]:
        output.log(f"not written: {record['error']}")
        return 1
    output.log(f"wrote {record['path']} ({record['size_bytes'] / 1e6:.1f} MB) and {record['sidecar']}; "
               f"max |exported - PyTorch| {record['max_abs_diff']:.2g} (tolerance {record['tolerance']:g}); "
               f"export {record['seconds']:.1f} s")
    return 0


def _imgsz(text: str) -> tuple[int, int]:
    from cnntool.cli.train import _imgsz as parse  # the one --imgsz syntax (H or HxW) of every command

    return parse(text)
