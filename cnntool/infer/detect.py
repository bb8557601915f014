"""Detect objects: boxes, labels and scores per image or video frame, drawn, cropped, saved as
YOLO labels or COCO results, and evaluated against COCO or YOLO ground truth.

The stage takes pixel samples (:mod:`cnntool.data.pixels`: image files decoded on threads, or a
video's frames) and a detection model from :func:`cnntool.models.loading.load`.
:func:`detect_samples` yields one :class:`Detections` per sample. Images are brought to the
model's working size on the decode threads (:func:`input_preparer`: the model's own bilinear
resize, done on uint8 pixels, so a huge photo never becomes a huge float tensor) and share a
batch as a list whatever their sizes. The model's own score threshold, NMS threshold and
detections per image follow ``conf``, ``iou`` and ``max_det``; labels go back to 0-based class
indices (:func:`~cnntool.data.boxes.from_model_labels`, the background dropped), the
``classes`` filter and ``conf`` apply, per-class NMS at ``iou`` (``torchvision.ops.batched_nms``)
runs over the rest and the ``max_det`` best are kept. Boxes are x1, y1, x2, y2 in the ORIGINAL
image's pixels (``Sample.size``); Mask R-CNN's masks are resized to it and thresholded at 0.5.

:func:`detection_records` gives one record per detection::

    {"path": "street.jpg", "label": "car", "class_id": 2, "score": 0.9312,
     "box": [12.5, 40.1, 220.0, 130.7], "error": null}

and one with ``label`` and ``box`` null for an image without any, so every input is accounted
for (frames add ``frame`` and ``time``; an unreadable input gives one record with ``error``).
:func:`draw_detections` draws them legibly at any image size. :func:`detect_inputs` is the whole
``cnntool detect`` job over files, writing annotated images, crops and YOLO labels under ``-o``
with the output ledger's skip rule (the model still runs for the records; a file the same
options made is not written again); :class:`GroundTruthEvaluation` scores detections against
ground truth with pycocotools' COCOeval.

Examples
--------
>>> d = Detections(np.array([[1.0, 2.0, 30.0, 40.0]]), np.array([1]), np.array([0.875]), ["cat", "dog"])
>>> from pathlib import PurePath
>>> from cnntool.data.pixels import Sample
>>> detection_records(Sample("a.png", PurePath("a.png"), size=(50, 60)), d)
[{'path': 'a.png', 'label': 'dog', 'class_id': 1, 'score': 0.875, 'box': [1.0, 2.0, 30.0, 40.0], 'error': None}]
>>> draw_detections(np.zeros((50, 60, 3), np.uint8), d).shape
(50, 60, 3)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from cnntool.errors import InputError, UsageError, one_line
from cnntool.models.detector_size import resize_detector, working_size

#: Below this score nothing is evaluated: with ``--eval`` the model scores down to here (mAP needs
#: the whole ranking, as COCO's evaluation and Ultralytics' ``val`` do), and ``--conf`` only
#: decides what the records, pictures, crops and labels show.
EVAL_CONF = 0.001
#: The files ``--eval`` writes into ``-o``.
EVALUATION_FILES = ("evaluation.json", "pr_curve.png", "confusion.png")
#: Decimals of a record's box coordinates and score.
BOX_DECIMALS = 1
SCORE_DECIMALS = 4
#: On a CPU, images share a forward pass while padding them to one size costs at most this factor.
PAD_SLACK = 1.25
#: Boxes narrower or lower than this many original pixels (after clipping to the image) are dropped:
#: a record could not show them.
MIN_BOX_SIDE = 10 ** -BOX_DECIMALS


@dataclass
class Detections:
    """What a detector found in one image.

    Attributes
    ----------
    boxes : numpy.ndarray
        float64 (N, 4) x1, y1, x2, y2 in the original image's pixels, best score first.
    labels : numpy.ndarray
        int64 (N,) 0-based indices into ``names``.
    scores : numpy.ndarray
        float32 (N,).
    names : list of str
        The model's class names, without the background.
    masks : numpy.ndarray or None
        bool (N, H, W) at the original image's size (Mask R-CNN), else None.
    size : (int, int) or None
        The original image's (height, width) the boxes refer to.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    names: list[str]
    masks: np.ndarray | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep) -> "Detections":
        """The detections at ``keep`` (a boolean mask or indices), in that order.

        Examples
        --------
        >>> d = Detections(np.zeros((2, 4)), [0, 1], [0.9, 0.2], ["a", "b"])
        >>> len(d.subset(d.scores >= 0.5))
        1
        """
        return dataclasses.replace(self, boxes=self.boxes[keep], labels=self.labels[keep], scores=self.scores[keep],
                                   masks=self.masks[keep] if self.masks is not None else None)


