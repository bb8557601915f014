"""Detectors: the tiny FCOS trains, torchvision's builders download nothing unasked, and the head
swap gives every family the right number of classes while keeping the rest."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.data.synthetic import SHAPE_CLASSES, shapes_scene
from cnntool.errors import MissingWeightsError, UsageError
from cnntool.metrics.detection import evaluate_detections
from cnntool.models.detectors import (
    TORCHVISION_DETECTORS, TinyFPNBackbone, detector_family, detector_num_classes, pretrained_classes,
    replace_detection_head, tiny_fcos, torchvision_detector, weights_cache_path,
)

NEW_CLASSES = 4  # 3 classes + background


def one_image(height=64, width=80):
    torch.manual_seed(0)
    return [torch.rand(3, height, width)]


def one_target(masks=False):
    target = {"boxes": torch.tensor([[5.0, 6.0, 40.0, 30.0], [50.0, 20.0, 70.0, 60.0]]),
              "labels": torch.tensor([1, 3])}
    if masks:
        target["masks"] = torch.zeros(2, 64, 80, dtype=torch.uint8)
        target["masks"][0, 6:30, 5:40] = 1
        target["masks"][1, 20:60, 50:70] = 1
    return [target]


def check_eval(model, num_classes=NEW_CLASSES):
    model.eval()
    with torch.no_grad():
        (out,) = model(one_image())
    assert out["boxes"].shape[1] == 4 and len(out["boxes"]) == len(out["scores"]) == len(out["labels"])
    assert out["labels"].numel() == 0 or (1 <= out["labels"].min() and out["labels"].max() < num_classes)
    return out


def check_train_step(model, masks=False):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3)
    losses = model(one_image(), one_target(masks))
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return losses


# --- tiny FCOS -------------------------------------------------------------------------------

def test_tiny_fcos_size_and_normalisation():
    model = tiny_fcos(num_classes=NEW_CLASSES)
    assert 1_300_000 < sum(p.numel() for p in model.parameters()) < 1_500_000
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in model.modules())
    assert model.transform.min_size == (160,) and model.transform.max_size == 320
    assert model.transform.image_mean == [0.5] * 3
    gray = tiny_fcos(num_classes=2, in_channels=1, min_size=96, max_size=128)
    assert gray.transform.image_mean == [0.5] and gray.backbone.body.stem[0][0].in_channels == 1
    assert gray.transform.min_size == (96,)
    with pytest.raises(UsageError, match="counts the background"):
        tiny_fcos(num_classes=1)


def test_tiny_fcos_trains_and_predicts_boxes_in_input_pixels():
    torch.manual_seed(0)
    model = tiny_fcos(num_classes=NEW_CLASSES, min_size=64, max_size=96)
    losses = check_train_step(model)
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    out = check_eval(model)
    if len(out["boxes"]):
        assert out["boxes"][:, 2].max() <= 80 and out["boxes"][:, 3].max() <= 64


def test_tiny_fpn_backbone_levels():
    features = TinyFPNBackbone()(torch.rand(1, 3, 160, 96))
    assert [tuple(f.shape[-2:]) for f in features.values()] == [(20, 12), (10, 6), (5, 3)]


# --- head replacement on the real builders (meta device: structure, no compute) ----------------

@pytest.mark.parametrize("name", sorted(TORCHVISION_DETECTORS))
def test_replace_head_on_every_builder(name):
    with torch.device("meta"):
        model = torchvision_detector(name)
    family = detector_family(model)
    assert family == TORCHVISION_DETECTORS[name] and detector_num_classes(model) == 91
    kept = {n: p for n, p in model.named_parameters()}
    replace_detection_head(model, NEW_CLASSES)
    assert detector_num_classes(model) == NEW_CLASSES
    after = dict(model.named_parameters())
    changed = {n for n in after if n not in kept or after[n] is not kept[n]}
    assert changed and all(_is_head(family, n) for n in changed), sorted(changed)
    if family in ("faster_rcnn", "mask_rcnn"):
        predictor = model.roi_heads.box_predictor
        assert predictor.cls_score.out_features == NEW_CLASSES and predictor.bbox_pred.out_features == 4 * NEW_CLASSES
        if family == "mask_rcnn":
            assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == NEW_CLASSES
    elif family in ("retinanet", "fcos"):
        anchors = model.anchor_generator.num_anchors_per_location()[0]
        assert model.head.classification_head.cls_logits.out_channels == anchors * NEW_CLASSES
    else:
        anchors = model.anchor_generator.num_anchors_per_location()
        convs = [b if family == "ssd" else b[-1] for b in model.head.classification_head.module_list]
        assert [c.out_channels for c in convs] == [a * NEW_CLASSES for a in anchors]


def _is_head(family, name):
    if family in ("faster_rcnn", "mask_rcnn"):
        return name.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor."))
    if family in ("retinanet", "fcos"):
        return name.startswith("head.classification_head.cls_logits.")
    return name.startswith("head.classification_head.module_list.")


# --- head replacement with compute: each family with a small backbone --------------------------

def _small_backbone(channels=32, levels=None):
    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = TinyFPNBackbone(widths=(8, 16, 32, 32, 32), out_channels=channels)
            self.out_channels = channels if levels is None else [channels] * levels  # SSD wants a list

        def forward(self, x):
            return self.body(x)

    return Backbone()


def small_family_model(family):
    """A torchvision model of ``family`` (91 classes) over a small backbone: the head classes
    are torchvision's own, so the swap is tested as on the big builders, at a fraction of the cost."""
    from torchvision.models import detection
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(((16,), (32,), (64,)), ((0.5, 1.0, 2.0),) * 3)
    size = dict(min_size=64, max_size=96)
    if family in ("faster_rcnn", "mask_rcnn"):
        rcnn = dict(rpn_anchor_generator=anchors, box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
                    rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, rpn_pre_nms_top_n_train=50,
                    rpn_post_nms_top_n_train=20, box_batch_size_per_image=16, box_detections_per_img=5, **size)
        if family == "faster_rcnn":
            return detection.FasterRCNN(_small_backbone(), 91, **rcnn)
        masks = MultiScaleRoIAlign(["0", "1", "2"], 14, 2)
        return detection.MaskRCNN(_small_backbone(), 91, mask_roi_pool=masks, **rcnn)
    if family == "retinanet":
        return detection.RetinaNet(_small_backbone(), 91, anchor_generator=anchors, topk_candidates=50, **size)
    if family == "fcos":
        return tiny_fcos(num_classes=91, min_size=64, max_size=96)
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    boxes = DefaultBoxGenerator([[2], [2, 3], [2]])
    model = SSD(_small_backbone(levels=3), boxes, (64, 64), 91, topk_candidates=50, detections_per_img=10)
    if family == "ssdlite":
        model.head = SSDLiteHead([32, 32, 32], boxes.num_anchors_per_location(), 91, nn.BatchNorm2d)
    return model


