"""The detection plug-in of the trainer: COCO or YOLO boxes, the detector's own losses, COCO mAP.

Data: a COCO folder (``images/`` + ``annotations.json``) or a YOLO folder (``images/``,
``labels/``, ``data.yaml`` or ``classes.txt``), or ``train/``, ``val/`` (and ``test/``) folders of
either shape; without ``val/`` a seeded ``--val-split`` of the images
(:func:`cnntool.data.detection.split_boxes`). Labels are validated by :mod:`cnntool.data.boxes`
(every problem is a skipped entry naming the file and the annotation); images are decoded once
up front and, when small, kept in memory (:class:`~cnntool.data.detection.DetectionDataset`).
Under DDP each process decodes only its own shard.

The model counts the background: ``model_classes`` is ``["__background__", *classes]``, and
targets carry model labels (class + 1, :data:`~cnntool.data.boxes.BACKGROUND_OFFSET`). Images
go to the model as [0, 1] floats of their own size (the detector resizes and normalises inside);
batches group images of similar aspect ratio (:class:`~cnntool.data.detection.GroupedBatchSampler`).
A step is the sum of the detector's loss dict; validation is COCO mAP by pycocotools
(:class:`~cnntool.metrics.detection.DetectionEvaluator`, gathered across processes); best.pt
has the best mAP@0.5, ties broken by mAP@[.5:.95]; the figures are the best epoch's
precision-recall curves and detection confusion matrix.

Augmentation (``--augment``, on by default) is :class:`~cnntool.data.detection.DetectionAugment`,
whose geometry moves the boxes (and masks) with the pixels: horizontal flips (the default for
detection: objects are as likely mirrored); with ``--zoom Z``, half the images zoomed out onto a
canvas up to ``1 / (1 - Z)`` times their size (objects get smaller: the lower end of
classification's ``[1 - Z, 1 + Z]``); with ``--crop-scale MIN,MAX`` (and ``--crop-ratio``), half
the images cropped by SSD's IoU crop to that fraction of their area, keeping objects whose centre
stays inside; with ``--color-jitter V``, brightness, contrast and saturation jitter. Zoom and
crops are off unless given (the recipe's ``zoom`` is 0; ``--zoom 0.1`` typed zooms out). Options that would
move pixels without their boxes (rotation, shear, shifts, vertical flips), and the
classification-only ones (label smoothing, class balancing, mixup, cutmix, policies, erasing),
are refused rather than ignored, as is ``--no-verify`` (images are always decoded once up front).

``--imgsz`` sets the size the detector resizes images to inside itself
(:func:`imgsz_arch_kwargs`): its ``min_size``/``max_size`` builder options, the same mapping as
``cnntool detect --imgsz``, so the checkpoint records them with its preprocessing and the model
rebuilt from it keeps the size.

The recipe (:attr:`DetectTask.recipe`) is the one measured for the default ``tiny_fcos`` from
scratch: AdamW at 3e-3, weight decay 1e-4, a one-epoch warmup then cosine decay, 8 epochs,
batches of 16, gradient norm clipped at 10 (600 synthetic 160 px scenes: mAP@0.5 above 0.9 in
minutes on 2 CPU cores).

Examples
--------
>>> DetectTask().best, DetectTask().default_arch
(('val_map50', 'max'), 'tiny_fcos')
"""

from __future__ import annotations

import numpy as np

from cnntool.errors import DatasetError, UsageError
from cnntool.train.tasks import TaskData

#: The name of the model's class 0.
BACKGROUND = "__background__"
#: Probability of a horizontal flip under ``--augment`` (the detection default).
HFLIP = 0.5
#: Probability of a zoom-out under ``--zoom``, and of an IoU crop under ``--crop-scale``: the
#: other half of the images keep the framing validation sees.
ZOOM_OUT_P = 0.5
CROP_P = 0.5
#: The builder options ``--imgsz`` sets.
SIZE_OPTIONS = ("min_size", "max_size")
#: The figures written to the run folder.
PR_CURVE_PNG = "pr_curve.png"
CONFUSION_PNG = "confusion.png"