def class_names(loaded) -> list[str]:
    """A detection model's class names without the background (its class 0)."""
    return list(loaded.classes[1:])


def resolve_classes(wanted: Iterable, names: Sequence[str]) -> list[int]:
    """Class indices from names or ids (``--classes``): a name first, else an integer id;
    :class:`UsageError` for an unknown name (with "did you mean") or an id out of range.

    Examples
    --------
    >>> resolve_classes(["dog", "0", 1], ["cat", "dog"])
    [1, 0]
    """
    from cnntool.errors import unknown_choice

    index = {name: i for i, name in enumerate(names)}
    out: list[int] = []
    for token in wanted:
        text = str(token).strip()
        if text in index:
            value = index[text]
        elif text.lstrip("-").isdigit():
            value = int(text)
            if not 0 <= value < len(names):
                raise UsageError(f"--classes {text}: class ids run from 0 to {len(names) - 1}")
        else:
            raise unknown_choice("class", text, names)
        if value not in out:
            out.append(value)
    return out


# --- the model's working size -------------------------------------------------------------------

def set_input_size(loaded, size: tuple[int, int]):
    """The loaded detector resizing images to ``size`` (``--imgsz``; the model is changed in place).

    Detectors resize each image inside themselves, keeping its aspect ratio: ``(N, N)`` makes the
    shorter side N and caps the longer at N times the model's own longer/shorter ratio (the
    320 px Faster R-CNN: 640); ``(H, W)`` with H != W makes the shorter side ``min(H, W)`` and caps
    the longer at ``max(H, W)``. SSD models, which take a fixed size, get exactly H x W.

    Examples
    --------
    >>> from cnntool.models.loading import load
    >>> working_size(set_input_size(load("tiny_fcos"), (240, 240)).model)
    (240, 480, None)
    """
    try:
        resize_detector(loaded.model, size)
    except ValueError:
        raise UsageError(f"{loaded.entry.name} has no input size to set", hint="leave --imgsz out") from None
    return dataclasses.replace(loaded, preprocessing=loaded.preprocessing.with_size((int(size[0]), int(size[1]))))


