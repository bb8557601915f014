"""Detection training data: a map-style dataset over :class:`~cnntool.data.boxes.BoxDataset`,
augmentation that moves boxes with the pixels, a list collate and aspect-ratio-grouped batches.

A sample is ``(image, target)``: ``image`` a uint8 tensor (C, H, W) at the image's own size
(torchvision detectors resize and normalise internally; give them ``image.float() / 255``),
``target`` a dict with ``boxes`` float32 (N, 4) x1, y1, x2, y2 in that image's pixels,
``labels`` int64 (N,) **model labels** (class index + :data:`~cnntool.data.boxes.BACKGROUND_OFFSET`)
and ``image_id`` (int). COCO crowd regions are left out of training targets, as torchvision's
reference scripts do. Images are decoded once when the dataset is built (threads); unreadable
ones, and ones whose decoded size differs from their labels' width and height, are dropped and
listed in :attr:`DetectionDataset.skipped`. Small datasets stay in memory (``cache="auto"``).

Augmentation (:class:`DetectionAugment`) is torchvision's ``transforms.v2`` on ``tv_tensors``
(an ``Image`` and its ``BoundingBoxes``), so geometry moves the boxes with the pixels;
``SanitizeBoundingBoxes`` then drops boxes that became degenerate or left the image. Its
randomness is seeded by (seed, epoch, index): the same run gives the same samples whatever the
number of DataLoader workers.

Batches of images of different sizes are lists (:func:`detection_collate`); grouping images of
similar aspect ratio into batches (:class:`GroupedBatchSampler`, as torchvision's
``references/detection/group_by_aspect_ratio.py``) keeps the padding the model adds small.

:func:`write_shapes_detection` writes a COCO or YOLO dataset of synthetic shapes with exact
truth, for tests, demos and benchmarks.

Examples
--------
>>> import tempfile
>>> from cnntool.data.boxes import load_boxes
>>> root = write_shapes_detection(tempfile.mkdtemp(), n_train=4, n_val=0, size=64, seed=0)
>>> ds = DetectionDataset(load_boxes(root, split="train"), augment=DetectionAugment(), workers=1)
>>> image, target = ds[0]
>>> image.dtype, tuple(image.shape), sorted(target)
(torch.uint8, (3, 64, 64), ['boxes', 'image_id', 'labels'])
>>> bool((target["labels"] >= 1).all())
True
>>> loader = make_detection_loader(ds, batch_size=2, train=True)
>>> images, targets = next(iter(loader))
>>> len(images), len(targets)
(2, 2)
"""

from __future__ import annotations

import bisect
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnntool.data.boxes import FORMATS, BoxDataset, ImageLabels, to_model_labels, to_rle, write_coco, write_yolo
from cnntool.data.datasets import CACHE_BUDGET_BYTES, DEFAULT_DECODE_WORKERS
from cnntool.data.preprocessing import decode_mode
from cnntool.errors import DatasetError, InputError, unknown_choice

#: Pixel value of the canvas RandomZoomOut adds around an image (the grey YOLO pads with).
ZOOM_OUT_FILL = 114


