"""Non-linear smoothing: median and bilateral filters. Both keep the image size.

They take the same border names as :func:`~cnntool.filters.convolve.convolve`; there is no
kernel to flip and no stride or dilation.
"""

from __future__ import annotations

import numpy as np

from cnntool.filters.convolve import BORDERS, SCIPY_MODES, check_choice, pad


def median(image, *, size: int = 3, border: str = "zero") -> np.ndarray:
    """Median of each ``size x size`` neighbourhood (``scipy.ndimage.median_filter``, float64).

    Parameters
    ----------
    image : array_like
        2-D, or H x W x C (each channel on its own).
    size : int
        Window side.
    border : {"zero", "reflect", "symmetric", "replicate", "wrap"}
        What the window sees outside the image. ``zero`` darkens corners (5 of the 9 values
        of a 3x3 corner window are padding); ``reflect`` or ``replicate`` do not.

    Examples
    --------
    >>> x = np.zeros((5, 5)); x[2, 2] = 100.0  # salt noise
    >>> float(median(x, size=3).max())
    0.0
    """
    from scipy.ndimage import median_filter

    check_choice(border, BORDERS, "border")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    x = np.asarray(image, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"need a 2-D or H x W x C array, got shape {x.shape}")
    window = (int(size), int(size)) + (1,) * (x.ndim - 2)
    return median_filter(x, size=window, mode=SCIPY_MODES[border], cval=0.0)


def bilateral(image, *, diameter: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0,
              border: str = "zero") -> np.ndarray:
    """Edge-preserving bilateral filter (``cv2.bilateralFilter``), each channel on its own.

    Weights fall off with distance (``sigma_space``, pixels) and with the difference in value
    (``sigma_color``, image units). OpenCV computes it in float32, so the float64 result is
    exact to about 1e-5 relative, not to the last bit.

    Examples
    --------
    >>> x = np.zeros((9, 9)); x[:, 5:] = 200.0
    >>> y = bilateral(x, diameter=5, sigma_color=20, sigma_space=3, border="replicate")
    >>> round(float(y[4, 4]), 3), round(float(y[4, 5]), 3)  # the step survives
    (0.0, 200.0)
    """
    import cv2

    check_choice(border, BORDERS, "border")
    if int(diameter) != diameter or diameter < 1:
        raise ValueError(f"diameter must be a positive integer, got {diameter}")
    if not (sigma_color > 0 and sigma_space > 0):
        raise ValueError("sigma_color and sigma_space must be > 0")
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3:
        return np.stack([bilateral(x[:, :, c], diameter=diameter, sigma_color=sigma_color,
                                   sigma_space=sigma_space, border=border)
                         for c in range(x.shape[2])], axis=2)
    if x.ndim != 2:
        raise ValueError(f"need a 2-D or H x W x C array, got shape {x.shape}")
    r = int(diameter) // 2
    padded = pad(x, ((r, r), (r, r)), border).astype(np.float32)
    out = cv2.bilateralFilter(padded, int(diameter), float(sigma_color), float(sigma_space))
    return out[r:r + x.shape[0], r:r + x.shape[1]].astype(np.float64)
