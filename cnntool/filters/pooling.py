"""Max and average pooling over 2-D and H x W x C arrays (each channel on its own).

Pooling slides a ``size`` window with a ``stride`` (default: the size, non-overlapping
windows) and keeps the maximum or the mean of each window. The output size follows the same
formula as convolution, ``floor((n + 2p - size) / stride) + 1``. Padding for max pooling holds
``-inf`` (it never wins); for average pooling it holds zeros that count in the mean (PyTorch's
default ``count_include_pad=True``).
"""

from __future__ import annotations

import numpy as np

from cnntool.filters.convolve import Padding, _pair, check_choice, resolve_padding
from cnntool.filters.names import POOL_KINDS



def pool(image, *, size=2, stride=None, kind: str = "max", padding: Padding = 0) -> np.ndarray:
    """Max or average pooling.

    Parameters
    ----------
    image : array_like
        2-D, or H x W x C (each channel pooled on its own).
    size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Step between windows; default ``size``.
    kind : {"max", "avg"}
    padding : {"valid", "same"}, int or pair
        ``0``/``"valid"``: none. ``"same"``: as for convolution (output ``ceil(n / stride)``).

    Returns
    -------
    numpy.ndarray
        A new float64 array.

    Examples
    --------
    The lecture example, 2x2 max pooling with stride 2:

    >>> pool([[1, 2, 5, 3], [3, 0, 1, 2], [2, 1, 3, 4], [1, 1, 2, 0]], size=2)
    array([[3., 5.],
           [2., 4.]])
    >>> pool([[1, 2, 5, 3], [3, 0, 1, 2], [2, 1, 3, 4], [1, 1, 2, 0]], size=2, kind="avg")
    array([[1.5 , 2.75],
           [1.25, 2.25]])
    """
    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise ValueError(f"need a 2-D or H x W x C array, got shape {x.shape}")
    check_choice(kind, POOL_KINDS, "kind")
    kh, kw = _pair(size, "size")
    sy, sx = _pair(size if stride is None else stride, "stride")
    (top, bottom), (left, right) = resolve_padding(padding, (kh, kw))
    padded = bool(top or bottom or left or right)
    # the max of integers is exact in their own type: no float64 copy of a large image
    if not (kind == "max" and not padded and np.issubdtype(x.dtype, np.integer)):
        x = x.astype(np.float64, copy=False)
    if padded:
        fill = -np.inf if kind == "max" else 0.0
        extra = ((0, 0),) * (x.ndim - 2)
        x = np.pad(x, ((top, bottom), (left, right), *extra), mode="constant", constant_values=fill)
    if x.shape[0] < kh or x.shape[1] < kw:
        raise ValueError(f"the {kh}x{kw} pooling window is larger than the (padded) image {x.shape[0]}x{x.shape[1]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::sy, ::sx]
    reduce = np.max if kind == "max" else np.mean
    return np.ascontiguousarray(reduce(windows, axis=(-2, -1)), dtype=np.float64)


def max_pool(image, *, size=2, stride=None, padding: Padding = 0) -> np.ndarray:
    """:func:`pool` with ``kind="max"``.

    Examples
    --------
    >>> max_pool(np.arange(16).reshape(4, 4), size=2, stride=1).shape
    (3, 3)
    """
    return pool(image, size=size, stride=stride, kind="max", padding=padding)


def avg_pool(image, *, size=2, stride=None, padding: Padding = 0) -> np.ndarray:
    """:func:`pool` with ``kind="avg"``.

    Examples
    --------
    >>> avg_pool(np.ones((4, 4)), size=2)
    array([[1., 1.],
           [1., 1.]])
    """
    return pool(image, size=size, stride=stride, kind="avg", padding=padding)