@dataclass(frozen=True)
class DetectionAugment:
    """Random augmentation of an image with its boxes (torchvision ``transforms.v2``).

    Attributes
    ----------
    hflip : float
        Probability of a horizontal flip.
    zoom_out : float
        Probability of ``RandomZoomOut``: the image is placed on a canvas up to
        ``zoom_out_max`` times its size (filled with :data:`ZOOM_OUT_FILL`), so objects get
        smaller once the model resizes it.
    zoom_out_max : float
    crop : float
        Probability of ``RandomIoUCrop`` (SSD's zoom-in: a crop keeping objects with a minimum
        IoU); images without objects are never cropped.
    crop_scale : (float, float)
        The crop's area as a fraction of the image's, at least and at most (each side is drawn
        between the square roots); the default is ``RandomIoUCrop``'s sides of 0.3 to 1.
    crop_ratio : (float, float)
        The crop's width / height, at least and at most (``RandomIoUCrop``'s default 0.5 to 2).
    color : float
        Brightness, contrast and saturation jitter (``ColorJitter`` factors in
        ``[1 - color, 1 + color]``); 0 turns it off.
    hue : float
        Hue jitter (``ColorJitter``'s ``hue``, at most 0.5).

    Examples
    --------
    >>> DetectionAugment(hflip=0.0).active, DetectionAugment().active
    (False, True)
    """

    hflip: float = 0.5
    zoom_out: float = 0.0
    zoom_out_max: float = 1.5
    crop: float = 0.0
    crop_scale: tuple[float, float] = (0.09, 1.0)
    crop_ratio: tuple[float, float] = (0.5, 2.0)
    color: float = 0.0
    hue: float = 0.0

    def __post_init__(self):
        for name in ("hflip", "zoom_out", "crop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability between 0 and 1")
        if self.zoom_out_max < 1.0:
            raise ValueError("zoom_out_max must be at least 1")
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError("crop_scale must be (min, max) with 0 < min <= max <= 1")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError("crop_ratio must be (min, max) with 0 < min <= max")
        if not 0.0 <= self.color < 1.0 or not 0.0 <= self.hue <= 0.5:
            raise ValueError("color must lie in [0, 1) and hue in [0, 0.5]")

    @property
    def active(self) -> bool:
        return bool(self.hflip or self.zoom_out or self.crop or self.color or self.hue)

    def transforms(self, channels: int = 3):
        """The ``(photometric and flip/zoom, crop)`` v2 transforms; the crop part is applied only
        to images with boxes. Grayscale images get no saturation or hue jitter."""
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        steps = []
        colour = channels == 3
        if self.color or (self.hue and colour):
            steps.append(v2.ColorJitter(brightness=self.color, contrast=self.color,
                                        saturation=self.color if colour else 0, hue=self.hue if colour else 0))
        if self.hflip:
            steps.append(v2.RandomHorizontalFlip(self.hflip))
        if self.zoom_out:
            steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: ZOOM_OUT_FILL, "others": 0},
                                          side_range=(1.0, self.zoom_out_max), p=self.zoom_out))
        crop = None
        if self.crop:
            (low, high), (narrow, wide) = self.crop_scale, self.crop_ratio
            crop = v2.RandomApply([v2.RandomIoUCrop(min_scale=math.sqrt(low), max_scale=math.sqrt(high),
                                                    min_aspect_ratio=narrow, max_aspect_ratio=wide)], p=self.crop)
        return v2.Compose(steps) if steps else None, crop


