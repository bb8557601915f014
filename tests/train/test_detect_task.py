"""The detection plug-in: COCO and YOLO data (splits, --val-split, bad labels named), options that
do nothing refused, augmentation and aspect-ratio batches, a run through the runner (checkpoint,
columns, figures, resume), learning from scratch, and fine-tuning a COCO detector offline."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from cnntool.data.detection import write_shapes_detection
from cnntool.data.transforms import AugmentConfig
from cnntool.errors import DatasetError, UsageError
from cnntool.models.checkpoint import load_checkpoint
from cnntool.train import tasks
from cnntool.train.config import TrainConfig
from cnntool.train.runner import epoch_fields, train
from cnntool.train.tasks.detect import DetectTask, detection_augment, imgsz_arch_kwargs, load_detection_data

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(autouse=True)
def plugin(monkeypatch):
    """``train --task detect`` as cnntool.train.tasks.PLUGINS lists it."""
    monkeypatch.setitem(tasks.PLUGINS, "detection", "cnntool.train.tasks.detect:DetectTask")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """COCO train/val splits of 64 px scenes: 16 training, 6 validation images."""
    return write_shapes_detection(tmp_path_factory.mktemp("coco"), n_train=16, n_val=6, size=64, seed=1, ext=".png")


def config(data, out, **changes):
    cfg = TrainConfig(data=str(data), task="detect", out=str(out), epochs=2, batch_size=8, device="cpu", threads=1,
                      workers=0, arch_kwargs={"min_size": 64, "max_size": 96})
    return dataclasses.replace(cfg, **changes)


def test_coco_splits_load_with_the_background_class_and_bad_labels_named(shapes, tmp_path):
    data = load_detection_data(str(shapes))
    assert data.classes == CLASSES and data.model_classes == ["__background__", *CLASSES]
    assert data.sizes == {"train": 16, "val": 6} and data.split == "folders" and data.cached
    image, target = data.train[0]
    assert image.dtype == torch.uint8 and int(target["labels"].min()) >= 1  # model labels: class + 1
    images, targets = data.collate([data.val[0], data.val[1]])
    assert len(images) == len(targets) == 2
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(shapes / "train", broken)
    doc = json.loads((broken / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [5, 5, 0, 10]
    (broken / "annotations.json").write_text(json.dumps(doc))
    skipped = load_detection_data(str(broken), val_split=0.25).skipped
    assert any("annotation 1" in reason and "degenerate box" in reason for _, reason in skipped)


def test_a_yolo_folder_splits_off_validation_images(tmp_path):
    root = write_shapes_detection(tmp_path / "yolo", n_train=10, n_val=0, size=48, seed=2, format="yolo")
    data = load_detection_data(str(root / "train"), val_split=0.2, seed=0)
    assert data.sizes == {"train": 8, "val": 2} and data.split == "val_split=0.2" and data.classes == CLASSES
    (tmp_path / "only_val").mkdir()
    os.rename(root / "train", tmp_path / "only_val" / "val")
    with pytest.raises(DatasetError, match="val/ but no train/"):
        load_detection_data(str(tmp_path / "only_val"))


def test_options_that_do_nothing_for_detection_are_refused(shapes, tmp_path):
    for changes, flag in (({"aug": AugmentConfig(rotate=3.0)}, "--rotate"),
                          ({"aug": AugmentConfig(shear=2.0)}, "--shear"), ({"aug": AugmentConfig(vflip=True)}, "--vflip"),
                          ({"mixup": 0.2}, "--mixup"), ({"label_smoothing": 0.0}, "--label-smoothing"),
                          ({"verify": False}, "--verify")):
        with pytest.raises(UsageError, match=f"{flag} does nothing when training detection"):
            train(config(shapes, tmp_path / "run", **changes))
    with pytest.raises(UsageError, match="--crop-ratio does nothing without --crop-scale"):
        train(config(shapes, tmp_path / "run", aug=AugmentConfig(crop_ratio=(0.5, 2.0))))


def test_augmentation_maps_onto_box_aware_transforms():
    from torchvision.transforms import v2

    default = detection_augment(TrainConfig())
    assert default.hflip == 0.5  # the detection default
    assert default.zoom_out == 0 and default.crop == 0  # zoom and crops only when asked for
    main, crop = default.transforms()
    assert [type(t) for t in main.transforms] == [v2.RandomHorizontalFlip] and crop is None
    jitter = detection_augment(TrainConfig(aug=AugmentConfig(brightness=0.3, contrast=0.3, saturation=0.3)))
    assert jitter.color == pytest.approx(0.3) and jitter.hflip == 0.5
    assert detection_augment(TrainConfig(augment=False)) is None
    assert detection_augment(TrainConfig(aug=AugmentConfig(zoom=0.0))).zoom_out == 0  # --zoom 0: off
    # --zoom 0.5: half the images on a canvas up to 1 / (1 - 0.5) = 2x; --crop-scale/--crop-ratio: the IoU crop
    aug = detection_augment(TrainConfig(aug=AugmentConfig(zoom=0.5, crop_scale=(0.25, 0.81), crop_ratio=(0.8, 1.25))))
    assert (aug.zoom_out, aug.zoom_out_max, aug.crop) == (0.5, pytest.approx(2.0), 0.5)
    assert aug.crop_scale == (0.25, 0.81) and aug.crop_ratio == (0.8, 1.25) and aug.hflip == 0.5
    main, crop = aug.transforms()
    (zoom,) = [t for t in main.transforms if isinstance(t, v2.RandomZoomOut)]
    assert zoom.p == 0.5 and zoom.side_range == pytest.approx((1.0, 2.0))
    (iou,) = crop.transforms
    assert crop.p == 0.5 and isinstance(iou, v2.RandomIoUCrop)
    assert (iou.min_scale, iou.max_scale) == pytest.approx((0.5, 0.9))  # sides: square roots of the area
    assert (iou.min_aspect_ratio, iou.max_aspect_ratio) == (0.8, 1.25)
    cropped = detection_augment(TrainConfig(aug=AugmentConfig(crop_scale=(0.3, 1.0))))
    assert cropped.zoom_out == 0 and cropped.crop_ratio == pytest.approx((3 / 4, 4 / 3))  # --crop-ratio's default



def test_zoom_typed_as_0_1_zooms_out_and_the_default_is_recorded_as_off(shapes, tmp_path, monkeypatch):
    """--zoom 0.1 is not classification's default for detection: typed, it zooms out (up to
    1 / 0.9 of the size); left out, the run records the detection recipe's zoom, 0."""
    from cnntool.cli.train import _config
    from cnntool.train.tasks import detect

    typed = _config({"data": str(shapes), "task": "detect", "zoom": 0.1}, None)
    assert typed.aug.zoom == 0.1 and _config({"data": str(shapes), "task": "detect"}, None).aug.zoom is None
    aug = detection_augment(typed)
    assert (aug.zoom_out, aug.zoom_out_max) == (0.5, pytest.approx(1 / 0.9))
    assert detection_augment(TrainConfig()).zoom_out == 0
    assert typed.resolve(train_size=16, defaults=DetectTask.recipe).aug.zoom == 0.1
    assert TrainConfig().resolve(train_size=16, defaults=DetectTask.recipe).aug.zoom == 0.0

    augments = []
    original = detect.load_detection_data

    def spy(*args, **kwargs):
        augments.append(kwargs["augment"])
        return original(*args, **kwargs)

    monkeypatch.setattr(detect, "load_detection_data", spy)
    for name, zoom in (("default", None), ("zoom", 0.1)):
        train(config(shapes, tmp_path / name, epochs=1, aug=AugmentConfig(zoom=zoom)))
    assert [a.zoom_out for a in augments] == [0.0, 0.5]  # the training data got the zoom-out
    recorded = [json.loads((tmp_path / name / "config.json").read_text())["aug"]["zoom"] for name in ("default", "zoom")]
    assert recorded == [0.0, 0.1]

