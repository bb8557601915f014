"""``cnntool explain``: heatmaps (CAM, Grad-CAM and relatives), feature maps, kernels, maximisation.

The heatmaps come from :mod:`cnntool.infer.cam` (one efficient core for every method), the grids
and the activation maximisation from :mod:`cnntool.infer.visualize`. This module runs them over
many inputs (batched through the shared loaders), maps heatmaps back onto the photos, draws the
overlays, writes the files and builds the records. It prints nothing.

Records
-------
Heatmap methods (``cam gradcam gradcam++ xgradcam hirescam layercam scorecam eigencam``), one
per input:

``path``          the input, as given
``method``        the method's canonical name
``layer``         the target layer (dotted module name)
``class``         name of the class explained (``--target``, or the predicted class)
``class_index``   its index
``score``         the model's softmax probability for that class
``peak``          ``[x, y]``: the heatmap's maximum, in the original image's pixels
``box``           ``[x0, y0, x1, y1]`` (x1, y1 exclusive), in the original image's pixels: the
                  bounding box of the largest 8-connected region where the heatmap is at least
                  :data:`BOX_THRESHOLD` (50 %) of its maximum
``overlay``       the overlay PNG written (with ``-o``), else null
``heatmap``       the heatmap ``.npy`` written (with ``-o``), else null: float32 in [0, 1] at the
                  original image's size (0 outside the centre crop the model saw)
``faithfulness``  with ``--score``: ``{"morf", "lerf", "road"}`` from
                  :func:`cnntool.infer.cam.faithfulness_scores`: the mean change in the class's
                  probability when the most (``morf``) or least (``lerf``) relevant 10, 30, 50,
                  70, 90 % of the pixels are removed (filled in from the kept ones);
                  ``road = (lerf - morf) / 2``, higher is more faithful
``error``         null, or why this input failed (then the other fields are absent)

``peak`` and ``box`` are null when the heatmap is zero everywhere. With ``-o``, an input whose
output files all exist already (and no ``--overwrite``) is not recomputed: its record has
``skipped: true`` and the file paths.

``featuremaps``, one per input: ``path``, ``method``, ``layer``, ``channels`` (the layer's
channel count), ``map_size`` ``[h, w]``, ``grid`` ``[rows, cols]``, ``image`` (the grid PNG,
with ``-o``), ``array`` (the activations ``.npy``, float32 (C, h, w), with ``-o``), ``error``.

``kernels`` and ``maximize``: one record, whose ``path`` is the model spec. ``kernels``: ``layer``,
``kernels``, ``in_channels``, ``kernel_size`` ``[kh, kw]``, ``grid``, ``image``. ``maximize``:
``layer``, ``channel``, ``steps``, ``activation_start`` and ``activation`` (the channel's mean
activation for the starting noise and the result), ``image``.

Files under ``-o`` mirror the inputs' relative paths with the method as a suffix:
``cat.jpg`` -> ``cat_gradcam.png`` and ``cat_gradcam.npy`` (``gradcam++`` is spelled
``gradcampp``), ``cat_featuremaps.png`` and ``cat_featuremaps.npy``; ``MODEL_kernels.png`` and
``MODEL_LAYER_chK_maximize.png`` go straight under ``-o``. Every input's files are planned
before anything is written: an input whose files another input already claims (``cat.jpg`` and
``cat.png`` in one folder), or that would overwrite any input, gets an ``error`` record instead.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnntool.data.draw import overlay_heatmap
from cnntool.data.pixels import MAX_DRAW_SIDE
from cnntool.errors import InputError, UsageError, one_line
from cnntool.infer.cam import CAM_METHODS, canonical_method
from cnntool.infer.visualize import DEFAULT_MAX_MAPS, MaximizeConfig

#: Methods that need no input images.
MODEL_METHODS = ("kernels", "maximize")
#: Every ``--method``.
METHODS = CAM_METHODS + ("featuremaps",) + MODEL_METHODS
#: The options (CLI parameter names) each method uses; any other one given is refused.
_HEATMAP_OPTIONS = ("inputs", "layer", "target", "score", "aug_smooth", "eigen_smooth", "batch_size", "imgsz")
METHOD_OPTIONS = {
    **{m: _HEATMAP_OPTIONS for m in CAM_METHODS},
    "featuremaps": ("inputs", "layer", "max_maps", "batch_size", "imgsz"),
    "kernels": ("layer",),
    "maximize": ("layer", "channel", "steps", "imgsz"),
}
#: The box around the hot region: pixels at least this fraction of the heatmap's maximum.
BOX_THRESHOLD = 0.5


@dataclass(frozen=True)
class ExplainConfig:
    """What to explain and how; the defaults are ``cnntool explain``'s."""

    method: str = "gradcam"
    layer: str | None = None             # None: the registry entry's cam_layer (first_conv for kernels)
    target: str | None = None            # class name or index; None: each image's predicted class
    score: bool = False                  # add the faithfulness scores (--score)
    aug_smooth: bool = False             # pytorch-grad-cam's test-time augmentation smoothing
    eigen_smooth: bool = False           # first principal component instead of the weighted sum
    batch_size: int = 16                 # images per forward/backward pass
    score_batch_size: int = 64           # masked images per forward pass (scorecam, --score)
    max_maps: int = DEFAULT_MAX_MAPS     # featuremaps: channels shown
    channel: int = 0                     # maximize: the channel
    maximize: MaximizeConfig = field(default_factory=MaximizeConfig)


