"""Dataset-level notes and caveats: a grayscale dataset gets one note, not a finding per image, and
the random-weights caveat of --labels / --dedup cnn reaches the summary, stderr and the report page."""

import shutil
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from cnntool.cli.main import app

from .conftest import records, write

runner = CliRunner()


def test_a_grayscale_dataset_gets_one_note_not_a_finding_per_image(tmp_path):
    faces = tmp_path / "faces"
    shutil.copytree(Path(__file__).resolve().parents[2] / "samples" / "faces" / "train", faces)
    result = runner.invoke(app, ["audit", str(faces), "--no-cache", "--format", "jsonl"])
    recs = records(result.stdout)
    n = len([p for p in faces.rglob("*.png")])
    assert n > 100 and not [r for r in recs if r["check"] == "grayscale"]
    summary = recs[-1]
    assert summary["counts"]["grayscale"] == 0 and summary["readable"] == n
    assert len(summary["notes"]) == 1 and f"every one of the {n} readable images is grayscale" in summary["notes"][0]
    assert result.stderr.count("note: every one of") == 1


def test_gray_images_in_a_colour_dataset_are_still_flagged_one_by_one(photos, tmp_path):
    for k, name in enumerate("abc"):
        write(tmp_path / f"{name}.png", photos[name])
    gray = cv2.cvtColor(photos["d"], cv2.COLOR_RGB2GRAY)
    write(tmp_path / "gray_rgb.png", np.repeat(gray[:, :, None], 3, axis=2))
    write(tmp_path / "gray_l.png", gray)
    recs = records(runner.invoke(app, ["audit", str(tmp_path), "--no-cache", "-f", "jsonl"]).stdout)
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in recs if r["check"] == "grayscale") == ["gray_l.png",
                                                                                              "gray_rgb.png"]
    assert recs[-1]["notes"] == []


def test_random_weights_caveat_reaches_the_report_page(labelled, tmp_path):
    report = tmp_path / "labels.html"
    args = ["audit", str(labelled), "--labels", "-m", "lenet5", "--format", "jsonl", "--cache", str(tmp_path / "c"),
            "--report", str(report)]
    first = runner.invoke(app, args)
    caveat = records(first.stdout)[-1]["caveats"]
    assert len(caveat) == 1 and "random weights" in caveat[0] and "lenet5:DEFAULT" in caveat[0]
    assert first.stderr.count("warning: embeddings come from lenet5 with random weights") == 1
    page = report.read_text()
    assert "<p class=caveat><b>Caveat:</b> embeddings come from lenet5 with random weights" in page
    # every embedding now comes from the cache: the caveat is still said, on the page too
    report.unlink()
    again = runner.invoke(app, args)
    assert records(again.stdout)[-1]["measured"] == 0
    assert "random weights" in report.read_text() and "random weights" in again.stderr
    # a class count table sits in the labels report
    assert "<table class=classes>" in page and ">rare</td><td class=n>2<" in page


def test_a_checkpoint_or_hash_dedup_has_no_caveat(planted):
    result = runner.invoke(app, ["audit", str(planted), "--no-cache", "-f", "jsonl", "--checks", "near_duplicates"])
    assert records(result.stdout)[-1]["caveats"] == [] and "random weights" not in result.stderr
