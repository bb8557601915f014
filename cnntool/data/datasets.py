"""Classification datasets: ImageFolder indexing, seeded stratified splits, an in-memory cache.

The layout (DESIGN section 5) is ``root/<class>/*.png``, or ``root/train``, ``root/val`` (and
``root/test``) each holding class folders. Class names are the folder names, sorted; a class
index is a position in that list.

:class:`ImageDataset` is a map-style dataset for ``torch.utils.data.DataLoader`` (build loaders
with :func:`cnntool.data.loaders.make_loader`). Every image is decoded once when the dataset
is built (threads): corrupt files are dropped then and listed in :attr:`ImageDataset.skipped`,
so training never meets one. Small datasets keep the prepared pixels in memory
(``cache=True``), which makes an epoch a matter of indexing arrays.

A sample is ``(image, label)`` with ``image`` a uint8 array (C, H, W) at the model's input
size; normalisation runs on the whole batch, on the device
(:func:`cnntool.data.transforms.normalize_batch`).

Example::

    from cnntool.data.datasets import index_image_folder, ImageDataset
    from cnntool.data.preprocessing import Preprocessing
    folder = index_image_folder("samples/digits/val")
    pre = Preprocessing((1, 32, 32), (0.5,), (0.5,))
    ds = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=pre.resize)
    image, label = ds[0]          # uint8 (1, 32, 32), int
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnntool.data.preprocessing import decode_mode
from cnntool.errors import DatasetError, InputError

#: Split folder names recognised under a dataset root.
SPLITS = ("train", "val", "test")

#: Datasets whose prepared pixels fit in this many bytes are cached in memory by ``cache="auto"``.
CACHE_BUDGET_BYTES = 2 << 30

#: Images whose original sizes a dataset profile keeps (see :func:`size_profile`).
PROFILE_SAMPLES = 1000
#: Inputs whose median area differs from the training images' by more than this factor (either
#: way) get a warning: the model never saw images like them.
PROFILE_AREA_FACTOR = 16.0

#: Threads used to decode a dataset when it is built.
DEFAULT_DECODE_WORKERS = min(8, os.cpu_count() or 1)


@dataclass
class FolderIndex:
    """An indexed ImageFolder.

    Attributes
    ----------
    root : str
    classes : list of str
        Sorted class folder names.
    paths : list of str
        Image files, sorted by class then relative path.
    labels : list of int
        Class index of each path.
    skipped : list of (str, str)
        ``(path, reason)`` for files that could not be used (for example images directly in
        ``root`` instead of a class folder).
    """

    root: str
    classes: list[str]
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int]) -> "FolderIndex":
        """The same classes, only the samples at ``indices`` (in that order).

        ``skipped`` stays empty: the files it lists belong to the whole index, not to a subset.
        """
        return FolderIndex(self.root, list(self.classes), [self.paths[i] for i in indices],
                           [self.labels[i] for i in indices])


def find_splits(root: str | os.PathLike) -> dict[str, Path]:
    """The split folders present under ``root``: ``{"train": ..., "val": ..., "test": ...}``.

    An empty dict means ``root`` itself is an ImageFolder (split it with
    :func:`stratified_split`).

    Examples
    --------
    >>> find_splits("samples/digits")  # doctest: +SKIP
    {'train': PosixPath('samples/digits/train'), 'val': PosixPath('samples/digits/val')}
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}",
                           hint="give a folder of class folders, or one with train/ and val/")
    return {name: root / name for name in SPLITS if (root / name).is_dir()}


def dataset_task(root: str | os.PathLike) -> str:
    """The task a dataset folder's layout is for (DESIGN section 5), looking at ``root`` or its
    ``train/`` split: ``annotations.json`` (COCO) or ``images/`` + ``labels/`` (YOLO) is detection,
    ``images/`` + ``masks/`` segmentation, class folders of video files video, anything else
    classification.

    Examples
    --------
    >>> dataset_task("samples/digits")
    'classification'
    """
    from cnntool.data.video import VIDEO_EXTENSIONS

    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    if (base / "annotations.json").is_file() or ((base / "images").is_dir() and (base / "labels").is_dir()):
        return "detection"
    if (base / "images").is_dir() and (base / "masks").is_dir():
        return "segmentation"
    if base.is_dir():
        for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in folder.iterdir():
                if path.suffix.lower() in VIDEO_EXTENSIONS:
                    return "video"
            break
    return "classification"