def canonical(method: str) -> str:
    """The canonical ``--method`` name (case-insensitive; ``gradcampp`` etc. accepted)."""
    return canonical_method(method, METHODS, option="--method")


def method_suffix(method: str) -> str:
    """The file-name suffix of a method: ``gradcam++`` -> ``gradcampp``.

    Examples
    --------
    >>> method_suffix("gradcam++")
    'gradcampp'
    """
    return method.replace("+", "p")


def resolve_target(spec: str | int | None, classes: Sequence[str]) -> int | None:
    """The class index ``--target`` names: a class name (exact, then case-insensitive) or an index.

    Raises
    ------
    UsageError
        An unknown name or an index out of range.

    Examples
    --------
    >>> resolve_target("dog", ["cat", "dog"]), resolve_target("0", ["cat", "dog"]), resolve_target(None, ["cat"])
    (1, 0, None)
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    classes = list(classes)
    text = str(spec).strip()
    if text in classes:
        return classes.index(text)
    folded = [c for c in classes if c.lower() == text.lower()]
    if len(folded) == 1:
        return classes.index(folded[0])
    try:
        index = int(text)
    except ValueError:
        close = difflib.get_close_matches(text, classes, n=3)
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        hint = (f"did you mean {', '.join(close)}? " if close else "") + f"classes: {shown}"
        raise UsageError(f"unknown --target class {text!r}", hint=hint) from None
    if not 0 <= index < len(classes):
        raise UsageError(f"--target {index} is out of range: the model has {len(classes)} classes",
                         hint=f"give an index 0..{len(classes) - 1} or a class name")
    return index


def peak_and_box(heatmap: np.ndarray, *, threshold: float = BOX_THRESHOLD):
    """The heatmap's peak ``[x, y]`` and the box ``[x0, y0, x1, y1]`` (exclusive) around its hot region.

    The hot region is the largest 8-connected region where the heatmap is at least
    ``threshold`` times its maximum. Both are None for a heatmap that is zero everywhere.

    Examples
    --------
    >>> heat = np.zeros((10, 10)); heat[2:5, 3:8] = 1; heat[3, 4] = 2
    >>> peak_and_box(heat, threshold=0.4)
    ([4, 3], [3, 2, 8, 5])
    """
    import cv2

    heatmap = np.asarray(heatmap, np.float32)
    top = float(heatmap.max()) if heatmap.size else 0.0
    if not top > 0:
        return None, None
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    hot = (heatmap >= threshold * top).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
    best = 1 + int(np.argmax(stats[1:count, cv2.CC_STAT_AREA]))
    bx, by = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    box = [bx, by, bx + int(stats[best, cv2.CC_STAT_WIDTH]), by + int(stats[best, cv2.CC_STAT_HEIGHT])]
    return [int(x), int(y)], box


# --- the explainer ------------------------------------------------------------------------------

class Explainer:
    """A loaded model, a method and its layer, checked once; then batches of images in, results out.

    Parameters
    ----------
    loaded : LoadedModel
        From :func:`cnntool.models.load` (model on its device, in eval mode).
    config : ExplainConfig

    Raises
    ------
    UsageError
        Unknown method, layer or target; a method that does not apply to this model (``cam``
        without global average pooling and a Linear head; a layer that is not a feature map, or
        is 1 x 1).
    """

    def __init__(self, loaded, config: ExplainConfig):
        from cnntool.infer.hooks import resolve_layer

        self.loaded = loaded
        self.config = config
        self.method = canonical(config.method)
        self.model = loaded.model
        entry = loaded.entry
        default_layer = entry.first_conv if self.method == "kernels" else entry.cam_layer
        self.layer = config.layer or default_layer
        if not self.layer:
            what = "first convolution" if self.method == "kernels" else "Grad-CAM layer"
            raise UsageError(f"{entry.name} has no default {what}",
                             hint="give --layer (see `cnntool models summary " + entry.name + "` for the names)")
        self.module = resolve_layer(self.model, self.layer)
        self.target = resolve_target(config.target, loaded.classes)
        self.head = entry.head
        self.device = _model_device(self.model)
        if self.method in CAM_METHODS or self.method == "featuremaps":
            self._dry_run()

    def _dry_run(self) -> None:
        """One forward pass on seeded noise, so a method or layer that cannot work fails before any input."""
        import torch

        from cnntool.infer.cam import check_method

        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, *self.loaded.input_size, generator=generator).to(self.device)
        if self.method == "featuremaps":
            self.feature_maps(x)
            return
        check_method(self.model, x, layer=self.layer, method=self.method, head=self.head, target=self.target)

    def heatmaps(self, x):
        """:class:`~cnntool.infer.cam.CamBatch` for a normalised batch (N, C, H, W) on the model's device."""
        from cnntool.infer.cam import compute_cams

        c = self.config
        return compute_cams(self.model, x, layer=self.layer, method=self.method, targets=self.target,
                            head=self.head, aug_smooth=c.aug_smooth, eigen_smooth=c.eigen_smooth,
                            score_batch_size=c.score_batch_size)

    def faithfulness(self, x, cams) -> list[dict]:
        """Per-image ``{"morf", "lerf", "road"}`` for a batch and its :class:`CamBatch`."""
        from cnntool.infer.faithfulness import faithfulness_scores

        before = cams.probabilities[np.arange(len(cams.targets)), cams.targets]
        scores = faithfulness_scores(self.model, x, cams.heatmaps, cams.targets,
                                     batch_size=self.config.score_batch_size, before=before)
        return [{k: float(v[i]) for k, v in scores.items()} for i in range(x.shape[0])]

    def feature_maps(self, x) -> np.ndarray:
        """The layer's activations for a batch: float32 (N, C, h, w) (the forward pass stops there)."""
        import torch

        from cnntool.infer.hooks import LayerTap, frozen

        with frozen(self.model), torch.no_grad(), LayerTap(self.module, self.layer, stop=True) as tap:
            tap.run(self.model, x)
            return tap.activation.float().cpu().numpy()

    def class_name(self, index: int) -> str:
        classes = self.loaded.classes
        return classes[index] if 0 <= index < len(classes) else f"class_{index}"


