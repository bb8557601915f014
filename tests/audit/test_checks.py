"""Image checks: CleanVision's scores computed exactly, and cnntool's documented departures."""

import math

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnntool.audit import checks
from cnntool.audit.checks import Thresholds, image_findings, measure_image


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def cleanvision_brightness(image, percentiles):
    from cleanvision.issue_managers.image_property import calc_percentile_brightness

    return calc_percentile_brightness(Image.fromarray(image), percentiles)


@pytest.mark.parametrize("shape", [(37, 53, 3), (64, 64), (1, 1, 3), (200, 3, 3)])
def test_brightness_percentiles_equal_cleanvision(rng, shape):
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    qs = [1, 5, 10, 15, 50, 75, 90, 95, 99]
    ours = checks.brightness_percentiles(image, qs)
    np.testing.assert_allclose(ours, cleanvision_brightness(image, qs), rtol=0, atol=1e-12)


def test_brightness_percentiles_of_a_photo_equal_cleanvision(photos):
    image = photos["a"]
    qs = checks.BRIGHTNESS_PERCENTILES
    np.testing.assert_allclose(checks.brightness_percentiles(image, qs), cleanvision_brightness(image, qs),
                               rtol=0, atol=1e-12)


def test_thumbnail_blur_and_entropy_equal_cleanvision(photos):
    from cleanvision.issue_managers.image_property import BlurrinessProperty, EntropyProperty

    for image in (photos["b"], cv2.cvtColor(photos["c"], cv2.COLOR_RGB2GRAY), photos["d"][:40]):
        pil = Image.fromarray(image)
        expected = BlurrinessProperty().calculate(pil)
        blur, hist_std = checks.thumbnail_blurriness(pil)
        assert blur == pytest.approx(expected["blurriness"], abs=1e-9)
        assert hist_std == pytest.approx(expected["blurriness_grayscale_std"], abs=1e-9)
        assert measure_image(image)["entropy"] == pytest.approx(EntropyProperty().calculate(pil)["entropy"], abs=1e-12)


def test_blurry_score_equals_cleanvision_get_scores():
    from cleanvision.issue_managers.image_property import BlurrinessProperty

    raw = pd.DataFrame({"blurriness": [0.0, 5.0, 20.0, 80.0, 3.0],
                        "blurriness_grayscale_std": [0.0, 30.0, 5.0, 2.0, 100.0]})
    expected = BlurrinessProperty().get_scores(raw, "blurry", normalizing_factor=0.01, color_threshold=0.18)
    ours = [checks.blurry_score(row) for row in raw.to_dict("records")]
    np.testing.assert_allclose(ours, expected["blurry_score"].to_numpy(), atol=1e-12)


@pytest.mark.parametrize("sides", [[100, 100, 100, 100, 10], [50, 60, 70, 80, 90, 400, 5], [64, 64, 64]])
def test_odd_size_scores_equal_cleanvision(sides):
    from cleanvision.issue_managers.image_property import SizeProperty

    ms = [{"width": s, "height": s} for s in sides]
    prop = SizeProperty()
    raw = pd.DataFrame({"size": [math.sqrt(s) * math.sqrt(s) for s in sides]})
    expected = prop.get_scores(raw, "odd_size", iqr_factor=3.0)["odd_size_score"].to_numpy()
    flags = prop.mark_issue(prop.get_scores(raw, "odd_size", iqr_factor=3.0), "odd_size")["is_odd_size_issue"]
    scores, threshold = checks.odd_size_scores(ms, iqr_factor=3.0)
    np.testing.assert_allclose(scores, expected, atol=1e-12)
    assert (scores < threshold).tolist() == flags.tolist()


def test_measure_image_keys_and_values():
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :20] = (255, 255, 255)
    m = measure_image(image)
    assert (m["width"], m["height"], m["channels"]) == (40, 30, 3)
    assert m["brightness_perc_99"] == pytest.approx(1.0)
    assert m["brightness_perc_5"] == 0.0
    assert m["channel_spread"] == 0
    assert m["gray_std"] == pytest.approx(127.5)
    assert len(m["pixels"]) == 40
    gray = measure_image(image[:, :, 0])
    assert gray["channels"] == 1
    assert gray["pixels"] != m["pixels"]  # same values, different shape: not the same pixels


def test_measure_image_refuses_other_dtypes():
    with pytest.raises(ValueError):
        measure_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        measure_image(np.zeros((8, 8, 4), np.uint8))


def test_sharpness_separates_moderate_blur_that_the_thumbnail_misses(photos):
    sharp = cv2.cvtColor(photos["a"], cv2.COLOR_RGB2GRAY)
    big = cv2.resize(photos["a"], (640, 640), interpolation=cv2.INTER_LANCZOS4)
    blurred = cv2.GaussianBlur(big, (0, 0), 2.5)
    assert checks.sharpness(sharp) > Thresholds().blurry_sharpness
    assert checks.sharpness(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY)) < Thresholds().blurry_sharpness
    # CleanVision's thumbnail score does not see this blur: only the full-resolution score does
    m = measure_image(blurred)
    assert checks.blurry_score(m) > Thresholds().blurry
    found = image_findings([m], Thresholds(), {"blurry"})
    assert [f.detail.startswith("soft at full resolution") for f in found] == [True]


