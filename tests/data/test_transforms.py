import cv2
import numpy as np

from cnntool.data.transforms import Preprocess


def test_enlarging_follows_the_weights_interpolation_and_shrinking_averages_areas():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bicubic = Preprocess((3, 16, 16), (0, 0, 0), (1, 1, 1), interpolation="bicubic")
    bilinear = Preprocess((3, 16, 16), (0, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(bicubic.resize(small), cv2.resize(small, (16, 16), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(bilinear.resize(small), cv2.resize(small, (16, 16), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(bicubic.resize(small), bilinear.resize(small))
    area = cv2.resize(big, (16, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(bicubic.resize(big), area)
    np.testing.assert_array_equal(bilinear.resize(big), area)


def test_from_loaded_carries_the_registry_interpolation():
    from cnntool.models.registry import get_entry

    class Loaded:  # the fields Preprocess reads from a LoadedModel
        entry = get_entry("efficientnet_b0")
        input_size, mean, std = entry.input_size, entry.mean, entry.std
        resize_size, interpolation = entry.resize_size, entry.interpolation

    assert Loaded.interpolation == "bicubic"
    assert Preprocess.from_loaded(Loaded).interpolation == "bicubic"
