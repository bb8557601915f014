"""``cnntool models list|info|summary``: the registry, one model or checkpoint, a layer table.

Records: ``list`` one per entry (keyed by ``name``); ``info`` one record with every entry
field (keyed by ``name``, or ``path`` for a checkpoint; in table format shown as field/value
rows); ``summary`` one per layer (keyed by ``layer``) and a last ``(total)`` record.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cnntool.cli._options import Format, Quiet, Verbose, make_output

Spec = Annotated[
    str,
    typer.Argument(help="A registry name, NAME:WEIGHTS, or a checkpoint path.", show_default=False),
]
Task = Annotated[
    Optional[str],
    typer.Option("--task", help="Only models for this task: classification|detection|segmentation|video (or classify, detect, segment)."),
]
InputSize = Annotated[
    Optional[str],
    typer.Option("--input", "-i", help="Input size CxHxW, e.g. 3x224x224 [default: the model's]."),
]
Depth = Annotated[
    Optional[int],
    typer.Option("--depth", "-d", min=1, help="Show modules down to this nesting depth (1: top-level blocks) "
                                             "[default: every leaf layer]."),
]

#: The ``layer`` value of the summary's totals record.
TOTAL_ROW = "(total)"


def list_command(task: Task = None, format: Format = None, quiet: Quiet = False, verbose: Verbose = False) -> int:
    """List the registry: name, task, family, parameters, default input size, weights (from
    stored facts, in well under a second)."""
    from cnntool.models.registry import list_models
    from cnntool.models.summary import format_size
    from cnntool.models.tasks import canonical_task

    task = canonical_task(task) if task is not None else None
    out = make_output(format, quiet, verbose)
    for entry in list_models(task):  # stored facts only: no model is built, torch is not imported
        out.emit({
            "name": entry.name,
            "task": entry.task,
            "family": entry.family,
            "params": entry.reference_params,
            "input_size": format_size(entry.input_size),
            "weights": list(entry.weights),
            "description": entry.description,
        })
    out.close()
    out.summary("models")
    return out.exit_code


def info_command(spec: Spec, format: Format = None, quiet: Quiet = False, verbose: Verbose = False) -> int:
    """Describe a model (every registry field, parameters, cached weights) or a checkpoint's metadata."""
    from cnntool.models.registry import is_checkpoint_spec
    from cnntool.models.summary import describe_checkpoint, describe_entry

    out = make_output(format, quiet, verbose)
    record = describe_checkpoint(spec) if is_checkpoint_spec(spec) else describe_entry(spec)
    out.emit_one(record)
    out.close()
    return out.exit_code


def summary_command(spec: Spec, input: InputSize = None, depth: Depth = None, format: Format = None,
                    quiet: Quiet = False, verbose: Verbose = False) -> int:
    """Layer table: each layer's output shape and parameters, then the totals (a meta-device pass)."""
    from dataclasses import asdict

    from cnntool.models.summary import format_size, summarize_spec

    out = make_output(format, quiet, verbose)
    table = summarize_spec(spec, input_text=input, depth=depth)
    for row in table.layers:
        out.emit(asdict(row))
    out.emit({
        "layer": TOTAL_ROW, "type": table.model_type, "output_shape": table.output_shape,
        "params": table.total_params, "trainable_params": table.trainable_params,
        "input_size": format_size(table.input_size),
    })
    out.close()
    # the (total) record holds these too; this line is for the person reading, so stderr
    out.log(f"total params: {table.total_params:,}  trainable: {table.trainable_params:,}  "
            f"input: {format_size(table.input_size)}  output: {table.output_shape}")
    return out.exit_code