def input_preparer(loaded) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 image -> uint8 (h, w, C) at the size the detector would resize it to, with its
    channels: for :func:`~cnntool.data.pixels.read_images`' ``prepare`` (decode threads).

    Bilinear, like the model's own resize, so the model's resize then keeps the size (a copy).
    """
    from cnntool.data.preprocessing import to_channels

    channels = loaded.preprocessing.channels
    min_size, max_size, fixed = working_size(loaded.model)

    def prepare(image: np.ndarray) -> np.ndarray:
        import cv2

        if not (channels == 3 and image.ndim == 3 and image.shape[2] == 3):
            image = to_channels(image, channels)
        h, w = image.shape[:2]
        new = (w, h)
        if fixed is not None:
            new = (fixed[1], fixed[0])
        elif min_size is not None:
            scale = min(min_size / min(h, w), max_size / max(h, w))
            new = (max(1, round(w * scale)), max(1, round(h * scale)))
        if new != (w, h):
            image = cv2.resize(image, new, interpolation=cv2.INTER_LINEAR)
        return image[:, :, None] if image.ndim == 2 else image

    return prepare


@contextlib.contextmanager
def model_thresholds(model, *, conf: float, iou: float, max_det: int):
    """A torchvision detector's own score threshold lowered to ``conf`` (never raised: ``conf`` is
    applied afterwards anyway), its NMS threshold set to ``iou`` and its detections per image
    raised to ``max_det``, for the duration of the block."""
    try:
        from cnntool.models.detectors import detector_family

        family = detector_family(model)
    except TypeError:
        yield
        return
    owner = model.roi_heads if family in ("faster_rcnn", "mask_rcnn") else model
    saved = (owner.score_thresh, owner.nms_thresh, owner.detections_per_img)
    owner.score_thresh = min(float(owner.score_thresh), conf)
    owner.nms_thresh = iou
    owner.detections_per_img = max(int(owner.detections_per_img), max_det)
    try:
        yield
    finally:
        owner.score_thresh, owner.nms_thresh, owner.detections_per_img = saved


# --- the stage ----------------------------------------------------------------------------------

def detect_samples(loaded, samples: Iterable, *, device, batch_size: int = 8, conf: float = 0.25, iou: float = 0.45,
                   classes: Sequence | None = None, max_det: int = 300) -> Iterator[tuple]:
    """``(sample, Detections or None)`` for every sample, in order (None: the sample failed; its
    ``error`` says why).

    ``loaded`` is a detection model on ``device`` in eval mode; ``samples`` are image files (best
    read with ``prepare=input_preparer(loaded)``, resized on the decode threads) or video frames:
    a sample's ``input`` is used when set (any size), else its ``image`` is prepared here.
    ``conf`` is the least score kept, ``iou`` the per-class NMS threshold, ``classes`` names or
    0-based ids to keep (:func:`resolve_classes`), ``max_det`` the most detections per image.

    Examples
    --------
    >>> import torch
    >>> from pathlib import PurePath
    >>> from cnntool.data.pixels import Sample
    >>> from cnntool.models.loading import load
    >>> torch.manual_seed(0) and None
    >>> loaded = load("tiny_fcos", task="detection")
    >>> image = np.zeros((90, 120, 3), np.uint8)
    >>> [(s.path, type(d).__name__) for s, d in detect_samples(loaded, [Sample("a", PurePath("a"), image)],
    ...                                                         device=torch.device("cpu"), conf=0.0)]
    [('a', 'Detections')]
    """
    import torch

    from cnntool.data.pixels import batches
    from cnntool.device import channels_last_for_inference

    names = class_names(loaded)
    wanted = np.asarray(resolve_classes(classes, names), np.int64) if classes is not None else None
    prepare = input_preparer(loaded)
    model = loaded.model
    non_blocking = getattr(device, "type", str(device)) == "cuda"
    on_cpu = getattr(device, "type", str(device)) == "cpu"
    channels_last_for_inference(model, device)
    with model_thresholds(model, conf=conf, iou=iou, max_det=max_det):
        for batch in batches(samples, batch_size, prepare=prepare, stack=False):
            good = batch.good
            outputs: list = []
            failure = None
            if good:
                try:
                    with torch.inference_mode():  # not across the yields: the caller's code runs between them
                        x = [torch.from_numpy(np.ascontiguousarray(a)).to(device, non_blocking=non_blocking)
                             .float().div_(255) for a in batch.inputs]
                        outputs = _forward(model, x, pad=not on_cpu)
                except Exception as exc:  # the model failed on this batch: its samples fail, the run goes on
                    failure = f"the detector failed: {type(exc).__name__}: {one_line(exc)}"
            results = iter(outputs)
            for sample in batch.samples:
                if not sample.ok:
                    yield sample, None
                    continue
                if failure is not None:
                    yield dataclasses.replace(sample, error=failure), None
                    continue
                try:
                    yield sample, _detections(next(results), sample, names, wanted, conf, iou, max_det)
                except InputError as exc:
                    yield dataclasses.replace(sample, error=str(exc)), None


def _forward(model, images: list, *, pad: bool) -> list[dict]:
    """The model's outputs for ``images``, on the CPU: one pass with ``pad`` (the model pads the
    images to one size, which a GPU does not mind), else one pass per group of similar shapes
    whose padding adds at most :data:`PAD_SLACK` to the work (a CPU gains little from batching
    and pays for every padded pixel)."""
    groups = [list(range(len(images)))] if pad else pad_groups([tuple(x.shape[-2:]) for x in images])
    outputs: list = [None] * len(images)
    for indices in groups:
        for i, out in zip(indices, model([images[i] for i in indices])):
            outputs[i] = {k: v.cpu() for k, v in out.items()}
    return outputs


def pad_groups(sizes: Sequence[tuple[int, int]], *, slack: float = None, multiple: int = 32) -> list[list[int]]:
    """Indices of (h, w) ``sizes`` grouped by aspect ratio so that padding each group to its
    largest size (rounded up to ``multiple``) costs at most ``slack`` times the pixels.

    Examples
    --------
    >>> pad_groups([(320, 427), (427, 320), (320, 430), (320, 320)])
    [[2, 0, 3], [1]]
    """
    slack = PAD_SLACK if slack is None else slack
    groups: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=lambda k: sizes[k][0] / sizes[k][1]):
        trial = (groups[-1] if groups else []) + [i]
        height = max(-(-sizes[k][0] // multiple) * multiple for k in trial)
        width = max(-(-sizes[k][1] // multiple) * multiple for k in trial)
        if len(trial) > 1 and len(trial) * height * width <= slack * sum(sizes[k][0] * sizes[k][1] for k in trial):
            groups[-1] = trial
        else:
            groups.append([i])
    return groups


def _detections(out: dict, sample, names, wanted, conf: float, iou: float, max_det: int) -> Detections:
    import torch
    from torchvision.ops import batched_nms

    from cnntool.data.boxes import from_model_labels

    boxes, scores, labels = out["boxes"].float(), out["scores"].float(), out["labels"].long()
    if not (torch.isfinite(boxes).all() and torch.isfinite(scores).all()):
        raise InputError("the model's output is not a number (NaN/inf): its weights or the input are broken")
    index = from_model_labels(labels)
    in_h, in_w = sample.input.shape[:2]
    height, width = sample.size
    scale = torch.tensor([width / in_w, height / in_h] * 2, dtype=torch.float64)
    limits = torch.tensor([width, height] * 2, dtype=torch.float64)
    mapped = torch.minimum(torch.clamp(boxes.double() * scale, min=0), limits)
    sides = mapped[:, 2:] - mapped[:, :2]
    keep = (labels > 0) & (index < len(names)) & (scores >= conf) & (sides >= MIN_BOX_SIDE).all(dim=1)
    if wanted is not None:
        keep &= torch.from_numpy(np.isin(index.numpy(), wanted))
    order = torch.nonzero(keep).flatten()
    if len(order):
        order = order[batched_nms(mapped[order], scores[order].double(), index[order], iou)][:max_det]
    mapped = mapped[order].numpy()
    masks = None
    if out.get("masks") is not None:
        masks = _masks_to_image(out["masks"][order].float().numpy(), height, width)
    return Detections(mapped, index[order].numpy(), scores[order].numpy(), list(names), masks, (height, width))


def _masks_to_image(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 1, h, w) probabilities -> bool (N, height, width), resized bilinearly, thresholded at 0.5."""
    import cv2

    out = np.zeros((len(masks), height, width), bool)
    for i, m in enumerate(masks.reshape(len(masks), *masks.shape[-2:])):
        out[i] = cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    return out


