"""`cnntool segment` end to end: records, files under -o, the skip rule, refused options, --eval
(mIoU from the confusion matrix, 255 not counted, every bad mask named), the gate, and the
coins photo's 24 coins."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cnntool.data.masks import read_mask, write_index_mask
from cnntool.models import registry

ROOT = Path(__file__).resolve().parents[2]
COINS = ROOT / "samples" / "photos" / "coins.png"
UNET = registry.ModelEntry(name="unet", task="segmentation", builder="cnntool.models.unet:unet", family="unet",
                           preprocessing=registry.Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3), num_classes=2,
                           reference_params=482_754, head="head", first_conv="encoders.0.0")


@pytest.fixture(scope="module")
def app():
    """The segment command as `cnntool segment` runs it (the one error handler)."""
    from cnntool.cli.main import command
    from cnntool.cli.segment import segment_command

    app = typer.Typer()

    @app.callback()
    def _root():
        """cnntool"""

    command(app, "segment", segment_command, "Segment images")
    return app


@pytest.fixture
def unet_entry(monkeypatch):
    registry._ensure_loaded()
    if "unet" not in registry._REGISTRY:
        monkeypatch.setitem(registry._REGISTRY, "unet", UNET)


def run(app, *args):
    result = CliRunner().invoke(app, ["segment", *map(str, args), "--format", "jsonl"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, records


def shapes(folder: Path, n: int = 2) -> list[Path]:
    """Grey images with bright squares: otsu finds them exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = np.full((40, 60), 30, np.uint8)
        image[5:20, 5 + 10 * i:25 + 10 * i] = 220
        cv2.imwrite(str(folder / f"img{i}.png"), image)
        paths.append(folder / f"img{i}.png")
    return paths


@pytest.mark.parametrize("method", ["otsu", "watershed"])
def test_the_coins_photo_holds_24_coins(app, method):
    result, records = run(app, COINS, "--method", method)
    assert result.exit_code == 0, result.output
    assert records[0]["instances"] == 24 and records[0]["error"] is None
    assert 0.2 < records[0]["fractions"]["foreground"] < 0.5


def test_files_mirror_the_inputs_and_are_skipped_when_made_alike(app, tmp_path):
    images = shapes(tmp_path / "in" / "sub")
    out = tmp_path / "out"
    result, records = run(app, tmp_path / "in", "--method", "otsu", "--background-sigma", "0", "-o", out)
    assert result.exit_code == 0, result.output
    mask_path = out / "masks" / "sub" / "img0.png"
    assert [r["mask"] for r in records] == [str(mask_path), str(out / "masks" / "sub" / "img1.png")]
    assert records[0]["overlay"] == str(out / "overlays" / "sub" / "img0.png")
    mask = read_mask(mask_path)
    assert mask.shape == (40, 60) and set(np.unique(mask)) == {0, 1}
    assert (mask[5:20, 5:25] == 1).all() and mask.sum() == 15 * 20
    overlay = cv2.imread(records[0]["overlay"])
    assert overlay.shape[0] == 40 and overlay.shape[1] >= 60
    again, records2 = run(app, tmp_path / "in", "--method", "otsu", "--background-sigma", "0", "-o", out)
    assert again.exit_code == 0 and "4 outputs skipped" in again.stderr
    assert records2 == records  # the records do not depend on whether files were written
    other, records3 = run(app, images[0], "--method", "otsu", "-o", out / "masks" / "..")
    assert other.exit_code == 0  # a file named directly lands at DIR/masks/<name>
    changed, records4 = run(app, tmp_path / "in", "--method", "otsu", "--min-size", "0.01", "-o", out)
    assert changed.exit_code == 1 and "made with other options" in records4[0]["error"]
    replaced, records5 = run(app, tmp_path / "in", "--method", "otsu", "--min-size", "0.01", "-o", out, "--overwrite")
    assert replaced.exit_code == 0 and records5[0]["error"] is None


