"""Colour handling for filters: per channel, grayscale, or luminance only (CIELAB L).

- ``channels``: every channel is filtered on its own (a 2-D image stays 2-D).
- ``gray``: RGB is first turned into luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601, what
  ``cv2.COLOR_RGB2GRAY`` uses), in float64; the result is 2-D.
- ``luminance``: RGB (0..255) goes to CIELAB (D65, scikit-image), only L (0..100) is
  filtered, and a, b are kept, so colours stay while edges and blur act on lightness. The
  filters must keep the image size. Alpha, if any, is kept as it is. A 2-D image is filtered
  as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnntool.filters.names import COLOR_MODES

#: ITU-R BT.601 luma weights for R, G, B.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def to_gray(image) -> np.ndarray:
    """Luma of an RGB(A) image as float64 (2-D input is returned as a float64 copy).

    Examples
    --------
    >>> to_gray(np.full((1, 1, 3), 100.0))
    array([[100.]])
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        return x.copy()
    if x.ndim != 3 or x.shape[2] not in (3, 4):
        raise ValueError(f"need a 2-D or H x W x 3/4 image, got shape {x.shape}")
    return x[:, :, :3] @ LUMA_WEIGHTS


def filter_color(image, fn: Callable[[np.ndarray], np.ndarray], *, color: str = "channels") -> np.ndarray:
    """Apply ``fn`` (float64 array -> float64 array) under a colour mode.

    Parameters
    ----------
    image : array_like
        2-D, or H x W x C; RGB values in 0..255 for ``luminance``.
    fn : callable
        The filter (2-D and H x W x C in, float64 out). In ``channels`` mode it gets the array
        as it is (uint8 stays uint8, so OpenCV can read it without a float64 copy); otherwise
        float64.
    color : {"channels", "gray", "luminance"}

    Returns
    -------
    numpy.ndarray
        float64.

    Raises
    ------
    ValueError
        Unknown mode, or, in ``luminance`` mode, a filter that changed the size.

    Examples
    --------
    >>> rgb = np.zeros((4, 4, 3)); rgb[..., 0] = 200.0
    >>> filter_color(rgb, lambda x: x, color="luminance").round(6)[0, 0]
    array([200.,   0.,   0.])
    >>> filter_color(rgb, lambda x: x, color="gray").shape
    (4, 4)
    """
    if color not in COLOR_MODES:
        raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}; got {color!r}")
    x = np.asarray(image)
    if color == "channels" or x.ndim == 2:
        return fn(x)
    x = x.astype(np.float64)
    if color == "gray":
        return fn(to_gray(x))
    return _filter_luminance(x, fn)


def _filter_luminance(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    from skimage.color import lab2rgb, rgb2lab

    if x.ndim != 3 or x.shape[2] not in (3, 4):
        raise ValueError(f"luminance mode needs an RGB image, got shape {x.shape}")
    lab = rgb2lab(np.clip(x[:, :, :3] / 255.0, 0.0, 1.0))
    lightness = fn(lab[:, :, 0])
    if lightness.shape != lab.shape[:2]:
        raise ValueError("luminance mode needs filters that keep the image size")
    lab[:, :, 0] = lightness
    rgb = lab2rgb(lab) * 255.0
    if x.shape[2] == 4:
        rgb = np.concatenate([rgb, x[:, :, 3:]], axis=2)
    return rgb
