"""Turning float filter results into uint8 images, deliberately.

========  ===========================================================  ====================
scale     mapping                                                      suits
========  ===========================================================  ====================
clip      round, clip to 0..255                                        smoothing, sharpening
abs       ``|x|``, round, clip to 0..255 (``cv2.convertScaleAbs``)     edges, sign ignored
minmax    ``(x - min) / (max - min) * 255`` (constant -> 0)            magnitude, direction
offset    ``128 + 127 * x / max|x|``: zero is mid-grey, sign kept      signed x/y, Laplacian
========  ===========================================================  ====================

``minmax`` and ``offset`` use the min/max of the whole image (all channels), so a run
over a folder scales each image on its own; a band of a large image is scaled with the whole
image's ``limits``. ``.npy`` outputs are never scaled.
"""

from __future__ import annotations

import numpy as np

from cnntool.filters.names import SCALES


def to_uint8(result, scale: str = "clip", *, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Map a float array to uint8 with one of :data:`SCALES`.

    ``limits``: the ``(min, max)`` that ``minmax`` and ``offset`` scale by, when ``result`` is a
    part of a larger image (default: its own, after NaN/inf are replaced as below); see
    :func:`scale_limits`.

    Examples
    --------
    >>> x = np.array([-300.0, -1.0, 0.0, 0.4, 254.6, 400.0])
    >>> to_uint8(x, "clip").tolist(), to_uint8(x, "abs").tolist()
    ([0, 0, 0, 0, 255, 255], [255, 1, 0, 0, 255, 255])
    >>> to_uint8(np.array([-2.0, 0.0, 2.0]), "offset").tolist()
    [1, 128, 255]
    >>> to_uint8(np.array([10.0, 20.0, 30.0]), "minmax").tolist()
    [0, 128, 255]
    """
    x = np.asarray(result, dtype=np.float64)
    if not np.isfinite(x.sum()):  # one cheap pass; NaN/inf are rare (huge .npy values)
        x = np.nan_to_num(x, nan=0.0, posinf=255.0, neginf=0.0)
    if scale == "clip":
        y = x
    elif scale == "abs":
        y = np.abs(x)
    elif scale == "minmax":
        if limits is not None:
            lo, hi = limits
        else:
            lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        y = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    elif scale == "offset":
        if limits is not None:
            peak = max(abs(limits[0]), abs(limits[1]))
        else:
            peak = float(np.abs(x).max()) if x.size else 0.0
        y = 128.0 + x * (127.0 / peak) if peak > 0 else np.full_like(x, 128.0)
    else:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    y = np.rint(y)
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def scale_limits(result) -> tuple[float, float]:
    """The ``(min, max)`` that :func:`to_uint8` scales by, NaN and inf replaced first (NaN -> 0,
    inf -> 255, -inf -> 0); merge parts with ``min`` of the mins and ``max`` of the maxes.

    Examples
    --------
    >>> scale_limits(np.array([[-1.0, np.nan], [3.0, 2.0]]))
    (-1.0, 3.0)
    """
    x = np.asarray(result, dtype=np.float64)
    if not x.size:
        return 0.0, 0.0
    if not np.isfinite(x.sum()):
        x = np.nan_to_num(x, nan=0.0, posinf=255.0, neginf=0.0)
    return float(x.min()), float(x.max())