def size_profile(sizes) -> dict | None:
    """What a model's training images looked like, as a checkpoint records it: the median (h, w)
    and the range of the images seen (None without sizes).

    Examples
    --------
    >>> size_profile([(8, 8), (8, 10), (9, 8)])
    {'median_size': [8, 8], 'min_size': [8, 8], 'max_size': [9, 10], 'images': 3}
    """
    sizes = np.asarray(list(sizes), np.int64).reshape(-1, 2)
    if not len(sizes):
        return None
    return {"median_size": [int(v) for v in np.median(sizes, axis=0)], "min_size": sizes.min(0).tolist(),
            "max_size": sizes.max(0).tolist(), "images": int(len(sizes))}


def profile_warning(profile: dict | None, sizes) -> str | None:
    """A warning when inputs are far from the training images a profile describes (median area
    off by more than :data:`PROFILE_AREA_FACTOR`), else None.

    Examples
    --------
    >>> profile_warning(size_profile([(8, 8)] * 5), [(512, 512)] * 3)
    'the inputs (median 512x512) are far larger than the images this model was trained on (median 8x8): its answers may mean little'
    """
    sizes = np.asarray(list(sizes), np.int64).reshape(-1, 2)
    if not profile or not len(sizes) or "median_size" not in profile:
        return None
    seen_h, seen_w = profile["median_size"]
    h, w = (int(v) for v in np.median(sizes, axis=0))
    ratio = (h * w) / max(1, seen_h * seen_w)
    if 1 / PROFILE_AREA_FACTOR <= ratio <= PROFILE_AREA_FACTOR:
        return None
    way = "larger" if ratio > 1 else "smaller"
    return (f"the inputs (median {h}x{w}) are far {way} than the images this model was trained on "
            f"(median {seen_h}x{seen_w}): its answers may mean little")


