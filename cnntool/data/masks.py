"""Semantic segmentation data: index masks, image+mask folders, a training dataset, a synthetic set.

Layout (DESIGN section 5)::

    root/classes.txt            optional: one class name per line, in index order
    root/train/images/x.jpg     root/train/masks/x.png     (and root/val/..., root/test/...)
    root/images/x.jpg           root/masks/x.png           (one folder, split with val_fraction)

An image's mask has the same relative path and stem (``images/a/x.jpg`` <-> ``masks/a/x.png``)
and is a lossless single-channel image of class indices: 0..K-1, and 255 for pixels that are
not labelled (not trained on, not scored). **Palette PNGs** (mode ``P``, as PASCAL VOC ships
them) are accepted: their pixel *indices* are the classes and the palette's colours are
ignored, which is what the VOC format means. RGB(A) masks, even grey-looking ones, are refused:
a colour mask needs a colour-to-class table that the file does not carry. JPEG masks are
refused: lossy compression changes class ids at every edge. 16-bit masks are accepted when
every value is below 256.

Every pair is checked when a dataset is built, and each problem names the file: a missing mask,
a mask whose size differs from its image's, a class id out of range, a multi-channel or lossy
mask, an unreadable file (:func:`check_pair`).

:class:`SegmentationDataset` gives ``(uint8 image (C, H, W), int64 mask (H, W))`` at a fixed
training size, with joint augmentation (:class:`SegmentAugment`: torchvision ``transforms.v2``
on ``tv_tensors.Image`` + ``tv_tensors.Mask``, so geometry is shared, masks are resampled with
nearest neighbour, areas brought in from outside the image are 255 in the mask, and colour
jitter touches the image only), batched by ``__getitems__`` like
:class:`~cnntool.data.datasets.ImageDataset`, decoded once and cached in memory when small.

Examples
--------
>>> import tempfile
>>> root = write_shapes_segmentation(tempfile.mkdtemp(), n_train=6, n_val=2, size=32, seed=0)
>>> split = load_segmentation_folder(root)
>>> split.classes, len(split.train), len(split.val)
(['background', 'circle', 'square', 'triangle'], 6, 2)
>>> ds = SegmentationDataset(split.train.images, split.train.masks, split.classes, size=(32, 32))
>>> images, masks = ds.__getitems__([0, 1])
>>> tuple(images.shape), images.dtype, tuple(masks.shape), masks.dtype
((2, 3, 32, 32), torch.uint8, (2, 32, 32), torch.int64)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from cnntool.errors import DatasetError, InputError, one_line

#: Mask value for pixels that are not labelled.
IGNORE_INDEX = 255

#: Lossless formats a mask may be stored in (preferred first: the writer's choice).
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".pgm")

#: Lossy formats that are refused as masks with a clear reason.
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")

#: The class list file at a dataset root.
CLASSES_FILE = "classes.txt"

#: How many problems a DatasetError message lists before "and N more".
LISTED_PROBLEMS = 5


# --- single masks ------------------------------------------------------------------------------

def read_mask(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an index mask: uint8 (H, W) of class indices (255 = not labelled).

    Parameters
    ----------
    path : path-like
        A lossless single-channel image (8-bit, 16-bit with values < 256, 1-bit) or a palette
        PNG (its indices are the classes).
    max_pixels : int, optional
        Refuse larger masks before decoding (default: the decoder's limit).

    Raises
    ------
    InputError
        A one-line reason naming the file: missing, unreadable, lossy, multi-channel, values
        above 255.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.png")
    >>> write_index_mask(path, np.array([[0, 1], [2, 255]], np.uint8))
    >>> read_mask(path).tolist()
    [[0, 1], [2, 255]]
    """
    from PIL import Image, UnidentifiedImageError

    from cnntool.data.limits import DEFAULT_MAX_PIXELS

    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    if suffix in LOSSY_EXTENSIONS:
        raise InputError(f"{path}: {suffix[1:].upper()} masks are lossy (class ids change at every edge); "
                         "save masks as PNG")
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > (max_pixels or DEFAULT_MAX_PIXELS):
                raise InputError(f"{path}: mask of {im.size[0]}x{im.size[1]} pixels is over the pixel limit")
            mode = im.mode
            if mode in ("L", "P", "1"):
                array = np.array(im, dtype=np.uint8)  # P: the indices, not the palette colours
            elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                wide = np.array(im)
                if wide.size and (int(wide.max()) > 255 or int(wide.min()) < 0):
                    raise InputError(f"{path}: mask values reach {int(wide.max())}; class ids must be 0..254 "
                                     "(255 = not labelled)")
                array = wide.astype(np.uint8)
            else:
                channels = len(im.getbands())
                raise InputError(f"{path}: mask has {channels} channels ({mode}); masks must be single-channel "
                                 "class indices (a palette PNG is fine)")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: mask not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read mask: {one_line(exc)}") from None
    return np.ascontiguousarray(array)