def _model_device(model):
    import torch

    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# --- running over inputs ------------------------------------------------------------------------

@dataclass(frozen=True)
class RunOptions:
    """Where and how :func:`explain_inputs` runs."""

    out_dir: Path | None = None     # write overlays/heatmaps/grids here (mirroring the inputs)
    overwrite: bool = False         # replace existing outputs (default: skip those the same options made)
    workers: int = 1                # decode/encode threads
    max_pixels: int | None = None   # decompression-bomb guard (default: the data layer's)
    model_id: str = ""              # which weights made the outputs (the skip rule compares it)


def recipe(explainer: "Explainer", options: RunOptions):
    """What makes an input's output files: the method, layer, target, smoothing and the weights
    (:class:`~cnntool.data.writers.Recipe`): an output made otherwise is never silently kept."""
    from cnntool.data.writers import Recipe

    c = explainer.config
    return Recipe.of("explain", {"method": explainer.method, "layer": explainer.layer, "target": explainer.target,
                                 "aug_smooth": c.aug_smooth, "eigen_smooth": c.eigen_smooth, "max_maps": c.max_maps,
                                 "model": options.model_id, "preprocessing": explainer.loaded.preprocessing.to_dict()},
                     summary=f"{explainer.method} of {options.model_id or 'a model'} at {explainer.layer}")


