"""The segmentation plug-in: data (classes, bad pairs, splits), the loss (ignore 255, aux, Dice),
the evaluator (one confusion matrix), a small U-Net trained through the runner, and fine-tuning a
VOC segmenter to new classes with weights made here (nothing downloaded)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnntool.data.masks import write_index_mask, write_shapes_segmentation
from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import UsageError
from cnntool.models import registry
from cnntool.models.checkpoint import load_checkpoint
from cnntool.train import tasks
from cnntool.train.config import TrainConfig
from cnntool.train.loop import StepSettings
from cnntool.train.tasks.segment import (CONFUSION_PNG, IOU_PNG, SegmentEvaluator, SegmentTask, dice_loss,
                                        load_segmentation_data)

UNET = registry.ModelEntry(name="unet", task="segmentation", builder="cnntool.models.unet:unet", family="unet",
                           preprocessing=Preprocessing((3, 128, 128), (0.5,) * 3, (0.5,) * 3), num_classes=2,
                           reference_params=482_754, head="head", first_conv="encoders.0.0")
HALF = Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3)


@pytest.fixture
def plugin(monkeypatch):
    """``train --task segment`` as the registration lines make it."""
    registry._ensure_loaded()
    if "unet" not in registry._REGISTRY:
        monkeypatch.setitem(registry._REGISTRY, "unet", UNET)
    monkeypatch.setitem(tasks.PLUGINS, "segmentation", "cnntool.train.tasks.segment:SegmentTask")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_segmentation(tmp_path_factory.mktemp("shapes"), n_train=48, n_val=16, size=48, seed=0)


def settings():
    return StepSettings(device=torch.device("cpu"), preprocessing=HALF)


def test_data_resized_to_the_model_with_classes_from_the_file(shapes):
    data = load_segmentation_data(str(shapes), HALF)
    assert data.model_classes == ["background", "circle", "square", "triangle"]
    assert data.sizes == {"train": 48, "val": 16} and data.split == "folders" and data.cached
    images, masks = data.train.__getitems__([0, 1])
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert masks.shape == (2, 32, 32) and set(masks.unique().tolist()) <= {0, 1, 2, 3}
    assert data.profile["median_size"] == [48, 48]


def test_the_warp_is_off_by_default_and_moves_masks_with_images_when_asked(shapes):
    from cnntool.data.transforms import AugmentConfig
    from cnntool.train.tasks.segment import segment_augment

    plain = load_segmentation_data(str(shapes), HALF, augment=segment_augment(TrainConfig()))
    _, masks = plain.train.__getitems__(list(range(16)))
    assert 255 not in masks.unique().tolist()  # flips only: nothing is brought in from outside
    warp = segment_augment(TrainConfig(aug=AugmentConfig(rotate=30.0, zoom=0.4, shift=0.2)))
    warped = load_segmentation_data(str(shapes), HALF, augment=warp)
    images, masks = warped.train.__getitems__(list(range(16)))
    assert 255 in masks.unique().tolist()  # borders brought in are not labelled
    assert set(masks.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest neighbour: no blended class ids
    outside = masks == 255
    # where the mask is 255 the image is the fill (but a bilinear rim where the two meet)
    assert (images.permute(1, 0, 2, 3)[:, outside] == 0).float().mean() > 0.9


def test_bad_pairs_are_skipped_and_named(tmp_path):
    root = write_shapes_segmentation(tmp_path / "d", n_train=8, n_val=0, size=24, seed=1)
    write_index_mask(root / "masks" / "000001.png", np.zeros((10, 10), np.uint8))        # wrong size
    write_index_mask(root / "masks" / "000002.png", np.full((24, 24), 7, np.uint8))      # class 7 of 4
    os.remove(root / "masks" / "000003.png")                                              # missing
    data = load_segmentation_data(str(root), HALF, val_split=0.25)
    reasons = " | ".join(reason for _, reason in data.skipped)
    assert len(data.skipped) == 3 and data.split == "val_split=0.25"
    assert "000001.png" in reasons and "000002.png" in reasons and "000003" in reasons
    assert len(data.train) + len(data.val) == 5


def test_classes_come_from_the_finetuned_model_when_the_data_has_no_list(tmp_path):
    root = write_shapes_segmentation(tmp_path / "d", n_train=4, n_val=2, size=24, seed=1)
    os.remove(root / "classes.txt")
    voc = ["__background__", "aeroplane", "bicycle", "bird", "boat"]
    assert load_segmentation_data(str(root), HALF, classes=voc).model_classes == voc
    assert load_segmentation_data(str(root), HALF).model_classes == ["background", "class1", "class2", "class3"]


def test_the_loss_ignores_255_and_adds_aux_and_dice():
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    masks = torch.randint(0, 3, (2, 4, 4))
    masks[:, 0] = 255
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    plain = lambda x: logits  # noqa: E731
    with_aux = lambda x: {"out": logits, "aux": aux}  # noqa: E731
    step = SegmentTask().step(TrainConfig(), None)
    loss, stats = step(plain, (images, masks), settings())
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, masks, ignore_index=255)))
    other = logits.clone()
    other[:, :, 0] = 100 * torch.randn(2, 3, 4)  # scores where the mask says 255 do not count
    assert float(step(lambda x: other, (images, masks), settings())[0]) == pytest.approx(float(loss))
    loss_aux, _ = step(with_aux, (images, masks), settings())
    assert float(loss_aux) == pytest.approx(float(loss) + 0.5 * float(F.cross_entropy(aux, masks, ignore_index=255)))
    cfg = TrainConfig()
    cfg.dice_weight = 0.5  # the TrainConfig field --dice-weight sets
    loss_dice, _ = SegmentTask().step(cfg, None)(plain, (images, masks), settings())
    assert float(loss_dice) == pytest.approx(float(loss) + 0.5 * float(dice_loss(logits, masks)))
    assert stats["count"] == 2


def test_dice_loss_is_zero_for_a_perfect_prediction_and_ignores_255():
    target = torch.tensor([[[0, 1, 2], [2, 255, 255]]])
    perfect = F.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    perfect[:, :, 1, 1:] = torch.tensor([0.0, 50.0, 0.0])[:, None]  # wrong where not labelled: no matter
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-4)
    assert float(dice_loss(-perfect, target)) > 0.5


def test_the_evaluator_is_one_confusion_matrix_over_labelled_pixels():
    evaluator = SegmentEvaluator(["bg", "a", "b"])
    truth = torch.tensor([[[0, 0, 1, 255]], [[2, 2, 1, 1]]])
    predicted = torch.tensor([[[0, 1, 1, 2]], [[2, 0, 1, 1]]])
    scores = F.one_hot(predicted, 3).permute(0, 3, 1, 2).float() * 10
    evaluator.update(lambda x: {"out": scores}, (torch.zeros(2, 3, 1, 4, dtype=torch.uint8), truth), settings())
    result = evaluator.compute()
    assert result["confusion"].tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    assert result["miou"] == pytest.approx(np.mean([1 / 3, 3 / 4, 1 / 2]))
    assert result["pixel_accuracy"] == pytest.approx(5 / 7) and result["images"] == 2
    expected = float(F.cross_entropy(scores, truth, ignore_index=255, reduction="sum")) / 7
    assert result["loss"] == pytest.approx(expected)


def test_options_that_do_nothing_are_refused(plugin, shapes, tmp_path):
    from cnntool.train.runner import train

    with pytest.raises(UsageError, match="--mixup does nothing when training segmentation"):
        train(TrainConfig(data=str(shapes), task="segment", out=str(tmp_path / "r"), mixup=0.2))


@pytest.mark.slow
def test_a_small_unet_trains_through_the_runner(plugin, tmp_path):
    """128 shapes images of 48 px, 12 epochs: about 15 s on one thread; mIoU 0.80 (0.30 after one epoch)."""
    from cnntool.train.runner import train

    shapes = write_shapes_segmentation(tmp_path / "data", n_train=128, n_val=32, size=48, seed=0)
    cfg = TrainConfig(data=str(shapes), task="segment", out=str(tmp_path / "run"), imgsz=(48, 48), epochs=12,
                      arch_kwargs={"depth": 3, "width": 16}, device="cpu", threads=1, workers=0)
    summary = train(cfg)
    run = tmp_path / "run"
    assert summary["arch"] == "unet" and summary["task"] == "segmentation"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    mious = [r["val_miou"] for r in history]
    assert summary["best_val_miou"] == max(mious) > 0.7 and mious[-1] > mious[0] + 0.3
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[2:6] == ["train_loss", "val_loss", "val_miou", "val_pixel_accuracy"]
    assert (run / "confusion.png").stat().st_size > 0 and (run / "iou.png").stat().st_size > 0
    best = load_checkpoint(run / "best.pt")
    assert best["task"] == "segmentation" and best["classes"][0] == "background"
    assert best["preprocessing"]["input_size"] == [3, 48, 48] and best["arch_kwargs"] == {"depth": 3, "width": 16}
    assert json.loads((run / "config.json").read_text())["optimizer"] == "adamw"  # the task's recipe


#: Fields of an epoch record that are wall-clock measurements, not results.
TIMING = {"train_images_per_s", "epoch_seconds"}


def epoch_results(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


@pytest.mark.slow
def test_a_unet_run_killed_after_one_epoch_resumes_to_the_same_weights(plugin, tmp_path):
    """With augmentation (flips seeded by seed and epoch), 2 epochs straight against 1 epoch, a
    kill, and --resume: the same weights (AdamW's moments and the schedule carried over), epoch
    records and best mIoU; the figures the killed run never drew come from the restored best
    result (about 3 s here)."""
    from cnntool.train.runner import train

    data = write_shapes_segmentation(tmp_path / "data", n_train=16, n_val=8, size=32, seed=5)
    cfg = TrainConfig(data=str(data), task="segment", out=str(tmp_path / "a"), imgsz=(32, 32), epochs=2,
                      batch_size=4, arch_kwargs={"depth": 2, "width": 8}, device="cpu", threads=1, workers=0,
                      seed=3)
    assert cfg.augment
    straight = train(cfg)

    def stop_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(dataclasses.replace(cfg, out=str(tmp_path / "b")), on_epoch=stop_after_one)
    cut = tmp_path / "b"
    assert load_checkpoint(cut / "last.pt")["epoch"] == 1
    for name in (CONFUSION_PNG, IOU_PNG):
        (cut / name).unlink(missing_ok=True)
    resumed = train(TrainConfig(), resume=str(cut))
    assert resumed["epochs"] == 2 and resumed["task"] == "segmentation"
    assert resumed["best_val_miou"] == straight["best_val_miou"] is not None
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(tmp_path / "a" / name), load_checkpoint(cut / name)
        assert a["epoch"] == b["epoch"], name
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key, tensor in a["state_dict"].items():
            assert torch.equal(tensor, b["state_dict"][key]), (name, key)
    assert [r["epoch"] for r in epoch_results(cut)] == [1, 2]
    assert epoch_results(tmp_path / "a") == epoch_results(cut)
    for name in (CONFUSION_PNG, IOU_PNG):
        assert (cut / name).stat().st_size > 0, name  # drawn from the restored best result


@pytest.fixture
def torch_home(tmp_path, monkeypatch, no_network):
    """A torch cache holding LR-ASPP "COCO_WITH_VOC_LABELS_V1" weights made here; no network."""
    from torchvision.models.segmentation import LRASPP_MobileNet_V3_Large_Weights, lraspp_mobilenet_v3_large

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    weights = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
    path = home / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).state_dict(), path)
    return home


@pytest.mark.slow
def test_finetuning_a_voc_segmenter_to_new_classes(plugin, torch_home, tmp_path):
    from cnntool.train.runner import train

    root = write_shapes_segmentation(tmp_path / "d", n_train=8, n_val=4, size=40, seed=2)
    cfg = TrainConfig(data=str(root), task="segment", init_from="lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1",
                      out=str(tmp_path / "run"), imgsz=(32, 32), epochs=1, batch_size=4, device="cpu", threads=1,
                      workers=0)
    summary = train(cfg)
    assert summary["finetuned_from"] == "lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1"
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["classes"] == ["background", "circle", "square", "triangle"]
    state = best["state_dict"]
    assert state["classifier.low_classifier.weight"].shape[0] == 4 == state["classifier.high_classifier.weight"].shape[0]
    cached = torch.load(torch_home / "hub" / "checkpoints" / os.listdir(torch_home / "hub" / "checkpoints")[0],
                        weights_only=True)
    assert not torch.equal(state["backbone.0.0.weight"], cached["backbone.0.0.weight"])  # the backbone trained too
    assert summary["best_val_miou"] is not None


@pytest.mark.slow
def test_fcn_trains_its_aux_head_and_finetuning_resizes_it(no_network):
    """The registry's real fcn_resnet50 (random weights, no backbone weights fetched): its training
    output has 'aux', the task's loss adds it at 0.5, and replacing the heads for new classes (what
    fine-tuning and load(num_classes=) do) resizes the auxiliary classifier's last conv too."""
    from cnntool.models.surgery import replace_heads
    from cnntool.train.tasks.segment import AUX_WEIGHT

    entry = registry.get_entry("fcn_resnet50")
    torch.manual_seed(0)
    model = entry.build()  # the 21 VOC classes, as its pretrained weights have them
    assert model.aux_classifier[4].out_channels == 21 == model.classifier[4].out_channels
    replace_heads(model, entry.heads, 4)
    assert model.classifier[4].out_channels == 4 == model.aux_classifier[4].out_channels
    model.train()
    outputs = []
    model.register_forward_hook(lambda module, args, output: outputs.append(output))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    masks = torch.randint(0, 4, (2, 32, 32))
    masks[:, :4] = 255
    loss, _ = SegmentTask().step(TrainConfig(), None)(model, (images, masks), settings())
    output, = outputs
    assert set(output) == {"out", "aux"}
    assert output["out"].shape == output["aux"].shape == (2, 4, 32, 32)
    main = F.cross_entropy(output["out"].detach(), masks, ignore_index=255)
    aux = F.cross_entropy(output["aux"].detach(), masks, ignore_index=255)
    assert AUX_WEIGHT == 0.5 and float(aux) > 0.5
    assert loss.item() == pytest.approx(float(main + AUX_WEIGHT * aux), rel=1e-5)
    loss.backward()
    assert float(model.aux_classifier[4].weight.grad.abs().sum()) > 0  # the auxiliary head learns
    assert no_network == []  # nothing was downloaded
