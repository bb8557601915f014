"""Segment images: a class for every pixel (semantic models, classical methods) and objects
(instance models), drawn with a legend, written as index masks, and evaluated against masks.

The stage takes pixel samples (:mod:`cnntool.data.pixels`: image files decoded on threads, or a
video's frames) and gives one :class:`Segmentation` per sample:

- :func:`segment_samples`: a semantic model from :func:`cnntool.models.loading.load`
  (``task="segmentation"``: torchvision's FCN, DeepLabV3 and LR-ASPP, cnntool's U-Net, or a
  checkpoint). Images are resized by the model's :class:`~cnntool.data.preprocessing.Preprocessing`
  on the decode threads (torchvision's segmenters: the shorter side to 520, any aspect ratio;
  the U-Net: stretched to its size), the arg-max class is taken at the model's input size and
  warped back onto the ORIGINAL image (``Sample.size``) by nearest neighbour
  (:meth:`~cnntool.data.preprocessing.Preprocessing.map_to_image`): the mask is a uint8 (H, W)
  array of the photo's size whatever the sample kept for drawing, so memory is one byte a pixel
  (a 12-megapixel photo: 12 MB; the class scores never exist at that size).
- :func:`classical_samples`: the model-free methods of :mod:`cnntool.infer.classical` (otsu,
  watershed, slic, felzenszwalb, kmeans) on the pixels the sample holds (the CLI keeps them
  whole); a sample kept downscaled (``Sample.scale`` < 1) has its masks enlarged to the original
  size and its boxes and areas given in original pixels. Regions are its instances.
- :func:`segmentation_from_detections`: Mask R-CNN's instance masks, as
  :func:`cnntool.infer.detect.detect_samples` gives them, made a :class:`Segmentation` (the
  command line composes the two stages; this module does not import the detection stage).

Records (:func:`segmentation_record`): one per image, ``path``, ``mask`` (the index-mask PNG,
with ``-o``), ``fractions`` (fraction of the image's pixels per class, classes present only),
``instances`` (how many objects: regions of a classical method, detections of an instance
model; null for semantic models) and ``error``; :func:`instance_records` adds one record per
object (``object``, ``label``, ``class_id``, ``score``, ``box`` x1, y1, x2, y2 in pixels,
``area`` in pixels).

Evaluation (:class:`MaskEvaluation`) accumulates ONE confusion matrix over every evaluated pixel
of every image (pixels whose true label is 255 are not counted) and reports, from it, per-class
IoU and Dice, pixel accuracy, and mIoU: the mean IoU over the classes present (in the truth or
the predictions) -- the PASCAL VOC / Cityscapes convention (:mod:`cnntool.metrics.segmentation`).
segmentation_models_pytorch's ``iou_score(..., reduction="macro")`` with its default
``zero_division=1.0`` counts a class absent from both truth and predictions as IoU 1.0: on four
classes of which three score 0.5 and one is absent, smp says 0.625 where cnntool says 0.500.
Instance models are scored with mask mAP by pycocotools (:class:`InstanceEvaluation`).

Examples
--------
>>> from pathlib import PurePath
>>> from cnntool.data.pixels import Sample
>>> image = np.zeros((40, 60), np.uint8); image[10:30, 10:25] = 200; image[12:28, 35:50] = 200
>>> sample, seg = next(classical_samples([Sample("a.png", PurePath("a.png"), image)], method="otsu"))
>>> seg.classes, seg.fractions, len(seg.instances)
(['background', 'foreground'], {'background': 0.775, 'foreground': 0.225}, 2)
>>> record = segmentation_record(sample, seg)
>>> record["instances"], record["fractions"]["foreground"]
(2, 0.225)
>>> draw_segmentation(image, seg).shape  # a legend of the classes beside a small picture
(40, 205, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from cnntool.errors import InputError, UsageError, one_line
from cnntool.infer.detect import GroundTruthEvaluation

#: Mask value of pixels with no class (outside what the model saw; "not labelled" in truth masks).
IGNORE = 255
#: Decimals of fractions, boxes and scores in records.
DECIMALS = 6
BOX_DECIMALS = 1
#: Where ``-o DIR`` puts each input's index mask and overlay (mirroring the inputs below them).
MASKS_DIR, OVERLAYS_DIR = "masks", "overlays"
#: The files ``--eval`` writes into ``-o``.
EVALUATION_FILES = ("evaluation.json", "confusion.png")


@dataclass
class Segmentation:
    """What a segmenter found in one image.

    Attributes
    ----------
    mask : numpy.ndarray
        uint8 (H, W) class indices at the original image's size; 255: no class.
    classes : list of str
        Names of the class indices (class 0 is the background, left unpainted in pictures).
    fractions : dict
        Fraction of the image's pixels in each class, every class in order (255 pixels count
        in the total, in no class).
    instances : list of dict or None
        One per object (``label``, ``class_id`` its index in ``classes``, ``score`` (None for
        classical regions), ``box`` x1, y1, x2, y2, ``area`` in pixels); None for semantic
        models, which find no objects.
    instance_mask : numpy.ndarray or None
        int32 (H, W): 0 for no object, ``i + 1`` for ``instances[i]``; None with no instances.
    """

    mask: np.ndarray
    classes: list[str]
    fractions: dict
    instances: list[dict] | None = None
    instance_mask: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.mask.shape[0]), int(self.mask.shape[1])


def class_fractions(mask: np.ndarray, classes: Sequence[str]) -> dict:
    """Fraction of ``mask``'s pixels in each class (255 and other values count in no class).

    Examples
    --------
    >>> class_fractions(np.array([[0, 1], [1, 255]], np.uint8), ["bg", "cat", "dog"])
    {'bg': 0.25, 'cat': 0.5, 'dog': 0.0}
    """
    counts = np.bincount(np.asarray(mask, np.uint8).ravel(), minlength=256)
    total = max(1, int(np.asarray(mask).size))
    return {name: float(counts[i]) / total for i, name in enumerate(classes)}


# --- semantic models -------------------------------------------------------------------------------

def segment_samples(loaded, samples: Iterable, *, device, batch_size: int = 4) -> Iterator[tuple]:
    """``(sample, Segmentation or None)`` for every sample, in order (None: the sample failed;
    its ``error`` says why), with a semantic model (see the module docstring).

    ``loaded`` is a segmentation model from :func:`cnntool.models.loading.load` on ``device`` in
    eval mode. A sample's ``input`` (prepared on the decode threads with
    ``loaded.preprocessing.resize``) is used when set, else its ``image`` is prepared here.
    Images of different working sizes share a batch and run in groups of one size (on a CPU, one
    image per forward pass, which is faster there).

    Examples
    --------
    >>> import torch
    >>> from pathlib import PurePath
    >>> from cnntool.data.pixels import Sample
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> from cnntool.models.unet import unet
    >>> loaded = type("Loaded", (), {"model": unet(num_classes=3, depth=2, width=4).eval(), "classes": ["a", "b", "c"],
    ...                              "preprocessing": Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3)})()
    >>> sample, seg = next(segment_samples(loaded, [Sample("x", PurePath("x"), np.zeros((50, 70, 3), np.uint8))],
    ...                                    device=torch.device("cpu")))
    >>> seg.mask.shape, seg.mask.dtype, round(sum(seg.fractions.values()), 6)
    ((50, 70), dtype('uint8'), 1.0)
    """
    import torch

    from cnntool.data.pixels import batches
    from cnntool.device import amp_dtype, channels_last_for_inference, use_amp

    pre = loaded.preprocessing
    classes = list(loaded.classes)
    if len(classes) > IGNORE:
        raise UsageError(f"the model has {len(classes)} classes; index masks hold at most {IGNORE}")
    model = loaded.model
    device = torch.device(device)
    amp = use_amp(device, None)
    channels_last_for_inference(model, device)
    mean, std = pre.scale_and_offset()
    with torch.inference_mode():
        for batch in batches(samples, batch_size, prepare=pre.resize, stack=False):
            good = batch.good
            predictions: dict[int, np.ndarray] = {}
            failure = None
            if good:
                try:
                    predictions = _predict(model, batch.inputs, device, mean, std, amp and amp_dtype(device))
                except Exception as exc:  # the model failed on this batch: its samples fail, the run goes on
                    failure = f"the model failed: {type(exc).__name__}: {one_line(exc)}"
            row = 0
            for sample in batch.samples:
                if not sample.ok:
                    yield sample, None
                    continue
                index, row = row, row + 1
                if failure is not None or predictions.get(index) is None:
                    reason = failure or "the model's output is not a number (NaN/inf): its weights or the input are broken"
                    yield dataclasses.replace(sample, error=reason), None
                    continue
                size = tuple(sample.size or sample.input.shape[:2])
                mask = pre.map_to_image(predictions[index], size, nearest=True, fill=IGNORE)
                yield sample, Segmentation(mask, classes, class_fractions(mask, classes))


def shape_groups(shapes: Sequence[tuple], *, stack: bool) -> list[list[int]]:
    """Indices of the inputs that share a forward pass: those of one shape when ``stack`` (a GPU),
    else one each (a CPU, where one image at a time is faster: LR-ASPP at 520 px took 5.6 s
    against 6.2 s in batches of 4 for 24 photos, the class scores of one image staying in cache).

    Examples
    --------
    >>> shape_groups([(3, 4, 5), (3, 5, 4), (3, 4, 5)], stack=True), shape_groups([(3, 4, 5)] * 2, stack=False)
    ([[0, 2], [1]], [[0], [1]])
    """
    groups: dict[tuple, list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape) if stack else (i,), []).append(i)
    return list(groups.values())


def _predict(model, inputs: list, device, mean, std, amp) -> dict[int, np.ndarray | None]:
    """Arg-max class maps (uint8, the inputs' size) by index into ``inputs``; None for a
    non-finite output. Inputs of one shape share a forward pass."""
    import contextlib

    import torch

    from cnntool.data.transforms import normalize_batch
    from cnntool.models.tasks import dense_logits

    out: dict[int, np.ndarray | None] = {}
    for indices in shape_groups([x.shape for x in inputs], stack=device.type != "cpu"):
        x = torch.from_numpy(np.ascontiguousarray(np.stack([inputs[i] for i in indices]))).to(device)
        x = normalize_batch(x, mean, std)
        with torch.autocast(device_type=device.type, dtype=amp) if amp else contextlib.nullcontext():
            logits = dense_logits(model(x)).float()
        if logits.shape[-2:] != x.shape[-2:]:  # a model whose scores are coarser than its input
            logits = torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # max over classes, not argmax: several times faster over the class axis of an NCHW tensor
        # on a CPU; a NaN or inf score shows in the maximum
        values, labels = logits.max(1)
        finite = torch.isfinite(values).flatten(1).all(1).cpu().tolist()
        labels = labels.to(torch.uint8).cpu().numpy()
        for k, i in enumerate(indices):
            out[i] = labels[k] if finite[k] else None
    return out


# --- classical methods and instance models ----------------------------------------------------------

def classical_samples(samples: Iterable, *, method: str, **options) -> Iterator[tuple]:
    """``(sample, Segmentation or None)`` for every sample with a classical method (see
    :func:`cnntool.infer.classical.segment_classical` for ``method`` and ``options``).

    The method and its options are checked once, before the first sample (:class:`UsageError`);
    an image a method cannot take (too small) becomes that sample's error.

    Examples
    --------
    >>> from pathlib import PurePath
    >>> from cnntool.data.pixels import Sample
    >>> next(classical_samples([Sample("a", PurePath("a"), np.zeros((8, 8), np.uint8))], method="kmeans", k=1))
    Traceback (most recent call last):
    ...
    cnntool.errors.UsageError: k must be >= 2, got 1
    """
    from cnntool.infer.classical import segment_classical

    classical_classes(method, **options)  # bad names and values fail here, once

    def run() -> Iterator[tuple]:
        for sample in samples:
            if not sample.ok:
                yield sample, None
                continue
            try:
                result = segment_classical(sample.image, method=method, **options)
            except ValueError as exc:
                yield dataclasses.replace(sample, error=f"cannot segment it: {one_line(exc)}"), None
                continue
            yield sample, _from_classical(result, sample)

    return run()


def classical_classes(method: str, **options) -> list[str]:
    """The class names a classical method's masks use (``slic`` and ``felzenszwalb``: one,
    ``segment``); :class:`UsageError` for an unknown method or a bad option.

    Examples
    --------
    >>> classical_classes("kmeans", k=4)
    ['background', 'cluster1', 'cluster2', 'cluster3']
    """
    from cnntool.infer.classical import segment_classical

    probe = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return list(segment_classical(probe, method=method, **options).class_names)


def _from_classical(result, sample) -> Segmentation:
    import cv2

    mask, labels = result.class_mask, result.labels
    scale = float(sample.scale or 1.0)
    size = tuple(sample.size or mask.shape[:2])
    if mask.shape[:2] != size:
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        labels = cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    names = list(result.class_names)
    instances = [{"label": names[r.class_id], "class_id": r.class_id, "score": None,
                  "box": [round(v / scale, BOX_DECIMALS) for v in r.box], "area": int(round(r.area / scale ** 2))}
                 for r in result.regions]
    return Segmentation(mask, names, class_fractions(mask, names), instances, labels.astype(np.int32))


def segmentation_from_detections(detections) -> Segmentation:
    """An instance model's detections (anything with ``boxes``, ``labels``, ``scores``, ``names``,
    ``masks`` and ``size``, as :class:`cnntool.infer.detect.Detections`) as a
    :class:`Segmentation`: classes ``background`` + the model's, each pixel the class of the best
    scoring mask covering it, objects in score order.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> masks = np.zeros((2, 4, 6), bool); masks[0, :2, :3] = True; masks[1, 1:, 2:] = True
    >>> d = SimpleNamespace(boxes=np.array([[0, 0, 3, 2], [2, 1, 6, 4]]), labels=np.array([1, 0]),
    ...                     scores=np.array([0.9, 0.6]), names=["cat", "dog"], masks=masks, size=(4, 6))
    >>> seg = segmentation_from_detections(d)
    >>> seg.mask.tolist()[1], seg.instance_mask.tolist()[1], seg.instances[1]["area"]
    ([2, 2, 2, 1, 1, 1], [1, 1, 1, 2, 2, 2], 12)
    """
    names = ["background", *detections.names]
    size = tuple(detections.size) if detections.size is not None else tuple(detections.masks.shape[-2:])
    mask = np.zeros(size, np.uint8)
    instance = np.zeros(size, np.int32)
    n = len(detections.labels)
    masks = detections.masks if detections.masks is not None else np.zeros((n, *size), bool)
    for i in range(n - 1, -1, -1):  # the best scoring painted last, on top
        mask[masks[i]] = int(detections.labels[i]) + 1
        instance[masks[i]] = i + 1
    instances = [{"label": names[int(c) + 1], "class_id": int(c) + 1, "score": round(float(s), DECIMALS),
                  "box": [round(float(v), BOX_DECIMALS) for v in box], "area": int(m.sum())}
                 for box, c, s, m in zip(detections.boxes, detections.labels, detections.scores, masks)]
    return Segmentation(mask, names, class_fractions(mask, names), instances, instance)


# --- records and pictures ---------------------------------------------------------------------------

def segmentation_record(sample, segmentation: Segmentation | None, *, mask_path=None, overlay_path=None) -> dict:
    """The image's record (see the module docstring; ``overlay`` the picture written with
    ``-o``); ``error`` set when the sample failed.

    Examples
    --------
    >>> from pathlib import PurePath
    >>> from cnntool.data.pixels import Sample
    >>> segmentation_record(Sample("a.png", PurePath("a.png"), error="unreadable"), None)
    {'path': 'a.png', 'mask': None, 'overlay': None, 'fractions': None, 'instances': None, 'error': 'unreadable'}
    """
    where = {"frame": sample.frame, "time": sample.time} if sample.frame is not None else {}
    if segmentation is None or not sample.ok:
        return {"path": sample.path, **where, "mask": None, "overlay": None, "fractions": None, "instances": None,
                "error": sample.error or "no segmentation was made for this input"}
    fractions = {k: round(v, DECIMALS) for k, v in segmentation.fractions.items() if v > 0}
    count = len(segmentation.instances) if segmentation.instances is not None else None
    return {"path": sample.path, **where, "mask": str(mask_path) if mask_path is not None else None,
            "overlay": str(overlay_path) if overlay_path is not None else None,
            "fractions": fractions, "instances": count, "error": None}


def instance_records(sample, segmentation: Segmentation | None) -> list[dict]:
    """One record per object of ``segmentation`` (``object`` is its value in the instance mask).

    Examples
    --------
    >>> from pathlib import PurePath
    >>> from cnntool.data.pixels import Sample
    >>> seg = Segmentation(np.zeros((2, 2), np.uint8), ["bg"], {"bg": 1.0},
    ...                    [{"label": "cat", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "area": 1}])
    >>> instance_records(Sample("a.png", PurePath("a.png")), seg)
    [{'path': 'a.png', 'object': 1, 'label': 'cat', 'class_id': 0, 'score': 0.5, 'box': [0, 0, 1, 1], 'area': 1, 'error': None}]
    """
    if segmentation is None or not segmentation.instances:
        return []
    where = {"frame": sample.frame, "time": sample.time} if sample.frame is not None else {}
    return [{"path": sample.path, **where, "object": i, **instance, "error": None}
            for i, instance in enumerate(segmentation.instances, start=1)]


def draw_segmentation(image: np.ndarray, segmentation: Segmentation) -> np.ndarray:
    """``image`` with its classes painted (class 0, the background, left as it is), every
    object's outline, Mask R-CNN's boxes with class and score, and a legend of the classes
    present with their share of the image (and objects per class); a new RGB uint8 array.

    ``image`` may be the original or a downscaled copy (a sample kept for drawing): the masks are
    resized to it by nearest neighbour.

    Examples
    --------
    >>> seg = Segmentation(np.array([[0, 1], [1, 1]], np.uint8), ["background", "cat"], {"background": 0.25, "cat": 0.75})
    >>> image = np.zeros((2, 2, 3), np.uint8)
    >>> out = draw_segmentation(image, seg)
    >>> out.shape[2], int(image.max())  # the input is left as it was
    (3, 0)
    """
    import cv2

    from cnntool.data.draw import draw_boxes, draw_legend, overlay_mask, palette, text_style

    h, w = image.shape[:2]
    mask, instance = segmentation.mask, segmentation.instance_mask
    if mask.shape != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        if instance is not None:
            instance = cv2.resize(instance, (w, h), interpolation=cv2.INTER_NEAREST)
    colours = palette(len(segmentation.classes))
    canvas = overlay_mask(image, mask, palette=colours, alpha=0.5, ignore=IGNORE, background=0)
    if instance is not None and instance.any():
        from skimage.segmentation import find_boundaries

        edges = find_boundaries(instance, mode="inner") & (instance > 0)
        width = text_style(canvas.shape).line_width
        if width > 1:
            edges = cv2.dilate(edges.astype(np.uint8), np.ones((width, width), np.uint8)).astype(bool)
        canvas[edges] = (255, 255, 255)
    instances = segmentation.instances or []
    if instances and all(i.get("score") is not None for i in instances):  # an instance model's detections
        sy, sx = h / segmentation.size[0], w / segmentation.size[1]
        boxes = np.array([i["box"] for i in instances], np.float64).reshape(-1, 4) * [sx, sy, sx, sy]
        ids = [i["class_id"] for i in instances][::-1]  # the best drawn last, on top
        canvas = draw_boxes(canvas, boxes[::-1], labels=ids, names=segmentation.classes,
                            scores=[i["score"] for i in instances][::-1], colours=colours[ids])
    counts = np.bincount(np.asarray([i["class_id"] for i in instances], np.int64), minlength=len(segmentation.classes))
    shown = [k for k, name in enumerate(segmentation.classes) if segmentation.fractions.get(name, 0) > 0]
    names = [f"{segmentation.classes[k]} {100 * segmentation.fractions[segmentation.classes[k]]:.1f}%"
             + (f", {counts[k]} objects" if counts[k] else "") for k in shown]
    return draw_legend(canvas, names, colours[shown]) if shown else canvas


# --- files under -o -----------------------------------------------------------------------------------

def planned_files(rel: PurePath, out_dir) -> tuple[Path, Path]:
    """``(index mask, overlay)`` of an input under ``out_dir``: ``masks/<rel>.png`` and
    ``overlays/<rel>`` (the input's extension when OpenCV writes it).

    Examples
    --------
    >>> [str(p) for p in planned_files(PurePath("a/x.jpg"), "out")]
    ['out/masks/a/x.png', 'out/overlays/a/x.jpg']
    """
    from cnntool.data.writers import image_extension, output_path

    return (output_path(PurePath(MASKS_DIR) / rel, out_dir, ext="png"),
            output_path(PurePath(OVERLAYS_DIR) / rel, out_dir, ext=image_extension(PurePath(rel))))


def write_segmentation(sample, segmentation: Segmentation, files: tuple[Path, Path], recipe) -> None:
    """Write one input's index mask (a palette PNG: the indices are the classes, the colours
    show them; 255 white) and its overlay, both recorded in the output ledger."""
    from cnntool.data.draw import palette
    from cnntool.data.masks import write_index_mask
    from cnntool.data.pixels import MAX_DRAW_SIDE, fit_within
    from cnntool.data.writers import check_not_input, write_image

    mask_path, overlay_path = files
    for path in files:
        check_not_input(path, sample.path)
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(segmentation.classes)] = palette(len(segmentation.classes))
    colours[IGNORE] = 255
    write_index_mask(mask_path, segmentation.mask, palette=colours, recipe=recipe, source=sample.path)
    picture, _ = fit_within(sample.image, MAX_DRAW_SIDE)
    write_image(overlay_path, draw_segmentation(picture, segmentation), recipe=recipe, source=sample.path)


# --- evaluation -------------------------------------------------------------------------------------

class MaskEvaluation:
    """Predicted masks scored against true masks (``--eval``): one confusion matrix over all pixels.

    Parameters
    ----------
    root : path
        A folder of masks, or a dataset folder with ``masks/`` (``images/`` beside it). An input
        is matched to the mask with its relative path (``x/a.jpg`` -> ``x/a.png``), else to the one
        mask with its stem.
    classes : sequence of str
        The predictions' classes; true masks hold indices into them (and 255).

    Examples
    --------
    >>> import tempfile
    >>> from cnntool.data.masks import write_index_mask
    >>> from cnntool.data.pixels import Sample
    >>> root = Path(tempfile.mkdtemp()); write_index_mask(root / "a.png", np.array([[0, 1], [1, 255]]))
    >>> ev = MaskEvaluation(root, ["bg", "fg"])
    >>> seg = Segmentation(np.array([[0, 1], [0, 0]], np.uint8), ["bg", "fg"], {})
    >>> ev.add(Sample("in/a.jpg", PurePath("a.jpg"), size=(2, 2)), seg)["miou"]
    0.5
    >>> s = ev.summary(); s["miou"], s["pixel_accuracy"], s["evaluated"]  # the 255 pixel is not counted
    (0.5, 0.6666666666666666, 1)
    """

    def __init__(self, root, classes: Sequence[str]):
        from cnntool.data.masks import CLASSES_FILE, MASK_EXTENSIONS, read_classes

        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"--eval {root}: no such folder", hint="a folder of masks, or one with images/ and masks/")
        self.root = root / "masks" if (root / "masks").is_dir() else root
        self.classes = list(classes)
        self.matrix = np.zeros((len(self.classes),) * 2, np.int64)
        self.images = self.errors = 0
        self.truth_classes = None
        for folder in (root, self.root):
            if (folder / CLASSES_FILE).is_file():
                self.truth_classes = read_classes(folder / CLASSES_FILE)
                break
        self.by_stem: dict[str, list[Path]] = {}
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() in MASK_EXTENSIONS and not any(p.startswith(".") for p in path.parts[-2:]):
                self.by_stem.setdefault(path.stem, []).append(path)
        if not self.by_stem:
            raise UsageError(f"--eval {root}: no masks found", hint="masks are PNG files of class ids, named as the images")

    def names_differ(self) -> bool:
        """The truth's ``classes.txt`` names other classes than the predictions' (compared by index)."""
        return self.truth_classes is not None and self.truth_classes != self.classes

    def truth_path(self, sample) -> Path:
        from cnntool.data.masks import MASK_EXTENSIONS

        rel = PurePath(sample.rel)
        for ext in MASK_EXTENSIONS:
            path = self.root / rel.parent / f"{rel.stem}{ext}"
            if path.is_file():
                return path
        found = self.by_stem.get(rel.stem, [])
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"{len(found)} masks named {rel.stem} in {self.root} ({found[0]}, {found[1]}): which is its truth?")
        raise InputError(f"no mask for {sample.path} in {self.root} (expected {self.root / rel.parent / rel.stem}.png)")

    def add(self, sample, segmentation: Segmentation) -> dict:
        """Score one image; returns ``truth``, ``miou`` and ``pixel_accuracy`` for its record.

        Raises
        ------
        InputError
            Its mask is missing, unreadable, lossy, multi-channel, of another size than the
            image, or holds a class id out of range (the message names the file).
        """
        from cnntool.data.masks import check_mask, read_mask
        from cnntool.metrics.segmentation import confusion_matrix, mean_iou, pixel_accuracy

        self.images += 1
        try:
            path = self.truth_path(sample)
            truth = read_mask(path)
            check_mask(truth, image_size=tuple(segmentation.size), num_classes=len(self.classes), path=str(path),
                       image_path=sample.path)
        except InputError:
            self.errors += 1
            raise
        predicted = np.where(segmentation.mask == IGNORE, 0, segmentation.mask)  # no class: counted as background
        matrix = confusion_matrix(truth, predicted, num_classes=len(self.classes))
        self.matrix += matrix
        return {"truth": str(path), "miou": mean_iou(matrix), "pixel_accuracy": pixel_accuracy(matrix)}

    def summary(self) -> dict:
        """The summary record: :func:`~cnntool.metrics.segmentation.segmentation_report` of the
        matrix (``miou``, ``pixel_accuracy``, ``mean_dice``, ``per_class``...), image counts,
        the matrix (rows: true class) and the mIoU convention."""
        from cnntool.metrics.segmentation import segmentation_report

        report = segmentation_report(self.matrix, self.classes)
        return {"images": self.images, "evaluated": self.images - self.errors, "errors": self.errors, **report,
                "miou_convention": "mean over classes present in truth or predictions (absent classes left out)",
                "classes": list(self.classes), "confusion": self.matrix.tolist()}


def evaluation_lines(summary: dict) -> list[str]:
    """The evaluation as text for stderr: mIoU, pixel accuracy, Dice and a per-class table.

    Examples
    --------
    >>> evaluation_lines({"miou": 0.5, "pixel_accuracy": 0.75, "mean_dice": 0.6, "evaluated": 2,
    ...                   "classes_present": 2, "per_class": []})[0]
    'mIoU 0.5000 (2 classes present)  pixel accuracy 0.7500  mean Dice 0.6000  over 2 images'
    """
    def shown(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [f"mIoU {shown(summary['miou'])} ({summary['classes_present']} classes present)  pixel accuracy "
             f"{shown(summary['pixel_accuracy'])}  mean Dice {shown(summary['mean_dice'])}  over "
             f"{summary['evaluated']} images"]
    rows = [("class", "IoU", "Dice", "true px", "predicted px")]
    rows += [(r["class"], shown(r["iou"]), shown(r["dice"]), str(r["true_pixels"]), str(r["predicted_pixels"]))
             for r in summary["per_class"] if r["iou"] is not None]
    if len(rows) > 1:
        widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
        lines += ["  ".join(v.rjust(w) if k else v.ljust(w) for k, (v, w) in enumerate(zip(row, widths))).rstrip()
                  for row in rows]
    return lines


def write_evaluation(summary: dict, out_dir, recipe) -> list[str]:
    """``evaluation.json`` and ``confusion.png`` (row-normalised to recall, so small classes
    show) in ``out_dir``, recorded in its ledger; returns the paths."""
    from cnntool.data.writers import atomic_write_json, record_output
    from cnntool.metrics.plots import plot_confusion

    json_path, png_path = (Path(out_dir) / name for name in EVALUATION_FILES)
    atomic_write_json(json_path, summary, recipe=recipe)
    matrix = np.asarray(summary["confusion"], np.float64)
    rows = [i for i in range(len(matrix)) if matrix[i].sum() or matrix[:, i].sum()]
    share = matrix[np.ix_(rows, rows)] / np.maximum(1, matrix[np.ix_(rows, rows)].sum(1, keepdims=True))
    plot_confusion(np.round(share, 2), [summary["classes"][i] for i in rows], png_path,
                   title=f"mIoU {summary['miou'] or 0:.4f}, rows: true class (share of its pixels)")
    record_output(png_path, recipe)
    return [str(json_path), str(png_path)]


class InstanceEvaluation(GroundTruthEvaluation):
    """An instance model's masks scored against COCO ground truth with segmentations: mask mAP
    by pycocotools (``iouType="segm"``), inputs and classes matched as
    :class:`~cnntool.infer.detect.GroundTruthEvaluation` matches them. ``results`` holds every
    detection scored, its mask as RLE: pycocotools' ``COCOeval`` on it gives the same mAP."""

    iou_type = "segm"

    def __init__(self, truth, names: Sequence[str]):
        if not any(im.segmentation is not None for im in truth.images):
            raise UsageError("the ground truth has no segmentations: mask mAP needs them",
                             hint="a COCO file whose annotations have 'segmentation' (polygons or RLE)")
        super().__init__(truth, names)

    def _left_out(self, sample, image) -> str | None:
        reason = super()._left_out(sample, image)
        if reason is None and (image.segmentation is None or any(s is None for s in image.segmentation)):
            return "its ground truth has objects without a segmentation"
        return reason

    def _score(self, sample, image, detections, keep: np.ndarray, labels: np.ndarray) -> None:
        from cnntool.metrics.detection import ground_truth
        from cnntool.metrics.segmentation import coco_segm_results

        masks = detections.masks[keep] if detections.masks is not None else np.zeros((0, *sample.size), bool)
        self.evaluator.update([{"boxes": detections.boxes[keep], "scores": detections.scores[keep],
                                "labels": labels, "masks": masks}], [ground_truth(image)])
        self.results += coco_segm_results(image.image_id, masks, labels.tolist(),
                                          detections.scores[keep].tolist(), category_ids=self.truth.category_ids)

    def summary(self) -> dict:
        report = self.evaluator.compute()
        return {"evaluated": len(self.evaluator), "unmatched": len(self.unmatched), "dropped_detections": self.dropped,
                **report.to_dict(), "classes": list(self.truth.classes)}
