"""2-D convolution and cross-correlation with stride, padding, borders and dilation.

Definitions (lectures 000, 002 and 003):

- **Convolution** ``mode="conv"`` flips the kernel: ``(f * g)(t) = sum_tau f(tau) g(t - tau)``.
  **Cross-correlation** ``mode="corr"`` slides it as written (what ``cv2.filter2D`` and CNN
  layers compute). They differ only for asymmetric kernels.
- **Padding** says *how much* is added around the image: ``"valid"`` adds nothing, ``"same"``
  adds ``k_eff - 1`` in total so that stride 1 keeps the size (the odd pixel, for even kernels,
  goes bottom/right), ``"full"`` adds ``k_eff - 1`` on each side (every partial overlap, the
  full 1-D convolution), an int ``p`` adds ``p`` on each side, a pair ``(ph, pw)`` per axis.
- **Border** says *with what*:

  ============  ==================  ==================  ===================  =============
  border        padded row ``abc``  OpenCV              NumPy ``np.pad``     SciPy ndimage
  ============  ==================  ==================  ===================  =============
  ``zero``      ``00|abc|00``       BORDER_CONSTANT 0   ``constant``         ``constant``
  ``reflect``   ``cb|abc|ba``       BORDER_REFLECT_101  ``reflect``          ``mirror``
  ``symmetric`` ``ba|abc|cb``       BORDER_REFLECT      ``symmetric``        ``reflect``
  ``replicate`` ``aa|abc|cc``       BORDER_REPLICATE    ``edge``             ``nearest``
  ``wrap``      ``bc|abc|ab``       BORDER_WRAP         ``wrap``             ``wrap``
  ============  ==================  ==================  ===================  =============

  ``reflect`` mirrors without repeating the edge pixel (OpenCV's default border).
- **Output size**, per axis: ``floor((n + 2p - k_eff) / s) + 1`` with the effective kernel size
  ``k_eff = d * (k - 1) + 1`` under dilation ``d``.

Methods: ``"direct"`` sums in float64 with OpenCV (``cv2.sepFilter2D`` for separable kernels,
``cv2.filter2D`` otherwise; OpenCV itself may use a DFT inside filter2D for kernels of 50 taps
or more); ``"fft"`` uses ``scipy.signal.fftconvolve``; ``"auto"`` takes the separable path for
separable kernels up to :data:`SEPARABLE_MAX_SIZE` taps a side, FFT for kernels of at least
:data:`FFT_MIN_TAPS` taps, and direct otherwise. All give the same result to ~1e-12 relative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnntool.filters.kernels import dilate_kernel, separate
from cnntool.filters.names import BORDERS, METHODS, MODES, PADDINGS

__all__ = ["BORDERS", "METHODS", "MODES", "PADDINGS", "convolve", "correlate", "output_size",
           "output_shape", "pad", "resolve_padding", "effective_size", "choose_method"]


#: ``method="auto"``: separable kernels with sides up to this go through cv2.sepFilter2D.
SEPARABLE_MAX_SIZE = 63
#: ``method="auto"``: kernels with at least this many taps (after dilation) go through FFT.
FFT_MIN_TAPS = 33 * 33

#: Our border names -> NumPy ``np.pad`` modes and SciPy ``ndimage`` modes.
NUMPY_PAD_MODES = {"zero": "constant", "reflect": "reflect", "symmetric": "symmetric",
                   "replicate": "edge", "wrap": "wrap"}
SCIPY_MODES = {"zero": "constant", "reflect": "mirror", "symmetric": "reflect",
               "replicate": "nearest", "wrap": "wrap"}

Padding = str | int | Sequence


def cv2_border(border: str) -> int:
    """The OpenCV border flag for a border name."""
    import cv2

    return {"zero": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101,
            "symmetric": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE,
            "wrap": cv2.BORDER_WRAP}[border]


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def effective_size(k: int, dilation: int = 1) -> int:
    """Kernel extent under dilation: ``d * (k - 1) + 1``.

    Examples
    --------
    >>> effective_size(3, 2)
    5
    """
    return dilation * (k - 1) + 1


def resolve_padding(padding: Padding, kernel_shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turn a padding spec into ``((top, bottom), (left, right))`` for an (effective) kernel.

    Examples
    --------
    >>> resolve_padding("same", (3, 4))
    ((1, 1), (1, 2))
    >>> resolve_padding("full", (3, 3)), resolve_padding(2, (3, 3))
    (((2, 2), (2, 2)), ((2, 2), (2, 2)))
    """
    kh, kw = kernel_shape
    if isinstance(padding, str):
        check_choice(padding, PADDINGS, "padding")
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "full":
            return (kh - 1, kh - 1), (kw - 1, kw - 1)
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    if np.isscalar(padding):
        padding = (padding, padding)
    pads = tuple(padding)
    if len(pads) != 2:
        raise ValueError(f"padding must be 'same', 'valid', 'full', an int or a pair; got {padding!r}")
    out = []
    for p in pads:
        pp = (p, p) if np.isscalar(p) else tuple(p)
        if len(pp) != 2 or any(int(v) != v or v < 0 for v in pp):
            raise ValueError(f"padding amounts must be integers >= 0; got {padding!r}")
        out.append((int(pp[0]), int(pp[1])))
    return out[0], out[1]


