"""Optical-flow error against a known true flow: the end-point error and the outlier rate.

The end-point error (EPE) of a pixel is the length of the difference between the estimated and
the true displacement vectors, in pixels; its mean over the valid pixels is the usual score
(Middlebury, Sintel), and the fraction of pixels off by more than 3 px is the outlier rate
(KITTI's "Fl" without its relative part).

Examples
--------
>>> truth = np.zeros((4, 4, 2), np.float32)
>>> estimate = truth.copy(); estimate[0, 0] = (3, 4)      # one pixel 5 px off
>>> endpoint_error(estimate, truth)
FlowError(epe=0.3125, outliers=0.0625, pixels=16)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Pixels off by more than this many pixels count as outliers.
OUTLIER_PX = 3.0


class FlowError(NamedTuple):
    """``epe``: mean end-point error (px); ``outliers``: fraction of pixels with an error over
    the threshold; ``pixels``: how many pixels were scored (NaN scores when none)."""

    epe: float
    outliers: float
    pixels: int


def endpoint_errors(flow: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel end-point error: float64 array of the leading shape of ``flow`` (..., 2).

    Examples
    --------
    >>> endpoint_errors(np.array([[3.0, 4.0]]), np.zeros((1, 2)))
    array([5.])
    """
    flow, truth = np.asarray(flow, np.float64), np.asarray(truth, np.float64)
    if flow.shape != truth.shape or flow.shape[-1:] != (2,):
        raise ValueError(f"flow and truth must both be (..., 2) of one shape: {flow.shape} vs {truth.shape}")
    return np.hypot(flow[..., 0] - truth[..., 0], flow[..., 1] - truth[..., 1])


def endpoint_error(flow: np.ndarray, truth: np.ndarray, *, valid: np.ndarray | None = None,
                   threshold: float = OUTLIER_PX) -> FlowError:
    """Mean end-point error and outlier rate of ``flow`` against ``truth``.

    Parameters
    ----------
    flow, truth : numpy.ndarray
        (..., H, W, 2) displacements ``(dx, dy)`` in pixels; a batch is scored as one set.
    valid : numpy.ndarray of bool, optional
        (..., H, W): the pixels with a known truth (occluded pixels, or pixels without a
        disparity, are left out). Pixels whose truth is not finite are left out as well; a
        non-finite estimate where the truth is known scores an infinite error.
    threshold : float
        Error in pixels above which a pixel is an outlier.

    Returns
    -------
    FlowError

    Examples
    --------
    >>> truth = np.zeros((2, 2, 2)); truth[1, 1] = np.nan       # no truth there
    >>> flow = np.ones((2, 2, 2))
    >>> endpoint_error(flow, truth, threshold=1.0).pixels
    3
    """
    errors = endpoint_errors(flow, truth)
    keep = np.isfinite(np.asarray(truth, np.float64)).all(axis=-1)
    errors[keep & ~np.isfinite(errors)] = np.inf  # a NaN estimate is wrong, not unscored
    if valid is not None:
        valid = np.asarray(valid, bool)
        if valid.shape != errors.shape:
            raise ValueError(f"valid must be {errors.shape}, not {valid.shape}")
        keep &= valid
    scored = errors[keep]
    if scored.size == 0:
        return FlowError(float("nan"), float("nan"), 0)
    return FlowError(float(scored.mean()), float((scored > threshold).mean()), int(scored.size))