@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn", "retinanet", "fcos", "ssd", "ssdlite"])
def test_replaced_head_predicts_only_new_labels_and_trains(family):
    torch.manual_seed(0)
    model = small_family_model(family)
    assert detector_family(model) == family
    replace_detection_head(model, NEW_CLASSES)
    out = check_eval(model)
    if family == "mask_rcnn":
        assert out["masks"].shape[1:] == (1, 64, 80)
    losses = check_train_step(model, masks=family == "mask_rcnn")
    assert len(losses) >= 2


def test_replace_head_refuses_other_models():
    with pytest.raises(TypeError, match="not a torchvision detection model"):
        replace_detection_head(nn.Linear(2, 2), 3)


# --- the real builders: no downloads, weights on request ---------------------------------------

def test_builders_never_download_unasked(torch_home, no_network):
    model = torchvision_detector("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=NEW_CLASSES)
    assert detector_num_classes(model) == NEW_CLASSES and no_network == []
    with pytest.raises(UsageError, match="weights_backbone"):
        torchvision_detector("fcos_resnet50_fpn", weights_backbone="DEFAULT")
    with pytest.raises(UsageError) as err:
        torchvision_detector("fasterrcnn_resnet50")
    assert "fasterrcnn_resnet50_fpn" in err.value.hint


def test_pretrained_weights_missing_offline_name_the_cache_file(torch_home, no_network):
    expected = weights_cache_path("ssdlite320_mobilenet_v3_large", "COCO_V1")
    assert expected.startswith(str(torch_home))
    with pytest.raises(MissingWeightsError) as err:
        torchvision_detector("ssdlite320_mobilenet_v3_large", weights="DEFAULT", num_classes=NEW_CLASSES)
    assert expected in err.value.message and expected in err.value.hint
    assert len(no_network) == 1  # asked for, so tried once
    with pytest.raises(MissingWeightsError, match="no weights named 'imagenet'"):
        torchvision_detector("ssdlite320_mobilenet_v3_large", weights="imagenet")


def test_pretrained_weights_from_the_cache_then_a_new_head(torch_home, no_network):
    from torchvision.models import detection

    reference = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    path = weights_cache_path("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")
    os.makedirs(os.path.dirname(path))
    torch.save(reference.state_dict(), path)  # stands in for the downloaded file
    model = torchvision_detector("fasterrcnn_mobilenet_v3_large_320_fpn", weights="COCO_V1", num_classes=NEW_CLASSES)
    assert no_network == [] and detector_num_classes(model) == NEW_CLASSES
    assert torch.equal(model.backbone.body["0"][0].weight, reference.backbone.body["0"][0].weight)
    assert len(pretrained_classes("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")) == 90


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TORCHVISION_DETECTORS))
def test_real_builders_forward_after_the_swap(name):
    options = {"min_size": 64, "max_size": 96}
    if name.startswith(("fasterrcnn", "maskrcnn")):
        options.update(rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_detections_per_img=5)
    elif name.startswith(("retinanet", "fcos")):
        options.update(topk_candidates=50, detections_per_img=5)
    else:
        options = {"topk_candidates": 50, "detections_per_img": 5}  # SSDs have a fixed input size
    model = torchvision_detector(name, **options)
    replace_detection_head(model, NEW_CLASSES)
    check_eval(model)



@pytest.mark.slow
def test_tiny_fcos_learns_synthetic_shapes_from_scratch():
    """A small seeded set of shape scenes: after a short training the detector finds them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU, one thread is far faster than two fighting for cores
    try:
        report = _train_on_shapes()
    finally:
        torch.set_num_threads(threads)
    assert report.map50 > 0.6, report.to_dict()


def _train_on_shapes(images=32, steps=80, batch=8):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [shapes_scene(rng, size=96, max_objects=2, min_side=0.25, max_side=0.4) for _ in range(images)]
    pixels = [torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes]
    targets = [{"boxes": torch.from_numpy(s.boxes).float(), "labels": torch.from_numpy(s.labels) + 1} for s in scenes]
    model = tiny_fcos(num_classes=4, min_size=96, max_size=96)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    model.train()
    for step in range(steps):
        chosen = [(step * batch + i) % images for i in range(batch)]
        losses = model([pixels[i] for i in chosen], [targets[i] for i in chosen])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        outputs = model(pixels)
    return evaluate_detections(outputs, targets, classes=list(SHAPE_CLASSES), model_labels=True)
