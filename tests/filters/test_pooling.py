"""Max and average pooling: the lecture example, strides, padding, channels."""

import numpy as np
import pytest

from cnntool.filters.pooling import avg_pool, max_pool, pool

from .conftest import POOL_4X4


def test_lecture_2x2_max_pooling():
    np.testing.assert_array_equal(max_pool(POOL_4X4, size=2, stride=2), [[3, 5], [2, 4]])
    np.testing.assert_array_equal(pool(POOL_4X4, size=2), [[3, 5], [2, 4]])  # stride defaults to size


def test_average_pooling_and_overlapping_windows():
    np.testing.assert_array_equal(avg_pool(POOL_4X4, size=2), [[1.5, 2.75], [1.25, 2.25]])
    out = max_pool(POOL_4X4, size=2, stride=1)
    assert out.shape == (3, 3)  # floor((4 - 2) / 1) + 1
    np.testing.assert_array_equal(out, [[3, 5, 5], [3, 3, 4], [2, 3, 4]])
    assert max_pool(np.zeros((7, 7)), size=3, stride=2).shape == (3, 3)


def test_padding_never_wins_a_max_and_counts_in_an_average():
    x = -np.ones((3, 3))
    assert max_pool(x, size=2, stride=2, padding=1).max() == -1  # -inf padding
    np.testing.assert_array_equal(avg_pool(np.ones((2, 2)), size=2, stride=2, padding=1), np.full((2, 2), 0.25))
    assert max_pool(np.zeros((5, 5)), size=2, stride=2, padding="same").shape == (3, 3)  # ceil(5 / 2)


def test_channels_are_pooled_on_their_own(rng):
    x = rng.random((6, 8, 3))
    out = max_pool(x, size=2)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], max_pool(x[:, :, c], size=2))
    np.testing.assert_allclose(avg_pool(x, size=(2, 4)), x.reshape(3, 2, 2, 4, 3).mean(axis=(1, 3)))


def test_bad_pooling_arguments():
    with pytest.raises(ValueError):
        pool(POOL_4X4, size=5)
    with pytest.raises(ValueError):
        pool(POOL_4X4, size=2, kind="min")
    with pytest.raises(ValueError):
        pool(np.zeros(4), size=2)
