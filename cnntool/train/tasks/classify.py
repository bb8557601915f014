"""The classification plug-in of the trainer: ImageFolder data, cross-entropy, accuracy.

Data: class folders, or ``train/``, ``val/`` (and ``test/``) folders of them; without ``val/`` a
seeded, stratified ``--val-split``. Every image is decoded once up front (corrupt files are
skipped and reported); small datasets stay decoded in memory. Under DDP each process decodes only
its own shard. A step is cross-entropy with label smoothing (and mixup/cutmix when asked); the
best checkpoint has the best validation accuracy, ties broken by the lower validation loss.
"""

from __future__ import annotations

import functools

import numpy as np

from cnntool.errors import DatasetError
from cnntool.train.tasks import TaskData


def load_classification_data(root: str, preprocessing, *, augment=None, val_split: float = 0.2, seed: int = 0,
                             cache: str | bool = "auto", verify: bool = True, workers: int | None = None,
                             max_pixels: int | None = None, rank: int = 0, world_size: int = 1) -> TaskData:
    """Index ``root`` and build the train/val(/test) datasets for a model's ``preprocessing``.

    Parameters
    ----------
    root : str
        Class folders, or ``train/`` + ``val/`` (+ ``test/``) folders of class folders. Without
        ``val/``, ``val_split`` of the training images (per class, seeded by ``seed``) validate.
    preprocessing : Preprocessing
        The model's (registry entry, pretrained weights or checkpoint).
    augment : AugmentConfig or None
        Training augmentation; None trains on the evaluation transform.
    cache : bool or "auto" or "on"/"off"
    workers : int, optional
        Decode threads.
    rank, world_size : int
        This process's shard (DDP): it decodes only its own images.

    Examples
    --------
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> data = load_classification_data("samples/digits", Preprocessing((1, 32, 32), (0.5,), (0.5,)))  # doctest: +SKIP
    >>> data.sizes, data.classes[:2]  # doctest: +SKIP
    ({'train': 1437, 'val': 360}, ['0', '1'])
    """
    from cnntool.data.datasets import DEFAULT_DECODE_WORKERS, ImageDataset, split_class_folders
    from cnntool.data.loaders import shard_indices
    from cnntool.data.transforms import TrainTransform

    cache = {"on": True, "off": False}.get(cache, cache) if isinstance(cache, str) else cache
    workers = workers or DEFAULT_DECODE_WORKERS
    folders = split_class_folders(root, val_split=val_split, seed=seed)
    train_index, val_index, test_index, split = folders.train, folders.val, folders.test, folders.split
    classes, skipped, sizes = train_index.classes, list(folders.skipped), folders.sizes

    common = dict(channels=preprocessing.channels, cache=cache, verify=verify, seed=seed, workers=workers,
                  max_pixels=max_pixels)

    def dataset(index, *, train: bool):
        shard = shard_indices(len(index), rank=rank, world_size=world_size, seed=seed, shuffle=train)
        index = index.subset(shard)
        if train and augment is not None:
            transform = TrainTransform(preprocessing, augment)
            return ImageDataset(index.paths, index.labels, classes, prepare=transform.prepare, augment=transform,
                                **common)
        return ImageDataset(index.paths, index.labels, classes, prepare=preprocessing.resize, **common)

    train = dataset(train_index, train=True)
    val = dataset(val_index, train=False)
    test = dataset(test_index, train=False) if test_index is not None else None
    skipped += [*train.skipped, *val.skipped, *(test.skipped if test is not None else [])]
    if len(train) == 0:
        raise DatasetError(f"no readable training images under {root}")
    if len(val) == 0 and sizes["val"] > 0 and world_size == 1:
        raise DatasetError(f"no readable validation images under {root}",
                           hint="add images to val/, or raise --val-split")
    from cnntool.data.datasets import size_profile

    return TaskData(classes=classes, model_classes=list(classes), train=train, val=val, test=test, sizes=sizes,
                    skipped=skipped, split=split, cached=train.cached and val.cached,
                    describe=f"{len(classes)} classes, {split}", profile=size_profile(train.original_sizes))