def test_imgsz_becomes_the_detectors_builder_sizes():
    """--imgsz maps as `cnntool detect --imgsz` does (models.detector_size): N -> shorter side N,
    longer at most N x the model's own ratio (tiny_fcos 160/320); HxW -> min and max."""
    assert imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos", imgsz=(96, 96))) == {"min_size": 96, "max_size": 192}
    assert imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos", imgsz=(128, 96))) == {"min_size": 96, "max_size": 128}
    assert imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos")) == {}
    same = TrainConfig(arch="tiny_fcos", imgsz=(96, 96),
                       arch_kwargs={"min_size": 96, "max_size": 192, "widths": [8, 8, 16, 16, 32]})
    assert imgsz_arch_kwargs(same) == {"min_size": 96, "max_size": 192}  # a resumed run's own sizes agree
    with pytest.raises(UsageError, match="--imgsz 96x96 means .* but --arch-arg gives min_size=64"):
        imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos", imgsz=(96, 96), arch_kwargs={"min_size": 64}))
    # fine-tuning resizes the loaded source instead (train/setup.py; see the fine-tuning test)
    assert imgsz_arch_kwargs(TrainConfig(init_from="runs/x/best.pt", imgsz=(96, 96))) == {}
    with pytest.raises(UsageError, match="ssdlite320_mobilenet_v3_large trains at its fixed input size"):
        imgsz_arch_kwargs(TrainConfig(arch="ssdlite320_mobilenet_v3_large", imgsz=(96, 96)))


