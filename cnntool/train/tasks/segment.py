"""The segmentation plug-in of the trainer: images and index masks, cross-entropy (+ Dice), mIoU.

Data: ``images/`` and ``masks/`` with the same stems (single-channel PNGs of class ids, 255 =
not labelled), in ``train/`` and ``val/`` (and ``test/``) or one folder split by
``--val-split`` (:func:`cnntool.data.masks.load_segmentation_folder`). Class names come from
the dataset's ``classes.txt``; without one, from the model being fine-tuned when its classes
cover the masks' ids, else ``background, class1...`` up to the largest id. Every pair is read
and checked once up front (a missing mask, one of another size than its image, one with class
ids out of range, a lossy or multi-channel one: skipped and reported by name); small datasets
stay decoded in memory. Under DDP each process decodes only its own shard.

Pairs are resized to the model's input size (images with area averaging or bilinear, masks with
nearest neighbour; the aspect ratio is not kept) and augmented jointly
(:class:`~cnntool.data.masks.SegmentAugment`, torchvision ``transforms.v2`` on an image and its
``tv_tensors.Mask``): left-right flips with probability 0.5 (``--no-hflip`` turns them off),
top-bottom with ``--vflip``, ``--color-jitter`` on the image only, and, when asked, one affine warp
of ``--rotate`` degrees, ``--zoom`` (a scale in [1 - zoom, 1 + zoom]), ``--shift`` and ``--shear``,
the mask resampled by nearest neighbour and pixels brought in from outside marked 255 (not
labelled). The warp is off by default: on synthetic shapes, the default U-Net trained with a random
rotation of 10 degrees, shift of 10 % and zoom of 0.75-1.25 stayed at a validation mIoU of 0.37-0.38
for 5 epochs, where flips alone reached 0.71 after 3 and 0.97 after 8; on small sets of photos and
long schedules it is the usual addition. A step is
cross-entropy with ``ignore_index=255`` (plus ``dice_weight`` times a soft Dice loss over the
labelled pixels when the config has a non-zero ``dice_weight``); torchvision's segmenters'
auxiliary classifier output (``aux``) adds its cross-entropy with weight 0.5, as torchvision's
reference recipe does. Validation accumulates one confusion matrix over every labelled pixel
(summed across processes): mIoU over the classes present, pixel accuracy, Dice; best.pt has the
best validation mIoU, ties broken by the lower loss. Figures: the best epoch's confusion matrix
(``confusion.png``, rows normalised) and per-class IoU (``iou.png``).

Options that do nothing for segmentation are refused: crop scale and ratio, automatic
augmentation policies, random erasing, label smoothing, class balancing, mixup, cutmix, and
``--no-verify`` (pairs are always checked up front).

The recipe (:attr:`SegmentTask.recipe`) is the one measured for the default U-Net from scratch on
synthetic shapes (:func:`~cnntool.data.masks.write_shapes_segmentation`: 400 training and 100
validation images of 128 px): AdamW at 3e-3, weight decay 1e-4, batches of 4, 5 epochs with the
runner's one-epoch warmup and cosine decay; validation mIoU 0.96 after about 2 CPU-minutes (one
thread). Batches of 8 at 3e-3 or 6e-3 reached 0.88-0.89 in the same 5 epochs.

Examples
--------
>>> SegmentTask().best, SegmentTask().default_arch
(('val_miou', 'max'), 'unet')
"""

from __future__ import annotations

import numpy as np

from cnntool.errors import DatasetError
from cnntool.train.tasks import TaskData

#: Weight of the auxiliary classifier's loss (torchvision's reference: 0.5).
AUX_WEIGHT = 0.5
#: Mask value of pixels not trained on and not scored.
IGNORE_INDEX = 255
#: Probability of a flip when ``--hflip`` (the default for segmentation) or ``--vflip`` is on.
HFLIP = 0.5
CONFUSION_PNG = "confusion.png"
IOU_PNG = "iou.png"