def detection_augment(cfg):
    """The :class:`~cnntool.data.detection.DetectionAugment` a config asks for, or None.

    ``--no-augment``: none. Otherwise flips with probability :data:`HFLIP` (unless ``--no-hflip``);
    ``--zoom Z`` (off unless given: the recipe's ``zoom`` is 0) zooms out with probability
    :data:`ZOOM_OUT_P` onto a canvas up to ``1 / (1 - Z)`` times the image; ``--crop-scale`` crops
    with probability :data:`CROP_P` (``RandomIoUCrop``) to that fraction of the area, with
    ``--crop-ratio``'s aspect ratios; colour jitter of ``--color-jitter``'s strength.

    Examples
    --------
    >>> from cnntool.train.config import TrainConfig
    >>> from cnntool.data.transforms import AugmentConfig
    >>> detection_augment(TrainConfig()).hflip, detection_augment(TrainConfig(augment=False))
    (0.5, None)
    >>> zoomed = detection_augment(TrainConfig(aug=AugmentConfig(zoom=0.5, crop_scale=(0.25, 1.0))))
    >>> zoomed.zoom_out, zoomed.zoom_out_max, zoomed.crop, zoomed.crop_scale
    (0.5, 2.0, 0.5, (0.25, 1.0))
    >>> detection_augment(TrainConfig()).zoom_out, detection_augment(TrainConfig(aug=AugmentConfig(zoom=0.1))).zoom_out
    (0.0, 0.5)
    """
    from cnntool.data.detection import DetectionAugment
    from cnntool.data.transforms import AugmentConfig

    if not cfg.augment:
        return None
    aug, default = cfg.resolved_aug(DetectTask.recipe), AugmentConfig()
    colour = float(max(aug.brightness, aug.contrast, aug.saturation))
    geometry: dict = {}
    if aug.zoom > 0:
        geometry.update(zoom_out=ZOOM_OUT_P, zoom_out_max=1.0 / (1.0 - aug.zoom))
    if aug.crop_scale is not None:
        geometry.update(crop=CROP_P, crop_scale=tuple(aug.crop_scale), crop_ratio=tuple(aug.crop_ratio))
    elif tuple(aug.crop_ratio) != tuple(default.crop_ratio):
        raise UsageError("--crop-ratio does nothing without --crop-scale when training detection",
                         hint="add --crop-scale MIN,MAX (e.g. 0.3,1), or leave --crop-ratio out")
    return DetectionAugment(hflip=HFLIP if aug.hflip else 0.0, color=min(colour, 0.99), **geometry)


def imgsz_arch_kwargs(cfg) -> dict:
    """The builder options (``min_size``, ``max_size``) that make the detector a config trains
    resize images as ``--imgsz`` asks, or {} without ``--imgsz``.

    The mapping is :func:`cnntool.models.detector_size.sized_transform`'s (``cnntool detect
    --imgsz`` uses the same): ``--imgsz 96`` on tiny_fcos (160/320) gives 96/192.

    Raises
    ------
    UsageError
        ``--imgsz`` for a fixed-size model (SSD), or with ``--arch-arg min_size``/``max_size`` of
        other values. When fine-tuning the answer is {}: the loaded source is resized instead.

    Examples
    --------
    >>> from cnntool.train.config import TrainConfig
    >>> imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos", imgsz=(96, 96)))
    {'min_size': 96, 'max_size': 192}
    >>> imgsz_arch_kwargs(TrainConfig(arch="tiny_fcos"))
    {}
    """
    if cfg.imgsz is None:
        return {}
    if cfg.finetuning:  # the source model is resized where it is loaded (train/setup.py)
        return {}
    import torch

    from cnntool.models.detector_size import sized_transform
    from cnntool.models.registry import get_entry

    entry = get_entry(cfg.arch or DetectTask.default_arch)
    own = {k: v for k, v in (cfg.arch_kwargs or {}).items() if k not in SIZE_OPTIONS}
    try:
        with torch.device("meta"):  # the builder's own sizes, without allocating weights
            model = entry.build(num_classes=2, **own)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{entry.name} does not take these model options: {exc}",
                         hint="see `cnntool models info " + entry.name + "`") from None
    try:
        short, long, fixed = sized_transform(model, cfg.imgsz)
    except ValueError:
        raise UsageError(f"{entry.name} has no input size to set", hint="leave --imgsz out") from None
    if fixed is not None:
        raise UsageError(f"{entry.name} trains at its fixed input size; --imgsz cannot change it",
                         hint="leave --imgsz out")
    sizes = {"min_size": short, "max_size": long}
    clash = sorted(k for k in SIZE_OPTIONS if k in (cfg.arch_kwargs or {}) and cfg.arch_kwargs[k] != sizes[k])
    if clash:
        raise UsageError(f"--imgsz {'x'.join(map(str, cfg.imgsz))} means {sizes}, but --arch-arg gives "
                         + ", ".join(f"{k}={cfg.arch_kwargs[k]}" for k in clash), hint="give one of them")
    return sizes