def test_sharpness_of_flat_and_tiny_images_is_one():
    assert checks.sharpness(np.full((200, 200), 128, np.uint8)) == 1.0
    assert checks.sharpness(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)) == 1.0


def test_channel_spread_and_grayscale_by_channel_equality():
    gray = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8)[:, :, None], 3, axis=2)
    assert checks.channel_spread(gray) == 0
    tinted = gray.copy()
    tinted[3, 3, 2] += 9
    assert checks.channel_spread(tinted) == 9
    found = image_findings([measure_image(gray), measure_image(tinted)], Thresholds(), {"grayscale"})
    assert [(f.index, f.check) for f in found] == [(0, "grayscale")]


def _fake(**values):
    m = {"width": 100, "height": 100, "channels": 3, "brightness_perc_5": 0.2, "brightness_perc_75": 0.6,
         "brightness_perc_99": 0.9, "brightness_perc_50": 0.45, "entropy": 7.0, "blurriness": 60.0,
         "blurriness_grayscale_std": 5.0,
         "sharpness": 0.8, "channel_spread": 100, "gray_std": 40.0, "appearance": [120, 130, 125, 40, 5, 5, 9],
         "pixels": "x"}
    m.update(values)
    return m


def test_image_findings_thresholds_and_departures():
    ms = [
        _fake(),                                   # 0 clean
        _fake(brightness_perc_99=0.31),            # 1 dark
        _fake(brightness_perc_5=0.96),             # 2 light (CleanVision)
        _fake(brightness_perc_75=0.99),            # 3 light (clipped highlights, cnntool)
        _fake(blurriness=10.0),                    # 4 blurry (CleanVision)
        _fake(sharpness=0.3),                      # 5 blurry (full resolution, cnntool)
        _fake(entropy=2.9),                        # 6 low_information
        _fake(width=100, height=30),               # 7 odd_aspect_ratio (and odd_size: not 100x100)
        _fake(brightness_perc_50=0.95),            # 8 light (washed out, cnntool)
    ]
    all_checks = set(checks.IMAGE_CHECKS)
    got = {(f.index, f.check) for f in image_findings(ms, Thresholds(), all_checks)}
    assert got == {(1, "dark"), (2, "light"), (3, "light"), (4, "blurry"), (5, "blurry"), (6, "low_information"),
                   (7, "odd_aspect_ratio"), (7, "odd_size"), (8, "light")}
    # the departures switched off give CleanVision's decisions
    plain = Thresholds(light_median=0, light_clipped=0, blurry_sharpness=0, odd_size_ratio=0)
    got = {(f.index, f.check) for f in image_findings(ms, plain, all_checks)}
    assert (3, "light") not in got and (8, "light") not in got and (5, "blurry") not in got
    assert (4, "blurry") in got and (2, "light") in got


def test_odd_size_ratio_finds_small_images_the_fences_miss():
    sides = [320] * 10 + [240, 256, 300, 200, 200, 113, 24]
    ms = [_fake(width=s, height=s) for s in sides]
    scores, threshold = checks.odd_size_scores(ms)
    assert scores[-1] >= threshold  # CleanVision's lower fence is <= 0 here: nothing is too small
    found = image_findings(ms, Thresholds(), {"odd_size"})
    assert [ms[f.index]["width"] for f in found] == [24]
    assert "median 320" in found[0].detail


def test_a_common_problem_is_never_hidden():
    ms = [_fake(brightness_perc_99=0.1)] * 8 + [_fake()] * 2
    assert len(image_findings(ms, Thresholds(), {"dark"})) == 8


@pytest.mark.parametrize("shift", [0, 3, 14])
def test_order_statistics_equal_sorting(rng, shift):
    values = rng.integers(0, 1 << 20, 5000).astype(np.int32)
    values[:100] = values[100]  # ties
    ranks = np.array([0, 1, 250, 2500, 2501, 4999])
    if shift == 0:
        values = values % 256
    np.testing.assert_array_equal(checks.order_statistics(values, ranks, shift=shift), np.sort(values)[ranks])


def test_measurement_keys_are_what_measure_image_gives():
    assert tuple(measure_image(np.zeros((8, 8, 3), np.uint8))) == checks.MEASUREMENT_KEYS


def test_look_alikes_by_brute_force_equal_scipys_kd_tree(monkeypatch):
    from cnntool.audit import checks

    rng = np.random.default_rng(0)
    measurements = [{"appearance": list(p), "sharpness": float(s)}
                    for p, s in zip(rng.normal(size=(300, 7)) * 20, rng.random(300))]
    measurements[5] = dict(measurements[4])  # an exact copy: each still sees the other, not itself
    brute = checks.similar_sharpness(measurements)
    monkeypatch.setattr(checks, "BRUTE_FORCE_NEIGHBOURS", 0)  # the KD tree, as for large folders
    np.testing.assert_array_equal(brute, checks.similar_sharpness(measurements))
    assert not np.isnan(brute).any()