def output_keys(method: str) -> tuple[str, str]:
    """The record fields naming a method's two files: image first, array second."""
    return ("image", "array") if method == "featuremaps" else ("overlay", "heatmap")


def _files_for(rel, method: str, out_dir: Path | None) -> dict[str, Path]:
    from cnntool.data.writers import output_path

    if out_dir is None:
        return {}
    suffix = "_" + method_suffix(method)
    first, second = output_keys(method)
    return {first: output_path(rel, out_dir, ext="png", suffix=suffix),
            second: output_path(rel, out_dir, ext="npy", suffix=suffix)}


def plan_files(items, method: str, out_dir: Path | None) -> list[tuple[dict[str, Path], str | None]]:
    """Every input's files, decided before anything is written: ``(files, error)`` per input.

    An input whose files would overwrite any input of the batch, or files planned for an earlier
    input (``cat.jpg`` and ``cat.png`` in one folder both give ``cat_gradcam.png``), gets an
    error and no files instead (see :func:`cnntool.data.writers.plan_outputs`).
    """
    from cnntool.data.writers import plan_outputs

    keys = output_keys(method)
    plans = plan_outputs(items, out_dir, lambda rel: _files_for(rel, method, out_dir).values())
    return [(dict(zip(keys, plan.paths)), plan.error) for plan in plans]


def explain_inputs(items, explainer: Explainer, options: RunOptions = RunOptions()) -> Iterator[dict]:
    """Explain every input; yields one record per input, in input order (see the module docstring).

    Parameters
    ----------
    items : sequence of InputItem
        From :func:`cnntool.data.sources.resolve_inputs`.
    explainer : Explainer
        A heatmap method or ``featuremaps``.
    options : RunOptions

    Notes
    -----
    Images are decoded and resized on ``options.workers`` threads (:func:`cnntool.data.pixels.read_images`),
    a batch ahead of the model; with ``-o`` each keeps its pixels (at most :data:`MAX_DRAW_SIDE`
    on the longer side: a memory budget) and its overlay is drawn from them, so nothing is
    decoded twice.
    """
    from cnntool.data.pixels import read_images

    method = explainer.method
    if method in MODEL_METHODS:
        raise ValueError(f"{method} takes no inputs; use explain_model")
    preprocess = explainer.loaded.preprocessing
    todo, done, files = _split_existing(items, explainer, options)
    drawing = options.out_dir is not None and method != "featuremaps"
    samples = read_images(todo, mode="rgb", max_pixels=options.max_pixels, workers=options.workers,
                          prepare=preprocess.resize, keep_image=drawing, max_side=MAX_DRAW_SIDE)

    def with_files(samples):
        for item, sample in zip(todo, samples):
            sample.extra["files"] = files[id(item)]
            yield sample

    pending = deque(items)
    for item, (_, record) in zip(todo, explain_samples(with_files(samples), explainer, options)):
        yield from _flush_done(pending, done, item)
        yield record
    yield from _flush_done(pending, done, None)