def output_size(n: int, k: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """The lectures' formula ``floor((n + 2p - k_eff) / s) + 1`` (0 when the kernel does not fit).

    Examples
    --------
    >>> output_size(7, 3), output_size(7, 3, stride=2), output_size(7, 3, padding=1)
    (5, 3, 7)
    """
    span = n + 2 * padding - effective_size(k, dilation)
    return span // stride + 1 if span >= 0 else 0


def output_shape(shape: tuple[int, ...], kernel_shape: tuple[int, int], *, stride=1,
                 padding: Padding = "same", dilation=1) -> tuple[int, ...]:
    """Output shape of :func:`convolve` for an image ``shape`` (channels kept).

    Examples
    --------
    >>> output_shape((7, 7), (3, 3), padding="valid", stride=2)
    (3, 3)
    >>> output_shape((512, 512, 3), (13, 13))
    (512, 512, 3)
    """
    sy, sx = _pair(stride, "stride")
    dy, dx = _pair(dilation, "dilation")
    keff = (effective_size(kernel_shape[0], dy), effective_size(kernel_shape[1], dx))
    (top, bottom), (left, right) = resolve_padding(padding, keff)
    h = _span_out(shape[0] + top + bottom, keff[0], sy)
    w = _span_out(shape[1] + left + right, keff[1], sx)
    return (h, w, *shape[2:])


def _span_out(padded: int, keff: int, stride: int) -> int:
    return (padded - keff) // stride + 1 if padded >= keff else 0


def pad(image: np.ndarray, widths: tuple[tuple[int, int], tuple[int, int]], border: str = "zero") -> np.ndarray:
    """Pad the first two axes of a 2-D or H x W x C array with a named border (float64 copy).

    Examples
    --------
    >>> pad(np.array([[1.0, 2.0, 3.0]]), ((0, 0), (2, 2)), "reflect")
    array([[3., 2., 1., 2., 3., 2., 1.]])
    """
    check_choice(border, BORDERS, "border")
    x = np.ascontiguousarray(image, dtype=np.float64)
    (top, bottom), (left, right) = widths
    if not (top or bottom or left or right):
        return x.copy()
    if x.ndim == 3 and x.shape[2] > 4:  # OpenCV's fast path is for up to 4 channels
        extra = ((0, 0),) * (x.ndim - 2)
        return np.pad(x, ((top, bottom), (left, right), *extra), mode=NUMPY_PAD_MODES[border])
    import cv2

    out = cv2.copyMakeBorder(x, top, bottom, left, right, cv2_border(border), value=0)
    return out.reshape(x.shape[0] + top + bottom, x.shape[1] + left + right, *x.shape[2:])


def convolve(
    image,
    kernel,
    *,
    stride=1,
    padding: Padding = "same",
    border: str = "zero",
    dilation=1,
    mode: str = "conv",
    method: str = "auto",
) -> np.ndarray:
    """Convolve (or cross-correlate) an image with a kernel, the way the lectures define it.

    Parameters
    ----------
    image : array_like
        1-D signal, 2-D image, or H x W x C (each channel filtered on its own).
    kernel : array_like
        2-D kernel, or 1-D (a row: ``[1, 2, 1]`` is ``[[1, 2, 1]]``).
    stride : int or (int, int)
        Step between output samples.
    padding : {"same", "valid", "full"}, int or pair
        How much to pad (see the module docstring). 1-D inputs pad only along their length.
    border : {"zero", "reflect", "symmetric", "replicate", "wrap"}
        What the padding holds.
    dilation : int or (int, int)
        Spacing between kernel taps; effective size ``d * (k - 1) + 1``.
    mode : {"conv", "corr"}
        ``conv`` flips the kernel (true convolution); ``corr`` does not.
    method : {"auto", "direct", "fft"}
        How to compute it; all agree to ~1e-12 relative.

    Returns
    -------
    numpy.ndarray
        A new float64 array, ``floor((n + 2p - k_eff) / s) + 1`` along each filtered axis.

    Raises
    ------
    ValueError
        Bad options, or a kernel larger than the padded image.

    Examples
    --------
    The lecture's 1-D example, full padding:

    >>> convolve([1, 2, 3, 4], [1, 1, 1], padding="full")
    array([1., 3., 6., 9., 7., 4.])
    >>> convolve(np.ones((7, 7)), np.ones((3, 3)), padding="valid", stride=2).shape
    (3, 3)
    """
    x = np.asarray(image)
    if x.dtype not in _EXACT_CV2_SOURCES:
        x = x.astype(np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    one_d = x.ndim == 1
    if one_d:
        if k.ndim != 1:
            raise ValueError("a 1-D signal needs a 1-D kernel")
        x = x[None, :]
        if isinstance(padding, str) or not np.isscalar(padding):
            padding = _one_d_padding(padding, k.shape[0], dilation)
        else:
            padding = (0, padding)
    if k.ndim == 1:
        k = k[None, :]
    if x.ndim not in (2, 3) or k.ndim != 2:
        raise ValueError(f"need a 2-D or H x W x C image and a 2-D kernel, got {x.shape} and {k.shape}")
    if k.size == 0 or not np.all(np.isfinite(k)):
        raise ValueError("kernel must be non-empty and finite")
    check_choice(mode, MODES, "mode")
    check_choice(method, METHODS, "method")
    sy, sx = _pair(stride, "stride")
    k = dilate_kernel(k, _pair(dilation, "dilation"))
    if mode == "conv":  # correlating with the flipped kernel is convolving with the kernel
        k = k[::-1, ::-1]
    check_choice(border, BORDERS, "border")
    widths = resolve_padding(padding, k.shape)
    path = choose_method(k, method)
    if _in_place_ok(x, k, widths, border, path):
        out = _correlate_in_place(x, k, widths, border, path)
    else:
        padded = pad(x, widths, border)
        if padded.shape[0] < k.shape[0] or padded.shape[1] < k.shape[1]:
            raise ValueError(
                f"the kernel ({k.shape[0]}x{k.shape[1]} effective) is larger than the padded image "
                f"({padded.shape[0]}x{padded.shape[1]})"
            )
        out = correlate_valid(padded, k, method=method, path=path)
    if sy > 1 or sx > 1:
        out = np.ascontiguousarray(out[::sy, ::sx])
    return out[0] if one_d else out


def correlate(image, kernel, **kwargs) -> np.ndarray:
    """:func:`convolve` with ``mode="corr"``: slide the kernel as written, no flip.

    Examples
    --------
    >>> correlate([0, 1, 0], [1, 2, 3])
    array([3., 2., 1.])
    >>> convolve([0, 1, 0], [1, 2, 3])
    array([1., 2., 3.])
    """
    return convolve(image, kernel, mode="corr", **kwargs)


def _one_d_padding(padding, k: int, dilation) -> tuple:
    if isinstance(padding, str):
        d = dilation if np.isscalar(dilation) else dilation[-1]
        (_, _), lr = resolve_padding(padding, (1, effective_size(k, int(d))))
        return (0, 0), lr
    return (0, 0), tuple(padding)


def choose_method(kernel: np.ndarray, method: str = "auto") -> str:
    """Which path :func:`correlate_valid` takes: ``separable``, ``direct`` or ``fft``.

    Examples
    --------
    >>> from cnntool.filters.kernels import gaussian_kernel, LAPLACE_4
    >>> choose_method(gaussian_kernel(2.0)), choose_method(LAPLACE_4), choose_method(np.ones((40, 41)) + np.eye(40, 41))
    ('separable', 'direct', 'fft')
    """
    kh, kw = kernel.shape
    if method == "fft":
        return "fft"
    factors_ok = max(kh, kw) <= SEPARABLE_MAX_SIZE or method == "direct"
    if min(kh, kw) > 1 and factors_ok and separate(kernel) is not None:
        return "separable"
    if method == "auto" and kh * kw >= FFT_MIN_TAPS:
        return "fft"
    return "direct"


#: Source dtypes OpenCV's separable filter reads exactly into a float64 result (others become
#: float64 first; OpenCV's filter2D may use a float32 DFT for 8-bit sources, so only the
#: separable path takes them as they are).
_EXACT_CV2_SOURCES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float64))


