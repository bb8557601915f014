"""convolve(): the lectures' worked examples, padding/stride/dilation, borders, FFT == direct."""

import numpy as np
import pytest
from scipy import ndimage

from cnntool.filters.convolve import (
    SCIPY_MODES,
    choose_method,
    convolve,
    correlate,
    output_shape,
    output_size,
    pad,
)
from cnntool.filters.kernels import LAPLACE_4, gaussian_kernel
from cnntool.filters.names import BORDERS

from .conftest import LECTURE_5X5


# The lectures' worked examples ------------------------------------------------------------

def test_lecture_1d_full_convolution_and_its_repeat():
    once = convolve([1, 2, 3, 4], [1, 1, 1], padding="full")
    np.testing.assert_array_equal(once, [1, 3, 6, 9, 7, 4])
    twice = convolve(once, [1, 1, 1], padding="full")
    np.testing.assert_array_equal(twice, [1, 4, 10, 18, 22, 20, 11, 4])
    # the same as a 1 x N image
    np.testing.assert_array_equal(convolve([[1, 2, 3, 4]], [[1, 1, 1]], padding=((0, 0), (2, 2))), [once])


def test_lecture_5x5_laplacian_valid_by_hand():
    x = LECTURE_5X5
    # up + down + left + right - 4 * centre, at every position where the 3x3 kernel fits
    expected = np.array([[x[i - 1, j] + x[i + 1, j] + x[i, j - 1] + x[i, j + 1] - 4 * x[i, j]
                          for j in range(1, 4)] for i in range(1, 4)])
    np.testing.assert_array_equal(expected, [[6, 15, 9], [14, -36, -4], [-4, 10, 7]])  # the lecture's figure
    assert expected[0, 0] == 10 + 2 + 4 + 2 - 4 * 3  # the lecture's worked cell (row 1, col 1)
    assert expected[1, 1] == 2 + (-3) + 2 + 3 - 4 * 10
    result = convolve(x, LAPLACE_4, padding="valid")
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(result, ndimage.convolve(x, LAPLACE_4)[1:-1, 1:-1])
    # 'same' zero padding keeps 5x5 and has the valid block inside
    same = convolve(x, LAPLACE_4, padding="same")
    assert same.shape == (5, 5)
    np.testing.assert_array_equal(same[1:-1, 1:-1], expected)
    assert same[0, 0] == 10 + 4 - 4 * 0  # zeros outside the image


@pytest.mark.parametrize("stride, padding, expected", [(1, "valid", (5, 5)), (2, "valid", (3, 3)),
                                                        (1, 1, (7, 7)), (2, 1, (4, 4)), (1, "same", (7, 7)),
                                                        (1, "full", (9, 9)), (3, 0, (2, 2))])
def test_lecture_7x7_output_sizes(stride, padding, expected):
    x = np.arange(49.0).reshape(7, 7)
    out = convolve(x, np.ones((3, 3)), stride=stride, padding=padding)
    assert out.shape == expected
    p = {"valid": 0, "same": 1, "full": 2}.get(padding, padding)
    assert expected[0] == (7 + 2 * p - 3) // stride + 1 == output_size(7, 3, stride=stride, padding=p)
    assert output_shape((7, 7), (3, 3), stride=stride, padding=padding) == expected


def test_stride_subsamples_the_stride_one_result(rng):
    x = rng.random((17, 14))
    k = rng.random((3, 5))
    full = convolve(x, k, padding=2)
    np.testing.assert_allclose(convolve(x, k, padding=2, stride=(2, 3)), full[::2, ::3], atol=1e-12)


def test_dilation_spaces_the_taps(rng):
    x = rng.random((11, 12))
    k = rng.random((3, 3))
    out = correlate(x, k, dilation=2, padding="valid")
    assert out.shape == (11 - 5 + 1, 12 - 5 + 1)  # effective size d*(k-1)+1 = 5
    by_hand = np.array([[sum(k[a, b] * x[i + 2 * a, j + 2 * b] for a in range(3) for b in range(3))
                         for j in range(out.shape[1])] for i in range(out.shape[0])])
    np.testing.assert_allclose(out, by_hand, atol=1e-12)
    assert output_size(11, 3, dilation=2) == 7


def test_convolution_flips_the_kernel_and_correlation_does_not():
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1.0
    k = np.arange(1.0, 10.0).reshape(3, 3)  # asymmetric
    conv = convolve(impulse, k, mode="conv")
    corr = convolve(impulse, k, mode="corr")
    np.testing.assert_array_equal(conv[1:4, 1:4], k)  # the impulse response is the kernel
    np.testing.assert_array_equal(corr[1:4, 1:4], k[::-1, ::-1])
    assert not np.array_equal(conv, corr)
    np.testing.assert_array_equal(convolve(impulse, k[::-1, ::-1], mode="corr"), conv)


