"""Segmentation metrics: one confusion matrix, hand-computed figures, ignore 255, smp's convention,
torchmetrics agreement, merging, and instance masks as COCO RLE."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from cnntool.metrics.segmentation import (
    SegmentationMetrics, all_reduce_confusion, coco_segm_results, confusion_matrix, dice_per_class,
    iou_per_class, masks_from_labels, masks_to_rle, mean_dice, mean_iou, pixel_accuracy, rle_area, rle_to_masks,
    segmentation_report, sum_confusion,
)

# 3 x 4 label images, classes 0..2 (and 255 = not labelled in the truth)
TRUE = np.array([[0, 0, 1, 1],
                 [0, 2, 2, 1],
                 [255, 2, 2, 0]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 1, 1],
                 [2, 2, 0, 0]])


def test_confusion_matrix_by_hand():
    # pixels counted (true, pred): (0,0) x3, (0,1) x1, (1,1) x3, (2,2) x2, (2,1) x1, (2,0) x1; (255, 2) ignored
    expected = np.array([[3, 1, 0],
                         [0, 3, 0],
                         [1, 1, 2]])
    cm = confusion_matrix(TRUE, PRED, num_classes=3)
    np.testing.assert_array_equal(cm, expected)
    # IoU = TP / (TP + FP + FN): class 0: 3 / (3 + 1 + 1); class 1: 3 / (3 + 2 + 0); class 2: 2 / (2 + 0 + 2)
    np.testing.assert_allclose(iou_per_class(cm), [3 / 5, 3 / 5, 2 / 4])
    assert mean_iou(cm) == pytest.approx((3 / 5 + 3 / 5 + 2 / 4) / 3)
    assert pixel_accuracy(cm) == pytest.approx(8 / 11)
    # Dice = 2 TP / (2 TP + FP + FN)
    np.testing.assert_allclose(dice_per_class(cm), [6 / 8, 6 / 8, 4 / 6])
    assert mean_dice(cm) == pytest.approx((6 / 8 + 6 / 8 + 4 / 6) / 3)


def test_ignore_index_is_not_counted_whatever_is_predicted():
    base = confusion_matrix(TRUE, PRED, num_classes=3)
    for other in (0, 1, 2):
        pred = PRED.copy()
        pred[TRUE == 255] = other
        np.testing.assert_array_equal(confusion_matrix(TRUE, pred, num_classes=3), base)
    assert base.sum() == (TRUE != 255).sum() == 11
    # without an ignore value, 255 is an out-of-range class
    with pytest.raises(ValueError, match="true label 255 out of range"):
        confusion_matrix(TRUE, PRED, num_classes=3, ignore_index=None)


def test_out_of_range_labels_are_errors():
    with pytest.raises(ValueError, match="true label 7 out of range: expected 0..3 or 255"):
        confusion_matrix([0, 7], [0, 0], num_classes=4)
    with pytest.raises(ValueError, match="predicted label 255 out of range"):
        confusion_matrix([0, 1], [0, 255], num_classes=4)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix([0, 1], [0], num_classes=4)


def smp_macro_iou(cm):
    """segmentation_models_pytorch.metrics.iou_score(tp, fp, fn, tn, reduction="macro") with its
    default zero_division=1.0: statistics summed over images per class, IoU per class, a class
    with tp + fp + fn == 0 scoring 1.0, then the plain mean over all classes."""
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    return float(np.mean(np.where(union > 0, tp / np.maximum(union, 1), 1.0)))


def test_absent_class_is_left_out_unlike_smp_macro():
    # four classes; 0, 1, 2 each have TP 2, FP 1, FN 1 (IoU 0.5); class 3 appears nowhere
    true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0])
    cm = confusion_matrix(true, pred, num_classes=4)
    np.testing.assert_allclose(iou_per_class(cm)[:3], [0.5, 0.5, 0.5])
    assert np.isnan(iou_per_class(cm)[3])
    assert mean_iou(cm) == pytest.approx(0.5)
    assert smp_macro_iou(cm) == pytest.approx(0.625)
    report = segmentation_report(cm, ["bg", "a", "b", "c"])
    assert report["classes_present"] == 3 and report["per_class"][3]["iou"] is None
    json.dumps(report)  # NaN never reaches a record


def test_agrees_with_torchmetrics_per_class_iou():
    from torchmetrics.classification import MulticlassJaccardIndex

    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, (4, 20, 30))
    true[rng.random(true.shape) < 0.1] = 255
    pred = np.where(rng.random(true.shape) < 0.6, np.where(true == 255, 0, true), rng.integers(0, 5, true.shape))
    ours = iou_per_class(confusion_matrix(true, pred, num_classes=5))
    reference = MulticlassJaccardIndex(num_classes=5, average=None, ignore_index=255)(
        torch.from_numpy(pred), torch.from_numpy(true)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_accumulator_equals_one_matrix_and_takes_scores_and_tensors():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, (6, 8, 8))
    true[0, 0] = 255
    scores = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
    pred = scores.argmax(1)
    whole = confusion_matrix(true, pred, num_classes=3)

    metrics = SegmentationMetrics(3, classes=["a", "b", "c"])
    metrics.update(true[:2], pred[:2])                                       # labels, NumPy
    metrics.update(torch.from_numpy(true[2:4]), torch.from_numpy(scores[2:4]))  # scores, torch
    metrics.update(true[4:], scores[4:])                                     # scores, NumPy
    np.testing.assert_array_equal(metrics.matrix, whole)
    assert metrics.compute()["miou"] == pytest.approx(mean_iou(whole))
    assert metrics.compute()["per_class"][2]["class"] == "c"

    halves = [SegmentationMetrics(3), SegmentationMetrics(3)]
    halves[0].update(true[:3], pred[:3])
    halves[1].update(true[3:], pred[3:])
    np.testing.assert_array_equal(sum_confusion([h.matrix for h in halves]), whole)
    halves[0].merge(halves[1])
    np.testing.assert_array_equal(halves[0].matrix, whole)
    halves[0].reset()
    assert halves[0].matrix.sum() == 0
    with pytest.raises(ValueError):
        sum_confusion([np.eye(2), np.eye(3)])


def _reduce_worker(rank, path, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    try:
        mine = np.full((2, 2), rank + 1, np.int64)
        out[rank] = all_reduce_confusion(mine).tolist()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_sums_the_processes_matrices(tmp_path):
    import torch.multiprocessing as mp

    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_reduce_worker, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    assert out[0] == out[1] == [[3, 3], [3, 3]]


def test_rle_round_trip_and_area():
    rng = np.random.default_rng(2)
    masks = rng.random((3, 17, 23)) < 0.3
    rles = masks_to_rle(masks)
    json.dumps(rles)
    assert [r["size"] for r in rles] == [[17, 23]] * 3
    np.testing.assert_array_equal(rle_to_masks(rles), masks)
    assert [rle_area(r) for r in rles] == masks.sum(axis=(1, 2)).tolist()
    assert masks_to_rle(np.zeros((0, 4, 4), bool)) == []


def test_coco_results_score_perfectly_against_the_same_masks():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    masks = np.zeros((2, 40, 50), bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 22:38, 30:48] = True
    results = coco_segm_results(1, masks, [0, 1], [0.9, 0.8], category_ids=[3, 7])
    assert results[0]["bbox"] == [5.0, 5.0, 20.0, 15.0] and results[0]["area"] == 300
    assert [r["category_id"] for r in results] == [3, 7]
    gt = {"images": [{"id": 1, "width": 50, "height": 40}],
          "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": r["category_id"], "iscrowd": 0,
                           "segmentation": r["segmentation"], "area": r["area"], "bbox": r["bbox"]}
                          for i, r in enumerate(results)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(json.loads(json.dumps(results))), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_label_image_regions_as_rle():
    labels = np.zeros((8, 9), np.int32)
    labels[1:3, 1:4] = 1
    labels[5:8, 6:9] = 2
    masks = masks_from_labels(labels)
    assert masks.shape == (2, 8, 9) and masks.dtype == bool
    assert [rle_area(r) for r in masks_to_rle(masks)] == [6, 9]
    assert masks_from_labels(np.zeros((3, 3), int)).shape == (0, 3, 3)
