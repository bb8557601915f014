"""Detection metrics equal pycocotools' COCOeval run on files, and torchmetrics; the confusion
matrix counts confusions, missed objects and false boxes; the accumulator merges across processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnntool.data.boxes import BoxDataset, ImageLabels, write_coco
from cnntool.metrics.detection import (
    DetectionEvaluator, box_iou, coco_inputs, coco_results, detection_confusion_matrix, evaluate_detections,
    ground_truth, plot_detection_confusion, plot_pr_curves, write_pr_curves,
)

CLASSES = ["cat", "dog", "bird"]
CATEGORY_IDS = [7, 3, 12]  # arbitrary COCO ids: the evaluator must not depend on them
WIDTH, HEIGHT = 120, 90


def fixed_set(seed=0, images=14):
    """Ground truth and perturbed predictions with misses, class confusions, false boxes, crowds,
    an image without objects and one without detections."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for i in range(images):
        n = 0 if i == 3 else int(rng.integers(1, 6))
        xy = rng.uniform(0, [WIDTH - 30, HEIGHT - 30], (n, 2))
        wh = rng.uniform(6, 30, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        labels = rng.integers(0, 3, n)
        crowd = (rng.random(n) < 0.08).astype(np.uint8)
        truths.append({"boxes": boxes, "labels": labels, "iscrowd": crowd, "image_id": 100 + 7 * i})
        p_boxes, p_labels = [], []
        for box, label in zip(boxes, labels):
            if rng.random() < 0.2 or i == 5:
                continue  # missed
            jitter = rng.normal(0, 0.12, 4) * np.r_[box[2:] - box[:2], box[2:] - box[:2]]
            p_boxes.append(np.clip(box + jitter, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT]))
            p_labels.append(int(rng.integers(0, 3)) if rng.random() < 0.15 else int(label))
        for _ in range(0 if i == 5 else int(rng.integers(0, 3))):  # false boxes
            xy = rng.uniform(0, [WIDTH - 20, HEIGHT - 20])
            p_boxes.append(np.r_[xy, xy + rng.uniform(5, 20, 2)])
            p_labels.append(int(rng.integers(0, 3)))
        p_boxes = np.reshape(p_boxes, (-1, 4))
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)
        preds.append({"boxes": p_boxes, "labels": np.array(p_labels, np.int64),
                      "scores": np.round(rng.uniform(0.05, 1.0, len(p_labels)), 3)})
    return preds, truths


