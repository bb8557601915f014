"""Option types shared by every subcommand, so that each flag means one thing everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._output import FORMATS, Output
from cnntool.errors import UsageError

Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders (recursed), quoted globs, @list.txt, or - for paths on stdin.",
        show_default=False,
    ),
]
Format = Annotated[
    Optional[str],
    typer.Option("--format", "-f", help="Record format [default: table on a terminal, jsonl otherwise].",
                 show_default=False),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No logs or progress on stderr.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr.")]
OutDir = Annotated[
    Optional[Path],
    typer.Option("--out", "-o", help="Output folder; mirrors the inputs' relative paths.", file_okay=False),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip those made with "
                                                               "the same options from the same input; others are "
                                                               "errors).")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=0, show_default=False,
                                      help="Parallel workers for decoding and encoding [default: all cores].")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per batch.")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps; auto picks the GPU when there is one.")]
Model = Annotated[str, typer.Option("--model", "-m", help="A registry name, NAME:WEIGHTS, or a checkpoint path.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; same inputs and options give the same records.")]
ImgSize = Annotated[Optional[str], typer.Option("--imgsz", metavar="SIZE",
                                                help="Model input size, H or HxW [default: the model's, as "
                                                     "trained and recorded in its checkpoint].",
                                                show_default=False)]
Iou = Annotated[float, typer.Option("--iou", min=0.0, max=1.0,
                                    help="IoU threshold of non-maximum suppression (per class; replaces the "
                                         "model's own).")]
MaxDet = Annotated[int, typer.Option("--max-det", min=1,
                                      help="Most detections per image (the best scores).")]
MaxPixels = Annotated[
    int,
    typer.Option("--max-pixels", min=1, help="Refuse images with more pixels than this (decompression-bomb guard)."),
]


def make_output(format: str | None, quiet: bool = False, verbose: bool = False) -> Output:
    """Build the command's :class:`Output`, checking ``--format``."""
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown --format {format!r}", hint="use one of: " + ", ".join(FORMATS))
    return Output(format, quiet=quiet, verbose=verbose)


def in_group(option, group: str):
    """A shared option type listed under ``group`` in one command's help (see cli/_help.py)."""
    import copy
    from typing import get_args

    base, info = get_args(option)[0], copy.copy(get_args(option)[1])
    info.rich_help_panel = group
    return Annotated[base, info]


def parse_imgsz(text: str) -> tuple[int, int]:
    """``--imgsz``: one side (``224``) or ``HxW`` (``160x224``).

    Examples
    --------
    >>> parse_imgsz("224"), parse_imgsz("160x224")
    ((224, 224), (160, 224))
    """
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"bad --imgsz {text!r}", hint="one side (224) or HxW (160x224)") from None
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2 or min(numbers) < 8 or max(numbers) > 4096:
        raise UsageError(f"bad --imgsz {text!r}", hint="one side (224) or HxW (160x224), sides from 8 to 4096")
    return (numbers[0], numbers[1])


def with_imgsz(loaded, text: str | None):
    """The loaded model seeing ``--imgsz`` inputs (checked by one forward pass), or as it was."""
    if text is None:
        return loaded
    import dataclasses

    from cnntool.train.setup import check_input_size

    preprocessing = loaded.preprocessing.with_size(parse_imgsz(text))
    check_input_size(loaded.model, preprocessing, loaded.entry.name)
    return dataclasses.replace(loaded, preprocessing=preprocessing)


def given_options(ctx) -> set[str]:
    """The parameters of a command the user gave on the command line (not defaults)."""
    given = set()
    for name in ctx.params:  # by name: Typer may bring its own copy of click's enum
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(name)
    return given


def refuse_unused(ctx, used: set[str], *, what: str, common: set[str] | None = None) -> None:
    """:class:`UsageError` for options given that ``what`` does not use: a flag that would do
    nothing is refused, not ignored. ``used`` names the parameters that matter; ``common`` those
    never refused (default :data:`COMMON_PARAMS`; a command whose ``--seed`` matters only for some
    of its ways passes ``COMMON_PARAMS - {"seed"}`` and lists ``seed`` in ``used`` where it counts)."""
    unused = sorted(given_options(ctx) - set(used) - (COMMON_PARAMS if common is None else set(common)))
    if unused:
        flags = [_flag(ctx, name) for name in unused]
        raise UsageError(f"{', '.join(flags)} {'does' if len(flags) == 1 else 'do'} nothing for {what}",
                         hint="leave it out (see --help for which options each method uses)")


#: Parameters every command takes whatever it does.
COMMON_PARAMS = {"format", "quiet", "verbose", "device", "workers", "seed", "max_pixels", "overwrite", "model"}


def _flag(ctx, name: str) -> str:
    for param in ctx.command.params:
        if param.name == name:
            return max(param.opts, key=len) if param.opts else name
    return name


def default_workers(workers: int) -> int:
    """0 means all cores."""
    import os

    return workers if workers > 0 else max(1, os.cpu_count() or 1)