@pytest.mark.parametrize("args, message", [
    ([], "no model or method given"),
    (["--method", "otsu", "-m", "unet"], "not both"),
    (["--method", "otsu", "--n-segments", "5"], "--n-segments does nothing for --method otsu"),
    (["--method", "slic", "--min-size", "0.01"], "--min-size does nothing for --method slic"),
    (["--method", "kmeans", "--clusters", "1"], "--clusters"),
    (["--method", "kmean"], "did you mean"),
    (["--method", "otsu", "--min-miou", "0.5"], "--min-miou needs --eval"),
    (["--method", "otsu", "--batch-size", "2"], "--batch-size does nothing"),
    (["-m", "unet", "--clusters", "3"], "--clusters does nothing for semantic models"),
    (["-m", "unet", "--save-coco", "x.json"], "--save-coco does nothing for semantic models"),
    (["-m", "resnet18"], "is a classification model"),
    (["-m", "fasterrcnn_mobilenet_v3_large_320_fpn"], "is a detection model"),
    (["--method", "otsu", "--seed", "5"], "--seed does nothing for --method otsu"),
    (["--method", "slic", "--seed", "5"], "--seed does nothing for --method slic"),
    (["-m", "unet", "--seed", "5"], "--seed does nothing for semantic models"),
    (["--method", "otsu", "--iou", "0.3"], "--iou does nothing for --method otsu"),
    (["--method", "watershed", "--max-det", "5"], "--max-det does nothing for --method watershed"),
    (["-m", "unet", "--iou", "0.3"], "--iou does nothing for semantic models"),
    (["-m", "unet", "--max-det", "5"], "--max-det does nothing for semantic models"),
])
def test_usage_errors_exit_2(app, unet_entry, args, message):
    result, _ = run(app, COINS, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_kmeans_takes_a_seed(app, tmp_path):
    images = shapes(tmp_path / "in", 1)
    result, records = run(app, *images, "--method", "kmeans", "--clusters", "2", "--seed", "5", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert records[0]["error"] is None and records[0]["instances"] == 1
    mask = read_mask(records[0]["mask"])
    assert mask[5:20, 5:25].all() and mask.sum() == 15 * 20  # the bright square, whichever seed
    again, _ = run(app, *images, "--method", "kmeans", "--clusters", "2", "--seed", "6", "-o", tmp_path / "out")
    assert again.exit_code == 1  # the seed is one of the options the files were made with


def test_an_empty_folder_exits_2_and_a_bad_image_is_an_error_record(app, tmp_path):
    (tmp_path / "empty").mkdir()
    result, _ = run(app, tmp_path / "empty", "--method", "otsu")
    assert result.exit_code == 2 and "no images found" in result.stderr
    shapes(tmp_path / "in", 1)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    result, records = run(app, tmp_path / "in", "--method", "otsu")
    assert result.exit_code == 1
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["broken.png"]["error"] and by_name["broken.png"]["fractions"] is None
    assert by_name["img0.png"]["error"] is None


def test_a_unet_checkpoint_segments_at_the_original_size(app, unet_entry, tmp_path):
    import torch

    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
    from cnntool.models.unet import unet

    torch.manual_seed(0)
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, make_checkpoint(unet(num_classes=3, depth=2, width=4), arch="unet", task="segmentation",
                                          classes=["background", "cat", "dog"],
                                          preprocessing=registry.Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3),
                                          arch_kwargs={"depth": 2, "width": 4}))
    images = shapes(tmp_path / "in")
    result, records = run(app, *images, "-m", ckpt, "-o", tmp_path / "out", "--imgsz", "48")
    assert result.exit_code == 0, result.output
    assert "random weights" not in result.stderr
    mask = read_mask(records[0]["mask"])
    assert mask.shape == (40, 60) and mask.max() <= 2
    assert sum(records[0]["fractions"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(records[0]["fractions"]) <= {"background", "cat", "dog"} and records[0]["instances"] is None


# --- evaluation -----------------------------------------------------------------------------------------

def eval_set(tmp_path: Path):
    """Two images whose otsu masks are known exactly, and true masks that differ by hand."""
    images = shapes(tmp_path / "data" / "images")
    truth = tmp_path / "data" / "masks"
    truth.mkdir()
    predicted = []
    for i, path in enumerate(images):
        pred = np.zeros((40, 60), np.uint8)
        pred[5:20, 5 + 10 * i:25 + 10 * i] = 1
        predicted.append(pred)
        true = pred.copy()
        true[30:35, 0:10] = 1          # foreground otsu misses: 50 false negatives
        true[5:10, 5 + 10 * i:25 + 10 * i] = 255   # not labelled: not counted, whatever was predicted
        write_index_mask(truth / path.name, true)
    return images, truth, predicted


def test_eval_miou_equals_the_confusion_matrix_by_hand(app, tmp_path):
    images, truth, predicted = eval_set(tmp_path)
    result, records = run(app, tmp_path / "data" / "images", "--method", "otsu", "--background-sigma", "0",
                          "--eval", tmp_path / "data", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = records[-1]
    assert summary["path"] == "<summary>"
    cm = np.zeros((2, 2), np.int64)
    for pred, path in zip(predicted, images):
        true = read_mask(truth / path.name)
        keep = true != 255
        np.add.at(cm, (true[keep], pred[keep]), 1)
    assert summary["confusion"] == cm.tolist() and cm[1, 0] == 100  # 2 x 50 missed
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert summary["miou"] == pytest.approx(iou.mean())
    assert [c["iou"] for c in summary["per_class"]] == pytest.approx(iou)
    assert summary["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert summary["pixels"] == 2 * (40 * 60 - 5 * 20)  # the 255 pixels are not counted
    assert records[0]["truth"] == str(truth / "img0.png") and records[0]["miou"] < 1
    assert "mIoU" in result.stderr and (tmp_path / "out" / "evaluation.json").is_file()
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 0
    gate, _ = run(app, tmp_path / "data" / "images", "--method", "otsu", "--background-sigma", "0", "--eval",
                  tmp_path / "data", "--min-miou", "0.99")
    assert gate.exit_code == 1 and "under --min-miou 0.99" in gate.stderr
    passed, _ = run(app, tmp_path / "data" / "images", "--method", "otsu", "--background-sigma", "0", "--eval",
                    truth, "--min-miou", "0.5")
    assert passed.exit_code == 0


@pytest.mark.parametrize("case, expected", [
    ("missing", "no mask for"),
    ("size", "size"),
    ("class", "class"),
    ("rgb", "channels"),
    ("jpeg", "no mask for"),
    ("garbage", "cannot read mask"),
])
def test_every_bad_true_mask_is_an_error_record_naming_the_file(app, tmp_path, case, expected):
    images, truth, _ = eval_set(tmp_path)
    bad = truth / "img1.png"
    bad.unlink()
    if case == "size":
        write_index_mask(bad, np.zeros((10, 10), np.uint8))
    elif case == "class":
        write_index_mask(bad, np.full((40, 60), 9, np.uint8))
    elif case == "rgb":
        cv2.imwrite(str(bad), np.zeros((40, 60, 3), np.uint8))
    elif case == "jpeg":
        cv2.imwrite(str(truth / "img1.jpg"), np.zeros((40, 60), np.uint8))
    elif case == "garbage":
        bad.write_bytes(b"garbage")
    result, records = run(app, *images, "--method", "otsu", "--eval", truth)
    assert result.exit_code == 1
    good, broken, summary = records
    assert good["error"] is None and good["miou"] is not None
    assert expected in broken["error"] and "img1" in broken["error"]
    assert summary["evaluated"] == 1 and summary["errors"] == 1


def test_superpixels_cannot_be_evaluated(app, tmp_path):
    _, truth, _ = eval_set(tmp_path)
    result, _ = run(app, COINS, "--method", "slic", "--eval", truth)
    assert result.exit_code == 2 and "without classes" in result.stderr


def test_save_coco_writes_every_region_as_rle(app, tmp_path):
    from cnntool.metrics.segmentation import rle_to_masks

    result, records = run(app, COINS, "--method", "watershed", "--save-coco", tmp_path / "coins.json")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "coins.json").read_text())
    assert len(results) == 24 and {r["category_id"] for r in results} == {1} and results[0]["image_id"] == 1
    masks = rle_to_masks([r["segmentation"] for r in results])
    assert masks.shape == (24, 303, 384) and not (masks.sum(0) > 1).any()  # regions do not overlap
    assert sum(r["area"] for r in results) == pytest.approx(records[0]["fractions"]["foreground"] * 303 * 384, abs=2)


@pytest.fixture(scope="module")
def maskrcnn(tmp_path_factory):
    """A Mask R-CNN checkpoint with random weights for the shapes' classes (nothing downloaded),
    and two 64 px shapes images with COCO truth (RLE segmentations)."""
    import torch

    from cnntool.data.detection import write_shapes_detection
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint

    tmp = tmp_path_factory.mktemp("maskrcnn")
    entry = registry.get_entry("maskrcnn_resnet50_fpn")
    torch.manual_seed(0)
    save_checkpoint(tmp / "maskrcnn.pt", make_checkpoint(
        entry.build(num_classes=4), arch=entry.name, task="detection",
        classes=["__background__", "circle", "square", "triangle"], preprocessing=entry.preprocessing))
    root = write_shapes_detection(tmp / "coco", n_train=2, n_val=0, size=64, seed=0, format="coco") / "train"
    return tmp / "maskrcnn.pt", root


def objects_of(records) -> list[dict]:
    return [r for r in records if "object" in r]


def images_of(records) -> list[dict]:
    return [r for r in records if "object" not in r and r["path"] != "<summary>"]


@pytest.mark.slow
def test_an_instance_model_gives_one_record_per_object_and_mask_map(app, maskrcnn, tmp_path):
    """At 96 px: the composition with the detection stage, per-object records, COCO RLE results
    and mask mAP against COCO truth."""
    ckpt, root = maskrcnn
    images = sorted((root / "images").iterdir())
    result, records = run(app, *images, "-m", ckpt, "--imgsz", "96", "--conf", "0.0",
                          "--save-coco", tmp_path / "results.json", "--eval", root, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    image_records, objects = images_of(records), objects_of(records)
    assert len(image_records) == 2 and sum(r["instances"] for r in image_records) == len(objects) > 0
    assert all(set(o) >= {"label", "class_id", "score", "box", "area"} for o in objects)
    summary = records[-1]
    assert summary["path"] == "<summary>" and summary["iou_type"] == "segm" and summary["map"] is not None
    saved = json.loads((tmp_path / "results.json").read_text())
    assert all("counts" in r["segmentation"] for r in saved)


@pytest.mark.slow
def test_max_det_and_iou_reach_mask_rcnn(app, maskrcnn):
    ckpt, root = maskrcnn
    images = sorted((root / "images").iterdir())
    counts = {}
    for args in ([], ["--max-det", "2"], ["--iou", "0.05"]):
        result, records = run(app, *images, "-m", ckpt, "--imgsz", "96", "--conf", "0.0", *args)
        assert result.exit_code == 0, result.output
        counts[" ".join(args)] = [r["instances"] for r in images_of(records)]
    assert max(counts[""]) > 2  # random weights at --conf 0: many overlapping boxes
    assert counts["--max-det 2"] == [min(n, 2) for n in counts[""]]
    assert sum(counts["--iou 0.05"]) < sum(counts[""])  # a stricter suppression keeps fewer


def truth_detector(root: Path):
    """A stand-in for ``cnntool.infer.detect.detect_samples`` that finds the truth: each true mask
    at a score under 0.5 and, ranked above them, one wrong mask per image at 0.9; so the mAP over
    every detection differs from the mAP over those scoring at least --conf 0.5 (which is 0)."""
    from cnntool.data.boxes import load_boxes
    from cnntool.infer.detect import Detections, class_names
    from cnntool.metrics.segmentation import rle_to_masks

    truth = load_boxes(root, check_files=False)

    def detect_samples(loaded, samples, *, device, batch_size, conf, iou, max_det, classes=None):
        names = class_names(loaded)
        for sample in samples:
            if sample.error is not None:
                yield sample, None
                continue
            image = truth.lookup(sample.path)
            true = rle_to_masks(image.segmentation)
            wrong = np.zeros_like(true[:1])
            wrong[0, :8, :8] = True  # a corner: no shape of the scene is there
            masks = np.concatenate([wrong, true])
            labels = [names.index(truth.classes[c]) for c in image.labels]
            labels = labels[:1] + labels  # the wrong mask takes a class the image holds
            scores = [0.9] + [0.4 - 0.05 * i for i in range(len(true))]
            boxes = [[0, 0, 8, 8], *image.boxes.tolist()]
            found = Detections(boxes, labels, scores, list(names), masks=masks, size=tuple(sample.size))
            keep = np.flatnonzero(found.scores >= conf)[:max_det]
            yield sample, found.subset(keep)

    return detect_samples


def coco_map(annotations: Path, results: list[dict]) -> float:
    """pycocotools' own mask mAP@[.5:.95] of ``results`` against the annotations file."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        ev = COCOeval(gt, gt.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.mark.slow
def test_save_coco_with_coco_truth_holds_what_the_map_scored(app, maskrcnn, tmp_path, monkeypatch):
    import cnntool.infer.detect

    ckpt, root = maskrcnn
    monkeypatch.setattr(cnntool.infer.detect, "detect_samples", truth_detector(root))
    images = sorted((root / "images").iterdir())
    twin = tmp_path / "copy" / images[0].name  # the same ground-truth image a second time: scored once
    twin.parent.mkdir()
    twin.write_bytes(images[0].read_bytes())
    result, records = run(app, *images, twin, "-m", ckpt, "--conf", "0.5", "--save-coco", tmp_path / "results.json",
                          "--eval", root)
    assert result.exit_code == 0, result.output
    summary = records[-1]
    assert summary["path"] == "<summary>" and summary["evaluated"] == 2 and 0 < summary["map"] < 1
    assert summary["unmatched"] == 1 and f"already matched by {images[0]}" in result.stderr
    assert [r["instances"] for r in images_of(records)] == [1, 1, 1]  # records show --conf's objects only
    saved = json.loads((tmp_path / "results.json").read_text())
    truth = json.loads((root / "annotations.json").read_text())
    assert len(saved) == 2 + len(truth["annotations"]) and min(r["score"] for r in saved) < 0.5
    assert {r["image_id"] for r in saved} == {im["id"] for im in truth["images"]}
    assert coco_map(root / "annotations.json", saved) == pytest.approx(summary["map"], abs=1e-9)
    shown = [r for r in saved if r["score"] >= 0.5]
    assert coco_map(root / "annotations.json", shown) == 0.0  # what the file held before: not the mAP reported
