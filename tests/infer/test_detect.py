"""The detection stage: boxes back in the original pixels whatever size the model saw, the
thresholds, class filter and NMS, records for every input, drawings at any size, YOLO lines,
input sizes, and the evaluation's matching of inputs to ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.data.boxes import BoxDataset, ImageLabels, _parse_yolo_line
from cnntool.data.draw import palette
from cnntool.data.pixels import Sample
from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import UsageError
from cnntool.infer.detect import (Detections, GroundTruthEvaluation, detect_samples, detection_records,
                                  draw_detections, input_preparer, model_thresholds, resolve_classes,
                                  set_input_size, working_size, yolo_lines)
from cnntool.models.loading import LoadedModel, load
from cnntool.models.registry import get_entry

CPU = torch.device("cpu")
NAMES = ["cat", "dog"]


class Oracle(nn.Module):
    """A stand-in detector: for each input image, boxes at fixed fractions of ITS size, with
    torchvision's output format and label convention (0 = background). Records the input sizes."""

    #: (x1, y1, x2, y2) fractions, model label, score
    OUTPUT = [((0.1, 0.2, 0.5, 0.6), 1, 0.9),      # cat
              ((0.12, 0.2, 0.5, 0.62), 1, 0.8),    # a near duplicate of the cat (IoU ~0.9)
              ((0.12, 0.2, 0.5, 0.62), 2, 0.7),    # the same place, as a dog: another class, kept by NMS
              ((0.6, 0.6, 0.9, 0.95), 2, 0.3),     # dog, low score
              ((0.0, 0.0, 1.0, 1.0), 0, 0.99)]     # background: never reported

    def __init__(self, min_size=100, max_size=200, masks=False):
        super().__init__()
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        self.transform = GeneralizedRCNNTransform(min_size, max_size, [0.0] * 3, [1.0] * 3)
        self.masks = masks
        self.seen: list[tuple[int, int]] = []
        self.fail = False

    def forward(self, images):
        if self.fail:
            raise RuntimeError("out of cheese")
        out = []
        for image in images:
            assert image.dtype == torch.float32 and float(image.max()) <= 1.0
            h, w = image.shape[-2:]
            self.seen.append((h, w))
            boxes = torch.tensor([f for f, _, _ in self.OUTPUT]) * torch.tensor([w, h, w, h])
            result = {"boxes": boxes, "labels": torch.tensor([label for _, label, _ in self.OUTPUT]),
                      "scores": torch.tensor([score for _, _, score in self.OUTPUT])}
            if self.masks:
                masks = torch.zeros(len(boxes), 1, h, w)
                for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
                    masks[i, 0, y1:y2, x1:x2] = 0.9
                result["masks"] = masks
            out.append(result)
        return out


def oracle_model(**kwargs) -> LoadedModel:
    return LoadedModel(model=Oracle(**kwargs), entry=get_entry("tiny_fcos"), task="detection",
                       classes=["__background__", *NAMES],
                       preprocessing=Preprocessing((3, 100, 100), (0.5,) * 3, (0.5,) * 3, resize_mode="none",
                                                   normalize_in_model=True),
                       source="checkpoint")


def sample(h=300, w=400, name="a.png", **kwargs) -> Sample:
    return Sample(name, PurePath(name), np.full((h, w, 3), 128, np.uint8), **kwargs)


def run(loaded, samples, **kwargs):
    return list(detect_samples(loaded, samples, device=CPU, **kwargs))


def test_boxes_come_back_in_the_original_pixels_whatever_size_the_model_saw():
    loaded = oracle_model()
    [(s, d)] = run(loaded, [sample(300, 400)], conf=0.0)
    assert loaded.model.seen == [(100, 133)]  # resized on the way in: shorter side 100
    assert d.size == (300, 400) and d.names == NAMES
    np.testing.assert_allclose(d.boxes[0], [40, 60, 200, 180], atol=1.0)  # 0.1 w, 0.2 h, 0.5 w, 0.6 h
    assert d.labels.tolist() == [0, 1, 1] and 0.99 not in d.scores.round(2)  # the background is gone
    assert (np.diff(d.scores) <= 0).all()  # best first


def test_conf_classes_nms_and_max_det():
    loaded = oracle_model()
    [(_, d)] = run(loaded, [sample()], conf=0.5)
    assert d.labels.tolist() == [0, 1] and d.scores.tolist() == pytest.approx([0.9, 0.7])
    [(_, loose)] = run(loaded, [sample()], conf=0.0, iou=0.95)  # looser NMS keeps the near duplicate
    assert loose.labels.tolist() == [0, 0, 1, 1]
    [(_, dogs)] = run(loaded, [sample()], conf=0.0, classes=["dog"])
    [(_, by_id)] = run(loaded, [sample()], conf=0.0, classes=[1])
    assert dogs.labels.tolist() == by_id.labels.tolist() == [1, 1]
    [(_, one)] = run(loaded, [sample()], conf=0.0, max_det=1)
    assert one.labels.tolist() == [0] and one.scores.tolist() == pytest.approx([0.9])