def explain_samples(samples, explainer: Explainer, options: RunOptions):
    """``(sample, record)`` for every pixel sample (image files or video frames), in order.

    A sample's ``extra["files"]`` names its output files (``{"overlay": path, "heatmap": path}``);
    none are written without it. A sample whose ``extra["draw"]`` is true gets its overlay (uint8
    RGB, as the overlay file would hold it) in ``extra["overlay"]``: video frames are drawn into
    a video, not written as files. Heatmaps are computed at the sample's drawing size (at most
    :data:`~cnntool.data.pixels.MAX_DRAW_SIDE` on the longer side); ``peak`` and ``box`` are in
    the original image's pixels.
    """
    import torch

    from cnntool.data.loaders import thread_map
    from cnntool.data.pixels import batches
    from cnntool.data.transforms import normalize_batch

    method = explainer.method
    preprocess = explainer.loaded.preprocessing
    for batch in batches(samples, explainer.config.batch_size, prepare=preprocess.resize, stack=True):
        good = [s for s in batch.samples if s.ok]
        finished: dict[int, dict] = {}
        if good:
            try:
                x = normalize_batch(torch.from_numpy(batch.inputs).to(explainer.device), *preprocess.scale_and_offset())
                finish = _batch_finisher(explainer, x, preprocess, recipe(explainer, options))
                jobs = list(enumerate(good))
                for sample, record in zip(good, thread_map(finish, jobs, workers=options.workers)):
                    finished[id(sample)] = record
            except Exception as exc:  # the model failed on this batch: its samples fail, the run goes on
                for sample in good:
                    finished[id(sample)] = {"path": sample.path, "method": method,
                                            "error": f"{type(exc).__name__}: {one_line(exc)}"}
        for sample in batch.samples:
            if not sample.ok:
                yield sample, {"path": sample.path, **_where(sample), "method": method, "error": sample.error}
            else:
                yield sample, finished[id(sample)]


def _where(sample) -> dict:
    return {"frame": sample.frame, "time": sample.time} if sample.frame is not None else {}


def _split_existing(items, explainer: "Explainer", options: RunOptions):
    """Inputs to compute; the records of inputs not to compute (their planned outputs clash, were
    made otherwise, or were made by the same options already: skipped), by ``id(item)``; and
    every input's files, by ``id(item)``."""
    from cnntool.data.writers import should_skip

    method = explainer.method
    made_by = recipe(explainer, options)
    todo, done, files_of = [], {}, {}
    for item, (files, error) in zip(items, plan_files(items, method, options.out_dir)):
        files_of[id(item)] = files
        if error is None and item.ok and files:
            try:
                if should_skip(files.values(), made_by, source=item.path, overwrite=options.overwrite):
                    done[id(item)] = {"path": item.path, "method": method, "skipped": True,
                                      **{k: str(p) for k, p in files.items()}, "error": None}
                    continue
            except InputError as exc:
                error = str(exc)
        if error is not None:
            done[id(item)] = {"path": item.path, "method": method, "error": error}
        else:
            todo.append(item)
    return todo, done, files_of


def _flush_done(pending: deque, done: dict, upto) -> Iterator[dict]:
    """Yield skipped records that come, in input order, before ``upto`` (all of them for None)."""
    while pending and pending[0] is not upto:
        item = pending.popleft()
        if id(item) in done:
            yield done.pop(id(item))
    if pending:
        pending.popleft()


def _batch_finisher(explainer: Explainer, x, preprocess, made_by):
    """Compute the batch's heatmaps (or feature maps); return the per-sample function that builds
    its record and writes its files (run on threads)."""
    method = explainer.method
    if method == "featuremaps":
        acts = explainer.feature_maps(x)
        return lambda job: _finish_featuremaps(job, acts, explainer, made_by)
    cams = explainer.heatmaps(x)
    faith = explainer.faithfulness(x, cams) if explainer.config.score else None
    probs = cams.probabilities
    return lambda job: _finish_heatmap(job, cams, probs, faith, explainer, preprocess, made_by)


