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

from cnntool.cli._options import Format, ImgSize, Quiet, Verbose, make_output, with_imgsz
from cnntool.errors import UsageError, unknown_choice

Spec = Annotated[str, typer.Argument(metavar="SPEC", show_default=False,
                                     help="A checkpoint, a run folder (its best.pt), or a registry NAME[:WEIGHTS].")]
ExportFormat = Annotated[
    Optional[str],
    typer.Option("--to", metavar="onnx|torchscript",
                 help="File format [default: from -o's extension (.onnx, .torchscript/.ts/.pt), else onnx].",
                 show_default=False),
]
OutFile = Annotated[
    Optional[Path],
    typer.Option("--out", "-o", metavar="FILE", dir_okay=True,
                 help="The file to write (a folder: the default name inside it) [default: next to a checkpoint "
                      "(best.onnx), else NAME.onnx here].", show_default=False),
]
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
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the file and its sidecar when they exist "
                                                               "[default: refuse].")]
Seed = Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the check's random inputs.")]
def export_command(
    spec: Spec,
    to: ExportFormat = None,
    out: OutFile = None,
    imgsz: ImgSize = None,
    opset: Opset = None,
    dynamic_batch: DynamicBatch = None,
    tolerance: Tolerance = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    format: Format = None,
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
      cnntool export runs/resnet18-1 --to onnx
      cnntool export resnet18:IMAGENET1K_V1 -o deploy/resnet18.onnx --imgsz 256 --opset 17
      cnntool export runs/lenet5-1/best.pt --to torchscript --overwrite
    """
    if format in ("onnx", "torchscript"):  # what `yolo export format=onnx` users type first
        raise UsageError("--format is the record format (jsonl, csv or table); the file format is --to",
                         hint=f"use --to {format}")
    output = make_output(format, quiet, verbose)
    format = to
    from cnntool.models.export import EXPORT_FORMATS, export_model

    implied = format_for_path(out) if out is not None and not out.is_dir() else None
    if format is not None and format not in EXPORT_FORMATS:
        raise unknown_choice("--to", format, EXPORT_FORMATS)
    if format is not None and implied is not None and format != implied:
        raise UsageError(f"-o {out} looks like a {implied} file, but --to is {format}",
                         hint="leave --to out, or give -o a name ending in .onnx or .torchscript")
    format = format or implied or "onnx"
    from cnntool.models.loading import load

    loaded = with_imgsz(load(spec, device="cpu"), imgsz)  # a size the model cannot take: exit 2
    if loaded.random_weights:
        output.warn(f"{spec} has random weights (no checkpoint or pretrained weights): the exported model's "
                    "outputs mean nothing")
    path = default_export_path(spec, format)
    if out is not None:
        path = out / path.name if out.is_dir() else out
    record = export_model(loaded, path, format=format, opset=opset, dynamic_batch=dynamic_batch,
                          tolerance=tolerance, seed=seed, overwrite=overwrite, spec=spec, log=output.log)
    output.emit_one(record)
    output.close()
    if record["error"]:
        output.log(f"not written: {record['error']}")
        return 1
    output.log(f"wrote {record['path']} ({record['size_bytes'] / 1e6:.1f} MB) and {record['sidecar']}; "
               f"max |exported - PyTorch| {record['max_abs_diff']:.2g} (tolerance {record['tolerance']:g}); "
               f"export {record['seconds']:.1f} s")
    return 0


def format_for_path(path: str | Path) -> str | None:
    """The export format a file name's extension implies (``.onnx``; ``.torchscript``, ``.ts``,
    ``.pt``, ``.jit``), or None.

    Examples
    --------
    >>> format_for_path("m.onnx"), format_for_path("m.ts"), format_for_path("m.bin")
    ('onnx', 'torchscript', None)
    """
    ext = Path(path).suffix.lower()
    if ext == ".onnx":
        return "onnx"
    if ext in (".torchscript", ".ts", ".pt", ".jit"):
        return "torchscript"
    return None


def default_export_path(spec: str, format: str) -> Path:
    """Where ``cnntool export SPEC`` writes without ``-o``: next to a checkpoint (a run folder's
    ``best.pt`` gives ``best.onnx`` there), else in the current folder, named after the model.

    Examples
    --------
    >>> str(default_export_path("runs/a/best.pt", "onnx")), str(default_export_path("resnet18:IMAGENET1K_V1", "onnx"))
    ('runs/a/best.onnx', 'resnet18-IMAGENET1K_V1.onnx')
    >>> str(default_export_path("timm/convnext_tiny", "torchscript"))
    'timm-convnext_tiny.torchscript'
    """
    from cnntool.models.export import EXTENSIONS
    from cnntool.models.loading import resolve_checkpoint_path
    from cnntool.models.registry import is_checkpoint_spec

    ext = EXTENSIONS[format]
    if is_checkpoint_spec(spec):
        return resolve_checkpoint_path(spec).with_suffix(ext)
    return Path(spec.replace(":", "-").replace("/", "-") + ext)
