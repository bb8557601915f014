"""The segmentation stage: masks back on the original pixels, classical regions, instance masks,
records, pictures, and evaluation against true masks (every bad-mask case named)."""

from __future__ import annotations

from pathlib import PurePath
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.data.masks import write_index_mask
from cnntool.data.pixels import Sample
from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import InputError, UsageError
from cnntool.infer.segment import (MaskEvaluation, Segmentation, class_fractions, classical_samples, draw_segmentation,
                                   instance_records, planned_files, segment_samples, segmentation_from_detections,
                                   segmentation_record)

CPU = torch.device("cpu")


class LeftRight(nn.Module):
    """Class 1 on the left half of its input, class 2 on the right (class 0 nowhere)."""

    def __init__(self, broken: bool = False):
        super().__init__()
        self.broken = broken
        self.calls: list[tuple] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        n, _, h, w = x.shape
        logits = torch.zeros(n, 3, h, w)
        logits[:, 1, :, : w // 2] = 1.0
        logits[:, 2, :, w // 2:] = 1.0
        if self.broken:
            logits[:] = float("nan")
        return {"out": logits}


def loaded(model, preprocessing, classes=("background", "left", "right")):
    return SimpleNamespace(model=model, classes=list(classes), preprocessing=preprocessing)


def sample(name, image, **kw):
    return Sample(name, PurePath(name), image, **kw)


def test_masks_are_mapped_back_to_each_original_image():
    pre = Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3, resize_mode="shorter", resize_size=16)
    model = LeftRight()
    images = [np.zeros((40, 100, 3), np.uint8), np.zeros((64, 32, 3), np.uint8), np.zeros((40, 100, 3), np.uint8)]
    out = list(segment_samples(loaded(model, pre), [sample(f"{i}", im) for i, im in enumerate(images)], device=CPU,
                               batch_size=3))
    assert [seg.mask.shape for _, seg in out] == [(40, 100), (64, 32), (40, 100)]
    assert sorted(model.calls) == [(1, 3, 16, 40), (1, 3, 16, 40), (1, 3, 32, 16)]  # a CPU: one image a pass
    mask = out[0][1].mask
    assert (mask[:, :50] == 1).all() and (mask[:, 50:] == 2).all()
    assert out[0][1].fractions == {"background": 0.0, "left": 0.5, "right": 0.5}


def test_a_downscaled_drawing_copy_does_not_change_the_mask_size():
    pre = Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3)
    s = sample("big", np.zeros((30, 40, 3), np.uint8), size=(300, 400), scale=0.1)
    (_, seg), = segment_samples(loaded(LeftRight(), pre), [s], device=CPU)
    assert seg.mask.shape == (300, 400) and seg.mask.dtype == np.uint8


def test_bad_samples_and_broken_outputs_become_errors():
    pre = Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3)
    samples = [Sample("gone.png", PurePath("gone.png"), error="cannot read"), sample("a", np.zeros((8, 8, 3), np.uint8))]
    out = list(segment_samples(loaded(LeftRight(broken=True), pre), samples, device=CPU))
    assert [(s.error, seg) for s, seg in out][0] == ("cannot read", None)
    assert out[1][1] is None and "not a number" in out[1][0].error
    assert segmentation_record(*out[1])["error"] == out[1][0].error


def test_classical_regions_are_instances_in_original_pixels():
    image = np.zeros((60, 80), np.uint8)
    image[10:30, 10:30] = 255
    image[40:50, 50:70] = 255
    (_, whole), = classical_samples([sample("a", image)], method="otsu", background_sigma=None)
    small = image[::2, ::2]
    (_, halved), = classical_samples([sample("a", small, size=(60, 80), scale=0.5)], method="otsu",
                                     background_sigma=None)
    assert [i["area"] for i in whole.instances] == [400, 200]
    assert [i["box"] for i in whole.instances] == [[10, 10, 30, 30], [50, 40, 70, 50]]
    assert halved.mask.shape == (60, 80) and halved.instance_mask.shape == (60, 80)
    assert [i["box"] for i in halved.instances] == [[10, 10, 30, 30], [50, 40, 70, 50]]
    assert [i["area"] for i in halved.instances] == [400, 200]
    assert whole.instances[0] == {"label": "foreground", "class_id": 1, "score": None, "box": [10, 10, 30, 30],
                                  "area": 400}


def test_classical_options_are_checked_before_any_image():
    with pytest.raises(UsageError, match="takes no option 'k'"):
        classical_samples([], method="otsu", k=3)
    (s, seg), = classical_samples([sample("tiny", np.zeros((1, 5), np.uint8))], method="otsu")
    assert seg is None and "too small" in s.error