def _finish_heatmap(job, cams, probs, faith, explainer: Explainer, preprocess, made_by) -> dict:
    from cnntool.data.writers import check_not_input, write_image, write_npy

    j, sample = job
    files = sample.extra.get("files") or {}
    target = int(cams.targets[j])
    name, score = explainer.class_name(target), float(probs[j, target])
    record = {"path": sample.path, **_where(sample), "method": explainer.method, "layer": explainer.layer,
              "class": name, "class_index": target, "score": score}
    try:
        h, w = sample.size
        scale = sample.scale if sample.image is not None else min(1.0, MAX_DRAW_SIDE / max(h, w))
        shape = (sample.image.shape[:2] if sample.image is not None
                 else (max(1, round(h * scale)), max(1, round(w * scale))))
        geometry = preprocess.input_to_image(shape)
        heat = preprocess.map_to_image(cams.heatmaps[j], shape, geometry=geometry)
        peak, box = peak_and_box(heat)
        record["peak"] = None if peak is None else [min(w - 1, int(v / scale)) for v in peak]
        record["box"] = None if box is None else [min(w, round(box[0] / scale)), min(h, round(box[1] / scale)),
                                                  min(w, round(box[2] / scale)), min(h, round(box[3] / scale))]
        draw = bool(sample.extra.get("draw"))
        overlay = (overlay_heatmap(sample.image, heat, text=f"{name} {score:.2f}", seen=geometry[1])
                   if files or draw else None)
        if files:
            for path in files.values():
                check_not_input(path, sample.path)
            ledger = {"recipe": made_by, "source": sample.path if sample.frame is None else None}
            write_image(files["overlay"], overlay, **ledger)
            write_npy(files["heatmap"], heat, **ledger)
        if draw:
            sample.extra["overlay"] = overlay
    except InputError as exc:
        return {"path": sample.path, **_where(sample), "method": explainer.method, "error": str(exc)}
    except Exception as exc:  # whatever goes wrong with one input is that input's error record
        return {"path": sample.path, **_where(sample), "method": explainer.method,
                "error": f"{type(exc).__name__}: {one_line(exc)}"}
    record["overlay"] = str(files["overlay"]) if files else None
    record["heatmap"] = str(files["heatmap"]) if files else None
    if scale != 1.0:
        record["heatmap_scale"] = scale
    if faith is not None:
        record["faithfulness"] = faith[j]
    record["error"] = None
    return record


def _finish_featuremaps(job, acts, explainer: Explainer, made_by) -> dict:
    from cnntool.data.writers import check_not_input, write_image, write_npy
    from cnntool.infer.visualize import feature_map_grid, grid_shape

    j, sample = job
    files = sample.extra.get("files") or {}
    maps = acts[j]
    shown = min(explainer.config.max_maps, maps.shape[0])
    record = {"path": sample.path, **_where(sample), "method": "featuremaps", "layer": explainer.layer,
              "channels": int(maps.shape[0]), "map_size": [int(maps.shape[1]), int(maps.shape[2])],
              "grid": list(grid_shape(shown))}
    try:
        if files:
            for path in files.values():
                check_not_input(path, sample.path)
            ledger = {"recipe": made_by, "source": sample.path if sample.frame is None else None}
            write_image(files["image"], feature_map_grid(maps, max_maps=shown), **ledger)
            write_npy(files["array"], maps.astype(np.float32), **ledger)
    except InputError as exc:
        return {"path": sample.path, **_where(sample), "method": "featuremaps", "error": str(exc)}
    except Exception as exc:  # whatever goes wrong with one input is that input's error record
        return {"path": sample.path, **_where(sample), "method": "featuremaps",
                "error": f"{type(exc).__name__}: {one_line(exc)}"}
    record["image"] = str(files["image"]) if files else None
    record["array"] = str(files["array"]) if files else None
    record["error"] = None
    return record


