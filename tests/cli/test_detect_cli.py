"""`cnntool detect` end to end: records for every input, the files under -o and their skip rule,
YOLO labels, crops, COCO results that pycocotools reads, --eval equal to pycocotools on the same
predictions, the --min-map gate, and the usage errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.boxes import load_boxes
from cnntool.data.detection import write_shapes_detection

runner = CliRunner()
CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module", autouse=True)
def detect_registered():
    """The command, as cnntool.cli.main registers it."""
    from typer.main import get_command

    if "detect" not in get_command(app).commands:
        from cnntool.cli import detect as detect_cmd
        from cnntool.cli.main import command

        command(app, "detect", detect_cmd.detect_command, "Boxes, labels and scores per image; mAP against labels")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """6 shape scenes (96 px) with COCO truth, and a tiny FCOS checkpoint for their classes."""
    root = write_shapes_detection(tmp_path_factory.mktemp("shapes"), n_train=0, n_val=6, size=96, seed=3,
                                  ext=".png")
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
    from cnntool.models.detectors import tiny_fcos
    from cnntool.models.registry import get_entry

    torch.manual_seed(0)
    model = tiny_fcos(num_classes=4, min_size=96, max_size=128)
    ckpt = root / "tiny.pt"
    save_checkpoint(ckpt, make_checkpoint(model, arch="tiny_fcos", task="detection",
                                          classes=["__background__", *CLASSES],
                                          preprocessing=get_entry("tiny_fcos").preprocessing,
                                          arch_kwargs={"min_size": 96, "max_size": 128}))
    return root, ckpt


def detect(*args):
    result = runner.invoke(app, ["detect", *map(str, args), "--format", "jsonl", "--device", "cpu", "-j", "1"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, records


@pytest.mark.slow
def test_one_record_per_detection_and_every_input_accounted_for(data, tmp_path):
    root, ckpt = data
    images = root / "val" / "images"
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result, records = detect(images, tmp_path / "broken.png", "-m", ckpt, "--conf", "0.0", "--max-det", "5")
    assert result.exit_code == 1, result.output  # the broken file failed, the rest went on
    by_path: dict[str, list] = {}
    for r in records:
        by_path.setdefault(r["path"], []).append(r)
    assert len(by_path) == 7 and by_path[str(tmp_path / "broken.png")][0]["error"]
    for path, rows in by_path.items():
        if "broken" in path:
            continue
        assert 1 <= len(rows) <= 5 and all(r["error"] is None and r["label"] in CLASSES for r in rows)
        for r in rows:
            x1, y1, x2, y2 = r["box"]
            assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96 and r["class_id"] == CLASSES.index(r["label"])
    none = detect(images / "val_00000.png", "-m", ckpt, "--conf", "1.0")[1]
    assert none == [{"path": str(images / "val_00000.png"), "label": None, "class_id": None, "score": None,
                     "box": None, "error": None}]
    squares = detect(images, "-m", ckpt, "--conf", "0.0", "--classes", "square")[1]
    assert {r["label"] for r in squares} == {"square"}


@pytest.mark.slow
def test_outputs_mirror_the_inputs_and_follow_the_skip_rule(data, tmp_path):
    root, ckpt = data
    out = tmp_path / "out"
    args = [root / "val" / "images", "-m", ckpt, "--conf", "0.05", "--max-det", "3", "-o", out, "--save-txt",
            "--save-crops"]
    result, records = detect(*args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == [f"val_{i:05d}.png" for i in range(6)]
    assert (out / "classes.txt").read_text().split() == CLASSES
    shown = [r for r in records if r["label"] is not None]
    assert all((out / "labels" / f"{r['path'].rsplit('/', 1)[1][:-4]}.txt").is_file() for r in records)
    lines = (out / "labels" / "val_00000.txt").read_text().splitlines()
    assert len(lines) == sum(r["path"].endswith("val_00000.png") and r["label"] is not None for r in records)
    crops = [r["crop"] for r in shown]
    assert len(set(crops)) == len(shown) and all(cv2.imread(c) is not None for c in crops)
    assert all(f"/crops/{r['label']}/" in r["crop"] for r in shown)
    drawn = cv2.imread(str(out / "val_00000.png"))
    assert drawn.shape == (96, 96, 3) and not np.array_equal(drawn, cv2.imread(str(root / "val" / "images" /
                                                                                    "val_00000.png")))
    again, again_records = detect(*args)
    assert again.exit_code == 0 and "skipped: already made with the same options" in again.stderr
    assert again_records == records  # the records come anyway
    other, rows = detect(*[a if a != "0.05" else "0.1" for a in args])
    assert other.exit_code == 1 and all("made with other options" in r["error"] for r in rows)
    redo, _ = detect(*[a if a != "0.05" else "0.1" for a in args], "--overwrite")
    assert redo.exit_code == 0


def test_save_coco_is_what_pycocotools_reads(data, tmp_path):
    root, ckpt = data
    result, records = detect(root / "val" / "images", "-m", ckpt, "--conf", "0.05", "--save-coco",
                             tmp_path / "res.json")
    assert result.exit_code == 0, result.output
    from pycocotools.coco import COCO

    saved = json.loads((tmp_path / "res.json").read_text())
    shown = [r for r in records if r["label"] is not None]
    assert len(saved) == len(shown) > 0
    assert {d["category_id"] for d in saved} <= {1, 2, 3} and {d["image_id"] for d in saved} <= set(range(1, 7))
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in range(1, 7)], "annotations": [],
                  "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]}
    gt.createIndex()
    assert len(gt.loadRes(str(tmp_path / "res.json")).anns) == len(saved)


def _truth_from_predictions(root, ckpt, tmp_path):
    """A COCO truth file made of the model's own boxes, some kept, some relabelled, some missed,
    so that mAP lies strictly between 0 and 1 even for random weights."""
    _, records = detect(root / "val" / "images", "-m", ckpt, "--conf", "0.0", "--max-det", "6")
    images, annotations = [], []
    by_name: dict[str, list] = {}
    for r in records:
        by_name.setdefault(r["path"].rsplit("/", 1)[1], []).append(r)
    for image_id, (name, rows) in enumerate(sorted(by_name.items()), start=1):
        images.append({"id": image_id, "file_name": name, "width": 96, "height": 96})
        for j, r in enumerate(rows[:4]):
            x1, y1, x2, y2 = r["box"]
            label = r["class_id"] if j != 1 else (r["class_id"] + 1) % 3   # the second: another class
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 10 + label,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 11,
                            "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0})   # missed by the model
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 10 + k, "name": n} for k, n in enumerate(CLASSES)]}))
    return truth


@pytest.mark.slow
def test_eval_equals_pycocotools_on_the_same_predictions(data, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root, ckpt = data
    truth = _truth_from_predictions(root, ckpt, tmp_path)
    out = tmp_path / "eval"
    result, records = detect(root / "val" / "images", "-m", ckpt, "--eval", truth, "--save-coco",
                             tmp_path / "res.json", "-o", out)
    assert result.exit_code == 0, result.output
    summary = records[-1]
    assert summary["path"] == "<summary>" and all(r["path"] != "<summary>" for r in records[:-1])
    assert summary["evaluated"] == 6 and 0.05 < summary["map50"] < 0.95
    coco_gt = COCO(str(truth))
    coco_dt = coco_gt.loadRes(str(tmp_path / "res.json"))
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert [summary["map"], summary["map50"], summary["map75"]] == pytest.approx(list(ev.stats[:3]), abs=1e-12)
    assert {r["class"] for r in summary["per_class"]} == set(CLASSES)
    assert len(summary["confusion"]) == 4 and summary["confusion_labels"][-1] == "background"
    assert "mAP@[.5:.95]" in result.stderr and "triangle" in result.stderr
    assert all((out / name).stat().st_size > 0 for name in ("evaluation.json", "pr_curve.png", "confusion.png"))
    assert json.loads((out / "evaluation.json").read_text())["map"] == summary["map"]
    # the records show what --conf allows; the evaluation scored everything down to 0.001
    assert all(r["score"] >= 0.25 for r in records[:-1] if r["score"] is not None)
    gate, _ = detect(root / "val" / "images", "-m", ckpt, "--eval", truth, "--min-map", "0.99")
    assert gate.exit_code == 1 and "under --min-map 0.99" in gate.stderr
    passed, _ = detect(root / "val" / "images", "-m", ckpt, "--eval", truth, "--min-map", "0.0")
    assert passed.exit_code == 0


def test_eval_reads_a_yolo_folder_and_names_unmatched_inputs(data, tmp_path):
    root, ckpt = data
    yolo = write_shapes_detection(tmp_path / "yolo", n_train=0, n_val=4, size=96, seed=3, format="yolo", ext=".png")
    assert load_boxes(yolo / "val").classes == CLASSES
    extra = tmp_path / "extra.png"
    cv2.imwrite(str(extra), np.zeros((96, 96, 3), np.uint8))
    result, records = detect(root / "val" / "images", extra, "-m", ckpt, "--eval", yolo / "val", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    summary = records[-1]
    assert summary["evaluated"] == 4 and summary["unmatched"] == 3  # val_00004, val_00005 and extra.png
    assert "left out of the evaluation" in result.stderr


def test_usage_errors(data, tmp_path):
    root, ckpt = data
    images = root / "val" / "images"
    cases = [
        (["-m", ckpt, "--min-map", "0.5"], "--min-map needs --eval"),
        (["-m", ckpt, "--save-txt"], "--save-txt needs -o"),
        (["-m", ckpt, "--classes", "sqaure"], "unknown class 'sqaure'"),
        (["-m", "lenet5"], "lenet5 is a classification model"),
        (["-m", ckpt, "--eval", tmp_path / "nope.json"], "no such file"),
        (["-m", ckpt, "--imgsz", "7"], "bad --imgsz"),
        ([], "no model given"),
    ]
    for args, message in cases:
        result, _ = detect(images, *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
    (tmp_path / "empty").mkdir()
    result, _ = detect(tmp_path / "empty", "-m", ckpt)
    assert result.exit_code == 2 and "no images found" in result.stderr


def test_random_weights_warn_and_imgsz_keeps_boxes_in_the_inputs_pixels(data):
    root, _ = data
    result, records = detect(root / "val" / "images" / "val_00001.png", "-m", "tiny_fcos", "--imgsz", "192",
                             "--conf", "0.0", "--max-det", "3")
    assert result.exit_code == 0 and "random weights" in result.stderr
    assert records and all(0 <= v <= 96 for r in records for v in r["box"])


def test_help_is_grouped_with_plain_metavars():
    import re

    text = runner.invoke(app, ["detect", "--help"]).stdout
    groups = [line[:-1] for line in text.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    assert groups == ["Arguments", "What to detect", "Files", "Evaluation", "Machine", "Output"]
    assert not re.search(r"<(int|float|str|path|dir|file|list\[|bool)", text) and "Examples:" in text