def load_detection_data(root: str, *, channels: int = 3, augment=None, val_split: float = 0.2, seed: int = 0,
                        cache: str | bool = "auto", max_pixels: int | None = None, rank: int = 0,
                        world_size: int = 1, masks: bool = False) -> TaskData:
    """The train/val(/test) detection datasets of ``root``, this process's shard of each.

    Parameters
    ----------
    root : str
        A COCO or YOLO dataset, or ``train/`` + ``val/`` (+ ``test/``) folders of one.
    channels : int
        The model's input channels (1 decodes grayscale).
    augment : DetectionAugment or None
    val_split : float
        Without a ``val/`` split: this fraction of the images validates (seeded by ``seed``).
    cache : bool or "auto" or "on"/"off"
    rank, world_size : int
        This process's shard (DDP): it decodes only its own images.
    masks : bool
        Targets carry instance masks (COCO polygons or RLE), for Mask R-CNN.

    Examples
    --------
    >>> import tempfile
    >>> from cnntool.data.detection import write_shapes_detection
    >>> root = write_shapes_detection(tempfile.mkdtemp(), n_train=6, n_val=2, size=48, seed=0)
    >>> data = load_detection_data(str(root))
    >>> data.model_classes, data.sizes, data.split
    (['__background__', 'circle', 'square', 'triangle'], {'train': 6, 'val': 2}, 'folders')
    """
    from cnntool.data.boxes import detection_splits, load_boxes
    from cnntool.data.datasets import size_profile
    from cnntool.data.detection import DetectionDataset, split_boxes
    from cnntool.data.loaders import shard_indices

    cache = {"on": True, "off": False}.get(cache, cache) if isinstance(cache, str) else cache
    splits = detection_splits(root)
    if "val" in splits and "train" not in splits:
        raise DatasetError(f"{root} has val/ but no train/ split", hint="add train/, or drop val/ and use --val-split")
    if "train" in splits:
        train = load_boxes(root, split="train")
    else:
        train = load_boxes(root)
    skipped = list(train.skipped)
    if "val" in splits:
        val = load_boxes(root, split="val", classes=train.classes)
        skipped += val.skipped
        split = "folders"
    else:
        train, val = split_boxes(train, val_fraction=val_split, seed=seed)
        split = f"val_split={val_split:g}"
    test = load_boxes(root, split="test", classes=train.classes) if "test" in splits else None
    if test is not None:
        skipped += test.skipped
    sizes = {"train": len(train), "val": len(val), **({"test": len(test)} if test is not None else {})}

    def dataset(boxes, *, training: bool):
        shard = shard_indices(len(boxes), rank=rank, world_size=world_size, seed=seed, shuffle=training)
        if not len(shard):
            return _EmptyDetection(boxes.classes)
        ds = DetectionDataset(boxes.subset(shard), augment=augment if training else None, channels=channels,
                              cache=cache, seed=seed, max_pixels=max_pixels, masks=masks)
        skipped.extend(ds.skipped)
        return ds

    train_ds = dataset(train, training=True)
    val_ds = dataset(val, training=False)
    test_ds = dataset(test, training=False) if test is not None else None
    classes = list(train.classes)
    return TaskData(classes=classes, model_classes=[BACKGROUND, *classes], train=train_ds, val=val_ds, test=test_ds,
                    sizes=sizes, skipped=skipped, split=split, collate=_collate(),
                    cached=bool(getattr(train_ds, "cached", True) and getattr(val_ds, "cached", True)),
                    describe=f"{len(classes)} classes, {train.format} boxes, {train.num_objects} objects, {split}",
                    profile=size_profile([(im.height, im.width) for im in train_ds.images]))


