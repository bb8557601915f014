"""Named convolution kernels as constants, and builders for the parametrised ones.

Every matrix here is written the way textbooks and the lectures print it, as a *template*:
``SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``. Cross-correlation (``mode="corr"``, what
``cv2.filter2D``, ``scipy.ndimage.correlate`` and CNN layers compute) slides the template as
written; true convolution (``mode="conv"``, ``scipy.ndimage.convolve``) flips it first, which
negates the antisymmetric gradient kernels and leaves the symmetric ones unchanged.

Constants are read-only float64 arrays; builders return new arrays.

Examples
--------
>>> SOBEL_X
array([[-1.,  0.,  1.],
       [-2.,  0.,  2.],
       [-1.,  0.,  1.]])
>>> gaussian_kernel(1.0).shape
(7, 7)
>>> float(gaussian_kernel(2.0).sum())
1.0
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np


def _const(rows) -> np.ndarray:
    arr = np.array(rows, dtype=np.float64)
    arr.setflags(write=False)
    return arr


#: The kernel that changes nothing.
IDENTITY = _const([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
#: 3x3 mean (box) filter.
BOX_3 = _const(np.full((3, 3), 1.0 / 9.0))

#: Sobel: central difference [-1, 0, 1] times the smoothing [1, 2, 1] across it (lecture 002).
SOBEL_X = _const([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
SOBEL_Y = _const(SOBEL_X.T)
#: Prewitt: central difference times the box [1, 1, 1].
PREWITT_X = _const([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])
PREWITT_Y = _const(PREWITT_X.T)
#: Scharr: central difference times [3, 10, 3], better rotational symmetry than Sobel.
SCHARR_X = _const([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])
SCHARR_Y = _const(SCHARR_X.T)

#: Discrete Laplacian, 4-neighbour (the lecture 003 example).
LAPLACE_4 = _const([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
#: Discrete Laplacian, 8-neighbour.
LAPLACE_8 = _const([[1, 1, 1], [1, -8, 1], [1, 1, 1]])

#: Sharpen = identity minus the 4-neighbour Laplacian.
SHARPEN = _const(IDENTITY - LAPLACE_4)
#: Emboss (light from the top left); sums to 1 so flat areas keep their value.
EMBOSS = _const([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])

#: Gradient templates by operator name: (x, y).
GRADIENT_KERNELS = {
    "sobel": (SOBEL_X, SOBEL_Y),
    "prewitt": (PREWITT_X, PREWITT_Y),
    "scharr": (SCHARR_X, SCHARR_Y),
}

#: Gaussian kernels are cut at this many sigmas from the centre when no size is given.
GAUSSIAN_TRUNCATE = 3.0


def gaussian_size(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> int:
    """The default odd side of a Gaussian kernel: ``2 * ceil(truncate * sigma) + 1``.

    For ``sigma=2`` that is 13, the size ``cv2.GaussianBlur(img, (0, 0), 2)`` uses on uint8.

    Examples
    --------
    >>> gaussian_size(1.0), gaussian_size(2.0), gaussian_size(0.5)
    (7, 13, 5)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return 2 * math.ceil(truncate * sigma) + 1


def _check_size(size: int, what: str = "size") -> int:
    if int(size) != size or size < 1:
        raise ValueError(f"{what} must be a positive integer, got {size}")
    return int(size)


def box_kernel(size: int = 3) -> np.ndarray:
    """A ``size x size`` mean filter (all weights ``1 / size**2``).

    Examples
    --------
    >>> box_kernel(2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    size = _check_size(size)
    return np.full((size, size), 1.0 / (size * size))


def gaussian_kernel_1d(sigma: float, size: int | None = None) -> np.ndarray:
    """The sampled 1-D Gaussian ``exp(-t**2 / (2 sigma**2))``, normalised to sum 1.

    Samples are taken at integer offsets from the centre ``(size - 1) / 2``; this is the
    kernel ``cv2.getGaussianKernel(size, sigma)`` returns.

    Examples
    --------
    >>> gaussian_kernel_1d(1.0, 3).round(4)
    array([0.2741, 0.4519, 0.2741])
    """
    size = gaussian_size(sigma) if size is None else _check_size(size)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """A 2-D Gaussian kernel, the outer product of two :func:`gaussian_kernel_1d` (separable).

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels.
    size : int, optional
        Side of the square kernel; default :func:`gaussian_size` (3 sigma each side).

    Examples
    --------
    >>> k = gaussian_kernel(1.0, 5)
    >>> k.shape, round(float(k.sum()), 12), bool(k[2, 2] == k.max())
    ((5, 5), 1.0, True)
    """
    g = gaussian_kernel_1d(sigma, size)
    return np.outer(g, g)


def log_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Laplacian of Gaussian, ``-(1 - r**2/(2 sigma**2)) exp(-r**2/(2 sigma**2)) / (pi sigma**4)``,
    shifted to sum exactly 0 so flat regions give 0. The centre is negative (like LAPLACE_4).

    Examples
    --------
    >>> k = log_kernel(1.0)
    >>> k.shape, abs(float(k.sum())) < 1e-12, bool(k[3, 3] < 0)
    ((7, 7), True, True)
    """
    size = gaussian_size(sigma) if size is None else _check_size(size)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    r2 = t[:, None] ** 2 + t[None, :] ** 2
    s2 = sigma * sigma
    k = -(1.0 - r2 / (2.0 * s2)) * np.exp(-r2 / (2.0 * s2)) / (math.pi * s2 * s2)
    return k - k.mean()


