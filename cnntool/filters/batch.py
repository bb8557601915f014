"""Filtering files: load -> op chain -> scale -> atomic write, one record per input.

:func:`plan_outputs` decides every output path up front (mirroring relative paths, refusing
to write over any input or to write one output twice); :func:`filter_file` then runs one
input and returns its record, never raising for a bad input. The ``filter`` command maps
:func:`filter_file` over the inputs on worker threads.

The record fields are documented (and kept stable) in :mod:`cnntool.cli.filter`.

Fast path: when the chain is one smoothing kernel (non-negative and separable: mean,
gaussian, or such a custom kernel) at stride 1, dilation 1, ``same`` padding, on an 8-bit
image written as an image with ``clip`` scaling, OpenCV filters in float32 straight from the
uint8 pixels and rounds to uint8. The image is the float64 result rounded, except that a
value within ~1e-5 of a .5 tie may round the other way (about 1 value in 100,000, off by 1);
``min``/``max`` then come from the float32 result. ``exact=True`` (``--exact``) turns it off;
``.npy`` outputs and records without ``-o`` are always float64.

Memory: an image whose float64 result would pass :data:`~cnntool.filters.tiles.TILE_MIN_BYTES`
is filtered in bands of rows with halos (:mod:`cnntool.filters.tiles`) when its chain allows it,
with the same results: image outputs are assembled as uint8 (``minmax``/``offset`` scaling
takes a first pass for the range, then recomputes each band), ``.npy`` outputs are streamed to
disk band by band, so the float working memory stays near a few bands whatever the image size.

Outputs go through the output ledger (:mod:`cnntool.data.writers`): each is recorded with the
job's :attr:`FilterJob.recipe`, and an existing output is skipped only when it was made by the
same recipe from the same input; otherwise its input gets an error record (``--overwrite``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np

from cnntool.data.decode import DEFAULT_MAX_PIXELS, load_pixels
from cnntool.data.sources import InputItem
from cnntool.data.writers import (
    IMAGE_WRITE_EXTENSIONS,
    Recipe,
    check_not_input,
    output_path,
    should_skip,
    write_image,
    write_npy,
    write_npy_rows,
)
from cnntool.data.writers import plan_outputs as plan_file_outputs
from cnntool.errors import InputError, one_line
from cnntool.filters.convolve import _correlate_in_place, resolve_padding
from cnntool.filters.kernels import separate
from cnntool.filters.ops import Op, chain_text, run_ops
from cnntool.filters.scale import scale_limits, to_uint8
from cnntool.filters.tiles import band_rows, chain_halo, iter_bands, should_tile

#: Output extensions ``--ext`` accepts (without the dot).
OUTPUT_EXTENSIONS = tuple(sorted(e.lstrip(".") for e in IMAGE_WRITE_EXTENSIONS)) + ("npy",)
#: Extension used for an input format OpenCV cannot write (gif, ico...).
FALLBACK_EXTENSION = ".png"


@dataclass(frozen=True)
class FilterJob:
    """Everything :func:`filter_file` needs besides the input."""

    ops: tuple[Op, ...]
    color: str = "channels"  # channels|gray|luminance
    scale: str = "clip"  # how image outputs become uint8 (npy outputs are never scaled)
    overwrite: bool = False  # replace existing outputs instead of skipping them
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger inputs (images and arrays)
    quality: int = 95  # JPEG/WebP quality of image outputs
    exact: bool = False  # never take the float32 fast path for 8-bit image outputs

    @property
    def text(self) -> str:
        return chain_text(self.ops)

    @cached_property
    def recipe(self) -> Recipe:
        """What makes this job's outputs (for the output ledger and the skip rule): every op with
        its resolved keys and matrix, the colour mode, the scale, the quality, and ``exact``
        where it can change a result. ``max_pixels`` and ``overwrite`` change no output."""
        ops = [{"op": op.name, "params": op.params,
                "matrix": op.matrix if op.spec.kind == "kernel" else None} for op in self.ops]
        options = {"ops": ops, "color": self.color, "scale": self.scale, "quality": self.quality}
        if self.exact and FilterJob(self.ops, self.color, self.scale).fast_op is not None:
            options["exact"] = True
        return Recipe.of("filter", options, summary=f"{self.text}; --color {self.color} --scale {self.scale}")

    @cached_property
    def halo(self) -> int | None:
        """Rows a band needs around it for this chain; None when it cannot work in bands."""
        return chain_halo(self.ops)

    @property
    def fast_op(self) -> Op | None:
        """The op the float32 fast path can run for this job, if any (see the module docstring)."""
        if self.exact or len(self.ops) != 1 or self.scale != "clip" or self.color != "channels":
            return None
        op = self.ops[0]
        if op.spec.kind != "kernel" or op.matrix is None:
            return None
        p = op.params
        if p["stride"] != 1 or p["dilation"] != 1 or p["pad"] != "same" or p["border"] == "wrap":
            return None
        if p["method"] == "fft" or (op.matrix < 0).any() or separate(op.matrix) is None:
            return None
        return op


def output_extension(rel_suffix: str, ext: str | None) -> str:
    """The output extension (with the dot): ``ext`` if given, else the input's when writable."""
    if ext:
        return "." + ext.lower().lstrip(".")
    suffix = rel_suffix.lower()
    if suffix == ".npy" or suffix in IMAGE_WRITE_EXTENSIONS:
        return rel_suffix
    return FALLBACK_EXTENSION