def segment_augment(cfg):
    """The :class:`~cnntool.data.masks.SegmentAugment` a config asks for, or None (``--no-augment``).

    Examples
    --------
    >>> from cnntool.train.config import TrainConfig
    >>> a = segment_augment(TrainConfig())
    >>> a.hflip, a.vflip, a.rotate, a.zoom, a.shift
    (0.5, 0.0, 0.0, (1.0, 1.0), 0.0)
    >>> from cnntool.data.transforms import AugmentConfig
    >>> a = segment_augment(TrainConfig(aug=AugmentConfig(rotate=10, zoom=0.25, shift=0.1, hflip=False)))
    >>> a.hflip, a.rotate, a.zoom, a.shift
    (0.0, 10.0, (0.75, 1.25), 0.1)
    """
    from cnntool.data.masks import SegmentAugment

    if not cfg.augment:
        return None
    aug = cfg.resolved_aug(SegmentTask.recipe)
    zoom = float(aug.zoom)
    return SegmentAugment(hflip=HFLIP if aug.hflip else 0.0, vflip=HFLIP if aug.vflip else 0.0,
                          rotate=float(aug.rotate), zoom=(1.0 - zoom, 1.0 + zoom), shift=float(aug.shift),
                          shear=float(aug.shear), brightness=float(aug.brightness),
                          contrast=float(aug.contrast), saturation=float(aug.saturation))


def load_segmentation_data(root: str, preprocessing, *, augment=None, val_split: float = 0.2, seed: int = 0,
                           cache: str | bool = "auto", max_pixels: int | None = None, classes=None, rank: int = 0,
                           world_size: int = 1) -> TaskData:
    """The train/val(/test) segmentation datasets of ``root`` at the model's input size, this
    process's shard of each.

    Parameters
    ----------
    root : str
        ``images/`` + ``masks/``, or ``train/`` + ``val/`` (+ ``test/``) folders of them.
    preprocessing : Preprocessing
        The model's: its (H, W) is the training size, its channels the decoding.
    augment : SegmentAugment or None
    val_split : float
        Without ``val/``: this fraction of the pairs validates (seeded by ``seed``).
    classes : sequence of str, optional
        Names to use when the dataset has no ``classes.txt`` (a fine-tuned model's), if they
        cover the masks' ids.
    rank, world_size : int
        This process's shard (DDP).

    Examples
    --------
    >>> import tempfile
    >>> from cnntool.data.masks import write_shapes_segmentation
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> root = write_shapes_segmentation(tempfile.mkdtemp(), n_train=6, n_val=2, size=32)
    >>> data = load_segmentation_data(str(root), Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3))
    >>> data.model_classes, data.sizes, tuple(data.train[0][1].shape)
    (['background', 'circle', 'square', 'triangle'], {'train': 6, 'val': 2}, (16, 16))
    """
    from cnntool.data.datasets import size_profile
    from cnntool.data.loaders import shard_indices
    from cnntool.data.masks import SegmentationDataset, load_segmentation_folder

    cache = {"on": True, "off": False}.get(cache, cache) if isinstance(cache, str) else cache
    split = load_segmentation_folder(root, val_fraction=val_split, seed=seed)
    names, source = split.classes, split.classes_from
    if source == "masks" and classes is not None and len(classes) >= len(names):
        names, source = list(classes), "the model"
    how = "folders" if _has_val(root) else f"val_split={val_split:g}"
    sizes = {"train": len(split.train), "val": len(split.val)}
    if split.test is not None:
        sizes["test"] = len(split.test)
    skipped: list[tuple[str, str]] = []

    def dataset(index, *, training: bool):
        shard = shard_indices(len(index), rank=rank, world_size=world_size, seed=seed, shuffle=training)
        part = index.subset(shard)
        ds = SegmentationDataset(part.images, part.masks, names, size=preprocessing.size,
                                 channels=preprocessing.channels, augment=augment if training else None, cache=cache,
                                 on_error="skip", problems=index.problems if rank == 0 else (), seed=seed,
                                 max_pixels=max_pixels)
        skipped.extend(ds.skipped)
        return ds

    train = dataset(split.train, training=True)
    val = dataset(split.val, training=False)
    test = dataset(split.test, training=False) if split.test is not None else None
    if len(train) == 0:
        raise DatasetError(f"no usable image/mask pairs for training under {root}",
                           hint=skipped[0][1] if skipped else "add images/ and masks/ with the same stems")
    if len(val) == 0 and sizes["val"] > 0 and world_size == 1:
        raise DatasetError(f"no usable validation pairs under {root}", hint=skipped[0][1] if skipped else None)
    return TaskData(classes=list(names), model_classes=list(names), train=train, val=val, test=test, sizes=sizes,
                    skipped=skipped, split=how, cached=bool(train.cached and val.cached),
                    describe=f"{len(names)} classes (from {source}), {how}, "
                             f"{preprocessing.size[0]}x{preprocessing.size[1]} px",
                    profile=size_profile(_sizes(train)))


