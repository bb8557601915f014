"""Edge detection: Sobel, Prewitt and Scharr gradients (x, y, magnitude, direction) and Canny.

Gradients follow :func:`~cnntool.filters.convolve.convolve` exactly: the x and y templates of
:mod:`~cnntool.filters.kernels` (``SOBEL_X = [[-1, 0, 1], ...]``) are convolved with the
image under the given ``mode``. With ``mode="corr"`` the x response is positive where the
image gets brighter to the right (``cv2.Sobel``, ``scipy.ndimage.sobel``); true convolution
(``mode="conv"``) flips the template, so x and y change sign and the direction turns by
180 degrees, while the magnitude is the same.

``direction`` is ``degrees(arctan2(gy, gx))`` in (-180, 180], with x to the right and y down.
"""

from __future__ import annotations

import numpy as np

from cnntool.filters.convolve import check_choice, convolve
from cnntool.filters.kernels import GRADIENT_KERNELS
from cnntool.filters.names import AXES, OPERATORS


def gradient(image, *, operator: str = "sobel", axis: str = "magnitude", **conv) -> np.ndarray:
    """A gradient image from a named operator.

    Parameters
    ----------
    image : array_like
        2-D or H x W x C (per channel).
    operator : {"sobel", "prewitt", "scharr"}
    axis : {"x", "y", "magnitude", "direction"}
        ``magnitude`` is ``sqrt(gx**2 + gy**2)``; ``direction`` is in degrees.
    **conv
        Passed to :func:`~cnntool.filters.convolve.convolve` (stride, padding, border,
        dilation, mode, method).

    Returns
    -------
    numpy.ndarray
        float64.

    Examples
    --------
    A ramp that rises to the right by 1 per pixel:

    >>> ramp = np.tile(np.arange(5.0), (5, 1))
    >>> float(gradient(ramp, axis="x", mode="corr", padding="valid")[1, 1])
    8.0
    >>> float(gradient(ramp, axis="x", mode="conv", padding="valid")[1, 1])
    -8.0
    >>> float(gradient(ramp, axis="direction", mode="corr", padding="valid")[1, 1])
    0.0
    """
    check_choice(operator, OPERATORS, "operator")
    check_choice(axis, AXES, "axis")
    kx, ky = GRADIENT_KERNELS[operator]
    if axis == "x":
        return convolve(image, kx, **conv)
    if axis == "y":
        return convolve(image, ky, **conv)
    gx = convolve(image, kx, **conv)
    gy = convolve(image, ky, **conv)
    if axis == "magnitude":
        return np.hypot(gx, gy)
    return np.degrees(np.arctan2(gy, gx))


def sobel(image, *, axis: str = "magnitude", **conv) -> np.ndarray:
    """:func:`gradient` with the Sobel templates.

    Examples
    --------
    >>> step = np.zeros((5, 5)); step[:, 3:] = 1.0
    >>> sobel(step, axis="magnitude", padding="valid")[1]
    array([0., 4., 4.])
    """
    return gradient(image, operator="sobel", axis=axis, **conv)


def prewitt(image, *, axis: str = "magnitude", **conv) -> np.ndarray:
    """:func:`gradient` with the Prewitt templates."""
    return gradient(image, operator="prewitt", axis=axis, **conv)


def scharr(image, *, axis: str = "magnitude", **conv) -> np.ndarray:
    """:func:`gradient` with the Scharr templates."""
    return gradient(image, operator="scharr", axis=axis, **conv)


def canny(image, *, sigma: float = 1.0, low: float = 50.0, high: float = 100.0, border: str = "zero") -> np.ndarray:
    """Canny edges (scikit-image's implementation): Gaussian smoothing, Sobel gradient,
    non-maximum suppression, hysteresis between ``low`` and ``high``.

    Parameters
    ----------
    image : array_like
        2-D, or H x W x C (each channel on its own).
    sigma : float
        Gaussian smoothing before the gradient.
    low, high : float
        Hysteresis thresholds on the gradient magnitude, in the image's units as seen by a
        Sobel template (a 0 -> 255 step gives about 1020 before smoothing).
    border : str
        How the smoothing sees outside the image (same names as convolve).

    Returns
    -------
    numpy.ndarray
        bool, True on edge pixels, same shape as ``image``.

    Examples
    --------
    >>> square = np.zeros((20, 20)); square[5:15, 5:15] = 255.0
    >>> edges = canny(square)
    >>> bool(edges[5, 10]), bool(edges[10, 10])
    (True, False)
    """
    from skimage.feature import canny as _canny

    from cnntool.filters.convolve import BORDERS, SCIPY_MODES

    check_choice(border, BORDERS, "border")
    if not high >= low >= 0:
        raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3:
        return np.stack([canny(x[:, :, c], sigma=sigma, low=low, high=high, border=border)
                         for c in range(x.shape[2])], axis=2)
    if x.ndim != 2:
        raise ValueError(f"need a 2-D or H x W x C array, got shape {x.shape}")
    # float input: skimage compares the thresholds with the plain Sobel magnitude (no rescaling);
    # with the zero border it divides out the smoothed mask, so edges are not darkened
    return _canny(x, sigma=sigma, low_threshold=low, high_threshold=high,
                  mode=SCIPY_MODES[border], cval=0.0)