def test_even_kernel_same_padding_puts_the_extra_row_bottom_right(rng):
    x = rng.random((4, 5))
    k = rng.random((2, 2))
    out = correlate(x, k, padding="same")
    padded = np.pad(x, ((0, 1), (0, 1)))
    expected = np.array([[np.sum(k * padded[i:i + 2, j:j + 2]) for j in range(5)] for i in range(4)])
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("border", BORDERS)
def test_borders_match_scipy_ndimage(border, rng):
    x = rng.random((13, 16, 3))
    k = rng.random((5, 3)) - 0.5
    for mode, scipy_fn in (("conv", ndimage.convolve), ("corr", ndimage.correlate)):
        expected = scipy_fn(x, k[:, :, None], mode=SCIPY_MODES[border], cval=0.0)
        np.testing.assert_allclose(convolve(x, k, border=border, mode=mode), expected, atol=1e-12)


@pytest.mark.parametrize("border, numpy_mode", [("zero", "constant"), ("reflect", "reflect"),
                                                 ("symmetric", "symmetric"), ("replicate", "edge"),
                                                 ("wrap", "wrap")])
def test_pad_matches_numpy_even_beyond_the_image(border, numpy_mode):
    x = np.arange(12.0).reshape(3, 4)
    for widths in (((1, 2), (0, 3)), ((5, 4), (6, 7))):
        np.testing.assert_array_equal(pad(x, widths, border), np.pad(x, widths, mode=numpy_mode))
    assert pad(np.array([[1.0, 2.0, 3.0]]), ((0, 0), (2, 2)), "reflect").tolist() == [[3, 2, 1, 2, 3, 2, 1]]


@pytest.mark.parametrize("kshape, border, stride, dilation, padding", [
    ((3, 3), "zero", 1, 1, "same"), ((7, 5), "reflect", 2, 1, "valid"), ((9, 9), "wrap", 1, 2, "full"),
    ((15, 11), "replicate", 3, 1, 4), ((1, 9), "symmetric", 1, 1, "same"), ((40, 40), "zero", 1, 1, "same"),
])
def test_fft_equals_direct_on_random_data(rng, kshape, border, stride, dilation, padding):
    x = rng.normal(size=(48, 53, 3))
    k = rng.normal(size=kshape)
    kw = dict(border=border, stride=stride, dilation=dilation, padding=padding)
    direct = convolve(x, k, method="direct", **kw)
    fft = convolve(x, k, method="fft", **kw)
    assert direct.shape == fft.shape
    np.testing.assert_allclose(fft, direct, rtol=0, atol=1e-9)
    np.testing.assert_allclose(convolve(x, k, method="auto", **kw), direct, rtol=0, atol=1e-9)


def test_auto_picks_fft_for_large_kernels_and_separable_for_gaussians(rng):
    assert choose_method(rng.random((41, 41))) == "fft"
    assert choose_method(rng.random((5, 5))) == "direct"
    assert choose_method(gaussian_kernel(2.0)) == "separable"
    assert choose_method(rng.random((5, 5)), "fft") == "fft"


def test_integer_inputs_give_the_float64_result_and_are_not_modified(small_rgb):
    before = small_rgb.copy()
    for k in (gaussian_kernel(1.5), LAPLACE_4, np.ones((2, 3))):
        a = convolve(small_rgb, k, border="reflect")
        b = convolve(small_rgb.astype(np.float64), k, border="reflect")
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, atol=1e-10)
    np.testing.assert_array_equal(small_rgb, before)


def test_real_photo_agrees_with_scipy(photo):
    x = photo.astype(np.float64)
    k = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [0.5, 0.0, -2.0]])
    expected = ndimage.convolve(x, k[:, :, None], mode="mirror")
    np.testing.assert_allclose(convolve(photo, k, border="reflect"), expected, atol=1e-9)


def test_bad_arguments_raise_value_error(rng):
    x = rng.random((5, 5))
    with pytest.raises(ValueError, match="larger than the padded image"):
        convolve(x, np.ones((7, 7)), padding="valid")
    with pytest.raises(ValueError, match="border"):
        convolve(x, np.ones((3, 3)), border="mirror")
    with pytest.raises(ValueError, match="stride"):
        convolve(x, np.ones((3, 3)), stride=0)
    with pytest.raises(ValueError, match="mode"):
        convolve(x, np.ones((3, 3)), mode="convolution")
    with pytest.raises(ValueError, match="padding"):
        convolve(x, np.ones((3, 3)), padding="half")
    with pytest.raises(ValueError):
        convolve(x, np.ones((3, 3, 3)))