def _has_val(root: str) -> bool:
    from pathlib import Path

    return (Path(root) / "val" / "images").is_dir()


def _sizes(dataset) -> list[tuple[int, int]]:
    """The original (h, w) of the training images, read from their headers (cheap)."""
    from PIL import Image

    sizes = []
    for path in dataset.images[:1000]:
        try:
            with Image.open(path) as im:
                sizes.append((im.height, im.width))
        except OSError:
            continue
    return sizes


def source_classes(cfg) -> list[str] | None:
    """The class names of the model a fine-tuning run starts from (None when training from scratch)."""
    if not cfg.finetuning:
        return None
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    if is_checkpoint_spec(cfg.init_from):
        from cnntool.models.checkpoint import load_checkpoint
        from cnntool.models.loading import resolve_checkpoint_path

        return list(load_checkpoint(resolve_checkpoint_path(cfg.init_from))["classes"])
    name, _, weights = cfg.init_from.partition(":")
    entry = get_entry(name)
    categories = entry.torchvision_weights(weights).meta.get("categories") if weights else None
    return [str(c) for c in categories] if categories else None


def dice_loss(logits, target, *, ignore_index: int = IGNORE_INDEX):
    """1 - the mean soft Dice over classes, on the labelled pixels of a batch (smoothed by 1).

    Examples
    --------
    >>> import torch
    >>> target = torch.tensor([[[0, 1], [1, 255]]])
    >>> perfect = torch.tensor([[[[9., -9.], [-9., 0.]], [[-9., 9.], [9., 0.]]]])
    >>> round(float(dice_loss(perfect, target)), 3)
    0.0
    """
    import torch.nn.functional as F

    classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(target.clamp(0, classes - 1), classes).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (total + 1.0)).mean()