def test_a_downscaled_drawing_copy_and_a_ready_input_still_map_to_the_original():
    loaded = oracle_model()
    small = Sample("big.png", PurePath("big.png"), np.zeros((150, 200, 3), np.uint8), size=(600, 800), scale=0.25)
    ready = sample(300, 400, name="ready.png")
    ready.input = np.zeros((300, 400, 3), np.uint8)  # prepared elsewhere, at full size
    (_, a), (_, b) = run(loaded, [small, ready], conf=0.0)
    np.testing.assert_allclose(a.boxes[0], [80, 120, 400, 360], atol=2.0)
    np.testing.assert_allclose(b.boxes[0], [40, 60, 200, 180], atol=1.0)
    assert (300, 400) in loaded.model.seen  # a ready input goes in as it is


def test_bad_samples_and_failing_batches_become_errors_and_the_run_goes_on():
    loaded = oracle_model()
    broken = Sample("bad.png", PurePath("bad.png"), error="unreadable image")
    out = run(loaded, [sample(name="a.png"), broken, sample(name="b.png")], batch_size=2, conf=0.0)
    assert [(s.path, d is None) for s, d in out] == [("a.png", False), ("bad.png", True), ("b.png", False)]
    records = detection_records(*out[1])
    assert records == [{"path": "bad.png", "label": None, "class_id": None, "score": None, "box": None,
                        "error": "unreadable image"}]
    loaded.model.fail = True
    failed = run(loaded, [sample(name="c.png")])
    assert failed[0][1] is None and "the detector failed: RuntimeError: out of cheese" in failed[0][0].error


def test_records_one_per_detection_or_one_null_record_and_frames_keep_their_time():
    d = Detections([[1.234, 2, 3, 4], [5, 6, 7, 8]], [1, 0], [0.98766, 0.5], NAMES, size=(10, 10))
    frame = Sample("clip.mp4", PurePath("clip.mp4"), np.zeros((10, 10, 3), np.uint8), frame=7, time=0.28)
    records = detection_records(frame, d)
    assert [(r["label"], r["class_id"], r["score"], r["box"], r["frame"], r["time"]) for r in records] == [
        ("dog", 1, 0.9877, [1.2, 2.0, 3.0, 4.0], 7, 0.28), ("cat", 0, 0.5, [5.0, 6.0, 7.0, 8.0], 7, 0.28)]
    empty = detection_records(sample(), d.subset(d.scores > 1))
    assert empty == [{"path": "a.png", "label": None, "class_id": None, "score": None, "box": None, "error": None}]


def test_drawing_follows_the_image_size_and_never_touches_the_input():
    d = Detections([[100, 100, 300, 250]], [1], [0.9], NAMES, size=(400, 400))
    image = np.full((100, 100, 3), 40, np.uint8)  # a quarter-size copy of a 400 px image
    before = image.copy()
    drawn = draw_detections(image, d)
    assert np.array_equal(image, before) and drawn.shape == (100, 100, 3)
    colour = palette(len(NAMES), background=False)[1]
    assert (drawn[50, 25] == colour).all() and (drawn[50, 74] == colour).all()  # left and right edges, scaled
    assert (drawn[80:, 80:] == 40).all()  # far from the box: untouched
    thumb = draw_detections(np.zeros((24, 32), np.uint8), Detections([[0, 0, 16, 12]], [0], [0.5], NAMES))
    assert thumb.shape == (24, 32, 3) and thumb.any()
    masked = dataclasses.replace(d, masks=np.zeros((1, 400, 400), bool))
    masked.masks[0, 120:240, 120:280] = True
    shown = draw_detections(image, masked)
    assert not np.array_equal(shown[45, 50], drawn[45, 50])  # the mask's colour, scaled to the image


def test_masks_are_resized_to_the_original_image():
    [(_, d)] = run(oracle_model(masks=True), [sample(300, 400)], conf=0.0)
    assert d.masks.shape == (3, 300, 400) and d.masks.dtype == bool
    ys, xs = np.nonzero(d.masks[0])
    assert abs(xs.min() - 40) <= 3 and abs(xs.max() - 199) <= 3 and abs(ys.min() - 60) <= 3


def test_yolo_lines_read_back_as_the_same_boxes():
    d = Detections([[10.5, 20, 110, 90], [0, 0, 200, 100]], [1, 0], [0.9, 0.8], NAMES, size=(100, 200))
    for line, box, label in zip(yolo_lines(d).splitlines(), d.boxes, d.labels):
        parsed = _parse_yolo_line(line, 200, 100, len(NAMES))
        assert parsed[0] == label and np.allclose(parsed[1], box, atol=1e-3)


def test_class_names_and_ids():
    assert resolve_classes(["dog", "0"], NAMES) == [1, 0]
    with pytest.raises(UsageError, match="unknown class 'dgo'") as err:
        resolve_classes(["dgo"], NAMES)
    assert "dog" in err.value.hint
    with pytest.raises(UsageError, match="from 0 to 1"):
        resolve_classes(["5"], NAMES)


