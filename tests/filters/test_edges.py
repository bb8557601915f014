"""Gradients and Canny against OpenCV and SciPy on real photos."""

import cv2
import numpy as np
import pytest
from scipy import ndimage

from cnntool.filters.edges import canny, gradient, prewitt, scharr, sobel


def test_sobel_as_correlation_is_opencv_and_scipy(gray_photo):
    x = gray_photo.astype(np.float64)
    gx = sobel(gray_photo, axis="x", mode="corr", border="reflect")
    gy = sobel(gray_photo, axis="y", mode="corr", border="reflect")
    np.testing.assert_allclose(gx, cv2.Sobel(x, cv2.CV_64F, 1, 0, ksize=3), atol=1e-9)
    np.testing.assert_allclose(gy, cv2.Sobel(x, cv2.CV_64F, 0, 1, ksize=3), atol=1e-9)
    np.testing.assert_allclose(gx, ndimage.sobel(x, axis=1, mode="mirror"), atol=1e-9)
    # true convolution flips the antisymmetric template: same numbers, opposite sign
    np.testing.assert_allclose(sobel(gray_photo, axis="x", border="reflect"), -gx, atol=1e-9)
    np.testing.assert_allclose(sobel(gray_photo, axis="magnitude", border="reflect"), np.hypot(gx, gy), atol=1e-9)


def test_prewitt_and_scharr_match_references(gray_photo):
    x = gray_photo.astype(np.float64)
    np.testing.assert_allclose(prewitt(x, axis="y", mode="corr", border="replicate"),
                               ndimage.prewitt(x, axis=0, mode="nearest"), atol=1e-9)
    np.testing.assert_allclose(scharr(x, axis="x", mode="corr", border="reflect"),
                               cv2.Scharr(x, cv2.CV_64F, 1, 0), atol=1e-9)


@pytest.mark.parametrize("angle", [0, 90, 180, -90, 45])
def test_direction_is_in_degrees_along_the_brightening(angle):
    t = np.radians(angle)
    yy, xx = np.mgrid[0:9, 0:9].astype(float)
    ramp = np.cos(t) * xx + np.sin(t) * yy  # brighter towards `angle` (x right, y down)
    d = gradient(ramp, operator="sobel", axis="direction", mode="corr", padding="valid")
    expected = angle if angle != -180 else 180
    np.testing.assert_allclose(d, expected, atol=1e-9)
    flipped = gradient(ramp, operator="sobel", axis="direction", mode="conv", padding="valid")
    np.testing.assert_allclose(np.cos(np.radians(flipped - d)), -1.0, atol=1e-9)  # turned by 180


def test_gradient_keeps_channels_and_geometry(photo):
    out = sobel(photo, axis="magnitude", stride=2, padding="valid")
    assert out.shape == ((300 - 3) // 2 + 1, (451 - 3) // 2 + 1, 3)


def test_canny_outlines_a_square():
    square = np.zeros((32, 32))
    square[8:24, 8:24] = 255.0
    edges = canny(square, sigma=1.0)
    assert edges.dtype == bool
    assert edges[8:24, 7:9].any(axis=1).all()  # the left side, every row
    assert not edges[12:20, 12:20].any()  # nothing inside
    assert not edges[:4].any()  # nothing far outside
    assert not canny(square, low=5000, high=6000).any()  # thresholds above every gradient
    with pytest.raises(ValueError):
        canny(square, low=10, high=5)


def test_canny_on_a_photo_finds_some_but_not_all_pixels(gray_photo):
    edges = canny(gray_photo, sigma=2.0)
    assert 0.01 < edges.mean() < 0.3