# --- methods on the model alone -----------------------------------------------------------------

def model_stem(spec: str) -> str:
    """A file-name stem for a model spec that tells models apart: ``resnet18:IMAGENET1K_V1`` ->
    ``resnet18_IMAGENET1K_V1``; a checkpoint named like every run's (``best.pt``, ``last.pt``)
    gets its run folder's name: ``runs/lenet5-1/best.pt`` -> ``lenet5-1_best``.

    Examples
    --------
    >>> model_stem("resnet18:DEFAULT"), model_stem("runs/a/best.pt"), model_stem("models/digits.pt")
    ('resnet18_DEFAULT', 'a_best', 'digits')
    """
    from cnntool.models.loading import RUN_FOLDER_CHECKPOINT
    from cnntool.models.registry import is_checkpoint_spec

    if is_checkpoint_spec(spec):
        path = Path(spec)
        if path.is_dir():
            path = path / RUN_FOLDER_CHECKPOINT
        if path.name in (RUN_FOLDER_CHECKPOINT, "last.pt") and path.parent.name:
            return f"{path.parent.name}_{path.stem}"
        return path.stem
    return spec.replace(":", "_").replace("/", "_")


def explain_model(spec: str, explainer: Explainer, out_dir: Path, *, overwrite: bool = False,
                  model_id: str = "") -> dict:
    """``kernels`` or ``maximize``: write one image under ``out_dir``; return its record.

    The image is skipped only when the same weights and options made it (the output ledger);
    one made by another model is an error record unless ``overwrite``.
    """
    from cnntool.data.writers import Recipe, should_skip, write_image
    from cnntool.data.draw import readable
    from cnntool.infer.visualize import first_conv_weight, grid_shape, kernel_grid, maximize_channel

    method, layer = explainer.method, explainer.layer
    cfg = explainer.config.maximize
    made_by = Recipe.of("explain", {"method": method, "layer": layer, "model": model_id or spec,
                                    "channel": explainer.config.channel if method == "maximize" else None,
                                    "maximize": vars(cfg) if method == "maximize" else None},
                        summary=f"{method} of {model_id or spec}")
    if method == "kernels":
        target = Path(out_dir) / f"{model_stem(spec)}_kernels.png"
        weight = first_conv_weight(explainer.model, layer)
        record = {"path": spec, "method": method, "layer": layer, "kernels": int(weight.shape[0]),
                  "in_channels": int(weight.shape[1]), "kernel_size": [int(weight.shape[2]), int(weight.shape[3])],
                  "grid": list(grid_shape(weight.shape[0])), "image": str(target)}
    elif method == "maximize":
        channel = explainer.config.channel
        target = Path(out_dir) / f"{model_stem(spec)}_{layer}_ch{channel}_maximize.png"
        record = {"path": spec, "method": method, "layer": layer, "channel": channel, "steps": cfg.steps,
                  "image": str(target)}
    else:
        raise ValueError(f"{method} needs input images; use explain_inputs")
    try:
        if should_skip(target, made_by, overwrite=overwrite):
            return {**record, "skipped": True, "error": None}
    except InputError as exc:
        return {**record, "image": None, "error": str(exc)}
    if method == "kernels":
        write_image(target, readable(kernel_grid(weight)), recipe=made_by)
        return {**record, "error": None}
    loaded = explainer.loaded
    image, start, final = maximize_channel(explainer.model, layer, explainer.config.channel,
                                           input_size=loaded.input_size, mean=loaded.mean, std=loaded.std,
                                           device=explainer.device, config=cfg)
    write_image(target, readable(image[:, :, 0] if image.shape[2] == 1 else image), recipe=made_by)
    return {**record, "activation_start": start, "activation": final, "error": None}