def test_the_preparer_does_the_models_own_resize():
    """The model's resize of a prepared image is a copy; what it sees is what it would have made
    of the original (bilinear, within a grey level)."""
    torch.manual_seed(0)
    loaded = load("tiny_fcos", task="detection")
    image = (np.random.default_rng(0).random((240, 300, 3)) * 255).astype(np.uint8)
    prepared = input_preparer(loaded)(image)
    assert prepared.shape == (160, 200, 3)
    transform = loaded.model.transform.eval()
    as_float = [torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in (image, prepared)]
    direct, via = (transform([x])[0].tensors[0] for x in as_float)
    assert direct.shape == via.shape
    assert float((direct - via).abs().mean()) * 0.5 < 1.5 / 255  # the transform normalised with std 0.5
    gray = input_preparer(dataclasses.replace(loaded, preprocessing=loaded.preprocessing.with_channels(1)))
    assert gray(image).shape == (160, 200, 1)


def test_imgsz_sets_the_detectors_own_size():
    tiny = set_input_size(load("tiny_fcos"), (240, 240))
    assert working_size(tiny.model) == (240, 480, None) and tiny.preprocessing.size == (240, 240)
    assert working_size(set_input_size(load("tiny_fcos"), (200, 320)).model) == (200, 320, None)
    ssd = set_input_size(load("ssdlite320_mobilenet_v3_large"), (256, 288))
    assert working_size(ssd.model)[2] == (256, 288)
    assert input_preparer(ssd)(np.zeros((100, 500, 3), np.uint8)).shape == (256, 288, 3)


def test_model_thresholds_apply_for_the_call_only():
    model = load("tiny_fcos").model
    before = (model.score_thresh, model.nms_thresh, model.detections_per_img)
    with model_thresholds(model, conf=0.001, iou=0.3, max_det=500):
        assert (model.score_thresh, model.nms_thresh, model.detections_per_img) == (0.001, 0.3, 500)
    assert (model.score_thresh, model.nms_thresh, model.detections_per_img) == before
    with model_thresholds(model, conf=0.5, iou=0.3, max_det=5):
        assert model.score_thresh == before[0] and model.detections_per_img == before[2]  # never stricter


def test_evaluation_matches_inputs_by_name_and_size_and_maps_classes_by_name():
    images = [ImageLabels(f"/data/val/{n}.png", f"{n}.png", 400, 300, [[40, 60, 200, 180]], [1], image_id=i + 1)
              for i, n in enumerate(("a", "b"))]
    truth = BoxDataset("/data/val", "coco", ["bird", "cat"], images, category_ids=[5, 9])
    evaluation = GroundTruthEvaluation(truth, NAMES)
    hit = Detections([[40, 60, 200, 180], [0, 0, 10, 10]], [0, 1], [0.9, 0.8], NAMES, size=(300, 400))
    assert evaluation.add(sample(name="elsewhere/a.png"), hit) is None
    assert "no ground truth" in evaluation.add(sample(name="c.png"), hit)
    assert "says 400x300" in evaluation.add(sample(200, 100, name="b.png"), hit)
    assert evaluation.dropped == 1  # the dog: the ground truth has no dogs
    summary, report, matrix = evaluation.summary(conf=0.25)
    assert summary["evaluated"] == 1 and summary["unmatched"] == 2 and report.map50 == pytest.approx(1.0)
    assert evaluation.results == [{"image_id": 1, "category_id": 9, "bbox": [40.0, 60.0, 160.0, 120.0],
                                   "score": pytest.approx(0.9)}]
    with pytest.raises(UsageError, match="share no name"):
        GroundTruthEvaluation(dataclasses.replace(truth, classes=["car", "bus"]), NAMES)


def test_a_cpu_batch_is_split_where_padding_would_waste_work():
    from cnntool.infer.detect import pad_groups

    assert pad_groups([(320, 427)] * 4) == [[0, 1, 2, 3]]  # frames of a video: one pass
    sizes = [(320, 427), (427, 320), (320, 430), (320, 640), (320, 320)]
    groups = pad_groups(sizes)
    assert sorted(sum(groups, [])) == list(range(5)) and [1] in groups  # the portrait image alone
    for group in groups:  # padding each group to its largest (multiple of 32) costs at most 25 %
        height = max(-(-sizes[i][0] // 32) * 32 for i in group)
        width = max(-(-sizes[i][1] // 32) * 32 for i in group)
        assert len(group) == 1 or len(group) * height * width <= 1.25 * sum(sizes[i][0] * sizes[i][1] for i in group)
    loaded = oracle_model()
    out = run(loaded, [sample(300, 400), sample(400, 300), sample(300, 400)], conf=0.0)
    assert len(loaded.model.seen) == 3 and all(d is not None for _, d in out)
    np.testing.assert_allclose(out[1][1].boxes[0], [30, 80, 150, 240], atol=1.0)  # each back in its own pixels