class _EmptyDetection:
    """The shard of a process that got no validation image (more processes than images)."""

    cached = True

    def __init__(self, classes):
        self.classes, self.images = list(classes), []

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


def _collate():
    from cnntool.data.detection import detection_collate

    return detection_collate


def _epoch_sampler():
    """A shuffling sampler that follows the dataset's epoch (the runner calls
    ``dataset.set_epoch``; a batch sampler's inner sampler is not reached by the runner)."""
    from torch.utils.data import DistributedSampler

    class DatasetEpochSampler(DistributedSampler):
        def __iter__(self):
            self.set_epoch(int(getattr(self.dataset, "epoch", self.epoch)))
            return super().__iter__()

    return DatasetEpochSampler


class DetectTask:
    """Object detection (see the module docstring)."""

    name = "detection"
    best = ("val_map50", "max")
    tie = ("val_map", "max")
    epoch_fields = ("train_loss", "val_map50", "val_map", "val_map75", "val_mar100", "val_mask_map")
    default_init = "torch"      # the builder's own: FCOS/RetinaNet priors, Faster R-CNN's heads
    default_arch = "tiny_fcos"
    recipe: dict = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "epochs": 8, "batch_size": 16,
                    "grad_clip": 10.0, "hflip": True, "zoom": 0.0, "rotate": 0.0, "shift": 0.0, "shear": 0.0}
    ignores = ("label_smoothing", "dice_weight", "balance", "mixup", "cutmix", "rotate", "shift", "shear", "vflip",
               "policy", "erasing", "verify")

    def load_data(self, cfg, preprocessing, dist) -> TaskData:
        """The datasets; also sets ``cfg.arch_kwargs``' sizes for ``--imgsz`` (:func:`imgsz_arch_kwargs`):
        the model is built, and its checkpoints record them, after this."""
        cfg.arch_kwargs = {**(cfg.arch_kwargs or {}), **imgsz_arch_kwargs(cfg)}
        self.masks = instance_masks(cfg)
        return load_detection_data(cfg.data, channels=preprocessing.channels, augment=detection_augment(cfg),
                                   val_split=cfg.val_split, seed=cfg.seed, cache=cfg.cache,
                                   max_pixels=cfg.max_pixels, rank=dist.rank, world_size=dist.world_size,
                                   masks=self.masks)

    def batch_sampler(self, dataset, cfg):
        """Training batches of images of similar aspect ratio, reshuffled every epoch."""
        from cnntool.data.detection import GroupedBatchSampler, aspect_ratio_groups

        sampler = _epoch_sampler()(dataset, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed)
        return GroupedBatchSampler(sampler, aspect_ratio_groups(dataset.aspect_ratios()), cfg.batch_size)

    def step(self, cfg, data: TaskData):
        """The sum of the detector's losses; each loss is also summed for the epoch record."""

        def step(model, batch, settings):
            images, targets = batch
            x = settings.inputs(images)
            y = [{k: settings.to_device(t[k]) for k in ("boxes", "labels", "masks") if k in t} for t in targets]
            losses = model(x, y)
            loss = sum(losses.values())
            n = len(images)
            stats = {"loss": loss.detach().double() * n, "count": n}
            stats.update({f"loss_{k.removeprefix('loss_')}": v.detach().double() * n for k, v in losses.items()})
            return loss, stats

        return step

    def evaluator(self, data: TaskData, cfg) -> "DetectEvaluator":
        return DetectEvaluator(data.classes, masks=getattr(self, "masks", False))

    def epoch_metrics(self, sums: dict) -> dict:
        count = max(1.0, sums.get("count", 0.0))
        metrics = {"train_loss": sums.get("loss", 0.0) / count}
        metrics.update({f"train_{k}": v / count for k, v in sums.items() if k.startswith("loss_")})
        return metrics

    def figures(self, out_dir, best: dict, classes, epoch: int) -> None:
        """The best epoch's precision-recall curves (IoU 0.5) and detection confusion matrix."""
        from cnntool.metrics.detection import plot_detection_confusion, plot_pr_curves

        names = [c for c in classes if c != BACKGROUND] if classes and classes[0] == BACKGROUND else list(classes)
        report = report_from_result(best, names)
        if report is not None:
            plot_pr_curves(report, out_dir / PR_CURVE_PNG)
        if best.get("confusion") is not None:
            plot_detection_confusion(np.asarray(best["confusion"]), names, out_dir / CONFUSION_PNG)

    def summary(self, best: dict, last: dict, test: dict | None) -> dict:
        return {"best_val_map50": best.get("map50"), "best_val_map": best.get("map"),
                "val_map50": last.get("val_map50"), "val_map": last.get("val_map"),
                "train_loss": last.get("train_loss"),
                "test_map50": test.get("map50") if test else None, "test_map": test.get("map") if test else None}


