import cv2
import numpy as np

from cnntool.data.preprocessing import Preprocessing


def test_enlarging_follows_the_weights_interpolation_and_shrinking_averages_areas():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bicubic = Preprocessing((3, 16, 16), (0, 0, 0), (1, 1, 1), interpolation="bicubic")
    bilinear = Preprocessing((3, 16, 16), (0, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(bicubic.resize(small), cv2.resize(small, (16, 16), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(bilinear.resize(small), cv2.resize(small, (16, 16), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(bicubic.resize(small), bilinear.resize(small))
    area = cv2.resize(big, (16, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(bicubic.resize(big), area)
    np.testing.assert_array_equal(bilinear.resize(big), area)


def test_loaded_model_carries_the_registry_preprocessing_unchanged():
    from cnntool.models.loading import load
    from cnntool.models.registry import get_entry

    entry = get_entry("efficientnet_b0")
    assert entry.preprocessing.interpolation == "bicubic"
    assert load("efficientnet_b0").preprocessing is entry.preprocessing
