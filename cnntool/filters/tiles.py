"""Filtering large images in horizontal bands with halos, so memory does not grow with the image.

A chain whose every op keeps the size and looks only at a bounded neighbourhood (kernels and
gradients at stride 1 with ``same`` padding, median, bilateral; any border but ``wrap``) gives,
for each output row, a value that depends only on the input rows within the chain's *halo*
(the sum of the ops' reach). So the image can be cut into bands of rows: each band is filtered
together with ``halo`` extra rows above and below it, and the extra rows are dropped. At the
image's own top and bottom there are no extra rows, so the ops pad exactly as they do on the
whole image. Each band computes the same float64 operations on the same values as the whole
image does: the results are the same (FFT-computed kernels agree to ~1e-12).

The band height is chosen so that one band holds about :data:`BAND_BYTES` of float64 values;
images whose float64 result is under :data:`TILE_MIN_BYTES` are filtered whole.

Examples
--------
>>> import numpy as np
>>> from cnntool.filters.ops import parse_ops, run_ops
>>> ops = parse_ops(["gaussian:sigma=1", "sobel:axis=magnitude"])
>>> chain_halo(ops)
4
>>> image = np.random.default_rng(0).integers(0, 256, (50, 40), dtype=np.uint8)
>>> bands = iter_bands(image, lambda x: run_ops(x, ops), halo=chain_halo(ops), rows=7)
>>> bool(np.array_equal(np.concatenate(list(bands)), run_ops(image, ops)))
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

#: Float64 values (in bytes) one band holds, halo included: the unit of working memory.
BAND_BYTES = 32 << 20
#: Images whose float64 result would be smaller than this are filtered whole.
TILE_MIN_BYTES = 2 * BAND_BYTES
#: The fewest rows a band keeps.
MIN_BAND_ROWS = 16


def op_reach(op) -> int | None:
    """How many rows above or below an output row an op reads; None when the op cannot work in
    bands (it changes the size, wraps around the image, or is not local, like Canny's hysteresis)."""
    kind, p = op.spec.kind, op.params
    if p.get("border") == "wrap":
        return None
    if kind in ("kernel", "gradient"):
        if p["stride"] != 1 or p["pad"] != "same":
            return None
        rows = op.matrix.shape[0] if kind == "kernel" else 3
        extent = p["dilation"] * (rows - 1) + 1
        return extent - 1 - (extent - 1) // 2  # 'same' puts (k-1)//2 rows above, the rest below
    if op.name == "median":
        return int(p["size"]) // 2
    if op.name == "bilateral":
        return int(p["diameter"]) // 2
    return None


def chain_halo(ops: Sequence) -> int | None:
    """The rows a band needs above and below it for a whole chain; None when the chain cannot
    work in bands (see :func:`op_reach`)."""
    total = 0
    for op in ops:
        reach = op_reach(op)
        if reach is None:
            return None
        total += reach
    return total


def band_rows(shape: tuple[int, ...], halo: int, *, band_bytes: int | None = None) -> int:
    """Rows per band for an image of ``shape``: about ``band_bytes`` of float64 per band, halo
    included, but never fewer than the halo on both sides (that would more than double the work)
    nor than :data:`MIN_BAND_ROWS`.

    Examples
    --------
    >>> band_rows((15000, 15000), 7)
    265
    """
    band_bytes = BAND_BYTES if band_bytes is None else band_bytes
    row_bytes = 8 * int(np.prod(shape[1:], dtype=np.int64))
    return max(band_bytes // max(row_bytes, 1) - 2 * halo, 2 * halo, MIN_BAND_ROWS)


def should_tile(shape: tuple[int, ...], halo: int | None, *, min_bytes: int | None = None) -> bool:
    """True when a chain with this ``halo`` can work in bands and the image is big enough to need
    it (its float64 result would reach ``min_bytes``, default :data:`TILE_MIN_BYTES`)."""
    min_bytes = TILE_MIN_BYTES if min_bytes is None else min_bytes
    if halo is None or len(shape) < 2:
        return False
    size = 8 * int(np.prod(shape, dtype=np.int64))
    return size >= min_bytes and shape[0] > band_rows(shape, halo)


def iter_bands(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], *, halo: int,
               rows: int, start: int = 0) -> Iterator[np.ndarray]:
    """``fn`` (a size-keeping filter) applied to ``image`` band by band: yields the result's rows
    in order from row ``start``, ``rows`` at a time (fewer in the last band). ``fn`` gets each
    band with ``halo`` extra rows on either side where the image has them (views, not copies)."""
    height = image.shape[0]
    for y0 in range(start, height, rows):
        y1 = min(height, y0 + rows)
        lo, hi = max(0, y0 - halo), min(height, y1 + halo)
        result = fn(image[lo:hi])
        if result.shape[0] != hi - lo:
            raise ValueError(f"a filter changed a band's height from {hi - lo} to {result.shape[0]}")
        yield result[y0 - lo:y1 - lo]