def detection_records(sample, detections: Detections | None) -> list[dict]:
    """The records of one sample: one per detection, one with ``label``/``box`` null when there
    is none, or one with ``error`` when the sample failed (see the module docstring)."""
    where = {"frame": sample.frame, "time": sample.time} if sample.frame is not None else {}
    empty = {"path": sample.path, **where, "label": None, "class_id": None, "score": None, "box": None}
    if detections is None or not sample.ok:
        return [{**empty, "error": sample.error or "no detections were made for this input"}]
    if not len(detections):
        return [{**empty, "error": None}]
    return [{"path": sample.path, **where, "label": detections.names[int(c)], "class_id": int(c),
             "score": round(float(s), SCORE_DECIMALS), "box": [round(float(v), BOX_DECIMALS) for v in box],
             "error": None}
            for box, c, s in zip(detections.boxes, detections.labels, detections.scores)]


def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    """``image`` (uint8, any size: the original or a downscaled copy of it) with the boxes, class
    names and scores drawn (and Mask R-CNN's masks), legible at any size; a new RGB array.

    Colours follow the class (:func:`cnntool.data.draw.palette` without background), the same in
    every image.
    """
    import cv2

    from cnntool.data.draw import draw_boxes, overlay_mask, palette

    h, w = image.shape[:2]
    size = detections.size or (h, w)
    sx, sy = w / size[1], h / size[0]
    boxes = detections.boxes * np.array([sx, sy, sx, sy])
    canvas = image
    if detections.masks is not None and len(detections):
        instance = np.zeros((h, w), np.int64)
        for mask, label in zip(detections.masks[::-1], detections.labels[::-1]):  # best drawn last, on top
            if mask.shape != (h, w):
                mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            instance[mask] = int(label) + 1
        colours = np.vstack([np.zeros((1, 3), np.uint8), palette(len(detections.names), background=False)])
        canvas = overlay_mask(image, instance, palette=colours, alpha=0.4, ignore=None)
    last_best = slice(None, None, -1)  # the best box's caption is drawn last, on top of the others
    return draw_boxes(canvas, boxes[last_best], labels=detections.labels[last_best].tolist(),
                      names=detections.names, scores=detections.scores[last_best].tolist())