def cocoeval_on_files(tmp_path, preds, truths, *, iou_type="bbox", masks=None):
    """pycocotools run as a user would: an annotations file, a results file, loadRes, COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [ImageLabels(f"im{t['image_id']}.png", f"im{t['image_id']}.png", WIDTH, HEIGHT, t["boxes"], t["labels"],
                          image_id=t["image_id"], iscrowd=t["iscrowd"], segmentation=t.get("segmentation"))
              for t in truths]
    data = BoxDataset(str(tmp_path), "coco", CLASSES, images, category_ids=CATEGORY_IDS)
    gt_path = write_coco(data, tmp_path / "gt", copy_images=False)
    results = coco_results(preds, [t["image_id"] for t in truths], CATEGORY_IDS)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox")  # mask AP uses mask areas, as detectron2 evaluates it
    (tmp_path / "results.json").write_text(json.dumps(results))
    coco = COCO(str(gt_path))
    dets = coco.loadRes(str(tmp_path / "results.json"))
    overall = COCOeval(coco, dets, iou_type)
    overall.evaluate()
    overall.accumulate()
    overall.summarize()
    per_class = []
    for cid in CATEGORY_IDS:
        single = COCOeval(coco, dets, iou_type)
        single.params.catIds = [cid]
        single.evaluate()
        single.accumulate()
        single.summarize()
        per_class.append(single.stats)
    return overall.stats, per_class


def nan_to_minus_one(value):
    return -1.0 if value is None or np.isnan(value) else value


def test_map_equals_cocoeval_on_files(tmp_path):
    preds, truths = fixed_set()
    report = evaluate_detections(preds, truths, classes=CLASSES)
    stats, per_class = cocoeval_on_files(tmp_path, preds, truths)
    ours = [report.map, report.map50, report.map75, report.map_small, report.map_medium, report.map_large,
            report.mar1, report.mar10, report.mar100, report.mar_small, report.mar_medium, report.mar_large]
    np.testing.assert_allclose([nan_to_minus_one(v) for v in ours], stats, rtol=0, atol=1e-12)
    assert 0.2 < report.map50 < 0.95  # a set with real errors, not a trivial one
    for row, single in zip(report.per_class, per_class):
        assert row["ap"] == pytest.approx(single[0], abs=1e-12)
        assert row["ap50"] == pytest.approx(single[1], abs=1e-12)
        assert row["ap75"] == pytest.approx(single[2], abs=1e-12)
        assert row["recall"] == pytest.approx(single[8], abs=1e-12)  # max recall at 100 detections
    objects = sum(int(((t["labels"] == 1) & (t["iscrowd"] == 0)).sum()) for t in truths)
    assert report.per_class[1]["objects"] == objects
    assert report.images == len(truths)


def test_map_equals_torchmetrics(tmp_path):
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    preds, truths = fixed_set(seed=4)
    report = evaluate_detections(preds, truths, classes=CLASSES)
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend="pycocotools")
    metric.update(
        [{"boxes": torch.tensor(p["boxes"], dtype=torch.float64), "scores": torch.tensor(p["scores"]),
          "labels": torch.tensor(p["labels"])} for p in preds],
        [{"boxes": torch.tensor(t["boxes"]), "labels": torch.tensor(t["labels"]),
          "iscrowd": torch.tensor(t["iscrowd"], dtype=torch.int64)} for t in truths])
    tm = metric.compute()
    for ours, theirs in (("map", "map"), ("map50", "map_50"), ("map75", "map_75"), ("mar1", "mar_1"),
                         ("mar10", "mar_10"), ("mar100", "mar_100")):
        assert getattr(report, ours) == pytest.approx(float(tm[theirs]), abs=1e-6), ours
    for k, ap, recall in zip(tm["classes"].tolist(), tm["map_per_class"].tolist(), tm["mar_100_per_class"].tolist()):
        assert report.per_class[k]["ap"] == pytest.approx(ap, abs=1e-6)
        assert report.per_class[k]["recall"] == pytest.approx(recall, abs=1e-6)


def test_model_labels_and_tensors_and_merging():
    import torch

    preds, truths = fixed_set(seed=2, images=8)
    expected = evaluate_detections(preds, truths, classes=CLASSES)
    first, second = (DetectionEvaluator(CLASSES, model_labels=True) for _ in range(2))
    as_model = [({**p, "labels": torch.as_tensor(p["labels"]) + 1, "boxes": torch.as_tensor(p["boxes"])},
                 {**t, "labels": torch.as_tensor(t["labels"]) + 1}) for p, t in zip(preds, truths)]
    # the second process saw the second half, and its images arrive first: order does not matter
    second.update(*map(list, zip(*as_model[4:])))
    first.update(*map(list, zip(*as_model[:4])))
    second.merge(first)
    second.gather()  # no process group: nothing to gather
    merged = second.compute()
    assert merged.map == expected.map and merged.per_class == expected.per_class
    with pytest.raises(ValueError, match="outside the 3 classes"):
        DetectionEvaluator(CLASSES, model_labels=True).update([preds[0]], [{"boxes": [[0, 0, 1, 1]], "labels": [0]}])
    with pytest.raises(ValueError, match="prediction label 4 is outside"):
        DetectionEvaluator(CLASSES, model_labels=True).update([{**preds[0], "labels": [4] * len(preds[0]["labels"])}],
                                                              [{"boxes": [[0, 0, 1, 1]], "labels": [1]}])
    background = DetectionEvaluator(CLASSES, model_labels=True)
    background.update([{"boxes": [[0, 0, 1, 1], [0, 0, 2, 2]], "scores": [0.9, 0.8], "labels": [0, 2]}],
                      [{"boxes": [[0, 0, 2, 2]], "labels": [2]}])
    assert background.records[0]["dt_labels"].tolist() == [1] and background.compute().map == pytest.approx(1.0)


def test_trivial_cases():
    perfect = evaluate_detections([{"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [0]}],
                                  [{"boxes": [[0, 0, 10, 10]], "labels": [0]}], classes=["a", "b"])
    assert perfect.map == pytest.approx(1.0) and perfect.per_class[1]["ap"] is None
    assert perfect.to_dict()["per_class"][1]["recall"] is None
    nothing = evaluate_detections([{"boxes": np.zeros((0, 4)), "scores": [], "labels": []}],
                                  [{"boxes": [[0, 0, 10, 10]], "labels": [0]}], classes=["a"])
    assert nothing.map == 0.0 and nothing.per_class[0]["recall"] == 0.0
    no_truth = evaluate_detections([{"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [0]}],
                                   [{"boxes": np.zeros((0, 4)), "labels": []}], classes=["a"])
    assert np.isnan(no_truth.map) and no_truth.to_dict()["map"] is None


def shapes_masks(seed, count):
    from cnntool.data.synthetic import shapes_scene

    rng = np.random.default_rng(seed)
    return [shapes_scene(rng, size=(HEIGHT, WIDTH)) for _ in range(count)]


def test_mask_map_equals_cocoeval_on_files(tmp_path):
    import cv2

    from cnntool.data.boxes import to_rle

    rng = np.random.default_rng(1)
    preds, truths = [], []
    for i, scene in enumerate(shapes_masks(0, 8)):
        rles = [to_rle(m, HEIGHT, WIDTH) for m in scene.masks]
        for rle in rles:
            rle["counts"] = rle["counts"].decode()
        truths.append({"boxes": scene.boxes, "labels": scene.labels, "iscrowd": np.zeros(len(scene.labels), np.uint8),
                       "image_id": i + 1, "segmentation": rles, "masks": scene.masks})
        kernel = np.ones((3, 3), np.uint8)
        masks = np.stack([cv2.dilate(m.astype(np.uint8), kernel, iterations=int(rng.integers(0, 4))) > 0
                          for m in scene.masks]) if len(scene.masks) else np.zeros((0, HEIGHT, WIDTH), bool)
        labels = np.where(rng.random(len(scene.labels)) < 0.2, (scene.labels + 1) % 3, scene.labels)
        preds.append({"boxes": scene.boxes, "labels": labels, "scores": rng.uniform(0.1, 1, len(labels)),
                      "masks": masks[:, None].astype(np.float32)})  # (N, 1, H, W) as Mask R-CNN gives
    report = evaluate_detections(preds, truths, classes=CLASSES, iou_type="segm")
    stats, per_class = cocoeval_on_files(tmp_path, preds, truths, iou_type="segm")
    ours = [report.map, report.map50, report.map75, report.map_small, report.map_medium, report.map_large,
            report.mar1, report.mar10, report.mar100, report.mar_small, report.mar_medium, report.mar_large]
    np.testing.assert_allclose([nan_to_minus_one(v) for v in ours], stats, atol=1e-12)
    assert 0.3 < report.map < 0.95
    box_report = evaluate_detections(preds, truths, classes=CLASSES)
    assert box_report.map != report.map  # the masks, not the boxes, were compared
    # the same masks given as polygons/RLE through ground_truth()
    image = ImageLabels("x.png", "x.png", WIDTH, HEIGHT, truths[0]["boxes"], truths[0]["labels"], image_id=1,
                        segmentation=truths[0]["segmentation"])
    single = evaluate_detections(preds[:1], [ground_truth(image)], classes=CLASSES, iou_type="segm")
    alone = evaluate_detections(preds[:1], [truths[0]], classes=CLASSES, iou_type="segm")
    assert single.map == alone.map


def test_segm_needs_masks():
    with pytest.raises(ValueError, match="needs 'masks' or 'segmentation'"):
        DetectionEvaluator(["a"], iou_type="segm").update([{"boxes": [], "scores": [], "labels": []}],
                                                          [{"boxes": [], "labels": []}])


def test_confusion_matrix_counts_confusions_misses_and_false_boxes():
    record = {
        "gt_boxes": np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10], [80, 0, 90, 10]]),
        "gt_labels": np.array([0, 1, 1, 2, 0]), "gt_crowd": np.array([0, 0, 0, 0, 1]),
        "dt_boxes": np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [100, 0, 110, 10],
                              [60, 0, 70, 10], [0, 0, 10, 11], [80, 0, 90, 10]]),
        "dt_labels": np.array([0, 2, 1, 1, 2, 0, 0]),
        "dt_scores": np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5, 0.9]),
    }
    matrix = detection_confusion_matrix([record], num_classes=3, iou_threshold=0.5, score_threshold=0.25)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # cat found
    expected[1, 2] = 1  # a dog called bird
    expected[1, 3] = 1  # a dog missed: its detection scored under the threshold
    expected[2, 2] = 1  # bird found
    expected[3, 1] = 1  # a dog box on nothing
    expected[3, 0] = 2  # a duplicate cat box, and a box on the crowd region (crowds are not objects)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum(axis=1)[:3].tolist() == [1, 2, 1]  # every non-crowd object in exactly one cell
    ev = DetectionEvaluator(["a", "b", "c"])
    ev.update([{"boxes": record["dt_boxes"], "labels": record["dt_labels"], "scores": record["dt_scores"]}],
              [{"boxes": record["gt_boxes"], "labels": record["gt_labels"], "iscrowd": record["gt_crowd"]}])
    np.testing.assert_array_equal(ev.confusion_matrix(), expected)
    np.testing.assert_array_equal(ev.confusion_matrix(score_threshold=0.0)[1], [0, 1, 1, 0])


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10], [0, 0, 0, 0]]), np.array([[0, 0, 10, 10], [5, 5, 15, 15]]))
    np.testing.assert_allclose(iou, [[1, 25 / 175], [0, 0]])


def test_plots_are_written(tmp_path):
    preds, truths = fixed_set(seed=3, images=6)
    report = evaluate_detections(preds, truths, classes=CLASSES)
    plot_pr_curves(report, tmp_path / "pr.png")
    paths = write_pr_curves(report, tmp_path / "curves", iou=0.75)
    with_truth = [k for k in range(3) if report.per_class[k]["objects"]]
    assert len(paths) == 1 + len(with_truth) and all((tmp_path / "curves" / p).stat().st_size for p in paths)
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="iou must be one of"):
        plot_pr_curves(report, tmp_path / "x.png", iou=0.52)
    ev = DetectionEvaluator(CLASSES)
    ev.update(preds, truths)
    plot_detection_confusion(ev.confusion_matrix(), CLASSES, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_coco_inputs_number_images_and_categories_in_order():
    ev = DetectionEvaluator(["a", "b"])
    ev.update([{"boxes": [[1, 1, 3, 4]], "scores": [0.5], "labels": [1]}],
              [{"boxes": [[1, 1, 3, 3]], "labels": [1], "image_id": 40}])
    gt, results = coco_inputs(ev.records, ev.classes)
    assert gt["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert gt["annotations"][0]["bbox"] == [1.0, 1.0, 2.0, 2.0] and gt["annotations"][0]["category_id"] == 2
    assert results == [{"image_id": 1, "category_id": 2, "score": 0.5, "bbox": [1.0, 1.0, 2.0, 3.0]}]


def _gather_worker(rank, init, preds, truths, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    ev = DetectionEvaluator(CLASSES)
    ev.update(preds[rank::2], truths[rank::2])
    ev.gather()
    report = ev.compute()
    with open(f"{out}.{rank}", "w") as f:
        json.dump(report.to_dict(), f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_gather_across_two_processes(tmp_path):
    import torch.multiprocessing as mp

    preds, truths = fixed_set(seed=5, images=10)
    mp.spawn(_gather_worker, args=(f"file://{tmp_path / 'store'}", preds, truths, str(tmp_path / "report")),
             nprocs=2, join=True)
    expected = json.loads(json.dumps(evaluate_detections(preds, truths, classes=CLASSES).to_dict()))
    for rank in (0, 1):
        assert json.loads((tmp_path / f"report.{rank}").read_text()) == expected