def test_instance_masks_best_on_top_and_one_record_per_object():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, 2:6, 2:6] = True          # best: a dog
    masks[1, 4:8, 4:8] = True          # overlaps the dog: a cat below it
    masks[2, 0:1, 0:1] = True
    d = SimpleNamespace(boxes=np.array([[2, 2, 6, 6], [4, 4, 8, 8], [0, 0, 1, 1]], float), labels=np.array([1, 0, 0]),
                        scores=np.array([0.9, 0.8, 0.3]), names=["cat", "dog"], masks=masks, size=(10, 10))
    seg = segmentation_from_detections(d)
    assert seg.classes == ["background", "cat", "dog"]
    assert seg.mask[5, 5] == 2 and seg.instance_mask[5, 5] == 1      # the dog on top
    assert seg.mask[7, 7] == 1 and seg.instance_mask[7, 7] == 2
    assert seg.fractions["dog"] == 0.16 and seg.fractions["cat"] == pytest.approx(0.13)
    records = instance_records(sample("a.png", np.zeros((10, 10, 3), np.uint8)), seg)
    assert [(r["object"], r["label"], r["class_id"], r["score"], r["area"]) for r in records] == [
        (1, "dog", 2, 0.9, 16), (2, "cat", 1, 0.8, 16), (3, "cat", 1, 0.3, 1)]
    assert segmentation_record(sample("a.png", None, size=(10, 10)), seg)["instances"] == 3


def test_record_of_a_video_frame_and_its_fractions():
    seg = Segmentation(np.array([[0, 2], [2, 255]], np.uint8), ["bg", "a", "b"],
                       class_fractions(np.array([[0, 2], [2, 255]], np.uint8), ["bg", "a", "b"]))
    frame = Sample("clip.mp4", PurePath("clip.mp4"), np.zeros((2, 2, 3), np.uint8), frame=7, time=0.28)
    record = segmentation_record(frame, seg, mask_path="m.png")
    assert record == {"path": "clip.mp4", "frame": 7, "time": 0.28, "mask": "m.png", "overlay": None,
                      "fractions": {"bg": 0.25, "b": 0.5}, "instances": None, "error": None}


def test_drawing_paints_classes_keeps_the_input_and_adds_a_legend():
    image = np.full((200, 300, 3), 128, np.uint8)
    mask = np.zeros((200, 300), np.uint8)
    mask[50:150, 100:200] = 1
    labels = (mask > 0).astype(np.int32)
    seg = Segmentation(mask, ["background", "coin"], class_fractions(mask, ["background", "coin"]),
                       [{"label": "coin", "class_id": 1, "score": None, "box": [100, 50, 200, 150], "area": 10000}],
                       labels)
    before = image.copy()
    out = draw_segmentation(image, seg)
    assert np.array_equal(image, before)
    assert out.shape[0] == 200
    assert not np.array_equal(out[100, 150], image[100, 150])          # the class is painted
    assert np.array_equal(out[20, 20], image[20, 20])                  # the background is not
    assert (out[50:150, 100] == 255).all()                             # the object's outline
    legend = out[:, 300:] if out.shape[1] > 300 else out[:40, 200:]
    assert (legend == 255).any()                                       # legend text
    small = draw_segmentation(image[::4, ::4], seg)                    # a downscaled drawing copy
    assert small.shape[0] == 50


def test_output_files_mirror_the_inputs():
    assert [str(p) for p in planned_files(PurePath("sub/x.jpeg"), "o")] == ["o/masks/sub/x.png",
                                                                            "o/overlays/sub/x.jpeg"]


# --- evaluation ---------------------------------------------------------------------------------------

def seg_of(mask, classes=("bg", "a", "b")):
    mask = np.asarray(mask, np.uint8)
    return Segmentation(mask, list(classes), class_fractions(mask, classes))


def test_miou_is_the_confusion_matrix_mean_and_255_is_not_counted(tmp_path):
    truth_1 = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred_1 = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    truth_2 = np.array([[2, 2], [255, 255]])
    pred_2 = np.array([[2, 0], [1, 1]])
    write_index_mask(tmp_path / "one.png", truth_1.astype(np.uint8))
    write_index_mask(tmp_path / "two.png", truth_2.astype(np.uint8))
    ev = MaskEvaluation(tmp_path, ["bg", "a", "b"])
    ev.add(Sample("in/one.jpg", PurePath("one.jpg"), size=(2, 4)), seg_of(pred_1))
    ev.add(Sample("in/two.jpg", PurePath("two.jpg"), size=(2, 2)), seg_of(pred_2))
    # by hand, rows true, columns predicted, the 255 pixels left out
    cm = np.array([[2, 1, 0],
                   [0, 2, 0],
                   [2, 0, 2]])
    assert ev.matrix.tolist() == cm.tolist()
    iou = [2 / (3 + 4 - 2), 2 / (2 + 3 - 2), 2 / (4 + 2 - 2)]  # TP / (row + column - TP)
    summary = ev.summary()
    assert summary["miou"] == pytest.approx(np.mean(iou))
    assert [r["iou"] for r in summary["per_class"]] == pytest.approx(iou)
    assert summary["pixel_accuracy"] == pytest.approx(6 / 9)
    assert [r["dice"] for r in summary["per_class"]] == pytest.approx([2 * i / (1 + i) for i in iou])