@pytest.mark.slow
def test_train_imgsz_is_recorded_and_used_by_the_loaded_detector(tmp_path):
    """`train --task detect --imgsz 96` (with zoom and crops): the checkpoint records 96 px
    (preprocessing and builder sizes), the model loaded from the run resizes to it, and
    `cnntool detect -m RUN` runs on it."""
    from typer.testing import CliRunner

    from cnntool.cli.main import app
    from cnntool.models.checkpoint import checkpoint_preprocessing
    from cnntool.models.detector_size import working_size
    from cnntool.models.loading import load

    data = write_shapes_detection(tmp_path / "data", n_train=4, n_val=2, size=64, seed=5, ext=".png")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(data), "--task", "detect", "--imgsz", "96", "--epochs", "1",
                                      "--batch-size", "4", "-o", str(run), "--device", "cpu", "--workers", "0",
                                      "--threads", "1", "--format", "jsonl", "--zoom", "0.5", "--crop-scale", "0.3,1"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((run / "config.json").read_text())["aug"]
    assert (recipe["zoom"], recipe["crop_scale"]) == (0.5, [0.3, 1.0])  # accepted for detection, and recorded
    best = load_checkpoint(run / "best.pt")
    assert checkpoint_preprocessing(best).input_size == (3, 96, 96)
    assert best["arch_kwargs"] == {"min_size": 96, "max_size": 192}
    assert json.loads((run / "config.json").read_text())["imgsz"] == [96, 96]
    loaded = load(str(run), task="detection")
    assert working_size(loaded.model) == (96, 192, None) and loaded.preprocessing.input_size == (3, 96, 96)
    seen = []
    loaded.model.backbone.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        loaded.model([torch.rand(3, 64, 64)])
    assert seen[0][-2:] == (96, 96)  # a 64 px image is seen at 96 px
    detected = CliRunner().invoke(app, ["detect", str(data / "val" / "images"), "-m", str(run), "--format", "jsonl",
                                        "--device", "cpu", "-j", "1"])
    assert detected.exit_code == 0, detected.output
    assert {json.loads(line)["path"] for line in detected.stdout.splitlines() if line.strip()} == {
        str(path) for path in sorted((data / "val" / "images").iterdir())}


def test_training_batches_group_aspect_ratios_and_reshuffle_each_epoch(tmp_path):
    from cnntool.data.boxes import BoxDataset, ImageLabels
    from cnntool.data.detection import DetectionDataset
    from cnntool.data.writers import write_image

    images = []
    for i in range(8):
        h, w = (32, 64) if i % 2 else (64, 32)
        write_image(tmp_path / f"{i}.png", np.zeros((h, w, 3), np.uint8))
        images.append(ImageLabels(str(tmp_path / f"{i}.png"), f"{i}.png", w, h, [], [], image_id=i + 1))
    dataset = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["a"], images), workers=1)
    cfg = TrainConfig(batch_size=2, seed=0)
    sampler = DetectTask().batch_sampler(dataset, cfg)
    first = list(sampler)
    assert len(first) == 4 and all(len({i % 2 for i in batch}) == 1 for batch in first)  # one shape per batch
    dataset.set_epoch(1)
    assert list(sampler) != first and sorted(sum(list(sampler), [])) == list(range(8))


