"""CleanVision run on the same folder: the same scores and flags on every shared check, and with
cnntool's departures switched on, every CleanVision finding is still found."""

import logging
import os

import numpy as np
import pytest

from cnntool.audit import checks
from cnntool.audit.config import build_config
from cnntool.audit.pipeline import run_audit
from cnntool.data.sources import resolve_inputs

SCORES = {
    "dark": checks.dark_score,
    "light": checks.light_score,
    "low_information": checks.low_information_score,
    "blurry": checks.blurry_score,
    "odd_aspect_ratio": checks.aspect_ratio_score,
}
PROPERTY_CHECKS = ("dark", "light", "low_information", "blurry", "odd_aspect_ratio", "odd_size", "grayscale")


@pytest.fixture(scope="module")
def imagelab(clean_photos):
    from cleanvision import Imagelab

    logging.disable(logging.WARNING)
    try:
        lab = Imagelab(data_path=str(clean_photos))
        lab.find_issues(n_jobs=1, verbose=False)
    finally:
        logging.disable(logging.NOTSET)
    lab.issues.index = [os.path.basename(p) for p in lab.issues.index]
    return lab


def audit(folder, **thresholds):
    config = build_config(thresholds=thresholds)
    result = run_audit(resolve_inputs([str(folder)]), config, workers=1)
    flags = {}
    for r in result.records:
        flags.setdefault(r["check"], set()).add(os.path.basename(r["path"]))
    measurements = {os.path.basename(s.path): s.measurement for s in result.images}
    return flags, measurements


def test_scores_equal_cleanvision(imagelab, clean_photos):
    _, measurements = audit(clean_photos)
    issues = imagelab.issues
    assert set(measurements) == set(issues.index)
    for name, m in measurements.items():
        for check, score in SCORES.items():
            assert score(m) == pytest.approx(issues.loc[name, f"{check}_score"], abs=1e-9), (name, check)
    ours, _ = checks.odd_size_scores([measurements[n] for n in issues.index])
    np.testing.assert_allclose(ours, issues["odd_size_score"].to_numpy(), atol=1e-9)


def test_flags_equal_cleanvision_with_the_departures_off(imagelab, clean_photos):
    flags, _ = audit(clean_photos, light_median=0, light_clipped=0, blurry_sharpness=0, odd_size_ratio=0)
    issues = imagelab.issues
    for check in PROPERTY_CHECKS + ("exact_duplicates",):
        expected = set(issues.index[issues[f"is_{check}_issue"]])
        got = flags.get(check, set())
        if check == "grayscale":  # cnntool also flags R=G=B colour files; CleanVision only mode L
            assert expected <= got and {"gray_l.png"} <= expected, (expected, got)
        else:
            assert got == expected, (check, expected, got)
    # the planted files are among them, so the comparison is not vacuous
    assert "dark.jpg" in flags["dark"] and "washed.png" in flags["light"] and "flat.png" in flags["low_information"]
    assert "banner.jpg" in flags["odd_aspect_ratio"]
    assert "tiny.png" not in flags.get("odd_size", set())  # CleanVision's lower fence is below zero here
    assert {"a.png", "a_copy.png"} == flags["exact_duplicates"] and "ramp.png" in flags["blurry"]


def test_every_cleanvision_finding_is_found_with_the_defaults(imagelab, clean_photos):
    flags, _ = audit(clean_photos)
    issues = imagelab.issues
    for check in PROPERTY_CHECKS + ("exact_duplicates",):
        expected = set(issues.index[issues[f"is_{check}_issue"]])
        assert expected <= flags.get(check, set()), check
    # ...and what it misses: the 12x12 image, the R=G=B files
    assert "tiny.png" in flags["odd_size"]
    near = set(issues.index[issues["is_near_duplicates_issue"]])
    assert near <= flags.get("near_duplicates", set()) | flags.get("exact_duplicates", set())