def _in_place_ok(x: np.ndarray, k: np.ndarray, widths, border: str, path: str) -> bool:
    """'same'-sized padding that OpenCV can do itself while filtering (no padded copy)."""
    (top, bottom), (left, right) = widths
    return (path != "fft" and border != "wrap"  # OpenCV filters have no BORDER_WRAP
            and top + bottom == k.shape[0] - 1 and left + right == k.shape[1] - 1
            and max(top, bottom) < x.shape[0] and max(left, right) < x.shape[1]
            and (x.ndim == 2 or x.shape[2] <= 4))


def _correlate_in_place(x: np.ndarray, k: np.ndarray, widths, border: str, path: str,
                        dtype=np.float64) -> np.ndarray:
    """``dtype`` float32 (separable path only): an OpenCV float32 result with a float32 kernel."""
    import cv2

    (top, _), (left, _) = widths
    # anchor (left, top): output (y, x) = sum k(a, b) * src(y + a - top, x + b - left), with
    # OpenCV extrapolating the border exactly as copyMakeBorder would
    if path == "separable":
        col, row = separate(k)
        if np.dtype(dtype) == np.float32:
            ddepth, row, col = cv2.CV_32F, row.astype(np.float32), col.astype(np.float32)
        else:
            ddepth = cv2.CV_64F
        out = cv2.sepFilter2D(np.ascontiguousarray(x), ddepth, row, col, anchor=(left, top),
                              borderType=cv2_border(border))
    else:
        src = np.ascontiguousarray(x, dtype=np.float64)
        out = cv2.filter2D(src, cv2.CV_64F, np.ascontiguousarray(k), anchor=(left, top),
                           borderType=cv2_border(border))
    return out.reshape(x.shape)


