"""``cnntool filter``: classical convolution, pooling and edge filters over images and arrays.

Thin on purpose: parse the options, build the op chain (:mod:`cnntool.filters.ops`), map
:func:`cnntool.filters.batch.filter_file` over the inputs on worker threads, emit the records.
Importing this module imports no NumPy, OpenCV or torch (the help is built from the numpy-free
op table and option names), and running the command imports no torch.

Records (one per input, in input order; these fields are stable, new ones may be added):

=================  ==========================================================================
``path``           the input as given
``output``         the file written, or the existing file when ``skipped``; null without ``-o``
                   and for inputs that failed
``ops``            the chain as a string, ops separated by `` | ``: ``gaussian:sigma=2 | sobel``
``input_shape``    ``[H, W]`` or ``[H, W, C]`` as loaded (images: RGB, or 2-D when grayscale)
``output_shape``   shape of the float result; per axis ``floor((n + 2p - k_eff) / s) + 1``
``min``, ``max``   of the float result before any scaling to uint8 (float64; float32 on the
                   fast path of :mod:`cnntool.filters.batch`)
``skipped``        true when the output existed, made with the same options from the same
                   input, and ``--overwrite`` was not given (nothing computed: shapes and range
                   are null); an output made otherwise is an ``error`` (hint: ``--overwrite``)
``error``          one-line reason the input failed, else null
=================  ==========================================================================

Exit codes: 0 all inputs done (or skipped), 1 some inputs failed, 2 bad options or op specs,
or no inputs found. Skipped outputs are counted on stderr; files this command recorded in ``-o``
(its output ledger) are not taken as inputs when ``-o`` is inside an input folder.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cnntool.cli._options import (
    Format,
    MaxPixels,
    OutDir,
    Overwrite,
    Quiet,
    Verbose,
    Workers,
    default_workers,
    make_output,
)
from cnntool.errors import UsageError
from cnntool.filters.names import BORDERS, COLOR_MODES, METHODS, MODES, SCALES
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.filters.ops import OP_NAMES, parse_pad, suggest



def filter_command(
    inputs: Annotated[
        Optional[list[str]],
        typer.Argument(help="Images (.png .jpg .tif ...) and .npy arrays (2-D or H x W x C); folders "
                            "(recursed), quoted globs, @list.txt, or - for paths on stdin.", show_default=False),
    ] = None,
    kernel: Annotated[
        Optional[list[str]],
        typer.Option("--kernel", "-k", metavar="NAME[:KEY=VALUE...]",
                     help="Op to apply; repeat to chain (applied in order). Ops: "
                          + ", ".join(OP_NAMES) + ". Custom: kernel:values=0,1,0;1,-4,1;0,1,0 or "
                          "kernel:file=k.txt|k.npy. --list shows every op's keys and matrix.",
                     show_default=False),
    ] = None,
    list_ops: Annotated[bool, typer.Option("--list", help="Print every named op with its keys and matrix, then exit.")] = False,
    pad: Annotated[str, typer.Option("--pad", help="How much padding: same (keeps the size at stride 1), "
                                                   "valid (none), full (k-1 each side), or N pixels each side.")] = "same",
    border: Annotated[str, typer.Option("--border", help="What the padding holds: " + "|".join(BORDERS) + ". "
                                                         "reflect mirrors without repeating the edge pixel "
                                                         "(OpenCV BORDER_REFLECT_101, NumPy 'reflect'); "
                                                         "symmetric repeats it. zero is the textbook padding; "
                                                         "on photos it darkens blurred edges, reflect does not.")] = "zero",
    mode: Annotated[str, typer.Option("--mode", help="conv: true convolution (flips the kernel); "
                                                     "corr: cross-correlation (as written, like cv2.filter2D).")] = "conv",
    stride: Annotated[int, typer.Option("--stride", min=1, help="Step between output pixels of kernel ops.")] = 1,
    dilation: Annotated[int, typer.Option("--dilation", min=1, help="Spacing between kernel taps; effective size d*(k-1)+1.")] = 1,
    method: Annotated[str, typer.Option("--method", help="auto|direct|fft; auto uses FFT for large kernels.")] = "auto",
    color: Annotated[str, typer.Option("--color", help="channels: each channel on its own; gray: luma first; "
                                                       "luminance: filter CIELAB L only, keep the colours.")] = "channels",
    scale: Annotated[str, typer.Option("--scale", help="How float results become 8-bit images: auto|"
                                                       + "|".join(SCALES) + ". auto: clip for smoothing, offset for "
                                                       "signed x/y/Laplacian, minmax for magnitude/direction.")] = "auto",
    exact: Annotated[bool, typer.Option("--exact", help="Compute 8-bit image outputs in float64 too (by default "
                                                        "a single smoothing op on 8-bit images runs in float32, "
                                                        "equal after rounding but for rare .5 ties).")] = False,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Output format: png|jpg|tif|npy|... "
                                                             "[default: the input's]. npy keeps the exact float64 result.",
                                               show_default=False)] = None,
    out: OutDir = None,
    overwrite: Overwrite = False,
    workers: Workers = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Convolve, pool and edge-filter images and .npy arrays, as the textbook defines them.

    One record per input on stdout: path, output, ops, input_shape, output_shape, min and max
    of the float result (before scaling), skipped, error. Without -o nothing is written, but
    records (shapes, ranges) still come out. Bad inputs give error records and exit 1; a bad
    op spec exits 2.

    Output size per axis: floor((W + 2P - K)/S) + 1, with K = d*(k-1)+1 under dilation d.

    Examples:

    \b
      cnntool filter photo.jpg -k gaussian:sigma=2 -o out/
      cnntool filter imgs/ -k gaussian:sigma=2 -k sobel:axis=magnitude -o edges/ --ext png
      cnntool filter x.npy -k 'kernel:values=0,1,0;1,-4,1;0,1,0' --pad valid -o out/ --ext npy
      cnntool filter photo.jpg -k emboss --mode corr --border reflect -o out/
      cnntool filter photo.jpg -k maxpool:size=2:stride=2 -o small/
      cnntool filter photo.jpg -k unsharp:sigma=2:amount=1.5 --color luminance -o sharp/
      cnntool filter photo.jpg --color gray -k canny:sigma=2 -o edges/
      cnntool filter --list
    """
    output = make_output(format, quiet, verbose)
    if list_ops:
        return _print_op_list(output, explicit_format=format)

    from cnntool.data.loaders import thread_map
    from cnntool.data.sources import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS, require_inputs, resolve_inputs
    from cnntool.data.writers import skipped_message
    from cnntool.filters.batch import OUTPUT_EXTENSIONS, FilterJob, filter_file, plan_outputs
    from cnntool.filters.ops import ConvDefaults, chain_scale, keeps_size, parse_ops

    defaults = ConvDefaults(stride=stride, dilation=dilation, pad=parse_pad_option(pad),
                            border=parse_choice(border, BORDERS, "--border"),
                            mode=parse_choice(mode, MODES, "--mode"),
                            method=parse_choice(method, METHODS, "--method"))
    color = parse_choice(color, COLOR_MODES, "--color")
    scale = parse_choice(scale, ("auto", *SCALES), "--scale")
    if ext is not None:
        ext = parse_choice(ext.lower().lstrip("."), OUTPUT_EXTENSIONS, "--ext")
    ops = tuple(parse_ops(kernel or [], defaults))
    if color == "luminance" and not keeps_size(ops):
        raise UsageError("--color luminance needs ops that keep the image size",
                         hint="drop stride/pooling/valid padding, or use --color channels or gray")
    if not inputs:
        raise UsageError("no inputs given", hint="cnntool filter IMAGES... -k OP [-o DIR]; see cnntool filter --help")

    job = FilterJob(ops=ops, color=color, scale=chain_scale(ops) if scale == "auto" else scale,
                    overwrite=overwrite, max_pixels=max_pixels, exact=exact)
    output.debug(f"ops: {job.text}; scale for images: {job.scale}")
    extensions = IMAGE_EXTENSIONS | ARRAY_EXTENSIONS
    items = resolve_inputs(inputs, extensions=extensions, exclude=out)
    require_inputs(items, inputs, extensions=extensions, what="images or .npy arrays")
    if items.excluded:
        output.debug(f"{len(items.excluded)} earlier outputs in {out} are not taken as inputs")
    tasks = [(item, *plan) for item, plan in zip(items, plan_outputs(items, out, ext))]
    records = thread_map(lambda task: filter_file(task[0], job, task[1], task[2]), tasks,
                         workers=default_workers(workers))
    skipped = 0
    for record in output.progress(records, total=len(tasks), desc="filter"):
        skipped += bool(record["skipped"])
        output.emit(record)
    output.close()
    if skipped:
        output.log(skipped_message(skipped))
    output.summary("inputs")
    return output.exit_code


def _print_op_list(output, explicit_format: str | None) -> int:
    """Text for people; one record per op when --format jsonl or csv is asked for."""
    from cnntool.filters.ops import OPS, describe, format_op_list

    if explicit_format in ("jsonl", "csv"):
        for spec in OPS:
            output.emit(describe(spec))
        output.close()
    else:
        print(format_op_list(), end="")
    return 0


def parse_choice(value: str, choices, flag: str) -> str:
    """``value`` (trimmed, lower-cased) if it is one of ``choices``, else a usage error naming
    ``flag`` with the closest choices (also ``cnntool video --task filter``'s)."""
    value = value.strip().lower()
    if value not in choices:
        raise UsageError(f"unknown {flag} {value!r}", hint=suggest(value, list(choices), "choose from"))
    return value


def parse_pad_option(text: str):
    """``--pad``: same, valid, full, or pixels per side; a usage error otherwise."""
    try:
        return parse_pad(text.strip())
    except ValueError:
        raise UsageError(f"bad --pad {text!r}", hint="use same, valid, full, or a number of pixels >= 0") from None