def write_index_mask(path: str | os.PathLike, mask: np.ndarray, *, palette: np.ndarray | None = None,
                     **ledger) -> None:
    """Write an index mask atomically as a lossless single-channel image.

    ``path`` ends in ``.png`` (or another of :data:`MASK_EXTENSIONS`); ``mask`` is an integer
    (H, W) array of 0..255. With ``palette`` (uint8 (K, 3)) it is a palette PNG whose colours
    show the classes in any viewer, the indices staying the classes (:func:`read_mask` reads
    them back unchanged).

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.png")
    >>> write_index_mask(path, np.array([[0, 3]]), palette=np.array([[0, 0, 0], [255, 0, 0]]))
    >>> read_mask(path).tolist()
    [[0, 3]]
    """
    from cnntool.data.writers import atomic_write_bytes, write_image

    suffix = Path(path).suffix.lower()
    if suffix not in MASK_EXTENSIONS:
        raise ValueError(f"masks must be written losslessly as one of {', '.join(MASK_EXTENSIONS)}, not {suffix!r}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"an index mask is (H, W), got shape {mask.shape}")
    if mask.dtype.kind not in "uib":
        raise ValueError(f"an index mask holds integers, got {mask.dtype}")
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > 255):
        raise ValueError(f"index mask values must be 0..255, got {int(mask.min())}..{int(mask.max())}")
    mask = np.ascontiguousarray(mask.astype(np.uint8))
    if palette is None:
        write_image(path, mask, **ledger)
        return
    if suffix != ".png":
        raise ValueError("palette masks are PNG files")
    import io

    from PIL import Image

    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    table = np.zeros((256, 3), np.uint8)
    table[:len(colours)] = colours
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())  # the indices as they are
    image.putpalette(table.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue(), **ledger)


def check_mask(mask: np.ndarray, *, image_size: tuple[int, int] | None, num_classes: int | None,
               path: str = "mask", image_path: str = "its image") -> None:
    """Raise :class:`InputError` naming ``path`` when ``mask`` does not fit its image or classes.

    Parameters
    ----------
    mask : numpy.ndarray
        uint8 (H, W).
    image_size : (int, int) or None
        The image's (height, width); None skips the size check.
    num_classes : int or None
        Class ids must be < num_classes or 255; None skips the range check.

    Examples
    --------
    >>> check_mask(np.array([[0, 7]], np.uint8), image_size=(1, 2), num_classes=4, path="m.png")
    Traceback (most recent call last):
    ...
    cnntool.errors.InputError: m.png: class id 7 out of range: 4 classes (ids 0..3, and 255 = not labelled)
    """
    if image_size is not None and tuple(mask.shape[:2]) != tuple(image_size):
        h, w = mask.shape[:2]
        raise InputError(f"{path}: mask is {w}x{h} but {image_path} is {image_size[1]}x{image_size[0]} "
                         "(masks must have their image's size)")
    if num_classes is not None and mask.size:
        values = np.unique(mask)
        bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
        if bad.size:
            raise InputError(f"{path}: class id {int(bad[0])} out of range: {num_classes} classes "
                             f"(ids 0..{num_classes - 1}, and 255 = not labelled)")