class ClassifyTask:
    """Image classification (see the module docstring)."""

    name = "classification"
    best = ("val_accuracy", "max")
    tie = ("val_loss", "min")
    epoch_fields = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    default_init = "auto"
    default_arch = None  # no one size fits all: --arch is required
    recipe: dict = {"hflip": False}  # otherwise TrainConfig's defaults are the classification recipe
    ignores = ("dice_weight",)  # every other option applies

    def load_data(self, cfg, preprocessing, dist) -> TaskData:
        return load_classification_data(
            cfg.data, preprocessing, augment=cfg.resolved_aug(self.recipe) if cfg.augment else None,
            val_split=cfg.val_split, seed=cfg.seed, cache=cfg.cache, verify=cfg.verify, max_pixels=cfg.max_pixels,
            rank=dist.rank, world_size=dist.world_size)

    def sampler(self, data: TaskData, cfg):
        """``--balance sampler``: a class-balanced training order."""
        if cfg.balance != "sampler":
            return None
        from cnntool.data.loaders import BalancedSampler

        return BalancedSampler(data.train.targets, seed=cfg.seed)

    def step(self, cfg, data: TaskData):
        """Cross-entropy with label smoothing (and class weights with ``--balance weights``);
        mixup/cutmix on the normalised batch when asked."""
        import torch
        import torch.nn.functional as F

        from cnntool.train.augment import Mixer

        weight = None
        if cfg.balance == "weights":
            counts = np.bincount(np.asarray(data.train.targets), minlength=len(data.model_classes)).astype(np.float64)
            inverse = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
            weight = torch.tensor(inverse, dtype=torch.float32)
        loss_fn = functools.partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
        mixer = Mixer(cfg.mixup, cfg.cutmix)
        mixer = mixer if mixer.active else None

        def step(model, batch, settings):
            nonlocal loss_fn, weight
            if weight is not None:  # moved to the device once
                loss_fn, weight = functools.partial(loss_fn, weight=settings.to_device(weight)), None
            images, labels = batch
            x, y = settings.inputs(images), settings.to_device(labels)
            if mixer is not None:
                x, y_a, y_b, lam = mixer(x, y)
            logits = model(x)
            if mixer is not None:
                loss = lam * loss_fn(logits, y_a) + (1.0 - lam) * loss_fn(logits, y_b)
            else:
                loss = loss_fn(logits, y)
            n = y.shape[0]
            return loss, {"loss": loss.detach().double() * n, "correct": (logits.detach().argmax(1) == y).sum(),
                          "count": n}

        return step

    def evaluator(self, data: TaskData, cfg) -> "ClassifyEvaluator":
        return ClassifyEvaluator(len(data.model_classes))

    def epoch_metrics(self, sums: dict) -> dict:
        count = max(1.0, sums.get("count", 0.0))
        return {"train_loss": sums.get("loss", 0.0) / count, "train_accuracy": sums.get("correct", 0.0) / count}

    def figures(self, out_dir, best: dict, classes, epoch: int) -> None:
        from cnntool.metrics.plots import plot_confusion

        if best.get("confusion") is not None:
            plot_confusion(np.asarray(best["confusion"]), classes, out_dir / "confusion.png",
                           title=f"validation, epoch {epoch}")

    def summary(self, best: dict, last: dict, test: dict | None) -> dict:
        return {"best_val_accuracy": best.get("accuracy"), "val_accuracy": last.get("val_accuracy"),
                "val_loss": last.get("val_loss"), "train_loss": last.get("train_loss"),
                "test_accuracy": test["accuracy"] if test else None}


class ClassifyEvaluator:
    """Loss (plain cross-entropy, no smoothing, so recipes compare), accuracy and the confusion
    matrix over a validation pass, summed across processes."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.loss_sum = 0.0
        self.truth: list = []
        self.predicted: list = []

    def update(self, model, batch, settings) -> None:
        import torch.nn.functional as F

        images, labels = batch
        x, y = settings.inputs(images), settings.to_device(labels)
        with settings.autocast():
            logits = model(x)
        self.loss_sum = self.loss_sum + F.cross_entropy(logits.float(), y, reduction="sum").double()
        self.truth.append(y)
        self.predicted.append(logits.argmax(1))

    def compute(self, dist=None) -> dict:
        import torch

        from cnntool.metrics.classification import confusion_matrix
        from cnntool.train.distributed import all_reduce_sum

        # counted on the CPU: CUDA's bincount has no deterministic kernel for --deterministic
        y_true = torch.cat(self.truth).cpu().numpy() if self.truth else np.zeros(0, np.int64)
        y_pred = torch.cat(self.predicted).cpu().numpy() if self.predicted else np.zeros(0, np.int64)
        counts = torch.from_numpy(confusion_matrix(y_true, y_pred, num_classes=self.num_classes))
        loss = torch.as_tensor(self.loss_sum, dtype=torch.float64).reshape(1).cpu()
        if dist is not None and dist.enabled:
            device = self.truth[0].device if self.truth else torch.device("cpu")
            packed = torch.cat([loss, counts.double().flatten()]).to(device)
            all_reduce_sum(packed, dist)
            loss, counts = packed[:1].cpu(), packed[1:].cpu().round().long().reshape(counts.shape)
        matrix = counts.numpy().astype(np.int64)
        total = int(matrix.sum())
        return {"loss": float(loss.item()) / max(1, total), "accuracy": float(np.trace(matrix)) / max(1, total),
                "images": total, "confusion": matrix}
