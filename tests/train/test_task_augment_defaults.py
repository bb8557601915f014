"""Augmentation options whose default depends on the task (``--zoom`` and the other geometric
distortions, ``--hflip``): None until
:meth:`TrainConfig.resolve` fills the task recipe's value, a number in every saved config, and
saved configs (with zoom 0.1, as before zoom's default became None) resume unchanged."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cnntool.data.transforms import AugmentConfig
from cnntool.errors import UsageError
from cnntool.train.config import TrainConfig
from cnntool.train.tasks.classify import ClassifyTask
from cnntool.train.tasks.detect import DetectTask
from cnntool.train.tasks.segment import SegmentTask
from cnntool.train.tasks.video import VideoTask


@pytest.mark.parametrize("task, zoom, hflip", [(ClassifyTask, 0.1, False), (VideoTask, 0.1, False),
                                               (SegmentTask, 0.0, True), (DetectTask, 0.0, True)])
def test_every_task_resolves_zoom_to_a_number(task, zoom, hflip):
    assert AugmentConfig().zoom is None and TrainConfig().validate().aug.zoom is None
    resolved = TrainConfig().resolve(train_size=100, defaults=task.recipe)
    assert (resolved.aug.zoom, resolved.aug.hflip) == (zoom, hflip)
    assert json.loads(json.dumps(resolved.to_dict()))["aug"]["zoom"] == zoom
    given = TrainConfig(aug=AugmentConfig(zoom=0.25)).resolve(train_size=100, defaults=task.recipe)
    assert given.aug.zoom == 0.25  # a typed value wins over the recipe


def test_zoom_is_validated_when_given():
    with pytest.raises(UsageError, match="--zoom must be below 1"):
        TrainConfig(aug=AugmentConfig(zoom=1.0)).validate()
    with pytest.raises(UsageError, match="--zoom must be a number >= 0"):
        TrainConfig(aug=AugmentConfig(zoom=-0.1)).validate()


def test_segmentation_takes_a_typed_warp_and_records_it_off_by_default():
    task = SegmentTask()
    TrainConfig(aug=AugmentConfig(zoom=0.3, rotate=10.0, shift=0.1, shear=5.0)).check_task(task)  # taken
    saved = TrainConfig().resolve(train_size=100, defaults=task.recipe).to_dict()
    assert {k: saved["aug"][k] for k in ("rotate", "shift", "zoom", "shear", "hflip")} == {
        "rotate": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, "hflip": True}
    TrainConfig.from_dict(saved).resumed({"epochs": 10}).check_task(task)  # what --resume does


OLD_AUG = {"rotate": 10.0, "shift": 0.1, "zoom": 0.1, "shear": 5.0, "crop_scale": None,
           "crop_ratio": [0.75, 1.3333333333333333], "hflip": False, "vflip": False, "brightness": 0.0,
           "contrast": 0.0, "saturation": 0.0, "policy": "none", "erasing": 0.0}


@pytest.mark.parametrize("task", [ClassifyTask, SegmentTask, VideoTask, DetectTask])
def test_a_config_saved_before_the_per_task_defaults_resumes_as_it_trained(task):
    """config.json / checkpoints written when the geometric defaults were the classification ones
    for every task (no ``aug_version``): each task resumes with what it trained with."""
    saved = TrainConfig(data="d", arch="a", epochs=3, batch_size=16).resolve(train_size=100,
                                                                             defaults=task.recipe).to_dict()
    del saved["aug_version"]
    saved["aug"] = {**OLD_AUG, "hflip": task is DetectTask}  # detection's recipe filled hflip then too
    cfg = TrainConfig.from_dict(json.loads(json.dumps(saved))).resumed({"epochs": 4, "device": "cpu"})
    cfg.check_task(task())
    again = cfg.resolve(train_size=100, defaults=task.recipe).to_dict()
    geometry = {k: again["aug"][k] for k in ("rotate", "shift", "zoom", "shear", "hflip")}
    if task is SegmentTask:  # it always flipped and never warped
        assert geometry == {"rotate": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, "hflip": True}
    elif task is DetectTask:  # its zoom 0.1 meant off
        assert geometry == {"rotate": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, "hflip": True}
    else:
        assert again["aug"] == OLD_AUG
    assert again["epochs"] == 4 and again["aug_version"] == 2


def test_a_new_config_keeps_what_was_given_when_resumed():
    saved = TrainConfig(aug=AugmentConfig(rotate=10.0, zoom=0.1)).resolve(
        train_size=100, defaults=SegmentTask.recipe).to_dict()
    cfg = TrainConfig.from_dict(json.loads(json.dumps(saved)))
    assert (cfg.aug.rotate, cfg.aug.zoom, cfg.aug.shift) == (10.0, 0.1, 0.0)  # typed, then the recipe's


def test_detection_refuses_a_typed_rotation_even_at_the_classification_default():
    with pytest.raises(UsageError, match="--rotate does nothing when training detection"):
        TrainConfig(aug=AugmentConfig(rotate=10.0)).check_task(DetectTask())
    saved = TrainConfig().resolve(train_size=100, defaults=DetectTask.recipe).to_dict()
    TrainConfig.from_dict(saved).resumed({"epochs": 10}).check_task(DetectTask())  # its own saved config


def test_a_default_classification_recipe_is_unchanged():
    """The resolved classification config is what it was when zoom defaulted to 0.1."""
    cfg = TrainConfig(data="d", arch="lenet5").resolve(train_size=48, defaults=ClassifyTask.recipe)
    assert cfg.to_dict()["aug"] == OLD_AUG
    assert list(cfg.to_dict()["aug"]) == list(OLD_AUG)  # the same keys in the same order


@pytest.mark.slow
def test_a_segmentation_run_resumes_with_its_saved_recipe_and_takes_a_typed_zoom(tmp_path):
    """Through the runner: a U-Net run (config.json: warp off, flips on) stopped after one epoch
    resumes; a run given --zoom records it (about 3 s here)."""
    from cnntool.data.masks import write_shapes_segmentation
    from cnntool.train.runner import train

    data = write_shapes_segmentation(tmp_path / "data", n_train=8, n_val=4, size=32, seed=5)
    cfg = TrainConfig(data=str(data), task="segment", out=str(tmp_path / "run"), imgsz=(32, 32), epochs=2,
                      batch_size=4, arch_kwargs={"depth": 2, "width": 8}, device="cpu", threads=1, workers=0)

    def stop_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=stop_after_one)
    aug = json.loads((tmp_path / "run" / "config.json").read_text())["aug"]
    assert (aug["zoom"], aug["rotate"], aug["hflip"]) == (0.0, 0.0, True)
    resumed = train(TrainConfig(), resume=str(tmp_path / "run"))
    assert resumed["epochs"] == 2
    zoomed = dataclasses.replace(cfg, out=str(tmp_path / "zoomed"), epochs=1, aug=AugmentConfig(zoom=0.2))
    train(zoomed)
    assert json.loads((tmp_path / "zoomed" / "config.json").read_text())["aug"]["zoom"] == 0.2