class SegmentTask:
    """Semantic segmentation (see the module docstring)."""

    name = "segmentation"
    best = ("val_miou", "max")
    tie = ("val_loss", "min")
    epoch_fields = ("train_loss", "val_loss", "val_miou", "val_pixel_accuracy")
    default_init = "torch"    # the builder's own: He for the U-Net's convolutions, torchvision's for its segmenters
    default_arch = "unet"
    recipe: dict = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "epochs": 5, "batch_size": 4,
                    "hflip": True, "rotate": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0}
    ignores = ("label_smoothing", "balance", "mixup", "cutmix", "crop_scale", "crop_ratio", "policy", "erasing",
               "verify")

    def load_data(self, cfg, preprocessing, dist) -> TaskData:
        return load_segmentation_data(cfg.data, preprocessing, augment=segment_augment(cfg), val_split=cfg.val_split,
                                      seed=cfg.seed, cache=cfg.cache, max_pixels=cfg.max_pixels,
                                      classes=source_classes(cfg), rank=dist.rank, world_size=dist.world_size)

    def step(self, cfg, data: TaskData):
        """Cross-entropy ignoring 255 (+ the auxiliary output's at :data:`AUX_WEIGHT`, + Dice)."""
        import torch.nn.functional as F

        dice_weight = float(cfg.dice_weight)

        def step(model, batch, settings):
            images, masks = batch
            x, y = settings.inputs(images), settings.to_device(masks)
            output = model(x)
            logits = output["out"] if isinstance(output, dict) else output
            loss = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
            if isinstance(output, dict) and output.get("aux") is not None:
                loss = loss + AUX_WEIGHT * F.cross_entropy(output["aux"], y, ignore_index=IGNORE_INDEX)
            if dice_weight:
                loss = loss + dice_weight * dice_loss(logits, y)
            n = y.shape[0]
            return loss, {"loss": loss.detach().double() * n, "count": n}

        return step

    def evaluator(self, data: TaskData, cfg) -> "SegmentEvaluator":
        return SegmentEvaluator(data.model_classes)

    def epoch_metrics(self, sums: dict) -> dict:
        return {"train_loss": sums.get("loss", 0.0) / max(1.0, sums.get("count", 0.0))}

    def figures(self, out_dir, best: dict, classes, epoch: int) -> None:
        """The best epoch's confusion matrix (each row as shares of its true pixels) and per-class IoU."""
        from cnntool.metrics.plots import plot_confusion, plot_iou

        if best.get("confusion") is None:
            return
        matrix = np.asarray(best["confusion"], np.float64)
        share = np.round(matrix / np.maximum(1.0, matrix.sum(1, keepdims=True)), 2)
        plot_confusion(share, classes, out_dir / CONFUSION_PNG,
                       title=f"validation, epoch {epoch}: share of each true class's pixels")
        plot_iou(best.get("per_class_iou") or [], classes, out_dir / IOU_PNG,
                 title=f"validation IoU per class, epoch {epoch} (mIoU {best.get('miou') or 0:.4f})")

    def summary(self, best: dict, last: dict, test: dict | None) -> dict:
        return {"best_val_miou": best.get("miou"), "val_miou": last.get("val_miou"),
                "val_pixel_accuracy": last.get("val_pixel_accuracy"), "val_loss": last.get("val_loss"),
                "train_loss": last.get("train_loss"), "test_miou": test.get("miou") if test else None,
                "test_pixel_accuracy": test.get("pixel_accuracy") if test else None}


class SegmentEvaluator:
    """Validation loss, and one confusion matrix over every labelled pixel, summed across
    processes; mIoU, pixel accuracy and Dice from it (:mod:`cnntool.metrics.segmentation`)."""

    def __init__(self, classes):
        self.classes = list(classes)
        self.reset()

    def reset(self) -> None:
        self.loss_sum = 0.0
        self.pixels = 0
        self.matrix = np.zeros((len(self.classes),) * 2, np.int64)
        self.images = 0
        self.device = None

    def update(self, model, batch, settings) -> None:
        import torch.nn.functional as F

        from cnntool.metrics.segmentation import confusion_matrix
        from cnntool.models.tasks import dense_logits

        images, masks = batch
        x, y = settings.inputs(images), settings.to_device(masks)
        with settings.autocast():
            logits = dense_logits(model(x))
        logits = logits.float()
        self.loss_sum += float(F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum"))
        self.pixels += int((y != IGNORE_INDEX).sum())
        self.matrix += confusion_matrix(y, logits.argmax(1), num_classes=len(self.classes))
        self.images += int(y.shape[0])
        self.device = y.device

    def compute(self, dist=None) -> dict:
        import torch

        from cnntool.metrics.segmentation import segmentation_report
        from cnntool.train.distributed import all_reduce_sum

        matrix, loss, pixels, images = self.matrix, self.loss_sum, self.pixels, self.images
        if dist is not None and dist.enabled:
            packed = torch.tensor([loss, float(pixels), float(images), *matrix.ravel().tolist()], dtype=torch.float64)
            packed = all_reduce_sum(packed.to(self.device or "cpu"), dist).cpu()  # NCCL reduces on the GPU
            loss, pixels, images = float(packed[0]), int(packed[1]), int(packed[2])
            matrix = packed[3:].round().long().numpy().reshape(matrix.shape)
        report = segmentation_report(matrix, self.classes)
        return {"loss": loss / max(1, pixels), "miou": report["miou"], "pixel_accuracy": report["pixel_accuracy"],
                "mean_dice": report["mean_dice"], "images": images, "confusion": matrix,
                "per_class_iou": [r["iou"] for r in report["per_class"]]}
