"""Named kernels and builders: values, normalisation, agreement with OpenCV, custom kernels."""

import cv2
import numpy as np
import pytest

from cnntool.filters import kernels as K


def test_named_constants_have_the_textbook_values_and_are_read_only():
    np.testing.assert_array_equal(K.SOBEL_X, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(K.SOBEL_Y, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(K.SCHARR_X, [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])
    np.testing.assert_array_equal(K.PREWITT_Y, [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(K.LAPLACE_4, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(K.LAPLACE_8.sum(), 0)
    np.testing.assert_array_equal(K.SHARPEN, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert K.EMBOSS.sum() == 1
    # Sobel is the lecture's product of smoothing and central difference
    np.testing.assert_array_equal(np.outer([1, 2, 1], [-1, 0, 1]), K.SOBEL_X)
    with pytest.raises(ValueError):
        K.SOBEL_X[0, 0] = 5


@pytest.mark.parametrize("sigma, size", [(0.8, None), (2.0, None), (1.5, 9), (3.0, 5)])
def test_gaussian_matches_opencv_and_sums_to_one(sigma, size):
    k1 = K.gaussian_kernel_1d(sigma, size)
    n = K.gaussian_size(sigma) if size is None else size
    assert k1.shape == (n,)
    np.testing.assert_allclose(k1, cv2.getGaussianKernel(n, sigma, cv2.CV_64F).ravel(), atol=1e-15)
    k2 = K.gaussian_kernel(sigma, size)
    assert k2.shape == (n, n)
    assert abs(k2.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(k2, k2.T)


def test_even_gaussian_is_sampled_at_half_pixel_offsets():
    t = np.array([-1.5, -0.5, 0.5, 1.5])
    g = np.exp(-t**2 / (2 * 3.0**2))
    np.testing.assert_allclose(K.gaussian_kernel_1d(3.0, 4), g / g.sum(), atol=1e-15)


def test_gaussian_default_size_is_three_sigma_each_side():
    assert [K.gaussian_size(s) for s in (0.5, 1.0, 2.0, 2.1)] == [5, 7, 13, 15]
    with pytest.raises(ValueError):
        K.gaussian_kernel(0.0)


def test_log_kernel_sums_to_zero_with_negative_centre():
    k = K.log_kernel(1.4)
    assert k.shape == (11, 11)
    assert abs(k.sum()) < 1e-12
    c = k.shape[0] // 2
    assert k[c, c] == k.min() < 0
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])


def test_box_sharpen_unsharp_and_laplace_builders():
    np.testing.assert_array_equal(K.box_kernel(3), np.full((3, 3), 1 / 9))
    np.testing.assert_array_equal(K.sharpen_kernel(2.0), [[0, -2, 0], [-2, 9, -2], [0, -2, 0]])
    u = K.unsharp_kernel(1.0, 0.5)
    g = K.gaussian_kernel(1.0)
    np.testing.assert_allclose(u, 1.5 * np.pad([[1.0]], 3) - 0.5 * g)
    assert abs(u.sum() - 1) < 1e-12
    np.testing.assert_array_equal(K.laplace_kernel(8), K.LAPLACE_8)
    with pytest.raises(ValueError):
        K.laplace_kernel(6)


def test_dilate_and_separate():
    d = K.dilate_kernel(K.SOBEL_X, 2)
    assert d.shape == (5, 5)
    np.testing.assert_array_equal(d[::2, ::2], K.SOBEL_X)
    assert d[1].sum() == 0 and d[:, 1].sum() == 0
    col, row = K.separate(K.gaussian_kernel(2.0))
    np.testing.assert_allclose(np.outer(col, row), K.gaussian_kernel(2.0), atol=1e-15)
    assert K.separate(K.LAPLACE_4) is None
    assert K.separate(K.EMBOSS) is None
    assert K.separate(np.zeros((3, 3))) is None


def test_parse_kernel_inline():
    np.testing.assert_array_equal(K.parse_kernel("0,1,0;1,-4,1;0,1,0"), K.LAPLACE_4)
    np.testing.assert_array_equal(K.parse_kernel(" 1 2 1 ; 0 0 0 ; -1 -2 -1 "), -K.SOBEL_Y)
    np.testing.assert_array_equal(K.parse_kernel("0.5,0.5"), [[0.5, 0.5]])
    for bad, why in (("", "empty"), ("1,2;3", "different lengths"), ("1,x", "not a number"), ("1,nan", "NaN")):
        with pytest.raises(ValueError, match=why):
            K.parse_kernel(bad)


def test_load_kernel_from_text_and_npy(tmp_path):
    txt = tmp_path / "k.txt"
    txt.write_text("# my Laplacian\n0 1 0\n1 -4 1   # centre row\n0,1,0\n")
    np.testing.assert_array_equal(K.load_kernel(txt), K.LAPLACE_4)
    npy = tmp_path / "k.npy"
    np.save(npy, np.array([1.0, 2.0, 1.0]))
    np.testing.assert_array_equal(K.load_kernel(npy), [[1, 2, 1]])
    with pytest.raises(ValueError, match="not found"):
        K.load_kernel(tmp_path / "missing.txt")
    np.save(npy, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        K.load_kernel(npy)
