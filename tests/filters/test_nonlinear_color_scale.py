"""Median and bilateral filters, colour modes, and scaling to uint8."""

import cv2
import numpy as np
import pytest
from skimage.color import rgb2lab

from cnntool.filters.color import filter_color, to_gray
from cnntool.filters.convolve import convolve
from cnntool.filters.kernels import gaussian_kernel
from cnntool.filters.nonlinear import bilateral, median
from cnntool.filters.scale import to_uint8


def test_median_matches_opencv_with_replicated_border(photo):
    np.testing.assert_array_equal(median(photo, size=5, border="replicate"), cv2.medianBlur(photo, 5))


def test_median_removes_salt_and_zero_border_darkens_corners():
    x = np.full((6, 6), 50.0)
    x[2, 3] = 255.0
    np.testing.assert_array_equal(median(x, size=3, border="reflect"), np.full((6, 6), 50.0))
    assert median(x, size=3, border="zero")[0, 0] == 0.0  # 5 of the 9 corner values are padding


def test_bilateral_matches_opencv_in_float32(photo):
    x = photo[:80, :90]
    ours = bilateral(x, diameter=7, sigma_color=30, sigma_space=5, border="reflect")
    for c in range(3):
        ref = cv2.bilateralFilter(x[:, :, c].astype(np.float32), 7, 30, 5)
        np.testing.assert_allclose(ours[:, :, c], ref, atol=1e-3)


def test_gray_mode_uses_bt601_luma(photo):
    np.testing.assert_allclose(to_gray(photo), photo @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(to_gray(photo) - cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)).max() <= 0.5 + 1e-9
    out = filter_color(photo, lambda x: x * 2, color="gray")
    assert out.shape == photo.shape[:2]


def test_luminance_mode_filters_lightness_and_keeps_colour(photo):
    blur = lambda x: convolve(x, gaussian_kernel(3.0), border="reflect")  # noqa: E731
    out = filter_color(photo, blur, color="luminance")
    assert out.shape == photo.shape and out.dtype == np.float64
    lab_in, lab_out = rgb2lab(photo / 255.0), rgb2lab(np.clip(out, 0, 255) / 255.0)
    np.testing.assert_allclose(lab_out[..., 0], blur(lab_in[..., 0]), atol=0.6)  # L is the blurred L
    # a, b are kept (up to the gamut clipping on the way back to RGB)
    assert np.median(np.abs(lab_out[..., 1:] - lab_in[..., 1:])) < 0.5
    channels = filter_color(photo, blur, color="channels")
    assert np.abs(channels - out).mean() > 0.5  # a different result from per-channel blurring
    with pytest.raises(ValueError, match="keep the image size"):
        filter_color(photo, lambda x: x[::2, ::2], color="luminance")


def test_identity_round_trip_through_luminance(photo):
    out = filter_color(photo, lambda x: x, color="luminance")
    np.testing.assert_allclose(out, photo, atol=1e-6)


def test_scales():
    x = np.array([[-510.0, -255.0, 0.0], [100.4, 255.0, 510.0]])
    np.testing.assert_array_equal(to_uint8(x, "clip"), [[0, 0, 0], [100, 255, 255]])
    np.testing.assert_array_equal(to_uint8(x, "abs"), [[255, 255, 0], [100, 255, 255]])
    np.testing.assert_array_equal(to_uint8(x, "offset"), [[1, 64, 128], [153, 192, 255]])
    np.testing.assert_array_equal(to_uint8(x, "minmax"), [[0, 64, 128], [153, 191, 255]])
    np.testing.assert_array_equal(to_uint8(np.full((2, 2), 7.0), "minmax"), np.zeros((2, 2)))
    np.testing.assert_array_equal(to_uint8(np.zeros(3), "offset"), [128, 128, 128])
    np.testing.assert_array_equal(to_uint8(np.array([np.nan, np.inf, 3.0]), "clip"), [0, 255, 3])
    with pytest.raises(ValueError):
        to_uint8(x, "log")