def correlate_valid(padded: np.ndarray, kernel: np.ndarray, *, method: str = "auto",
                    path: str | None = None) -> np.ndarray:
    """Cross-correlate an already-padded float64 2-D / H x W x C array with a 2-D kernel,
    keeping only the positions where the kernel fits: ``(H - kh + 1, W - kw + 1[, C])``.

    ``path``: the :func:`choose_method` result for ``kernel`` and ``method`` when the caller
    already has it (default: decided here).
    """
    kh, kw = kernel.shape
    h, w = padded.shape[0] - kh + 1, padded.shape[1] - kw + 1
    if path is None:
        path = choose_method(kernel, method)
    if path == "fft":
        from scipy.signal import fftconvolve

        flipped = kernel[::-1, ::-1]
        if padded.ndim == 3:
            return fftconvolve(padded, flipped[:, :, None], mode="valid", axes=(0, 1))
        return fftconvolve(padded, flipped, mode="valid")
    if padded.ndim == 3 and padded.shape[2] > 4:  # OpenCV filters take up to 4 channels here
        return np.stack([correlate_valid(np.ascontiguousarray(padded[:, :, c]), kernel, method=method,
                                         path=path)
                         for c in range(padded.shape[2])], axis=2)
    import cv2

    src = np.ascontiguousarray(padded)
    # anchor (0, 0): output (y, x) = sum kernel(a, b) * src(y + a, x + b); the valid part is
    # the top-left (h, w) block, the rest used OpenCV's own border and is dropped
    if path == "separable":
        col, row = separate(kernel)
        full = cv2.sepFilter2D(src, cv2.CV_64F, row, col, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    else:
        full = cv2.filter2D(src, cv2.CV_64F, np.ascontiguousarray(kernel), anchor=(0, 0),
                            borderType=cv2.BORDER_CONSTANT)
    full = full.reshape(src.shape)
    return np.ascontiguousarray(full[:h, :w])
