"""Agreement with OpenCV, SciPy and scikit-image on the real photos in samples/photos."""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import block_reduce

from cnntool.filters.convolve import convolve
from cnntool.filters.kernels import gaussian_kernel
from cnntool.filters.ops import parse_ops, run_ops

from .conftest import PHOTOS, read_rgb

PHOTO_FILES = sorted(p.name for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))


@pytest.fixture(scope="module", params=PHOTO_FILES)
def real(request):
    return read_rgb(PHOTOS / request.param)


def _per_channel(fn, x):
    return np.stack([fn(x[..., c]) for c in range(x.shape[2])], axis=2) if x.ndim == 3 else fn(x)


def test_photo_set_is_there():
    assert len(PHOTO_FILES) >= 5


def test_gaussian_matches_opencv_and_scipy(real):
    x = real.astype(np.float64)
    ours = run_ops(real, parse_ops(["gaussian:sigma=2:border=reflect"]))
    np.testing.assert_allclose(ours, cv2.GaussianBlur(x, (13, 13), 2.0, borderType=cv2.BORDER_REFLECT_101), atol=1e-9)
    scipy = _per_channel(lambda c: ndimage.gaussian_filter(c, 2.0, truncate=3.0, mode="mirror"), x)
    np.testing.assert_allclose(ours, scipy, atol=1e-9)


def test_mean_and_laplace_match_opencv_and_scipy(real):
    x = real.astype(np.float64)
    np.testing.assert_allclose(run_ops(real, parse_ops(["mean:size=5:border=reflect"])), cv2.blur(x, (5, 5)), atol=1e-9)
    lap = run_ops(real, parse_ops(["laplace:border=replicate"]))
    np.testing.assert_allclose(lap, cv2.Laplacian(x, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REPLICATE), atol=1e-9)
    np.testing.assert_allclose(lap, _per_channel(lambda c: ndimage.laplace(c, mode="nearest"), x), atol=1e-9)


def test_pooling_matches_block_reduce(real):
    h, w = (real.shape[0] // 2) * 2, (real.shape[1] // 2) * 2
    crop = real[:h, :w].astype(np.float64)
    block = (2, 2, 1)[: crop.ndim]
    np.testing.assert_array_equal(run_ops(crop, parse_ops(["maxpool:size=2"])), block_reduce(crop, block, np.max))
    np.testing.assert_allclose(run_ops(crop, parse_ops(["avgpool:size=2"])), block_reduce(crop, block, np.mean), atol=1e-12)


def test_large_kernel_fft_equals_direct_on_a_photo(real):
    k = gaussian_kernel(6.0)  # 37x37
    k[0, 0] += 0.01  # no longer separable: the FFT / filter2D paths
    direct = convolve(real, k, method="direct", border="reflect")
    fft = convolve(real, k, method="fft", border="reflect")
    np.testing.assert_allclose(fft, direct, rtol=0, atol=1e-9 * np.abs(direct).max())
