"""Classical segmentation: the coins proof (24 with otsu and with watershed, over a range of the
relative defaults), touching objects, polarity, uneven light, superpixels, k-means, regions."""

import cv2
import numpy as np
import pytest
from skimage import data

from cnntool.errors import UsageError
from cnntool.infer.classical import (
    METHODS, felzenszwalb_segment, foreground_mask, kmeans_segment, otsu_segment, regions_of,
    segment_classical, slic_segment, watershed_segment,
)


@pytest.fixture(scope="module")
def coins():
    return data.coins()


@pytest.mark.parametrize("method", ["otsu", "watershed"])
def test_coins_holds_24_coins(coins, method):
    result = segment_classical(coins, method=method)
    assert result.count == 24
    for region in result.regions:  # each region is one whole coin: a filled, roughly round blob
        x1, y1, x2, y2 = region.box
        assert 0.8 < (x2 - x1) / (y2 - y1) < 1.25
        assert 0.7 < region.area / ((x2 - x1) * (y2 - y1)) < 0.86  # a disc fills pi/4 of its box
        assert 900 < region.area < 3500
    assert result.labels.max() == 24 and result.class_names == ("background", "foreground")
    assert (result.class_mask > 0).sum() == (result.labels > 0).sum()


@pytest.mark.parametrize("background_sigma", [0.05, 0.2])
@pytest.mark.parametrize("min_size", [0.0005, 0.002])
def test_coins_count_does_not_hang_on_one_setting(coins, background_sigma, min_size):
    options = {"background_sigma": background_sigma, "min_size": min_size}
    assert otsu_segment(coins, **options).count == 24
    assert watershed_segment(coins, **options).count == 24


@pytest.mark.parametrize("height", [151, 606])
def test_coins_count_does_not_depend_on_the_resolution(coins, height):
    resized = cv2.resize(coins, (round(height * 384 / 303), height), interpolation=cv2.INTER_AREA
                         if height < 303 else cv2.INTER_CUBIC)
    assert otsu_segment(resized).count == 24
    assert watershed_segment(resized).count == 24


def test_uneven_light_needs_the_background_correction(coins):
    # without it, the bright top edge of the photo merges with the top-left coin
    plain = otsu_segment(coins, background_sigma=None)
    assert max(r.area for r in plain.regions) > 5000


def test_illumination_ramp():
    ramp = np.tile(np.linspace(20, 200, 200), (120, 1))
    image = ramp.copy()
    for cx in (30, 100, 170):
        cv2.circle(image, (cx, 60), 12, float(ramp[0, cx] + 40), -1)
    image = image.astype(np.uint8)
    assert otsu_segment(image).count == 3
    assert otsu_segment(image, background_sigma=None).count != 3


def test_watershed_splits_touching_objects_and_otsu_does_not():
    image = np.zeros((80, 160), np.uint8)
    for cx in (40, 74, 108):
        cv2.circle(image, (cx, 40), 19, 230, -1)
    assert otsu_segment(image).count == 1
    result = watershed_segment(image)
    assert result.count == 3
    assert [round(r.centroid[0]) for r in sorted(result.regions, key=lambda r: r.centroid[0])] == \
        pytest.approx([40, 74, 108], abs=3)
    # the same at four times the size (markers searched on a shrunk distance map)
    large = cv2.resize(image, (640, 320), interpolation=cv2.INTER_NEAREST)
    assert watershed_segment(large).count == 3
    # a single blob with a rough outline is not cut up
    blob = np.zeros((80, 80), np.uint8)
    cv2.ellipse(blob, (40, 40), (30, 18), 20, 0, 360, 200, -1)
    noisy = np.clip(blob.astype(int) + np.random.default_rng(0).normal(0, 25, blob.shape), 0, 255).astype(np.uint8)
    labels = watershed_segment(noisy).labels
    assert len(np.unique(labels[blob > 0])) == 1 and labels[40, 40] > 0