def test_masks_are_found_by_relative_path_then_by_stem(tmp_path):
    (tmp_path / "masks" / "sub").mkdir(parents=True)
    (tmp_path / "images").mkdir()
    write_index_mask(tmp_path / "masks" / "sub" / "x.png", np.zeros((2, 2), np.uint8))
    write_index_mask(tmp_path / "masks" / "y.png", np.zeros((2, 2), np.uint8))
    ev = MaskEvaluation(tmp_path, ["bg"])
    assert ev.truth_path(Sample("i/sub/x.jpg", PurePath("sub/x.jpg"))) == tmp_path / "masks" / "sub" / "x.png"
    assert ev.truth_path(Sample("elsewhere/y.jpg", PurePath("deep/y.jpg"))) == tmp_path / "masks" / "y.png"


@pytest.mark.parametrize("case", ["missing", "size", "class", "rgb", "jpeg", "garbage"])
def test_every_bad_mask_names_its_file(tmp_path, case):
    import cv2

    name = {"jpeg": "a.jpg", "missing": "other.png"}.get(case, "a.png")
    path = tmp_path / name
    if case == "size":
        write_index_mask(path, np.zeros((3, 3), np.uint8))
    elif case == "class":
        write_index_mask(path, np.array([[0, 1], [7, 255]], np.uint8))
    elif case in ("rgb", "jpeg"):
        cv2.imwrite(str(path), np.zeros((2, 2, 3), np.uint8))
    elif case == "garbage":
        path.write_bytes(b"not a png at all")
    else:
        write_index_mask(path, np.zeros((2, 2), np.uint8))
    ev = MaskEvaluation(tmp_path, ["bg", "fg"]) if case != "jpeg" else None
    if ev is None:  # a folder holding only a JPEG has no usable mask at all
        with pytest.raises(UsageError, match="no masks found"):
            MaskEvaluation(tmp_path, ["bg", "fg"])
        write_index_mask(tmp_path / "b.png", np.zeros((2, 2), np.uint8))
        ev = MaskEvaluation(tmp_path, ["bg", "fg"])
        with pytest.raises(InputError, match="JPG masks are lossy"):
            from cnntool.data.masks import read_mask
            read_mask(path)
        return
    with pytest.raises(InputError) as caught:
        ev.add(Sample("img/a.png", PurePath("a.png"), size=(2, 2)), seg_of([[0, 1], [1, 0]], ("bg", "fg")))
    message = str(caught.value)
    expected = {"missing": "no mask for img/a.png", "size": "size", "class": "7", "rgb": "channels",
                "garbage": "cannot read mask"}[case]
    assert expected in message and (str(tmp_path) in message)
    assert ev.errors == 1 and ev.summary()["evaluated"] == 0


def test_instance_evaluation_scores_each_ground_truth_image_once(tmp_path):
    """Two inputs (a/x.jpg, b/x.jpg) matching the same image of the truth: the second is left
    out with detect's reason, and the COCO results hold the first only."""
    from cnntool.data.boxes import load_boxes
    from cnntool.data.detection import write_shapes_detection
    from cnntool.infer.detect import Detections
    from cnntool.infer.segment import InstanceEvaluation
    from cnntool.metrics.segmentation import rle_to_masks

    truth = load_boxes(write_shapes_detection(tmp_path, n_train=1, n_val=0, size=32, seed=0) / "train",
                       check_files=False)
    image = truth.images[0]
    names = list(truth.classes)
    found = Detections(image.boxes, image.labels, np.linspace(0.9, 0.5, len(image.labels)), names,
                       masks=rle_to_masks(image.segmentation), size=(32, 32))
    ev = InstanceEvaluation(truth, names)
    first, second = (Sample(f"{d}/{image.file_name}", PurePath(image.file_name), size=(32, 32)) for d in "ab")
    assert ev.add(first, found) is None
    reason = ev.add(second, found)
    assert reason == f"its ground truth ({image.file_name}) was already matched by a/{image.file_name}"
    assert ev.unmatched == [f"b/{image.file_name}: {reason}"]
    summary = ev.summary()
    assert summary["evaluated"] == 1 and summary["unmatched"] == 1 and summary["map"] == pytest.approx(1.0)
    assert len(ev.results) == len(image.labels) and {r["image_id"] for r in ev.results} == {image.image_id}
    assert sorted(r["category_id"] for r in ev.results) == sorted(truth.category_ids[c] for c in image.labels)