class DetectionDataset:
    """Images and their boxes for a DataLoader: decoded and checked once, optionally cached.

    Parameters
    ----------
    data : BoxDataset
        From :func:`cnntool.data.boxes.load_boxes`.
    augment : DetectionAugment, optional
        None for evaluation.
    channels : int
        1 decodes grayscale, 3 RGB.
    cache : bool or "auto"
        Keep decoded images in memory; ``auto`` when they fit in
        :data:`~cnntool.data.datasets.CACHE_BUDGET_BYTES` (estimated from the labels' sizes).
    seed : int
    workers : int
        Decode threads.
    max_pixels : int, optional
        Passed to :func:`~cnntool.data.decode.decode_image`.
    masks : bool
        Targets also hold each object's mask (``masks``: uint8 (N, H, W)), from the COCO
        ``segmentation`` (polygons or RLE), for instance segmentation (Mask R-CNN); augmentation
        moves them with the pixels. An object without a segmentation gets its box as the mask.

    Attributes
    ----------
    classes : list of str
    images : list of ImageLabels
        The usable images, in order (index ``i`` is sample ``i``).
    skipped : list of (str, str)
        ``(path, reason)`` for images dropped here (the label layer's own list is ``data.skipped``).
    cached : bool
    """

    def __init__(self, data: BoxDataset, *, augment: DetectionAugment | None = None, channels: int = 3,
                 cache: bool | str = "auto", seed: int = 0, workers: int = DEFAULT_DECODE_WORKERS,
                 max_pixels: int | None = None, masks: bool = False):
        from cnntool.data.loaders import thread_map

        self.masks = masks
        self.classes = list(data.classes)
        self.category_ids = list(data.category_ids)
        self.augment = augment if augment is not None and augment.active else None
        self.seed, self.epoch = seed, 0
        self.mode = decode_mode(channels)
        self.max_pixels = max_pixels
        self.skipped: list[tuple[str, str]] = []
        if cache == "auto":
            pixels = sum(im.width * im.height for im in data.images)
            cache = pixels * (1 if channels == 1 else 3) <= CACHE_BUDGET_BYTES
        self.cached = bool(cache)
        self.images, self._pixels = [], []
        for im, result in zip(data.images, thread_map(self._try_read, data.images, workers=workers)):
            if isinstance(result, InputError):
                self.skipped.append((im.path, str(result)))
                continue
            self.images.append(im)
            if self.cached:
                self._pixels.append(result)
        if not self.images:
            first = f": {self.skipped[0][0]}: {self.skipped[0][1]}" if self.skipped else ""
            raise DatasetError(f"no usable images in {data.root}{first}")
        self._transforms = self.augment.transforms(channels) if self.augment is not None else (None, None)

    def _read(self, im) -> np.ndarray:
        from cnntool.data.decode import decode_image

        pixels = decode_image(im.path, mode=self.mode, max_pixels=self.max_pixels)
        if pixels.shape[:2] != (im.height, im.width):
            raise InputError(f"decoded as {pixels.shape[1]}x{pixels.shape[0]} pixels but its labels say "
                             f"{im.width}x{im.height}")
        return pixels

    def _try_read(self, im):
        try:
            pixels = self._read(im)
        except InputError as exc:
            return exc
        return pixels if self.cached else True

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the next epoch is seeded by (seed, epoch)."""
        self.epoch = int(epoch)

    def aspect_ratios(self) -> np.ndarray:
        """Width / height of every image (from the labels; no decoding)."""
        return np.array([im.width / im.height for im in self.images], np.float64)

    def pixels(self, index: int) -> np.ndarray:
        """The decoded uint8 (H, W) or (H, W, C) image at ``index``."""
        return self._pixels[index] if self.cached else self._read(self.images[index])

    def target(self, index: int) -> dict:
        """The un-augmented target of sample ``index`` (see the module docstring)."""
        import torch

        im = self.images[index]
        keep = im.iscrowd == 0
        target = {"boxes": torch.as_tensor(im.boxes[keep], dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.as_tensor(to_model_labels(im.labels[keep]), dtype=torch.int64),
                  "image_id": int(im.image_id)}
        if self.masks:
            target["masks"] = torch.from_numpy(object_masks(im)[keep])
        return target

    def __getitem__(self, index: int):
        import torch

        pixels = self.pixels(index)
        image = torch.from_numpy(np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[:, :, None]))
        image = image.permute(2, 0, 1).contiguous()
        target = self.target(index)
        if self.augment is not None:
            image, target = self._augmented(index, image, target)
        return image, target

    def _augmented(self, index: int, image, target: dict):
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        main, crop = self._transforms
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
        sample = {"image": tv_tensors.Image(image), "boxes": boxes, "labels": target["labels"]}
        if "masks" in target:
            sample["masks"] = tv_tensors.Mask(target["masks"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]))
            if main is not None:
                sample = main(sample)
            if crop is not None and len(sample["boxes"]):
                sample = crop(sample)
            sample = v2.SanitizeBoundingBoxes()(sample)
        augmented = {"boxes": sample["boxes"].as_subclass(torch.Tensor).float(), "labels": sample["labels"],
                     "image_id": target["image_id"]}
        if "masks" in sample:
            augmented["masks"] = sample["masks"].as_subclass(torch.Tensor)
        return sample["image"].as_subclass(torch.Tensor), augmented


def object_masks(im) -> np.ndarray:
    """uint8 (N, H, W) masks of an image's objects from its COCO ``segmentation`` (polygons or
    RLE, via pycocotools); an object without one gets its box.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> im = SimpleNamespace(width=6, height=4, boxes=np.array([[1.0, 1.0, 3.0, 3.0]]), segmentation=None)
    >>> int(object_masks(im)[0].sum())
    4
    """
    from cnntool.data.boxes import to_rle

    n = len(im.boxes)
    out = np.zeros((n, im.height, im.width), np.uint8)
    segmentations = im.segmentation if im.segmentation is not None else [None] * n
    for i, (box, seg) in enumerate(zip(im.boxes, segmentations)):
        if seg:
            from pycocotools import mask as mask_utils

            out[i] = mask_utils.decode(to_rle(seg, im.height, im.width))
        else:
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            out[i, y1:y2, x1:x2] = 1
    return out


def split_boxes(data: BoxDataset, *, val_fraction: float, seed: int = 0) -> tuple[BoxDataset, BoxDataset]:
    """Seeded random split of a detection dataset into (train, val) for ``--val-split``: ``round(n *
    val_fraction)`` images (at least one, at most ``n - 1``) go to validation, each part in its
    original order.

    Examples
    --------
    >>> from cnntool.data.boxes import ImageLabels
    >>> images = [ImageLabels(f"{i}.png", f"{i}.png", 8, 8, [], [], image_id=i) for i in range(10)]
    >>> train, val = split_boxes(BoxDataset(".", "coco", ["a"], images), val_fraction=0.2, seed=0)
    >>> len(train), len(val), sorted(im.image_id for im in train.images + val.images) == list(range(10))
    (8, 2, True)
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    if len(data) < 2:
        raise DatasetError(f"{data.root} has {len(data)} image(s): too few to split off validation images")
    take = min(len(data) - 1, max(1, round(len(data) * val_fraction)))
    val = np.sort(np.random.default_rng(seed).permutation(len(data))[:take])
    return data.subset(np.setdiff1d(np.arange(len(data)), val)), data.subset(val)