def report_from_result(result: dict, classes):
    """A :class:`~cnntool.metrics.detection.DetectionReport` rebuilt from an evaluator's result
    (plain lists after a resume), for the figures; None without precision data."""
    from cnntool.metrics.detection import DetectionReport

    if result.get("precision") is None:
        return None
    nan = float("nan")
    values = {k: (result.get(k) if result.get(k) is not None else nan)
              for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar1", "mar10", "mar100",
                        "mar_small", "mar_medium", "mar_large")}
    return DetectionReport(list(classes), "bbox", **values, per_class=list(result.get("per_class") or []),
                           precision=np.asarray(result["precision"], np.float64),
                           iou_thresholds=np.asarray(result["iou_thresholds"], np.float64),
                           recall_thresholds=np.asarray(result["recall_thresholds"], np.float64),
                           images=int(result.get("images") or 0))


def instance_masks(cfg) -> bool:
    """Whether the run trains an instance-segmentation model (Mask R-CNN: a mask head)."""
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    spec = cfg.init_from if cfg.finetuning else (cfg.arch or DetectTask.default_arch)
    if is_checkpoint_spec(spec):
        from cnntool.models.checkpoint import load_checkpoint
        from cnntool.models.loading import resolve_checkpoint_path

        spec = load_checkpoint(resolve_checkpoint_path(spec))["arch"]
    entry = get_entry(spec.partition(":")[0])
    return any(h.endswith("mask_predictor") for h in entry.extra_heads)


class DetectEvaluator:
    """COCO mAP of a validation pass (pycocotools), every process's images gathered first; for
    instance models also the mask mAP (``mask_map``, ``mask_map50``)."""

    def __init__(self, classes, *, masks: bool = False):
        from cnntool.metrics.detection import DetectionEvaluator

        self.classes = list(classes)
        self.coco = DetectionEvaluator(self.classes, model_labels=True)
        self.segm = DetectionEvaluator(self.classes, iou_type="segm", model_labels=True) if masks else None

    def reset(self) -> None:
        self.coco.reset()
        if self.segm is not None:
            self.segm.reset()

    def update(self, model, batch, settings) -> None:
        images, targets = batch
        with settings.autocast():
            outputs = model(settings.inputs(images))
        predictions = [{k: v.float() if k != "labels" else v for k, v in out.items() if k in
                        ("boxes", "scores", "labels")} for out in outputs]
        self.coco.update(predictions, targets)
        if self.segm is not None:
            with_masks = [{**p, "masks": (out["masks"][:, 0] > 0.5).cpu().numpy()} for p, out in zip(predictions, outputs)]
            self.segm.update(with_masks, [{**t, "masks": t["masks"].numpy().astype(bool)} for t in targets])

    def compute(self, dist=None) -> dict:
        self.coco.gather()
        if not len(self.coco):
            return {"map": None, "map50": None, "map75": None, "images": 0}
        report = self.coco.compute()
        result = {k: v for k, v in report.to_dict().items() if k not in ("iou_type", "max_detections")}
        if self.segm is not None:
            self.segm.gather()
            masks = self.segm.compute()
            result.update({"mask_map": masks.map, "mask_map50": masks.map50})
        result.update({"precision": report.precision, "iou_thresholds": report.iou_thresholds,
                       "recall_thresholds": report.recall_thresholds,
                       "confusion": self.coco.confusion_matrix()})
        return result