def find_classes(root: str | os.PathLike) -> list[str]:
    """Sorted names of the class folders in ``root`` (hidden folders skipped)."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def index_image_folder(root: str | os.PathLike, *, classes: Sequence[str] | None = None,
                       extensions: Sequence[str] | None = None, what: str = "images") -> FolderIndex:
    """Index ``root/<class>/**/*.<image ext>`` (sorted; hidden files skipped).

    Parameters
    ----------
    root : path-like
    classes : sequence of str, optional
        The class list to index against (a validation split must use the training split's
        classes). A class folder not in it is a :class:`DatasetError`; a class with no folder
        here simply has no samples.
    extensions : sequence of str, optional
        Which files count (default: images; ``cnntool.data.video.VIDEO_EXTENSIONS`` for video datasets).
    what : str
        What the files are, for messages (``images``, ``videos``).

    Raises
    ------
    DatasetError
        No such folder, no class folders, or no images at all.

    Examples
    --------
    >>> folder = index_image_folder("samples/digits/train")  # doctest: +SKIP
    >>> folder.classes[:3], len(folder)  # doctest: +SKIP
    (['0', '1', '2'], 1437)
    """
    from cnntool.data.sources import resolve_inputs

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    found = find_classes(root)
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DatasetError(f"{root} has class folders the training data lacks: {', '.join(unknown[:5])}",
                               hint="every split must use the same class folder names")
    example = "*.mp4" if what == "videos" else "*.png"
    if not classes:
        raise DatasetError(f"{root} has no class folders",
                           hint=f"put the {what} of each class in their own folder: ROOT/<class>/{example}")
    lookup = {name: i for i, name in enumerate(classes)}
    index = FolderIndex(str(root), list(classes))
    kwargs = {"extensions": extensions} if extensions is not None else {}
    for item in resolve_inputs([str(root)], **kwargs):
        if item.error:  # an unreadable subfolder, a pipe...: listed, never silently dropped
            index.skipped.append((item.path, item.error))
            continue
        parts = item.rel.parts
        if len(parts) < 2:
            index.skipped.append((item.path, "not inside a class folder"))
            continue
        index.paths.append(item.path)
        index.labels.append(lookup[parts[0]])
    if not index.paths:
        raise DatasetError(f"no {what} found under {root}", hint=f"expected ROOT/<class>/{example}")
    return index


def stratified_split(labels: Sequence[int], *, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of sample indices into (train, val), keeping each class's proportion.

    Each class with ``n >= 2`` samples gives ``round(n * val_fraction)`` of them (at least one,
    at most ``n - 1``) to validation; a class with one sample stays in training.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Sorted int64 indices.

    Examples
    --------
    >>> train, val = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], val_fraction=0.25, seed=0)
    >>> len(train), len(val)
    (6, 2)
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val.append(rng.permutation(members)[:take])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


@dataclass
class FolderSplits:
    """The indexed splits of a class-folder dataset, before sharding (:func:`split_class_folders`)."""

    train: FolderIndex
    val: FolderIndex
    test: FolderIndex | None
    split: str                       # "folders" (train/ and val/ given) or "val_split=F"
    skipped: list[tuple[str, str]]   # what indexing every split skipped

    @property
    def sizes(self) -> dict[str, int]:
        sizes = {"train": len(self.train), "val": len(self.val)}
        return sizes if self.test is None else {**sizes, "test": len(self.test)}


def split_class_folders(root: str | os.PathLike, *, val_split: float, seed: int = 0,
                        index: Callable[..., FolderIndex] | None = None) -> FolderSplits:
    """Index ``root``'s ``train/``, ``val/`` (and ``test/``) class folders with ``index``
    (:func:`index_image_folder` by default; the classes are train's), or, without ``val/``, split
    ``root`` (or its ``train/``) by :func:`stratified_split` with ``val_split`` and ``seed``.

    Examples
    --------
    >>> s = split_class_folders("samples/digits", val_split=0.2)  # doctest: +SKIP
    >>> s.split, s.sizes  # doctest: +SKIP
    ('folders', {'train': 1437, 'val': 360})
    """
    index = index or index_image_folder
    splits = find_splits(root)
    if "val" in splits and "train" not in splits:
        raise DatasetError(f"{root} has val/ but no train/ folder", hint="add train/, or drop val/ and use --val-split")
    train = index(splits.get("train", root))
    skipped = list(train.skipped)
    if "val" in splits:
        val = index(splits["val"], classes=train.classes)
        skipped += val.skipped
        split = "folders"
    else:
        train_idx, val_idx = stratified_split(train.labels, val_fraction=val_split, seed=seed)
        train, val = train.subset(train_idx), train.subset(val_idx)
        split = f"val_split={val_split:g}"
    test = index(splits["test"], classes=train.classes) if "test" in splits else None
    if test is not None:
        skipped += test.skipped
    return FolderSplits(train, val, test, split, skipped)


class ImageDataset:
    """Images and labels for a DataLoader: decoded and checked once, optionally cached.

    Parameters
    ----------
    paths : sequence of str
    labels : sequence of int
    classes : sequence of str
    channels : int
        1 decodes grayscale, 3 RGB.
    prepare : callable
        uint8 image -> uint8 (H, W, C): the deterministic part of the transform (for evaluation
        :meth:`Preprocessing.resize`, for training :meth:`TrainTransform.prepare`). Its result is
        what the cache holds.
    augment : TrainTransform, optional
        Random part, applied after ``prepare`` with parameters from :meth:`TrainTransform.draw`,
        drawn from a generator seeded by (``seed``, epoch, first index of the batch): the same
        seed and epoch give the same images, whatever the number of DataLoader workers.
    cache : bool or "auto"
        Keep prepared images in memory; ``auto`` when they fit in :data:`CACHE_BUDGET_BYTES`
        (estimated from the first images).
    verify : bool
        Decode every image once now, dropping the unreadable ones (always done when caching).
    seed : int
    workers : int
        Decode threads.
    max_pixels : int
        Passed to :func:`~cnntool.data.decode.decode_image`.

    Attributes
    ----------
    skipped : list of (str, str)
        ``(path, reason)`` for images dropped because they could not be decoded.
    cached : bool

    Notes
    -----
    Call :meth:`set_epoch` before each epoch (the training loop does). DataLoader workers get a
    copy of the dataset when an epoch's iterator starts, so do not use persistent workers.
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int], classes: Sequence[str], *,
                 channels: int, prepare: Callable[[np.ndarray], np.ndarray], augment=None,
                 cache: bool | str = "auto", verify: bool = True, seed: int = 0,
                 workers: int = DEFAULT_DECODE_WORKERS, max_pixels: int | None = None):
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        self.classes = list(classes)
        self.prepare = prepare
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.mode = decode_mode(channels)
        self.max_pixels = max_pixels  # None: decode_image's default
        self.skipped: list[tuple[str, str]] = []
        self.original_sizes: list[tuple[int, int]] = []  # (h, w) of decoded images, for the data profile
        self._stacked: np.ndarray | None = None
        self._images: list[np.ndarray] | None = None
        probed: list = []
        if cache == "auto":
            cache, probed = self._fits_in_memory(paths)
        self.cached = bool(cache)
        if self.cached or verify:
            self._load_all(list(paths), list(labels), workers, keep=self.cached, probed=probed)
        else:
            self.paths, self.labels = list(paths), list(labels)
        self.targets = np.asarray(self.labels, np.int64)

    # building -------------------------------------------------------------------------------
    def _read(self, path: str) -> np.ndarray:
        from cnntool.data.decode import decode_image

        image = decode_image(path, mode=self.mode, max_pixels=self.max_pixels)
        if len(self.original_sizes) < PROFILE_SAMPLES:  # list.append is atomic: safe from the decode threads
            self.original_sizes.append(image.shape[:2])
        return self.prepare(image)

    def _try_read(self, path: str):
        try:
            return self._read(path)
        except InputError as exc:
            return exc

    def _load_all(self, paths: list[str], labels: list[int], workers: int, *, keep: bool,
                  probed: Sequence = ()) -> None:
        """Decode every path; ``probed`` holds :meth:`_try_read` results of the first paths."""
        import itertools

        from cnntool.data.loaders import thread_map

        self.paths, self.labels = [], []
        images = []
        results = itertools.chain(probed, thread_map(self._try_read, paths[len(probed):], workers=workers))
        for path, label, result in zip(paths, labels, results):
            if isinstance(result, InputError):
                self.skipped.append((path, str(result)))
                continue
            self.paths.append(path)
            self.labels.append(label)
            if keep:
                images.append(result)
        if not keep:
            return
        if images and all(im.shape == images[0].shape for im in images):
            self._stacked = np.stack(images)  # (N, H, W, C): a batch is one fancy index
        else:
            self._images = images

    def _fits_in_memory(self, paths: Sequence[str], probe: int = 8) -> tuple[bool, list]:
        """Whether the prepared images fit the cache budget, estimated from the first ``probe``;
        also the :meth:`_try_read` results of those, for :meth:`_load_all` to reuse."""
        probed = [self._try_read(path) for path in list(paths)[:probe]]
        sizes = [r.nbytes for r in probed if not isinstance(r, InputError)]
        return not sizes or float(np.mean(sizes)) * len(paths) <= CACHE_BUDGET_BYTES, probed

    # access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the next epoch is seeded by (seed, epoch)."""
        self.epoch = int(epoch)

    def prepared(self, index: int) -> np.ndarray:
        """The prepared uint8 (H, W, C) image at ``index`` (from the cache, or decoded now)."""
        if self._stacked is not None:
            return self._stacked[index]
        if self._images is not None:
            return self._images[index]
        return self._read(self.paths[index])

    def __getitem__(self, index: int):
        images, labels = self.__getitems__([index])
        return images[0], int(labels[0])

    def __getitems__(self, indices: Sequence[int]):
        """A whole batch at once: ``(uint8 tensor (N, C, H, W), int64 tensor (N,))``.

        DataLoader calls this instead of ``__getitem__`` per sample (torch >= 2.1), so that a
        cached dataset without augmentation costs one array index per batch.
        """
        import torch

        indices = [int(i) for i in indices]
        if self.augment is None and self._stacked is not None:
            batch = self._stacked[indices]
        else:
            batch = self._augmented(indices) if self.augment is not None else np.stack(
                [self.prepared(i) for i in indices])
        images = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        return images, torch.from_numpy(self.targets[indices])

    def _augmented(self, indices: list[int]) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, indices[0] if indices else 0])
        params = self.augment.draw(rng, len(indices))
        return np.stack([self.augment.apply(self.prepared(i), p) for i, p in zip(indices, params)])
