"""Box labels for detection: COCO and YOLO folders read into one validated form, and written back
(COCO annotations, YOLO labels; COCO *results* are in :mod:`cnntool.metrics.detection`).

Conventions (defined here, once, for all of cnntool)
-----------------------------------------------------
- A box is float ``x1, y1, x2, y2`` in pixels of the original, EXIF-upright image; ``x2``/``y2``
  are the right and bottom edges (a box covering pixel columns 0-9 is ``0, ..., 10, ...``).
- A class index is 0-based into :attr:`BoxDataset.classes`.
- **The background offset.** torchvision's detectors are built with
  ``num_classes = len(classes) + 1`` and reserve label 0 for the background, so a dataset class
  ``c`` is model label ``c + BACKGROUND_OFFSET`` and a model label ``L`` means
  ``classes[L - BACKGROUND_OFFSET]``. :func:`to_model_labels` and :func:`from_model_labels` are
  the only places that add or remove it.

Layouts
-------
- COCO: ``ROOT/images/`` and ``ROOT/annotations.json`` (``bbox`` is x, y, w, h in pixels;
  ``categories`` have arbitrary ids, ordered by id into the class list).
- YOLO: ``ROOT/images/`` and ``ROOT/labels/`` (``<image stem>.txt``, one ``class cx cy w h`` line
  per object, normalised to 0-1; ``class x1 y1 x2 y2 ...`` polygon lines too), class names in
  ``data.yaml`` (``names:`` list or ``{index: name}``) or ``classes.txt`` (one per line).
- Splits: ``ROOT/train/``, ``ROOT/val/`` (``test/``) of either shape; for YOLO also
  Ultralytics' ``ROOT/images/train/`` with ``ROOT/labels/train/``.

Validation
----------
Problems with one annotation or one image skip it and are listed in :attr:`BoxDataset.skipped`
as ``(file, reason)``, the reason naming the annotation (COCO id, or YOLO line number) and the
image: a degenerate box (width or height <= 0), a box reaching more than the tolerance outside
its image, an unknown category id or class index, a malformed annotation, line or mask
(:func:`~cnntool.data.segmentations.check_segmentation`), a missing or unreadable image, a YOLO
label file without an image. A box reaching outside its image by at most
``max(BOX_TOLERANCE_PX, BOX_TOLERANCE_FRACTION * side)`` is clipped to the image instead.
Problems with the dataset as a whole are :class:`~cnntool.errors.DatasetError`: no such folder,
unreadable or malformed JSON/YAML structure, duplicate image or category ids, no class names,
no usable image at all. Images without objects are kept: they are negatives.

Examples
--------
>>> import tempfile
>>> from cnntool.data.detection import write_shapes_detection
>>> root = write_shapes_detection(tempfile.mkdtemp(), n_train=3, n_val=2, size=64, seed=0)
>>> train = load_boxes(root, split="train")
>>> train.format, train.classes, len(train), train.images[0].boxes.shape[1]
('coco', ['circle', 'square', 'triangle'], 3, 4)
>>> from_model_labels(to_model_labels(train.images[0].labels)).tolist() == train.images[0].labels.tolist()
True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnntool.data.segmentations import check_segmentation
from cnntool.errors import DatasetError, InputError, one_line, unknown_choice

#: Model label = class index + BACKGROUND_OFFSET (torchvision's label 0 is the background).
BACKGROUND_OFFSET = 1
#: A box may reach this far outside its image and be clipped: the larger of these two.
BOX_TOLERANCE_PX = 2.0
BOX_TOLERANCE_FRACTION = 0.01
#: File names of the layouts.
COCO_FILE = "annotations.json"
YOLO_NAMES_FILES = ("data.yaml", "data.yml", "classes.txt")
SPLITS = ("train", "val", "test")
FORMATS = ("coco", "yolo")


def to_model_labels(labels):
    """Dataset class indices (0-based) -> torchvision labels (background is 0).

    Examples
    --------
    >>> to_model_labels(np.array([0, 2])).tolist(), from_model_labels(np.array([1, 3])).tolist()
    ([1, 3], [0, 2])
    """
    return labels + BACKGROUND_OFFSET


def from_model_labels(labels):
    """torchvision labels -> dataset class indices (``labels`` must exclude the background)."""
    return labels - BACKGROUND_OFFSET


@dataclass
class ImageLabels:
    """One image and its objects.

    Attributes
    ----------
    path : str
        The image file.
    file_name : str
        Its path relative to the images folder, with ``/`` (COCO's ``file_name``).
    width, height : int
        Size of the upright image in pixels.
    boxes : numpy.ndarray
        float64 (N, 4) x1, y1, x2, y2 in pixels.
    labels : numpy.ndarray
        int64 (N,) class indices.
    image_id : int
        COCO's id, or the 1-based position for YOLO.
    iscrowd : numpy.ndarray
        uint8 (N,): 1 for COCO crowd regions (not objects to detect; COCOeval ignores them).
    segmentation : list or None
        Per object, COCO's ``segmentation`` as given (polygons or RLE) or None; None if none has one.
    """

    path: str
    file_name: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    image_id: int
    iscrowd: np.ndarray | None = None
    segmentation: list | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        self.iscrowd = (np.zeros(len(self.labels), np.uint8) if self.iscrowd is None
                        else np.asarray(self.iscrowd, np.uint8).reshape(-1))
        if not len(self.boxes) == len(self.labels) == len(self.iscrowd):
            raise ValueError("boxes, labels and iscrowd differ in length")
        if self.segmentation is not None and len(self.segmentation) != len(self.labels):
            raise ValueError("segmentation and labels differ in length")


@dataclass
class BoxDataset:
    """A detection dataset in memory: classes, images and their objects.

    Attributes
    ----------
    root : str
    format : str
        ``coco`` or ``yolo``: what it was read from.
    classes : list of str
    images : list of ImageLabels
    category_ids : list of int
        COCO category id of each class (``1 ... K`` for YOLO), used when writing COCO files.
    skipped : list of (str, str)
        ``(file, reason)`` for every annotation or image left out.
    """

    root: str
    format: str
    classes: list[str]
    images: list[ImageLabels] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        if not self.category_ids:
            self.category_ids = list(range(1, len(self.classes) + 1))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_objects(self) -> int:
        return int(sum(len(im.labels) for im in self.images))

    def subset(self, indices: Sequence[int]) -> "BoxDataset":
        """The same classes, only the images at ``indices``; ``skipped`` stays with the whole."""
        return BoxDataset(self.root, self.format, list(self.classes), [self.images[int(i)] for i in indices],
                          list(self.category_ids))

    def lookup(self, path: str | os.PathLike) -> ImageLabels | None:
        """The image whose ``file_name`` is the longest tail of ``path``, or None: the ground truth
        of an input image for evaluation, whatever folder it is read from."""
        parts = Path(path).parts
        if not hasattr(self, "_by_name"):
            self._by_name: dict = {}
            for im in self.images:
                self._by_name.setdefault(tuple(im.file_name.split("/")), im)
        for start in range(len(parts)):
            found = self._by_name.get(tuple(parts[start:]))
            if found is not None:
                return found
        return None


# --- validation ------------------------------------------------------------------------------

def check_box(box: Sequence[float], width: int, height: int) -> tuple[np.ndarray | None, str | None]:
    """Validate one x1, y1, x2, y2 box against a ``width`` x ``height`` image.

    Returns ``(clipped box, None)`` when usable (clipped into the image if it reaches out by at
    most the tolerance), else ``(None, reason)``.

    Examples
    --------
    >>> check_box([-1.0, 5, 40, 30], 40, 30)[0].tolist()
    [0.0, 5.0, 40.0, 30.0]
    >>> check_box([10, 10, 10, 20], 40, 30)[1]
    'degenerate box (width 0, height 10)'
    >>> check_box([0, 0, 60, 20], 40, 30)[1]
    'box [0, 0, 60, 20] reaches 20 px outside the 40x30 image (tolerance 2 px)'
    """
    b = np.asarray(box, np.float64)
    if not np.isfinite(b).all():
        return None, f"box {_fmt(b)} is not finite"
    w, h = b[2] - b[0], b[3] - b[1]
    if w <= 0 or h <= 0:
        return None, f"degenerate box (width {w:g}, height {h:g})"
    tolerance = max(BOX_TOLERANCE_PX, BOX_TOLERANCE_FRACTION * max(width, height))
    outside = max(-b[0], -b[1], b[2] - width, b[3] - height)
    if outside > tolerance:
        return None, (f"box {_fmt(b)} reaches {outside:g} px outside the {width}x{height} image "
                      f"(tolerance {tolerance:g} px)")
    clipped = np.clip(b, 0, [width, height, width, height])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None, f"box {_fmt(b)} lies outside the {width}x{height} image"
    return clipped, None


def _fmt(b) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in b) + "]"


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, upright per its EXIF orientation, from its header.

    Raises :class:`~cnntool.errors.InputError` for missing or unreadable files.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "TIFF", "WEBP") else 1
    except FileNotFoundError:
        raise InputError("image file not found") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"unreadable image: {one_line(exc)}") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# --- reading ---------------------------------------------------------------------------------

def detect_format(root: str | os.PathLike) -> str:
    """``coco`` or ``yolo``, from the files in ``root`` (or in its split folders).

    Raises
    ------
    DatasetError
        Neither layout.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".json":
        return "coco"
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    for base in [root, *(root / s for s in SPLITS)]:
        if (base / COCO_FILE).is_file():
            return "coco"
        if (base / "labels").is_dir():
            return "yolo"
    if any((root / name).is_file() for name in YOLO_NAMES_FILES):
        return "yolo"
    raise DatasetError(
        f"{root} is neither a COCO nor a YOLO detection dataset",
        hint=f"COCO: images/ and {COCO_FILE}; YOLO: images/, labels/*.txt and data.yaml or "
             "classes.txt (or train/ and val/ folders of either shape)")


def detection_splits(root: str | os.PathLike) -> list[str]:
    """The split names (``train``, ``val``, ``test``) present under ``root``; [] when ``root``
    is one dataset."""
    root = Path(root)
    if root.is_file():
        return []
    found = []
    for split in SPLITS:
        if ((root / split / COCO_FILE).is_file() or (root / split / "labels").is_dir()
                or ((root / "images" / split).is_dir() and (root / "labels" / split).is_dir())):
            found.append(split)
    return found


def load_boxes(root: str | os.PathLike, *, split: str | None = None, format: str | None = None,
               classes: Sequence[str] | None = None, check_files: bool = True) -> BoxDataset:
    """Read a COCO or YOLO detection dataset (or one split of it), validated.

    Parameters
    ----------
    root : path-like
        The dataset folder, or a COCO JSON file (its images in ``images/`` beside it).
    split : str, optional
        ``train``, ``val`` or ``test``; None reads ``root`` itself.
    format : {"coco", "yolo"}, optional
        Detected from the files when None.
    classes : sequence of str, optional
        The class list to read against (a validation split uses the training split's). Its order
        wins; a class name here that the file lacks has no objects; a name the file has that is
        not here is a :class:`DatasetError`.
    check_files : bool
        Skip (and list) COCO images whose file is missing. False for ground truth whose images
        are elsewhere (evaluation matches predictions by file name).

    Raises
    ------
    DatasetError
    """
    root = Path(root)
    fmt = format or detect_format(root)
    if fmt not in FORMATS:
        raise unknown_choice("dataset format", fmt, FORMATS)
    if split is not None and split not in SPLITS:
        raise unknown_choice("split", split, SPLITS)
    if split is None and not root.is_file() and detection_splits(root) and not (root / "images").is_dir():
        raise DatasetError(f"{root} holds the splits {', '.join(detection_splits(root))}: pick one")
    if fmt == "coco":
        if root.is_file():
            return read_coco(root, root.parent / "images", classes=classes, check_files=check_files)
        base = root / split if split else root
        if not (base / COCO_FILE).is_file():
            raise DatasetError(f"no {COCO_FILE} in {base}", hint=f"expected {base}/images/ and {base}/{COCO_FILE}")
        return read_coco(base / COCO_FILE, base / "images", classes=classes, check_files=check_files)
    images_dir, labels_dir = root / "images", root / "labels"
    if split:
        if (root / "images" / split).is_dir():
            images_dir, labels_dir = root / "images" / split, root / "labels" / split
        else:
            images_dir, labels_dir = root / split / "images", root / split / "labels"
    names = classes if classes is not None else read_class_names(root, split=split)
    return read_yolo(images_dir, labels_dir, names)


def read_class_names(root: str | os.PathLike, *, split: str | None = None) -> list[str]:
    """YOLO class names from ``data.yaml`` (``names:`` list or ``{index: name}``) or
    ``classes.txt``, looked up in the split folder first, then in ``root``.

    Raises
    ------
    DatasetError
        No names file, or one that does not list names.
    """
    root = Path(root)
    for base in ([root / split] if split else []) + [root]:
        for name in YOLO_NAMES_FILES:
            path = base / name
            if path.is_file():
                return _names_from(path)
    raise DatasetError(f"no class names for the YOLO dataset {root}",
                       hint="add data.yaml with 'names: [a, b]' or classes.txt with one name per line")


def _names_from(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: not valid YAML: {one_line(exc)}") from None
        raw = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(raw, dict):
            try:
                keys = sorted(int(k) for k in raw)
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: 'names' keys must be class indices 0, 1, ...") from None
            if keys != list(range(len(keys))):
                raise DatasetError(f"{path}: 'names' indices must run 0 ... {len(keys) - 1} without gaps")
            raw = [raw[k] if k in raw else raw[str(k)] for k in keys]
        if not isinstance(raw, list):
            raise DatasetError(f"{path} has no 'names' list", hint="names: [cat, dog] or names: {0: cat, 1: dog}")
        names = [str(n) for n in raw]
    if not names:
        raise DatasetError(f"{path} lists no class names")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path} lists a class name twice")
    return names


def read_coco(json_path: str | os.PathLike, images_dir: str | os.PathLike, *,
              classes: Sequence[str] | None = None, check_files: bool = True) -> BoxDataset:
    """Read a COCO annotations file whose ``file_name``s are relative to ``images_dir``.

    See :func:`load_boxes` for the parameters and the validation.
    """
    json_path, images_dir = Path(json_path), Path(images_dir)
    where = str(json_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read {where}: {one_line(exc)}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{where} is not valid JSON: {one_line(exc)}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise DatasetError(f"{where} has no {key!r} list",
                               hint="a COCO file has images, annotations and categories")
    by_id: dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        if not (isinstance(cat, dict) and _is_int(cat.get("id")) and isinstance(cat.get("name"), str)):
            raise DatasetError(f"{where}: categories[{i}] needs an integer 'id' and a 'name'")
        if cat["id"] in by_id:
            raise DatasetError(f"{where}: category id {cat['id']} appears twice")
        by_id[int(cat["id"])] = cat["name"]
    if len(set(by_id.values())) != len(by_id):
        raise DatasetError(f"{where}: two categories share a name")
    if not by_id:
        raise DatasetError(f"{where} has no categories")
    ordered = sorted(by_id)
    if classes is None:
        classes, category_ids = [by_id[i] for i in ordered], ordered
    else:
        classes = list(classes)
        extra = sorted(set(by_id.values()) - set(classes))
        if extra:
            raise DatasetError(f"{where} has categories the training data lacks: {', '.join(extra[:5])}",
                               hint="every split must use the same category names")
        ids = {name: cid for cid, name in by_id.items()}
        spare = iter(range(max(by_id) + 1, max(by_id) + 1 + len(classes)))
        category_ids = [ids[name] if name in ids else next(spare) for name in classes]
    index_of = {cid: classes.index(by_id[cid]) for cid in by_id}
    out = BoxDataset(str(json_path.parent), "coco", list(classes), category_ids=list(category_ids))
    images: dict[int, dict] = {}
    for i, entry in enumerate(doc["images"]):
        ok = isinstance(entry, dict) and _is_int(entry.get("id")) and isinstance(entry.get("file_name"), str)
        if not ok:
            out.skipped.append((where, f"images[{i}]: needs an integer 'id' and a 'file_name'"))
            continue
        if entry["id"] in images:
            raise DatasetError(f"{where}: image id {entry['id']} appears twice")
        images[int(entry["id"])] = {"entry": entry, "objects": []}
    for i, ann in enumerate(doc["annotations"]):
        name = f"annotation {ann.get('id', f'#{i}')}" if isinstance(ann, dict) else f"annotations[{i}]"
        if not isinstance(ann, dict) or not _is_int(ann.get("image_id")):
            out.skipped.append((where, f"{name}: needs an integer 'image_id'"))
            continue
        image = images.get(int(ann["image_id"]))
        if image is None:
            out.skipped.append((where, f"{name}: unknown image_id {ann['image_id']}"))
            continue
        image["objects"].append((name, ann))
    for image_id, image in images.items():
        entry = image["entry"]
        path = images_dir / entry["file_name"]
        label = f"image {image_id} ({entry['file_name']})"
        if check_files and not path.is_file():
            out.skipped.append((str(path), f"{label}: image file not found; its {len(image['objects'])} "
                                           f"annotation(s) in {json_path.name} are skipped"))
            continue
        width, height = entry.get("width"), entry.get("height")
        if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            try:
                width, height = image_size(path)
            except InputError as exc:
                out.skipped.append((str(path), f"{label}: no width/height in {json_path.name} and {exc}"))
                continue
        boxes, labels, crowd, segm = [], [], [], []
        for name, ann in image["objects"]:
            cid = ann.get("category_id")
            if not _is_int(cid) or int(cid) not in index_of:
                known = ", ".join(str(c) for c in ordered[:10])
                out.skipped.append((where, f"{name} in {label}: unknown category_id {cid!r} (categories: {known})"))
                continue
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                out.skipped.append((where, f"{name} in {label}: 'bbox' must be [x, y, width, height], got {bbox!r}"))
                continue
            box, reason = check_box([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]], width, height)
            reason = reason or check_segmentation(ann.get("segmentation"), width, height)
            if reason:
                out.skipped.append((where, f"{name} in {label}: {reason}"))
                continue
            boxes.append(box)
            labels.append(index_of[int(cid)])
            crowd.append(1 if ann.get("iscrowd") else 0)
            segm.append(ann.get("segmentation") or None)
        out.images.append(ImageLabels(
            str(path), entry["file_name"], int(width), int(height), np.reshape(boxes, (-1, 4)), labels, image_id,
            crowd, segm if any(s is not None for s in segm) else None))
    _check_not_empty(out, where)
    return out


def read_yolo(images_dir: str | os.PathLike, labels_dir: str | os.PathLike, classes: Sequence[str]) -> BoxDataset:
    """Read YOLO labels for every image under ``images_dir`` (sorted; ``labels_dir`` mirrors it).

    An image without a label file is a negative, as in Ultralytics. See :func:`load_boxes`.
    """
    from cnntool.data.loaders import thread_map
    from cnntool.data.sources import resolve_inputs

    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DatasetError(f"YOLO folder not found: {folder}", hint="a YOLO dataset has images/ and labels/")
    classes = list(classes)
    out = BoxDataset(str(images_dir.parent), "yolo", classes)
    items = resolve_inputs([str(images_dir)])
    sizes = list(thread_map(_try_size, [item.path for item in items], workers=8))
    used: set[str] = set()
    for image_id, (item, size) in enumerate(zip(items, sizes), start=1):
        rel = item.rel.as_posix()
        label_path = labels_dir / item.rel.with_suffix(".txt")
        used.add(os.path.normcase(os.path.abspath(label_path)))
        if isinstance(size, InputError):
            out.skipped.append((item.path, f"{size}; its labels in {label_path} are skipped"))
            continue
        width, height = size
        boxes, labels, polygons = [], [], []
        if label_path.is_file():
            for n, line in enumerate(label_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                obj = _parse_yolo_line(line, width, height, len(classes))
                if obj is None:
                    continue
                if isinstance(obj, str):
                    out.skipped.append((str(label_path), f"line {n} (image {rel}): {obj}"))
                    continue
                boxes.append(obj[1])
                labels.append(obj[0])
                polygons.append(obj[2])
        segm = polygons if any(p is not None for p in polygons) else None
        out.images.append(ImageLabels(item.path, rel, width, height, np.reshape(boxes, (-1, 4)), labels,
                                      image_id, None, segm))
    for item in resolve_inputs([str(labels_dir)], extensions={".txt"}):
        if os.path.normcase(os.path.abspath(item.path)) not in used and item.rel.name != "classes.txt":
            out.skipped.append((item.path, f"label file without an image in {images_dir}"))
    _check_not_empty(out, str(images_dir))
    return out


def _try_size(path: str):
    try:
        return image_size(path)
    except InputError as exc:
        return exc


def _parse_yolo_line(line: str, width: int, height: int, num_classes: int):
    """(class, box, polygon or None), or a reason string, or None for a blank line."""
    fields = line.split()
    if not fields:
        return None
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        return f"expected 'class cx cy w h' (5 fields) or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got {len(fields)}"
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return f"not numbers: {line.strip()[:60]!r}"
    cls = values[0]
    if not (math.isfinite(cls) and cls == int(cls) and 0 <= cls < num_classes):
        return f"unknown class index {fields[0]} (the dataset has {num_classes} classes: 0 ... {num_classes - 1})"
    coords = np.array(values[1:])
    if not np.isfinite(coords).all() or coords.min() < -0.5 or coords.max() > 1.5:
        return f"coordinates must be normalised to [0, 1], got {_fmt(coords[:4])}"
    polygon = None
    if len(fields) == 5:
        cx, cy, w, h = coords * [width, height, width, height]
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    else:
        points = coords.reshape(-1, 2) * [width, height]
        box = [*points.min(axis=0), *points.max(axis=0)]
        polygon = [points.ravel().tolist()]
    checked, reason = check_box(box, width, height)
    if reason:
        return reason
    return int(cls), checked, polygon


def _check_not_empty(dataset: BoxDataset, where: str) -> None:
    if not dataset.images:
        detail = f" ({len(dataset.skipped)} problems, first: {dataset.skipped[0][1]})" if dataset.skipped else ""
        raise DatasetError(f"no usable images in {where}{detail}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- writing ---------------------------------------------------------------------------------

def coco_annotations(dataset: BoxDataset) -> dict:
    """The dataset as a COCO annotations dict (``bbox`` x, y, w, h; ``area`` the mask area when
    there is a segmentation, else the box area; annotation ids 1, 2, ...).

    Examples
    --------
    >>> im = ImageLabels("a.png", "a.png", 40, 30, [[1.0, 2.0, 11.0, 22.0]], [1], image_id=7)
    >>> doc = coco_annotations(BoxDataset(".", "yolo", ["cat", "dog"], [im]))
    >>> doc["annotations"][0]["bbox"], doc["annotations"][0]["category_id"], doc["categories"][1]
    ([1.0, 2.0, 10.0, 20.0], 2, {'id': 2, 'name': 'dog'})
    """
    annotations = []
    for im in dataset.images:
        for j, (box, label) in enumerate(zip(im.boxes, im.labels)):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {"id": len(annotations) + 1, "image_id": int(im.image_id),
                   "category_id": int(dataset.category_ids[int(label)]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                   "iscrowd": int(im.iscrowd[j])}
            segm = im.segmentation[j] if im.segmentation is not None else None
            if segm is not None:
                ann["segmentation"] = segm
                ann["area"] = float(_mask_area(segm, im.height, im.width))
            annotations.append(ann)
    return {
        "images": [{"id": int(im.image_id), "file_name": im.file_name, "width": int(im.width),
                    "height": int(im.height)} for im in dataset.images],
        "annotations": annotations,
        "categories": [{"id": int(cid), "name": name} for cid, name in zip(dataset.category_ids, dataset.classes)],
    }


def _mask_area(segmentation, height: int, width: int) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(to_rle(segmentation, height, width)))


def to_rle(segmentation, height: int, width: int) -> dict:
    """One compressed RLE from COCO polygons, an RLE (compressed or not), or a bool (H, W) mask.

    Examples
    --------
    >>> rle = to_rle([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
    >>> rle["size"], int(__import__("pycocotools.mask").mask.area(rle))
    ([8, 8], 16)
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, np.ndarray):
        return mask_utils.encode(np.asfortranarray(segmentation.astype(np.uint8)))
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def write_coco(dataset: BoxDataset, folder: str | os.PathLike, *, copy_images: bool = True) -> Path:
    """Write ``folder/annotations.json`` (and copy the images into ``folder/images/`` unless
    they are there already). Returns the JSON path."""
    from cnntool.data.writers import atomic_write_json

    folder = Path(folder)
    if copy_images:
        _copy_images(dataset, folder / "images")
    path = folder / COCO_FILE
    atomic_write_json(path, coco_annotations(dataset))
    return path


def write_yolo(dataset: BoxDataset, folder: str | os.PathLike, *, copy_images: bool = True) -> Path:
    """Write YOLO labels: ``folder/labels/<image stem>.txt`` (an empty file for a negative),
    ``folder/data.yaml`` and ``folder/classes.txt``; copy images into ``folder/images/``.

    Crowd regions are left out (YOLO has no such notion); segmentations too (boxes only).
    Coordinates have 6 decimals. Returns ``folder``.
    """
    import yaml

    from cnntool.data.writers import atomic_write_text

    folder = Path(folder)
    if copy_images:
        _copy_images(dataset, folder / "images")
    for im in dataset.images:
        lines = []
        for box, label, crowd in zip(im.boxes, im.labels, im.iscrowd):
            if crowd:
                continue
            x1, y1, x2, y2 = box
            cx, cy = (x1 + x2) / 2 / im.width, (y1 + y2) / 2 / im.height
            lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {(x2 - x1) / im.width:.6f} {(y2 - y1) / im.height:.6f}\n")
        atomic_write_text(folder / "labels" / Path(im.file_name).with_suffix(".txt"), "".join(lines))
    atomic_write_text(folder / "data.yaml", yaml.safe_dump({"names": list(dataset.classes)}, allow_unicode=True))
    atomic_write_text(folder / "classes.txt", "".join(f"{name}\n" for name in dataset.classes))
    return folder


def _copy_images(dataset: BoxDataset, images_dir: Path) -> None:
    from cnntool.data.writers import atomic_write_bytes

    for im in dataset.images:
        target = images_dir / im.file_name
        if target.exists() and os.path.samefile(target, im.path):
            continue
        atomic_write_bytes(target, Path(im.path).read_bytes())
