"""Instance segmentation training (issue 10): Mask R-CNN from COCO annotations whose objects carry
RLE masks; targets hold the masks, augmentation moves them with the pixels, and validation adds
the mask mAP. A tiny Mask R-CNN (cnntool's tiny backbone) keeps it fast."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnntool.data.preprocessing import Preprocessing
from cnntool.models import registry
from cnntool.models.checkpoint import load_checkpoint
from cnntool.train.config import TrainConfig
from cnntool.train.runner import train


def tiny_maskrcnn(*, num_classes: int, in_channels: int = 3, **_):
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    from cnntool.models.detectors import TinyFPNBackbone

    backbone = TinyFPNBackbone(in_channels)
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    return MaskRCNN(backbone, num_classes, min_size=96, max_size=96, rpn_anchor_generator=anchors,
                    box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
                    mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 14, 2),
                    image_mean=[0.5] * 3, image_std=[0.5] * 3)


@pytest.fixture
def tiny_instance_model(monkeypatch):
    with torch.device("meta"):
        params = sum(p.numel() for p in tiny_maskrcnn(num_classes=4).parameters())
    entry = registry.ModelEntry(
        name="tiny_maskrcnn", task="detection", builder=tiny_maskrcnn, family="maskrcnn",
        preprocessing=Preprocessing((3, 96, 96), (0.5,) * 3, (0.5,) * 3, resize_mode="none", normalize_in_model=True),
        num_classes=4, reference_params=params, head="roi_heads.box_predictor",
        extra_heads=("roi_heads.mask_predictor",))
    registry._ensure_loaded()
    monkeypatch.setitem(registry._REGISTRY, "tiny_maskrcnn", entry)
    return entry


@pytest.mark.slow
def test_mask_rcnn_trains_on_coco_masks_and_reports_mask_map(tiny_instance_model, tmp_path):
    from cnntool.data.detection import write_shapes_detection

    data = write_shapes_detection(tmp_path / "shapes", n_train=16, n_val=6, size=96, format="coco", seed=0)
    annotations = json.loads((data / "train" / "annotations.json").read_text())
    assert all(isinstance(a["segmentation"], dict) for a in annotations["annotations"])  # RLE masks
    for a in annotations["annotations"][::2]:  # every other object as polygons instead
        a["segmentation"] = polygons(a["segmentation"])
    annotations["annotations"][1]["segmentation"] = [[10, 10, 30, 10, 30]]  # an odd count: skipped, named
    (data / "train" / "annotations.json").write_text(json.dumps(annotations))
    cfg = TrainConfig(data=str(data), task="detect", arch="tiny_maskrcnn", out=str(tmp_path / "run"), epochs=2,
                      batch_size=4, device="cpu", threads=1, workers=0)
    summary = train(cfg)
    assert summary["skipped"] == 1 and summary["skipped_files"][0]["error"].startswith(
        f"annotation {annotations['annotations'][1]['id']} in image ")
    assert "segmentation polygon 1 has 5 numbers" in summary["skipped_files"][0]["error"]
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_mask_map" in r and "train_loss_mask" in r for r in history)
    assert np.isfinite(history[-1]["train_loss_mask"]) and summary["task"] == "detection"
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert any(k.startswith("roi_heads.mask_predictor") for k in best["state_dict"])


def polygons(rle: dict) -> list:
    """COCO polygons of an RLE mask's outlines (OpenCV's contours)."""
    import cv2
    from pycocotools import mask as mask_utils

    mask = mask_utils.decode({**rle, "counts": rle["counts"].encode()})
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def test_polygon_and_rle_masks_load_alike(tmp_path):
    """The same objects labelled by polygons or by RLE give nearly the same training masks;
    a bad segmentation is skipped by the label layer, named, before any sample is drawn."""
    from cnntool.train.tasks.detect import load_detection_data
    from cnntool.data.detection import write_shapes_detection

    root = write_shapes_detection(tmp_path / "shapes", n_train=3, n_val=1, size=64, format="coco", seed=2)
    rle = load_detection_data(str(root), masks=True)
    doc = json.loads((root / "train" / "annotations.json").read_text())
    for a in doc["annotations"]:
        a["segmentation"] = polygons(a["segmentation"])
    doc["annotations"][0]["segmentation"] = {"size": [32, 64], "counts": [2048]}  # not the image's size
    (root / "train" / "annotations.json").write_text(json.dumps(doc))
    poly = load_detection_data(str(root), masks=True)
    (path, reason), = poly.skipped
    assert path.endswith("annotations.json") and reason.startswith(f"annotation {doc['annotations'][0]['id']} in image")
    assert "segmentation RLE size [32, 64] is not the image size [64, 64]" in reason
    for i in range(len(rle.train)):
        a, b = rle.train[i][1]["masks"].numpy(), poly.train[i][1]["masks"].numpy()
        if i == 0:
            a = a[1:]  # its first object was skipped
        assert a.shape == b.shape and a.sum() > 0
        iou = (a & b).sum(axis=(1, 2)) / np.maximum(1, (a | b).sum(axis=(1, 2)))
        inside = (a & b).sum(axis=(1, 2)) / np.maximum(1, b.sum(axis=(1, 2)))
        assert (iou > 0.6).all() and (inside > 0.85).all(), (iou, inside)  # outlines through the edge pixels' centres


def test_targets_carry_masks_that_move_with_the_pixels(tmp_path):
    from cnntool.data.boxes import load_boxes
    from cnntool.data.detection import DetectionAugment, DetectionDataset, write_shapes_detection

    root = write_shapes_detection(tmp_path / "shapes", n_train=4, n_val=1, size=64, format="coco", seed=1)
    boxes = load_boxes(root, split="train")
    plain = DetectionDataset(boxes, masks=True)
    flipped = DetectionDataset(boxes, masks=True, augment=DetectionAugment(hflip=1.0))
    _, target = plain[0]
    _, moved = flipped[0]
    masks = target["masks"].numpy()
    assert masks.shape[0] == len(target["boxes"]) and masks.dtype == np.uint8 and masks.sum() > 0
    for mask, box in zip(masks, target["boxes"].numpy()):  # each mask lies inside its box
        ys, xs = np.nonzero(mask)
        assert xs.min() >= box[0] - 1 and xs.max() <= box[2] and ys.min() >= box[1] - 1 and ys.max() <= box[3]
    np.testing.assert_array_equal(moved["masks"].numpy(), masks[:, :, ::-1])  # flipped with the image