def yolo_lines(detections: Detections) -> str:
    """YOLO label lines (``class cx cy w h``, normalised, 6 decimals) of the detections.

    Examples
    --------
    >>> yolo_lines(Detections([[10, 20, 30, 60]], [2], [0.9], ["a", "b", "c"], size=(100, 200)))
    '2 0.100000 0.400000 0.100000 0.400000\\n'
    """
    height, width = detections.size
    lines = []
    for (x1, y1, x2, y2), c in zip(detections.boxes, detections.labels):
        lines.append(f"{int(c)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(lines)


def crop(image: np.ndarray, box, scale: float = 1.0) -> np.ndarray:
    """The pixels of ``box`` (original-image pixels) from ``image`` (kept at ``scale``), >= 1 px.

    >>> crop(np.zeros((10, 10, 3), np.uint8), [2.4, 3.0, 6.6, 8.0]).shape
    (5, 5, 3)
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    left, top = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.floor(y1), 0, h - 1))
    right, bottom = int(np.clip(np.ceil(x2), left + 1, w)), int(np.clip(np.ceil(y2), top + 1, h))
    return image[top:bottom, left:right].copy()


# --- the whole job over files ---------------------------------------------------------------------

@dataclass(frozen=True)
class DetectOptions:
    """How :func:`detect_inputs` runs and what it writes."""

    conf: float = 0.25              # least score shown (records, pictures, crops, labels)
    iou: float = 0.45               # NMS threshold
    classes: tuple | None = None    # names or ids to keep
    max_det: int = 300              # most detections per image
    batch_size: int = 8
    floor: float | None = None      # detect down to this score (evaluation); None: conf
    out_dir: Path | None = None     # annotated images (mirroring the inputs)
    save_crops: bool = False        # out_dir/crops/<label>/<rel stem>_<n><ext>
    save_txt: bool = False          # out_dir/labels/<rel stem>.txt (YOLO)
    overwrite: bool = False
    workers: int = 1                # decode threads
    max_pixels: int | None = None
    model_id: str = ""              # which weights (the skip rule compares it)
    evaluate: bool = False          # --eval: EVALUATION_FILES in out_dir are not for inputs


@dataclass
class DetectResult:
    """One input's outcome: its sample, every detection scored (down to ``floor``), those shown
    (at least ``conf``), its records and how many of its files were left as they were."""

    sample: object
    detections: Detections | None
    shown: Detections | None
    records: list[dict]
    skipped: int = 0


def recipe(loaded, options: DetectOptions):
    """What makes an input's files (:class:`~cnntool.data.writers.Recipe`): the weights, the
    thresholds, the class filter and the model's working size."""
    from cnntool.data.writers import Recipe

    classes = sorted(resolve_classes(options.classes, class_names(loaded))) if options.classes else None
    return Recipe.of("detect", {"model": options.model_id, "conf": options.conf, "iou": options.iou,
                                "classes": classes, "max_det": options.max_det,
                                "size": list(working_size(loaded.model)),
                                "preprocessing": loaded.preprocessing.to_dict()},
                     summary=f"detect {options.model_id or 'a model'} conf {options.conf:g}")


def planned_files(rel: PurePath, options: DetectOptions) -> dict[str, Path]:
    """An input's files under ``out_dir`` known before detecting: ``image`` and ``labels``."""
    from cnntool.data.writers import image_extension, output_path

    if options.out_dir is None:
        return {}
    files = {"image": output_path(rel, options.out_dir, ext=image_extension(rel))}
    if options.save_txt:
        files["labels"] = output_path(PurePath("labels") / rel, options.out_dir, ext="txt")
    return files


def detect_inputs(items: Sequence, loaded, options: DetectOptions, *, device) -> Iterator[DetectResult]:
    """Detect objects in every input file; one :class:`DetectResult` per input, in input order.

    Output files are planned first (an input whose files would overwrite an input, another
    input's files or the evaluation's becomes an error, and so does one whose files exist made
    otherwise, unless ``overwrite``); images are decoded and resized on ``options.workers``
    threads; with ``out_dir`` each keeps its pixels for drawing (at most
    :data:`~cnntool.data.pixels.MAX_DRAW_SIDE` on the longer side).
    """
    from cnntool.data.pixels import MAX_DRAW_SIDE, read_images
    from cnntool.data.writers import plan_outputs, should_skip

    made_by = recipe(loaded, options)
    reserved = ({os.path.abspath(Path(options.out_dir, name)) for name in EVALUATION_FILES}
                if options.out_dir is not None and options.evaluate else set())
    plans = plan_outputs(items, options.out_dir, lambda rel: planned_files(rel, options).values())
    todo, files_of, keep_of = [], [], []
    for item, plan in zip(items, plans):
        error, keep = plan.error, False
        files = dict(zip(planned_files(item.rel, options), plan.paths))
        if error is None and any(os.path.abspath(p) in reserved for p in files.values()):
            error = f"output {next(iter(files.values()))} is a file of the evaluation"
        if error is None and item.ok and files:
            try:
                keep = should_skip(files.values(), made_by, source=item.path, overwrite=options.overwrite)
            except InputError as exc:
                error = str(exc)
        todo.append(dataclasses.replace(item, error=error) if error is not None else item)
        files_of.append(files)
        keep_of.append(keep)
    drawing = options.out_dir is not None
    samples = read_images(todo, mode=loaded.preprocessing.decode_mode, max_pixels=options.max_pixels,
                          workers=options.workers, prepare=input_preparer(loaded), keep_image=drawing,
                          max_side=MAX_DRAW_SIDE, chunk=max(1, -(-options.batch_size // max(1, options.workers))))
    floor = options.conf if options.floor is None else min(options.floor, options.conf)
    found = detect_samples(loaded, samples, device=device, batch_size=options.batch_size, conf=floor,
                           iou=options.iou, classes=options.classes, max_det=options.max_det)
    for (sample, detections), files, keep in zip(found, files_of, keep_of):
        shown = detections.subset(detections.scores >= options.conf) if detections is not None else None
        records = detection_records(sample, shown)
        skipped = 0
        if shown is not None and files:
            try:
                skipped, crops = write_outputs(sample, shown, files, made_by, options, keep=keep)
            except InputError as exc:
                records = [{**records[0], "label": None, "class_id": None, "score": None, "box": None,
                            "error": str(exc)}]
            except Exception as exc:  # drawing or writing failed for this input: its error, the run goes on
                records = [{**records[0], "label": None, "class_id": None, "score": None, "box": None,
                            "error": f"cannot write its outputs: {type(exc).__name__}: {one_line(exc)}"}]
            else:
                for record, crop_path in zip(records, crops or [None] * len(records)):
                    record["annotated"] = str(files["image"])
                    if options.save_crops:
                        record["crop"] = crop_path
        sample.image = sample.input = None  # the pixels are done with
        yield DetectResult(sample, detections, shown, records, skipped)


def write_outputs(sample, shown: Detections, files: dict[str, Path], made_by, options: DetectOptions, *,
                  keep: bool = False) -> tuple[int, list | None]:
    """Write one input's annotated image, YOLO labels and crops (see :class:`DetectOptions`);
    returns how many files were left as they were and the crops' paths (None without crops).

    ``keep``: the image and labels exist, made by the same options from this input: left as they
    are (crops are checked one by one). :class:`InputError` when a file exists made otherwise
    (without ``overwrite``) or would overwrite the input.
    """
    from cnntool.data.writers import (atomic_write_text, check_not_input, image_extension, output_path, should_skip,
                                      write_image)

    ledger = {"recipe": made_by, "source": sample.path}
    for path in files.values():
        check_not_input(path, sample.path)
    skipped, crops = (len(files) if keep else 0), None
    if not keep:
        write_image(files["image"], draw_detections(sample.image, shown), **ledger)
        if "labels" in files:
            atomic_write_text(files["labels"], yolo_lines(shown), **ledger)
    if options.save_crops:
        rel = PurePath(sample.rel)
        crops = []
        for n, (box, label) in enumerate(zip(shown.boxes, shown.labels)):
            name = re.sub(r"[^\w.-]+", "_", str(shown.names[int(label)])).strip("._") or "class"
            path = output_path(PurePath("crops", name, rel.parent, f"{rel.stem}_{n}{image_extension(rel)}"),
                               options.out_dir)
            check_not_input(path, sample.path)
            if should_skip(path, made_by, source=sample.path, overwrite=options.overwrite):
                skipped += 1
            else:
                write_image(path, crop(sample.image, box, sample.scale), **ledger)
            crops.append(str(path))
    return skipped, crops


# --- evaluation -----------------------------------------------------------------------------------

class GroundTruthEvaluation:
    """Detections scored against ground truth (``--eval``): COCO mAP by pycocotools.

    ``truth`` is a :class:`~cnntool.data.boxes.BoxDataset` (``load_boxes(..., check_files=False)``):
    inputs are matched to its images by the longest common tail of their paths (each image at
    most once), and must have the size it records. ``names`` are the model's classes: matched to
    the truth's by name; detections of classes the truth lacks are left out (``dropped``).
    :class:`UsageError` when no name is shared. ``results`` holds every detection scored, in COCO's
    results format with the truth's image and category ids. A subclass scores other things (masks:
    :class:`cnntool.infer.segment.InstanceEvaluation`) through :attr:`iou_type` and :meth:`_score`.
    """

    iou_type = "bbox"

    def __init__(self, truth, names: Sequence[str]):
        from cnntool.metrics.detection import DetectionEvaluator

        self.truth = truth
        classes = list(truth.classes)
        self.mapping = np.array([classes.index(n) if n in classes else -1 for n in names], np.int64)
        if not (self.mapping >= 0).any():
            raise UsageError("the model's classes and the ground truth's share no name",
                             hint=f"ground truth: {', '.join(classes[:8])}; model: {', '.join(list(names)[:8])}")
        self.evaluator = DetectionEvaluator(classes, iou_type=self.iou_type)
        self.unmatched: list[str] = []
        self.dropped = 0
        self.seen: dict[int, str] = {}
        self.results: list[dict] = []

    def add(self, sample, detections: Detections) -> str | None:
        """Score one image's detections; returns why it was left out, or None."""
        image = self.truth.lookup(sample.path)
        reason = self._left_out(sample, image)
        if reason is not None:
            self.unmatched.append(f"{sample.path}: {reason}")
            return reason
        self.seen[image.image_id] = sample.path
        mapped = self.mapping[detections.labels] if len(detections.labels) else np.zeros(0, np.int64)
        keep = mapped >= 0
        self.dropped += int((~keep).sum())
        self._score(sample, image, detections, keep, mapped[keep])
        return None

    def _left_out(self, sample, image) -> str | None:
        """Why ``sample`` cannot be scored against ``image`` (its match in the truth), or None."""
        if image is None:
            return "no ground truth for it"
        if image.image_id in self.seen:
            return f"its ground truth ({image.file_name}) was already matched by {self.seen[image.image_id]}"
        if tuple(sample.size) != (image.height, image.width):
            return (f"it is {sample.size[1]}x{sample.size[0]} pixels but its ground truth ({image.file_name}) "
                    f"says {image.width}x{image.height}")
        return None

    def _score(self, sample, image, detections, keep: np.ndarray, labels: np.ndarray) -> None:
        """Add the kept detections (``labels``: the truth's class indices) to the evaluation."""
        from cnntool.metrics.detection import coco_results, ground_truth

        prediction = {"boxes": detections.boxes[keep], "scores": detections.scores[keep], "labels": labels}
        self.evaluator.update([prediction], [ground_truth(image)])
        self.results += coco_results([prediction], [image.image_id], self.truth.category_ids)

    def summary(self, *, conf: float) -> tuple[dict, object, np.ndarray]:
        """``(summary record, DetectionReport, confusion matrix)``; the matrix counts detections
        scoring at least ``conf``."""
        report = self.evaluator.compute()
        matrix = self.evaluator.confusion_matrix(score_threshold=conf)
        summary = {"evaluated": len(self.evaluator), "unmatched": len(self.unmatched),
                   "dropped_detections": self.dropped, **report.to_dict(), "classes": list(self.truth.classes),
                   "confusion": matrix.tolist(), "confusion_labels": [*self.truth.classes, "background"],
                   "confusion_conf": conf}
        return summary, report, matrix