def detection_collate(batch):
    """``[(image, target), ...]`` -> ``(list of images, list of targets)``: detection batches
    keep images of different sizes apart (the model pads them).

    Examples
    --------
    >>> detection_collate([("a", {"n": 1}), ("b", {"n": 2})])
    (['a', 'b'], [{'n': 1}, {'n': 2}])
    """
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def aspect_ratio_groups(aspect_ratios: Sequence[float], *, k: int = 3) -> np.ndarray:
    """Group ids by aspect ratio: ``2k + 2`` bins with edges ``2 ** linspace(-1, 1, 2k + 1)``
    (torchvision's ``create_aspect_ratio_groups``); ``k=0`` splits at 1 (portrait / landscape).

    Examples
    --------
    >>> aspect_ratio_groups([0.4, 1.0, 1.33, 1.5, 3.0], k=1).tolist()
    [0, 2, 2, 2, 3]
    """
    bins = sorted((2.0 ** np.linspace(-1, 1, 2 * k + 1)).tolist()) if k > 0 else [1.0]
    return np.array([bisect.bisect_right(bins, float(r)) for r in aspect_ratios], np.int64)


class GroupedBatchSampler:
    """Batches whose samples share a group (an aspect-ratio bin), from any sampler's order.

    Indices come from ``sampler`` (shuffled and sharded as it decides); each group fills its own
    batch, yielded when full. What is left at the end is yielded in the sampler's order, in
    batches of ``batch_size`` (the last smaller unless ``drop_last``), so an epoch still has
    ``ceil(n / batch_size)`` batches and sees every sample once.

    Examples
    --------
    >>> batches = list(GroupedBatchSampler(range(6), [0, 1, 0, 1, 0, 1], batch_size=2))
    >>> batches
    [[0, 2], [1, 3], [4, 5]]
    """

    def __init__(self, sampler, group_ids: Sequence[int], batch_size: int, *, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sampler, self.group_ids = sampler, list(group_ids)
        self.batch_size, self.drop_last = batch_size, drop_last

    def __iter__(self):
        buffers: dict[int, list[int]] = defaultdict(list)
        position: dict[int, int] = {}
        for index in self.sampler:
            position[int(index)] = len(position)
            group = buffers[self.group_ids[index]]
            group.append(int(index))
            if len(group) == self.batch_size:
                yield list(group)
                group.clear()
        rest = sorted((i for group in buffers.values() for i in group), key=position.get)
        for start in range(0, len(rest), self.batch_size):
            batch = rest[start:start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def make_detection_loader(dataset: DetectionDataset, *, batch_size: int, train: bool = False, seed: int = 0,
                          workers: int = 0, rank: int = 0, world_size: int = 1, group_factor: int | None = 3,
                          pin_memory: bool = False):
    """A DataLoader of ``(list of images, list of targets)`` batches, sharded across processes.

    Parameters
    ----------
    dataset : DetectionDataset
    batch_size : int
        Per process.
    train : bool
        Shuffle (``DistributedSampler`` seeded by ``seed``; call ``loader.batch_sampler.set_epoch``
        and ``dataset.set_epoch`` each epoch). Otherwise keep the order, each process taking
        every ``world_size``-th image, without padding.
    workers : int
        DataLoader worker processes (0: load in this process).
    group_factor : int or None
        Training batches group images by aspect ratio with :func:`aspect_ratio_groups` ``k``;
        None turns grouping off. Images all of one shape form one group anyway.
    pin_memory : bool
    """
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    from cnntool.data.loaders import ShardSampler, _seed_worker

    if train:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        groups = (aspect_ratio_groups(dataset.aspect_ratios(), k=group_factor) if group_factor is not None
                  else np.zeros(len(dataset), np.int64))
        batches = GroupedBatchSampler(sampler, groups, batch_size)
    else:
        batches = BatchSampler(ShardSampler(len(dataset), rank=rank, world_size=world_size), batch_size, False)
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=detection_collate,
                      pin_memory=pin_memory, worker_init_fn=_seed_worker if workers else None,
                      persistent_workers=False)


# --- synthetic data with known truth ---------------------------------------------------------

def write_shapes_detection(root: str | os.PathLike, *, n_train: int, n_val: int, size: int = 160,
                           format: str = "coco", seed: int = 0, ext: str = ".jpg") -> Path:
    """Write a detection dataset of :func:`cnntool.data.synthetic.shapes_scene` images (1-3
    circles, squares and triangles on a textured background) under ``root/train`` and
    ``root/val`` (none when ``n_val`` is 0).

    Parameters
    ----------
    root : path-like
    n_train, n_val : int
        Images per split.
    size : int
        Image side in pixels.
    format : {"coco", "yolo"}
        COCO also stores each object's exact mask as a compressed RLE ``segmentation``.
    seed : int
        The same seed writes the same dataset.
    ext : str
        Image format: ``.jpg`` (quality 95; small, slightly blurred colours, like photos) or
        ``.png`` (lossless).

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    from cnntool.data.loaders import thread_map
    from cnntool.data.synthetic import SHAPE_CLASSES, shapes_scene
    from cnntool.data.writers import write_image

    if format not in FORMATS:
        raise unknown_choice("format", format, FORMATS)
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        if count <= 0:
            continue
        scenes = [shapes_scene(rng, size=size) for _ in range(count)]
        names = [f"{split}_{i:05d}{ext}" for i in range(count)]
        list(thread_map(lambda job: write_image(root / split / "images" / job[0], job[1].image), zip(names, scenes)))
        images = [ImageLabels(str(root / split / "images" / name), name, size, size, sc.boxes, sc.labels, i + 1,
                              None, [to_rle(m, size, size) for m in sc.masks] if format == "coco" else None)
                  for i, (name, sc) in enumerate(zip(names, scenes))]
        for im in images:
            for rle in im.segmentation or []:
                rle["counts"] = rle["counts"].decode("ascii")
        data = BoxDataset(str(root / split), format, list(SHAPE_CLASSES), images)
        (write_coco if format == "coco" else write_yolo)(data, root / split, copy_images=False)
    return root