def plan_outputs(items: Sequence[InputItem], out_dir: str | os.PathLike | None,
                 ext: str | None = None) -> list[tuple[Path | None, str | None]]:
    """For each input, ``(output path or None, error or None)``.

    :func:`cnntool.data.writers.plan_outputs` with one output per input: an output that would
    land on any input of the batch, or that another input already maps to (``a.jpg`` and
    ``a.png`` with ``--ext png``), gets an error instead.
    """
    def outputs(rel):
        return output_path(rel, out_dir, ext=output_extension(rel.suffix, ext))

    return [(plan.paths[0] if plan.paths else None, plan.error)
            for plan in plan_file_outputs(items, out_dir, outputs)]


def load_input(path: str, job: FilterJob) -> np.ndarray:
    """An image (RGB, or 2-D when the file is grayscale) or a ``.npy`` array, checked."""
    arr = load_pixels(path, mode="auto", max_pixels=job.max_pixels)
    if Path(path).suffix.lower() != ".npy":
        return arr
    if arr.size == 0:
        raise InputError(f"empty array, shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("array has NaN or infinite values")
    return arr


def filter_file(item: InputItem, job: FilterJob, out: Path | None = None, planned_error: str | None = None) -> dict:
    """Filter one input and write its output; returns its record (errors are records)."""
    import cv2

    record = {"path": item.path, "output": None, "ops": job.text, "input_shape": None,
              "output_shape": None, "min": None, "max": None, "skipped": False, "error": None}
    if item.error or planned_error:
        record["error"] = item.error or planned_error
        return record
    try:
        if out is not None:
            check_not_input(out, item.path)
            if should_skip(out, job.recipe, source=item.path, overwrite=job.overwrite):
                record.update(output=str(out), skipped=True)
                return record
        image = load_input(item.path, job)
        record["input_shape"] = list(image.shape)
        fast = job.fast_op if out is not None and out.suffix.lower() != ".npy" else None
        if fast is not None and not (image.dtype == np.uint8 and _fits(image, fast.matrix)):
            fast = None
        if should_tile(image.shape, job.halo):
            shape, lo, hi = _filter_in_bands(image, job, out, item.path, fast)
            record.update(output_shape=list(shape), min=lo, max=hi, output=str(out) if out is not None else None)
            return record
        if fast is not None:
            pixels, lo, hi = smooth_uint8(image, fast)
            record.update(output_shape=list(pixels.shape), min=lo, max=hi)
            write_image(out, pixels, quality=job.quality, recipe=job.recipe, source=item.path)
            record["output"] = str(out)
            return record
        result = run_ops(image, job.ops, color=job.color)
        record.update(output_shape=list(result.shape), min=float(result.min()), max=float(result.max()))
        if out is not None:
            write_result(out, result, job, source=item.path)
            record["output"] = str(out)
    except InputError as exc:
        record["error"] = str(exc)
    except (ValueError, cv2.error, MemoryError, OSError) as exc:
        record["error"] = one_line(exc)
    return record


def _fits(image: np.ndarray, kernel: np.ndarray) -> bool:
    return (image.shape[0] > kernel.shape[0] and image.shape[1] > kernel.shape[1]
            and (image.ndim == 2 or image.shape[2] <= 4))


def smooth_uint8(image: np.ndarray, op: Op) -> tuple[np.ndarray, float, float]:
    """The fast path: a non-negative separable kernel over uint8 pixels, in float32 with
    OpenCV, 'same' size; returns (uint8 pixels, min, max of the float32 result)."""
    import cv2

    result = _smooth_float32(image, op)
    # non-negative kernel on uint8: the result is >= 0, so |x| rounded and saturated is clip
    return cv2.convertScaleAbs(result).reshape(image.shape), float(result.min()), float(result.max())


def _smooth_float32(image: np.ndarray, op: Op) -> np.ndarray:
    kernel = op.matrix[::-1, ::-1] if op.params["mode"] == "conv" else op.matrix
    return _correlate_in_place(image, kernel, resolve_padding("same", kernel.shape),
                               op.params["border"], "separable", dtype=np.float32)


def write_result(out: Path, result: np.ndarray, job: FilterJob, *, source: str | None = None) -> None:
    """``.npy``: the float64 result exactly; images: scaled to uint8 by ``job.scale``."""
    if out.suffix.lower() == ".npy":
        write_npy(out, np.asarray(result, dtype=np.float64), recipe=job.recipe, source=source)
    else:
        write_image(out, to_uint8(result, job.scale), quality=job.quality, recipe=job.recipe, source=source)


def _filter_in_bands(image: np.ndarray, job: FilterJob, out: Path | None, source: str,
                     fast: Op | None) -> tuple[tuple[int, ...], float, float]:
    """The whole job in bands of rows (see :mod:`cnntool.filters.tiles`); writes ``out`` when
    given and returns (output shape, min, max) as the whole-image path would."""
    import cv2

    rows = band_rows(image.shape, job.halo)

    def fn(band: np.ndarray) -> np.ndarray:
        return _smooth_float32(band, fast) if fast is not None else run_ops(band, job.ops, color=job.color)

    first = next(iter_bands(image, fn, halo=job.halo, rows=rows))
    shape = (image.shape[0], *first.shape[1:])

    def bands() -> Iterator[np.ndarray]:  # the first band is kept, not computed again
        return chain([first], iter_bands(image, fn, halo=job.halo, rows=rows, start=rows))

    extremes = _Extremes()
    if out is None:
        for band in bands():
            extremes.add(band)
    elif out.suffix.lower() == ".npy":
        write_npy_rows(out, shape, (extremes.add(band) for band in bands()), recipe=job.recipe, source=source)
    else:
        pixels = np.empty(shape, np.uint8)
        limits = None
        if fast is None and job.scale in ("minmax", "offset"):  # the range first, then the pixels
            for band in bands():
                extremes.add(band, limits=True)
            limits = extremes.limits
        y = 0
        for band in bands():
            if limits is None:
                extremes.add(band)
            pixels[y:y + band.shape[0]] = (cv2.convertScaleAbs(band).reshape(band.shape) if fast is not None
                                           else to_uint8(band, job.scale, limits=limits))
            y += band.shape[0]
        write_image(out, pixels, quality=job.quality, recipe=job.recipe, source=source)
    return shape, extremes.lo, extremes.hi


class _Extremes:
    """Running min and max of a result (as ``result.min()``/``max()`` give them: NaN wins), and
    of its scaling range (:func:`cnntool.filters.scale.scale_limits`)."""

    def __init__(self):
        self.lo, self.hi = float("inf"), float("-inf")
        self.scale_lo, self.scale_hi = float("inf"), float("-inf")

    def add(self, band: np.ndarray, *, limits: bool = False) -> np.ndarray:
        self.lo = _nanmin(self.lo, float(band.min()))
        self.hi = _nanmax(self.hi, float(band.max()))
        if limits:
            lo, hi = scale_limits(band)
            self.scale_lo, self.scale_hi = min(self.scale_lo, lo), max(self.scale_hi, hi)
        return band

    @property
    def limits(self) -> tuple[float, float]:
        return self.scale_lo, self.scale_hi


def _nanmin(a: float, b: float) -> float:
    return a if a != a else b if b != b else min(a, b)


def _nanmax(a: float, b: float) -> float:
    return a if a != a else b if b != b else max(a, b)