def test_polarity():
    image = np.full((60, 60), 220, np.uint8)
    image[10:25, 10:25] = 30
    image[35:50, 30:55] = 30
    assert otsu_segment(image).count == 2                         # auto: the minority side
    assert otsu_segment(image, polarity="dark").count == 2
    assert otsu_segment(image, polarity="bright").count == 1      # the background, one region
    with pytest.raises(UsageError, match="unknown polarity"):
        otsu_segment(image, polarity="light")


def test_small_objects_and_holes():
    image = np.zeros((100, 100), np.uint8)
    image[20:60, 20:60] = 255
    image[35:45, 35:45] = 0      # a hole
    image[80, 80] = 255          # a speck: 1 px < 0.1% of 10,000
    mask, _ = foreground_mask(image, background_sigma=None)
    assert mask[40, 40] and not mask[80, 80] and mask.sum() == 1600
    kept, _ = foreground_mask(image, background_sigma=None, min_size=0, fill_holes=False)
    assert kept[80, 80] and not kept[40, 40]


def test_flat_image_has_no_regions():
    result = watershed_segment(np.full((20, 20), 7, np.uint8))
    assert result.count == 0 and result.labels.max() == 0


def test_superpixels_cover_the_image():
    image = data.astronaut()[::3, ::3]
    slic = slic_segment(image, n_segments=60)
    assert 40 <= slic.count <= 90 and slic.labels.min() == 1
    assert sorted(r.label for r in slic.regions) == list(range(1, slic.count + 1))
    assert sum(r.area for r in slic.regions) == image.shape[0] * image.shape[1]
    gray = slic_segment(data.camera()[::4, ::4], n_segments=30)
    assert 15 <= gray.count <= 45
    felz = felzenszwalb_segment(image)
    assert felz.count > 10 and felz.labels.min() == 1
    assert felzenszwalb_segment(image, scale=800).count < felz.count


def test_kmeans_clusters_by_colour():
    rng = np.random.default_rng(0)
    image = np.zeros((60, 90, 3), np.uint8)
    image[:] = (30, 120, 30)                      # green field (largest: background)
    image[10:25, 10:30] = (220, 30, 30)           # two red patches
    image[40:55, 60:85] = (220, 30, 30)
    image[35:50, 10:25] = (30, 30, 220)           # one blue patch
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    result = kmeans_segment(image, k=3, seed=0)
    assert result.class_names == ("background", "cluster1", "cluster2")
    assert result.count == 3
    red = result.class_mask[15, 15]
    assert red != 0 and result.class_mask[45, 70] == red and result.class_mask[40, 15] not in (0, red)
    assert sorted(r.class_id for r in result.regions) == sorted([red, red, 3 - red])
    np.testing.assert_array_equal(kmeans_segment(image, k=3, seed=0).labels, result.labels)
    assert result.class_fractions()["background"] == pytest.approx(1 - (300 + 375 + 225) / 5400, abs=0.01)


def test_regions_box_and_centroid():
    labels = np.zeros((10, 12), np.int32)
    labels[2:5, 3:9] = 1
    labels[7, 0] = 2
    first, second = regions_of(labels)
    assert first.box == (3.0, 2.0, 9.0, 5.0) and first.area == 18 and first.centroid == (5.5, 3.0)
    assert second.box == (0.0, 7.0, 1.0, 8.0)
    assert first.to_record() == {"label": 1, "class_id": 0, "area": 18, "box": [3.0, 2.0, 9.0, 5.0],
                                 "centroid": [5.5, 3.0]}


def test_dispatch_errors_and_inputs_untouched(coins):
    with pytest.raises(UsageError) as info:
        segment_classical(coins, method="watershad")
    assert info.value.hint == "did you mean watershed?"
    with pytest.raises(UsageError, match="--method otsu takes no option 'k'"):
        segment_classical(coins, method="otsu", k=3)
    with pytest.raises(UsageError, match="k must be >= 2"):
        segment_classical(coins, method="kmeans", k=1)
    before = coins.copy()
    for method in METHODS:
        segment_classical(coins[::4, ::4], method=method)
    np.testing.assert_array_equal(coins, before)
    with pytest.raises(ValueError, match="uint8"):
        otsu_segment(coins.astype(float))