def laplace_kernel(neighbours: int = 4) -> np.ndarray:
    """The discrete Laplacian with 4 or 8 neighbours (a new array)."""
    if neighbours not in (4, 8):
        raise ValueError(f"neighbours must be 4 or 8, got {neighbours}")
    return np.array(LAPLACE_4 if neighbours == 4 else LAPLACE_8)


def sharpen_kernel(amount: float = 1.0) -> np.ndarray:
    """``IDENTITY - amount * LAPLACE_4``; ``amount=1`` gives :data:`SHARPEN`.

    Examples
    --------
    >>> sharpen_kernel(1.0)
    array([[ 0., -1.,  0.],
           [-1.,  5., -1.],
           [ 0., -1.,  0.]])
    """
    return IDENTITY - amount * LAPLACE_4


def unsharp_kernel(sigma: float = 1.0, amount: float = 1.0, size: int | None = None) -> np.ndarray:
    """Unsharp masking as one kernel: ``x + amount * (x - gaussian(x))``, i.e.
    ``(1 + amount) * delta - amount * G``. Sums to 1.

    Examples
    --------
    >>> k = unsharp_kernel(1.0, 1.0)
    >>> k.shape, round(float(k.sum()), 12)
    ((7, 7), 1.0)
    """
    g = gaussian_kernel(sigma, size)
    k = -amount * g
    k[g.shape[0] // 2, g.shape[1] // 2] += 1.0 + amount
    return k


def dilate_kernel(kernel: np.ndarray, dilation: int | tuple[int, int]) -> np.ndarray:
    """Insert ``dilation - 1`` zeros between kernel taps; the effective size is ``d*(k-1)+1``.

    Examples
    --------
    >>> dilate_kernel(np.array([[1.0, 2.0]]), 3)
    array([[1., 0., 0., 2.]])
    """
    dy, dx = (dilation, dilation) if np.isscalar(dilation) else dilation
    kernel = np.asarray(kernel, dtype=np.float64)
    if dy == 1 and dx == 1:
        return kernel.copy()
    kh, kw = kernel.shape
    out = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1))
    out[::dy, ::dx] = kernel
    return out


def separate(kernel: np.ndarray, *, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a rank-1 kernel into ``(column, row)`` with ``outer(column, row) == kernel``.

    Returns None when the kernel is not separable (to ``rtol`` of its largest entry).

    Examples
    --------
    >>> col, row = separate(SOBEL_X)
    >>> np.allclose(np.outer(col, row), SOBEL_X)
    True
    >>> separate(LAPLACE_4) is None
    True
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2:
        return None
    peak = np.abs(kernel).max(initial=0.0)
    if peak == 0:
        return None
    i, j = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    row = kernel[i, :].copy()
    col = kernel[:, j] / kernel[i, j]
    if np.abs(np.outer(col, row) - kernel).max() > rtol * peak:
        return None
    return col, row


# Custom kernels ---------------------------------------------------------------------------

_NUMBER_SPLIT = re.compile(r"[,\s]+")


def parse_kernel(text: str) -> np.ndarray:
    """Parse an inline kernel: rows separated by ``;``, values by ``,`` or spaces.

    Raises ValueError with a one-line reason for empty, ragged or non-numeric text.

    Examples
    --------
    >>> parse_kernel("0,1,0;1,-4,1;0,1,0")
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]])
    >>> parse_kernel("1 2 1").shape
    (1, 3)
    """
    rows = [r.strip() for r in text.strip().strip(";").split(";")]
    if not rows or not rows[0]:
        raise ValueError("empty kernel")
    values: list[list[float]] = []
    for r in rows:
        try:
            values.append([float(v) for v in _NUMBER_SPLIT.split(r.strip(" ,")) if v])
        except ValueError:
            raise ValueError(f"not a number in kernel row {r!r}") from None
    widths = {len(r) for r in values}
    if len(widths) != 1 or 0 in widths:
        raise ValueError(f"kernel rows have different lengths: {sorted(len(r) for r in values)}")
    return _check_kernel(np.array(values, dtype=np.float64))


def load_kernel(path: str | os.PathLike) -> np.ndarray:
    """Read a kernel from a ``.npy`` file or a text file (rows on lines; values separated by
    spaces or commas; ``;`` also ends a row; ``#`` starts a comment).

    Raises ValueError (missing file, bad content) with a one-line reason.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"kernel file not found: {p}")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"not a valid .npy kernel: {exc}") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"a kernel must be a 1-D or 2-D numeric array, got shape {arr.shape} {arr.dtype}")
        return _check_kernel(arr.astype(np.float64))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read kernel file {p}: {exc}") from None
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return parse_kernel(";".join(line for line in lines if line))


def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    if kernel.size == 0:
        raise ValueError("empty kernel")
    if not np.all(np.isfinite(kernel)):
        raise ValueError("kernel has NaN or infinite values")
    return kernel