@pytest.mark.slow
def test_a_detection_run_writes_its_checkpoint_columns_and_figures_and_resumes(shapes, tmp_path):
    summary = train(config(shapes, tmp_path / "run"))
    run = tmp_path / "run"
    assert summary["task"] == "detection" and summary["arch"] == "tiny_fcos" and summary["best_metric"] == "val_map50"
    assert summary["best_val_map50"] is not None and summary["train_images"] == 16
    best = load_checkpoint(run / "best.pt")
    assert best["task"] == "detection" and best["classes"] == ["__background__", *CLASSES]
    assert best["arch_kwargs"] == {"min_size": 64, "max_size": 96}
    assert (run / "metrics.csv").read_text().splitlines()[0].split(",") == list(epoch_fields(DetectTask()))
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"train_loss_classification", "train_loss_bbox_regression", "val_map50", "val_map"} <= set(record)
    config_json = json.loads((run / "config.json").read_text())
    assert (config_json["optimizer"], config_json["lr"], config_json["grad_clip"]) == ("adamw", 3e-3, 10.0)
    for name in ("pr_curve.png", "confusion.png", "curves.png"):
        assert (run / name).stat().st_size > 0, name

    def stop_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(shapes, tmp_path / "b"), on_epoch=stop_after_one)
    (tmp_path / "b" / "pr_curve.png").unlink(missing_ok=True)
    resumed = train(TrainConfig(), resume=str(tmp_path / "b"))
    assert resumed["best_val_map50"] == pytest.approx(summary["best_val_map50"])
    assert (tmp_path / "b" / "pr_curve.png").stat().st_size > 0  # drawn from the restored best result


def write_big_shapes(root, n: int, size: int, seed: int) -> None:
    """COCO ``root/images`` + ``root/annotations.json`` of 1-2 large shapes per image."""
    from cnntool.data.boxes import BoxDataset, ImageLabels, write_coco
    from cnntool.data.synthetic import SHAPE_CLASSES, shapes_scene
    from cnntool.data.writers import write_image

    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        scene = shapes_scene(rng, size=size, max_objects=2, min_side=0.25, max_side=0.4)
        write_image(root / "images" / f"{i}.png", scene.image)
        images.append(ImageLabels(str(root / "images" / f"{i}.png"), f"{i}.png", size, size, scene.boxes,
                                  scene.labels, i + 1))
    write_coco(BoxDataset(str(root), "coco", list(SHAPE_CLASSES), images), root, copy_images=False)


@pytest.mark.slow
def test_tiny_fcos_learns_shapes_from_scratch_through_the_runner(tmp_path):
    """A small, quick run with the task's recipe (about 20 s on one busy core): held-out mAP@0.5
    clearly above chance (an untrained detector scores about 0) and rising."""
    write_big_shapes(tmp_path / "data" / "train", 96, 64, seed=0)
    write_big_shapes(tmp_path / "data" / "val", 24, 64, seed=1)
    summary = train(config(tmp_path / "data", tmp_path / "run", epochs=10, batch_size=8,
                           arch_kwargs={"min_size": 64, "max_size": 64}))
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["best_val_map50"] > 0.3 and history[-1]["val_map50"] > 3 * history[0]["val_map50"], history


@pytest.fixture
def torch_home(tmp_path, monkeypatch, no_network):
    """An empty torch cache with the network blocked."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.mark.slow
def test_finetuning_a_coco_detector_offline_replaces_its_predictor(tmp_path, torch_home):
    from torchvision.models import detection

    from cnntool.models.detector_size import working_size
    from cnntool.models.detectors import weights_cache_path
    from cnntool.models.loading import load

    torch.manual_seed(0)
    coco = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    path = weights_cache_path("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")
    os.makedirs(os.path.dirname(path))
    torch.save(coco.state_dict(), path)  # stands in for the downloaded COCO weights
    shapes = write_shapes_detection(tmp_path / "data", n_train=6, n_val=2, size=64, seed=4, ext=".png")
    cfg = config(shapes, tmp_path / "ft", init_from="fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1", epochs=1,
                 batch_size=3, arch_kwargs={}, imgsz=(128, 128))
    summary = train(cfg)
    assert summary["finetuned_from"] == "fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1"
    best = load_checkpoint(tmp_path / "ft" / "best.pt")
    assert best["classes"] == ["__background__", *CLASSES]
    assert best["state_dict"]["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4
    frozen_bn = "backbone.body.0.1.running_mean"  # a pretrained backbone's batch norm is frozen: as cached
    assert torch.equal(best["state_dict"][frozen_bn], coco.state_dict()[frozen_bn])
    # --imgsz 128 on a 320/640 source: shorter side 128, longer at most 256, recorded and rebuilt so
    assert best["arch_kwargs"] == {"min_size": 128, "max_size": 256}
    loaded = load(str(tmp_path / "ft"), task="detection")
    assert working_size(loaded.model) == (128, 256, None) and loaded.preprocessing.size == (128, 128)
    with torch.no_grad():
        out = loaded.model([torch.rand(3, 64, 64)])
    assert out[0]["boxes"].shape[1] == 4 and (out[0]["labels"] <= 3).all()
