import cv2
import numpy as np

from cnntool.data.preprocessing import Preprocessing
from cnntool.data.transforms import DEFAULT_ZOOM, AugmentConfig, TrainTransform


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


def test_zoom_none_is_the_classification_default_in_the_transform():
    """Classification and video data are built before resolve: their transform reads None as
    DEFAULT_ZOOM, drawing exactly what zoom=0.1 draws."""
    pre = Preprocessing((1, 16, 16), (0.5,), (0.5,))
    left_out = TrainTransform(pre, AugmentConfig()).draw(np.random.default_rng(4), 64)
    typed = TrainTransform(pre, AugmentConfig(zoom=DEFAULT_ZOOM)).draw(np.random.default_rng(4), 64)
    np.testing.assert_array_equal(left_out, typed)
    assert 0.9 <= left_out[:, 2].min() < 0.95 and 1.05 < left_out[:, 2].max() <= 1.1
    off = TrainTransform(pre, AugmentConfig(zoom=0.0)).draw(np.random.default_rng(4), 64)
    assert (off[:, 2] == 1.0).all()