# --- class names --------------------------------------------------------------------------------

def read_classes(path: str | os.PathLike) -> list[str]:
    """Class names from a ``classes.txt``: one per line, in index order (blank lines at the end
    ignored; a blank line inside, a duplicate, or more than 255 names is a DatasetError)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {one_line(exc)}") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise DatasetError(f"{path} lists no classes", hint="one class name per line, index 0 first")
    if "" in names:
        raise DatasetError(f"{path}: line {names.index('') + 1} is blank", hint="one class name per line")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{path}: class {duplicates[0]!r} is listed twice")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(f"{path} lists {len(names)} classes; index masks hold at most 255 (0..254)")
    return names


def write_classes(path: str | os.PathLike, names: Sequence[str]) -> None:
    """Write a ``classes.txt`` atomically (one name per line)."""
    from cnntool.data.writers import atomic_write_text

    atomic_write_text(path, "".join(f"{name}\n" for name in names))


# --- folders ------------------------------------------------------------------------------------

@dataclass
class SegmentationIndex:
    """Image/mask pairs of one folder (``images/`` + ``masks/``): ``images`` and ``masks`` paired,
    sorted by the image's relative path; ``problems``: ``(image, reason)`` of images without a
    usable mask file (missing, lossy, ambiguous); ``orphans``: mask files with no image (unused)."""

    root: str
    images: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: Sequence[int]) -> "SegmentationIndex":
        """The pairs at ``indices`` (problems and orphans stay with the whole index)."""
        return SegmentationIndex(self.root, [self.images[i] for i in indices], [self.masks[i] for i in indices])


def index_segmentation_folder(folder: str | os.PathLike) -> SegmentationIndex:
    """Pair ``folder/images/**`` with ``folder/masks/**`` by relative path and stem.

    Raises
    ------
    DatasetError
        ``images/`` or ``masks/`` is missing, or there are no images.

    Examples
    --------
    >>> index_segmentation_folder("no/such/folder")
    Traceback (most recent call last):
    ...
    cnntool.errors.DatasetError: no images/ folder in no/such/folder
    """
    from cnntool.data.sources import resolve_inputs

    folder = Path(folder)
    images_dir, masks_dir = folder / "images", folder / "masks"
    if not images_dir.is_dir():
        raise DatasetError(f"no images/ folder in {folder}",
                           hint="a segmentation dataset has images/ and masks/ with the same file stems")
    if not masks_dir.is_dir():
        raise DatasetError(f"no masks/ folder in {folder}",
                           hint="put one index mask per image in masks/, with the image's stem (x.jpg -> x.png)")
    mask_files: dict[PurePath, list[Path]] = {}
    for path in sorted(masks_dir.rglob("*")):
        rel = path.relative_to(masks_dir)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            mask_files.setdefault(rel.with_suffix(""), []).append(path)
    index = SegmentationIndex(str(folder))
    used: set[PurePath] = set()
    for item in resolve_inputs([str(images_dir)]):
        if not item.ok:
            index.problems.append((item.path, item.error))
            continue
        key = PurePath(item.rel).with_suffix("")
        candidates = mask_files.get(key, [])
        used.add(key)
        lossless = [p for p in candidates if p.suffix.lower() in MASK_EXTENSIONS]
        expected = masks_dir / key.with_suffix(".png")
        if len(lossless) == 1:
            index.images.append(item.path)
            index.masks.append(str(lossless[0]))
        elif len(lossless) > 1:
            index.problems.append((item.path, f"{item.path}: several masks: "
                                   + ", ".join(str(p) for p in lossless)))
        elif candidates:
            index.problems.append((item.path, f"{candidates[0]}: {candidates[0].suffix[1:].upper()} masks are lossy "
                                   "(class ids change at every edge); save masks as PNG"))
        else:
            index.problems.append((item.path, f"{item.path}: no mask (expected {expected})"))
    index.orphans = [str(p) for key, paths in mask_files.items() if key not in used for p in paths]
    if not index.images and not index.problems:
        raise DatasetError(f"no images found in {images_dir}")
    return index


@dataclass
class SegmentationFolder:
    """A segmentation dataset resolved: its splits (``val`` None when there is no ``val/`` and
    no ``val_fraction``; ``test`` None without ``test/``), class names, and where the names came
    from (``classes_from``: ``classes.txt``, ``given``, or ``masks``: made up from the largest id)."""

    root: str
    classes: list[str]
    train: SegmentationIndex
    val: SegmentationIndex | None = None
    test: SegmentationIndex | None = None
    classes_from: str = CLASSES_FILE


def load_segmentation_folder(root: str | os.PathLike, *, classes: Sequence[str] | None = None,
                             val_fraction: float | None = None, seed: int = 0,
                             workers: int | None = None) -> SegmentationFolder:
    """Index a segmentation dataset: ``train/``, ``val/`` (``test/``) or one folder to split.

    Images without a usable mask are in the indexes' ``problems``: pass them to
    :class:`SegmentationDataset` (``problems=``) to report them with the pairs' own.

    Parameters
    ----------
    root : path-like
    classes : sequence of str, optional
        Class names; by default from ``root/classes.txt``, else ``background, class1, ...`` up
        to the largest class id in the masks (which are read to find it).
    val_fraction : float, optional
        Split a single folder (or ``train/`` when there is no ``val/``): this fraction of the
        pairs, chosen with ``seed``, becomes the validation set.
    seed : int
    workers : int, optional
        Threads for reading masks when the class count is inferred.

    Raises
    ------
    DatasetError
        No such folder, no images/ and masks/, or a bad ``classes.txt``.
    """
    from cnntool.data.datasets import find_splits, stratified_split

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}",
                           hint="give a folder with images/ and masks/, or with train/ and val/ holding them")
    splits = {name: path for name, path in find_splits(root).items() if (path / "images").is_dir()}
    if splits and "train" not in splits:
        raise DatasetError(f"{root} has {', '.join(splits)}/ but no train/")
    indexes = {name: index_segmentation_folder(path) for name, path in splits.items()} if splits \
        else {"train": index_segmentation_folder(root)}
    if val_fraction is not None and "val" not in indexes:
        train = indexes["train"]
        train_idx, val_idx = stratified_split([0] * len(train), val_fraction=val_fraction, seed=seed)
        whole = train
        indexes["train"], indexes["val"] = train.subset(train_idx), train.subset(val_idx)
        indexes["train"].problems, indexes["train"].orphans = whole.problems, whole.orphans
    if classes is not None:
        names, source = list(classes), "given"
    elif (root / CLASSES_FILE).is_file():
        names, source = read_classes(root / CLASSES_FILE), CLASSES_FILE
    else:
        largest = _largest_class_id([p for ix in indexes.values() for p in ix.masks], workers=workers)
        names, source = ["background"] + [f"class{i}" for i in range(1, largest + 1)], "masks"
    if not names:
        raise DatasetError("no class names", hint=f"list them in {root / CLASSES_FILE}")
    return SegmentationFolder(str(root), names, indexes["train"], indexes.get("val"), indexes.get("test"), source)


def _largest_class_id(mask_paths: Sequence[str], *, workers: int | None) -> int:
    from cnntool.data.loaders import thread_map

    def largest(path: str) -> int:
        try:
            values = np.unique(read_mask(path))
        except InputError:
            return 0  # reported with the file's name when the dataset is built
        values = values[values != IGNORE_INDEX]
        return int(values.max()) if values.size else 0

    return max(thread_map(largest, mask_paths, workers=workers), default=0)


def check_pair(image_path: str, mask_path: str, *, num_classes: int | None, channels: int = 3,
               max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode an image (uint8 (H, W, 3), or (H, W) for ``channels=1``) and read its uint8 mask,
    checked against each other and the class count; an :class:`InputError` names the file at fault."""
    from cnntool.data.decode import decode_image
    from cnntool.data.preprocessing import decode_mode

    try:
        image = decode_image(image_path, mode=decode_mode(channels), max_pixels=max_pixels)
    except InputError as exc:
        raise InputError(f"{image_path}: {exc}") from None
    mask = read_mask(mask_path, max_pixels=max_pixels)
    check_mask(mask, image_size=image.shape[:2], num_classes=num_classes, path=mask_path, image_path=image_path)
    return image, mask


def problems_error(problems: Sequence[tuple[str, str]], what: str = "segmentation dataset") -> DatasetError:
    """One DatasetError listing the first :data:`LISTED_PROBLEMS` problems (each names its file).

    Examples
    --------
    >>> str(problems_error([("a.png", "a.png: no mask (expected masks/a.png)")]))
    'segmentation dataset: 1 bad image/mask pair: a.png: no mask (expected masks/a.png)'
    """
    reasons = [reason for _, reason in problems]
    shown = "; ".join(reasons[:LISTED_PROBLEMS])
    more = f"; and {len(reasons) - LISTED_PROBLEMS} more" if len(reasons) > LISTED_PROBLEMS else ""
    plural = "s" if len(reasons) != 1 else ""
    return DatasetError(f"{what}: {len(reasons)} bad image/mask pair{plural}: {shown}{more}",
                        hint="fix or remove these files (masks: single-channel PNGs of class ids, 255 = not labelled)")


# --- augmentation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentAugment:
    """Joint image+mask augmentation with torchvision ``transforms.v2``, drawn per sample.

    Geometry (flips, one affine warp for rotation, zoom, shift and shear) is applied to the image
    (bilinear) and the mask (nearest neighbour) with the same parameters; pixels brought in
    from outside the image are 0 in the image and 255 (not labelled) in the mask. Colour
    jitter changes the image only. Output keeps the input size (zoom > 1 crops, < 1 shrinks).

    The default is left-right flips only: on the synthetic shapes set (400 images, 10 epochs)
    flips reached validation mIoU 0.92 at epoch 4 and 0.98 at the end, while adding rotation
    10, zoom 0.75-1.25 and shift 0.1 held it at 0.38 after 3 epochs (objects found, shapes not
    yet told apart). For long runs on photos, ``zoom=(0.5, 2.0)`` (torchvision's reference
    scale range), ``rotate=10`` and 0.2 colour jitter are the usual additions.

    ``hflip``, ``vflip``: probability of mirroring left-right / top-bottom; ``rotate``: degrees,
    uniform in [-rotate, rotate]; ``zoom``: scale factor range; ``shift``: translation as a
    fraction of the size, per axis; ``shear``: degrees; ``brightness``, ``contrast``, ``saturation``,
    ``hue``: torchvision ``ColorJitter`` strengths (0 turns each off).

    Examples
    --------
    >>> import torch
    >>> image = torch.zeros(3, 16, 16, dtype=torch.uint8); mask = torch.ones(16, 16, dtype=torch.uint8)
    >>> out_image, out_mask = SegmentAugment(zoom=(0.5, 0.5))(image, mask)
    >>> tuple(out_mask.shape), sorted(torch.unique(out_mask).tolist())
    ((16, 16), [1, 255])
    """

    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    shear: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    @functools.cached_property
    def transform(self):
        """The ``transforms.v2.Compose`` of this configuration (built once)."""
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        steps = []
        if self.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=self.hflip))
        if self.vflip > 0:
            steps.append(v2.RandomVerticalFlip(p=self.vflip))
        if self.rotate or self.shift or self.shear or tuple(self.zoom) != (1.0, 1.0):
            steps.append(v2.RandomAffine(
                degrees=self.rotate, translate=(self.shift, self.shift) if self.shift else None,
                scale=tuple(self.zoom), shear=self.shear or None, interpolation=v2.InterpolationMode.BILINEAR,
                fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}))
        if self.brightness or self.contrast or self.saturation or self.hue:
            steps.append(v2.ColorJitter(brightness=self.brightness or None, contrast=self.contrast or None,
                                        saturation=self.saturation or None, hue=self.hue or None))
        return v2.Compose(steps)

    def __call__(self, image, mask):
        """Augment one pair: uint8 tensors (C, H, W) and (H, W) in, the same out."""
        from torchvision import tv_tensors

        out_image, out_mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(type(image)), out_mask.as_subclass(type(mask))


# --- the training dataset -----------------------------------------------------------------------

class SegmentationDataset:
    """Image/mask pairs for a DataLoader: checked and decoded once, cached, jointly augmented.

    Parameters
    ----------
    images, masks : sequence of str
        Paired paths.
    classes : sequence of str
        Class names; masks must hold ids below ``len(classes)`` or 255.
    size : (int, int), int or None
        Training size (height, width): images are resized to it (area averaging when shrinking,
        bilinear when growing) and masks with nearest neighbour; the aspect ratio is not kept.
        None keeps each pair's own size (batches then need pairs of one size).
    channels : int
        1 decodes grayscale, 3 RGB.
    augment : SegmentAugment, optional
        Applied per sample after resizing, seeded by (``seed``, epoch, first index of the
        batch): the same seed and epoch give the same batches whatever the worker count.
    cache : bool or "auto"
        Keep the resized pairs in memory; ``auto`` when they fit
        :data:`cnntool.data.datasets.CACHE_BUDGET_BYTES`.
    on_error : {"raise", "skip"}
        A bad pair (:func:`check_pair`) raises one :class:`DatasetError` listing them all
        (``raise``), or is left out and listed in :attr:`skipped` (``skip``).
    problems : sequence of (str, str)
        Problems found while pairing files (:attr:`SegmentationIndex.problems`: images without
        a mask), reported with the pairs' own.
    seed : int
    workers : int, optional
        Decode threads.
    max_pixels : int, optional

    Attributes
    ----------
    skipped : list of (str, str)
        ``(image path, reason)`` of pairs left out (``on_error="skip"``).
    cached : bool
    """

    def __init__(self, images: Sequence[str], masks: Sequence[str], classes: Sequence[str], *,
                 size: tuple[int, int] | int | None, channels: int = 3, augment: SegmentAugment | None = None,
                 cache: bool | str = "auto", on_error: str = "raise", problems: Sequence[tuple[str, str]] = (),
                 seed: int = 0, workers: int | None = None, max_pixels: int | None = None):
        from cnntool.data.datasets import CACHE_BUDGET_BYTES
        from cnntool.data.loaders import thread_map

        if len(images) != len(masks):
            raise ValueError("images and masks differ in length")
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        self.classes = list(classes)
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.channels = channels
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.max_pixels = max_pixels
        self.skipped: list[tuple[str, str]] = list(problems)
        self.images: list[str] = []
        self.masks: list[str] = []
        kept: list[tuple[np.ndarray, np.ndarray]] = []
        bytes_seen = 0
        keep_all = cache is True or cache == "auto"
        for image_path, mask_path, result in zip(images, masks, thread_map(self._try_load, list(zip(images, masks)),
                                                                           workers=workers)):
            if isinstance(result, InputError):
                self.skipped.append((image_path, str(result)))
                continue
            self.images.append(image_path)
            self.masks.append(mask_path)
            if keep_all:
                kept.append(result)
                bytes_seen += result[0].nbytes + result[1].nbytes
                if cache == "auto" and bytes_seen > CACHE_BUDGET_BYTES:
                    keep_all, kept = False, []
        if self.skipped and on_error == "raise":
            raise problems_error(self.skipped)
        self.cached = keep_all
        self._images_cache = self._masks_cache = None
        if self.cached and kept:
            shapes = {pair[0].shape for pair in kept}
            if len(shapes) == 1:
                self._images_cache = np.stack([pair[0] for pair in kept])  # (N, H, W, C)
                self._masks_cache = np.stack([pair[1] for pair in kept])   # (N, H, W)
            else:
                self._images_cache = [pair[0] for pair in kept]
                self._masks_cache = [pair[1] for pair in kept]

    # building -------------------------------------------------------------------------------
    def _load(self, image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
        """Decode, check and resize one pair: uint8 (H, W, C) and (H, W)."""
        import cv2

        from cnntool.data.preprocessing import resize_image

        image, mask = check_pair(image_path, mask_path, num_classes=len(self.classes), channels=self.channels,
                                 max_pixels=self.max_pixels)
        if self.size is not None and image.shape[:2] != self.size:
            height, width = self.size
            image = resize_image(image, (width, height))
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        if image.ndim == 2:
            image = image[:, :, None]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def _try_load(self, pair: tuple[str, str]):
        try:
            return self._load(*pair)
        except InputError as exc:
            return exc

    # access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the next epoch is seeded by (seed, epoch)."""
        self.epoch = int(epoch)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The prepared (resized, not augmented) pair at ``index``: uint8 (H, W, C), (H, W)."""
        if self._images_cache is not None:
            return self._images_cache[index], self._masks_cache[index]
        return self._load(self.images[index], self.masks[index])

    def __getitem__(self, index: int):
        images, masks = self.__getitems__([index])
        return images[0], masks[0]

    def __getitems__(self, indices: Sequence[int]):
        """A whole batch: ``(uint8 tensor (N, C, H, W), int64 tensor (N, H, W))``."""
        import torch

        indices = [int(i) for i in indices]
        if self.augment is None and isinstance(self._images_cache, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(self._images_cache[indices].transpose(0, 3, 1, 2)))
            return images, torch.from_numpy(self._masks_cache[indices].astype(np.int64))
        pairs = [self.pair(i) for i in indices]
        shapes = {p[0].shape for p in pairs}
        if len(shapes) > 1:
            raise ValueError(f"pairs of different sizes in one batch ({sorted(shapes)[:2]}); "
                             "give the dataset a size, or use batches of one")
        tensors = [(torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))), torch.from_numpy(m))
                   for im, m in pairs]
        if self.augment is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, indices[0] if indices else 0])
                                      .generate_state(1)[0]))
                tensors = [self.augment(im, m) for im, m in tensors]
        images = torch.stack([im for im, _ in tensors])
        masks = torch.stack([m for _, m in tensors]).long()
        return images, masks


# --- synthetic data -----------------------------------------------------------------------------

def write_shapes_segmentation(root: str | os.PathLike, *, n_train: int = 400, n_val: int = 100,
                              size: int | tuple[int, int] = 128, seed: int = 0, max_objects: int = 3) -> Path:
    """Write a synthetic segmentation dataset of :func:`cnntool.data.synthetic.shapes_scene`.

    ``root/train/{images,masks}`` and ``root/val/{images,masks}`` (or, with ``n_val=0``,
    ``root/{images,masks}`` for a split by fraction), PNG images ``000000.png``... and index
    masks (0 background, 1 circle, 2 square, 3 triangle), and ``root/classes.txt``. The same
    seed writes the same files.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    from cnntool.data.synthetic import SHAPE_CLASSES, shapes_scene
    from cnntool.data.writers import write_image

    root = Path(root)
    splits = [("train", n_train, 0), ("val", n_val, 1)] if n_val else [(None, n_train, 0)]
    for name, count, stream in splits:
        folder = root / name if name else root
        rng = np.random.default_rng([seed, stream])
        for i in range(count):
            scene = shapes_scene(rng, size=size, max_objects=max_objects)
            write_image(folder / "images" / f"{i:06d}.png", scene.image)
            write_index_mask(folder / "masks" / f"{i:06d}.png", scene.class_mask)
    write_classes(root / CLASSES_FILE, ["background", *SHAPE_CLASSES])
    return root


