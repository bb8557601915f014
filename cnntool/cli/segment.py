"""``cnntool segment``: a class for every pixel (a semantic model or a classical method) and the
objects found (regions, or Mask R-CNN's detections), drawn, written as index masks, evaluated.

Thin on purpose: resolve the inputs, pick the path, stream the stage to the output. Semantic
models run through :func:`cnntool.infer.segment.segment_samples`, classical methods through
:func:`~cnntool.infer.segment.classical_samples`; an instance model (Mask R-CNN) is a detector,
so this command composes :func:`cnntool.infer.detect.detect_samples` with
:func:`~cnntool.infer.segment.segmentation_from_detections` (stages do not import each other; the
command line composes them). The records and files are described in :mod:`cnntool.infer.segment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import (COMMON_PARAMS, BatchSize, Device, Format, ImgSize, Inputs, Iou, MaxDet, MaxPixels,
                                  Model, OutDir, Overwrite, Quiet, Verbose, Workers, default_workers, in_group,
                                  make_output)
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import GateFailed, UsageError

CLASSICAL = "Classical methods"
INSTANCE = "Instance models"

Method = Annotated[Optional[str], typer.Option("--method", help="A classical method instead of a model: otsu | "
                                                                "watershed | slic | felzenszwalb | kmeans.",
                                               show_default=False)]
Polarity = Annotated[Optional[str], typer.Option("--polarity", rich_help_panel=CLASSICAL,
                                                 help="otsu, watershed: objects are bright | dark | auto (the side of "
                                                      "the threshold with fewer pixels) [default: auto].",
                                                 show_default=False)]
BackgroundSigma = Annotated[Optional[float], typer.Option(
    "--background-sigma", min=0.0, rich_help_panel=CLASSICAL, show_default=False,
    help="otsu, watershed: uneven lighting removed first, estimated by a blur of this fraction of the shorter "
         "side; 0 turns it off [default: 0.1].")]
MinSize = Annotated[Optional[float], typer.Option(
    "--min-size", min=0.0, max=0.999, rich_help_panel=CLASSICAL, show_default=False,
    help="otsu, watershed, felzenszwalb, kmeans: smallest region kept, as a fraction of the image area "
         "[default: 0.001].")]
FillHoles = Annotated[Optional[bool], typer.Option("--fill-holes/--no-fill-holes", rich_help_panel=CLASSICAL,
                                                   show_default=False,
                                                   help="otsu, watershed: fill holes in objects [default: fill].")]
MarkerDepth = Annotated[Optional[float], typer.Option(
    "--marker-depth", min=0.0, rich_help_panel=CLASSICAL, show_default=False,
    help="watershed: touching objects are split where their neck is narrower than (1 - this) of a typical "
         "object's width; larger splits less [default: 0.2].")]
NSegments = Annotated[Optional[int], typer.Option("--n-segments", min=1, rich_help_panel=CLASSICAL, show_default=False,
                                                  help="slic: about this many superpixels [default: 100].")]
Compactness = Annotated[Optional[float], typer.Option("--compactness", min=0.0, rich_help_panel=CLASSICAL,
                                                      show_default=False,
                                                      help="slic: higher gives squarer superpixels [default: 10].")]
Sigma = Annotated[Optional[float], typer.Option("--sigma", min=0.0, rich_help_panel=CLASSICAL, show_default=False,
                                                help="slic, felzenszwalb: Gaussian smoothing first, in pixels "
                                                     "[default: 1 for slic, 0.8 for felzenszwalb].")]
RegionScale = Annotated[Optional[float], typer.Option("--region-scale", min=0.0, rich_help_panel=CLASSICAL,
                                                      show_default=False,
                                                      help="felzenszwalb: higher gives larger regions (its 'scale') "
                                                           "[default: 100].")]
Clusters = Annotated[Optional[int], typer.Option("--clusters", min=2, rich_help_panel=CLASSICAL, show_default=False,
                                                 help="kmeans: colour clusters; the largest is the background "
                                                      "[default: 3].")]
Seed = Annotated[int, typer.Option("--seed", rich_help_panel=CLASSICAL, help="kmeans: its random seed.")]
Conf = Annotated[float, typer.Option("--conf", min=0.0, max=1.0, rich_help_panel=INSTANCE,
                                     help="Instance models: least score of an object kept.")]
SaveCoco = Annotated[Optional[Path], typer.Option(
    "--save-coco", metavar="FILE", dir_okay=False, show_default=False,
    help="Instance models and classical methods: every object's mask as RLE in COCO's results format (pycocotools' "
         "loadRes reads it); image ids 1, 2, ... in input order. With --eval GT.json: what the mask mAP scored "
         "(every object down to score 0.001, not only --conf's) with the ground truth's image and category ids.")]
Eval = Annotated[Optional[Path], typer.Option(
    "--eval", metavar="MASKS", show_default=False,
    help="Score against true masks: a folder of index masks named as the inputs (or a dataset with images/ and "
         "masks/); a summary record with mIoU (mean IoU over the classes present), per-class IoU and Dice, pixel "
         "accuracy (255 not counted); with -o also evaluation.json and confusion.png. Instance models also take a "
         "COCO annotations file with segmentations: mask mAP by pycocotools.")]
MinMiou = Annotated[Optional[float], typer.Option("--min-miou", min=0.0, max=1.0, show_default=False,
                                                  help="With --eval MASKS: exit 1 when mIoU is below this (a CI gate).")]

#: The command's options each classical method takes, with the method's own name for them.
METHOD_OPTIONS = {
    "otsu": {"polarity": "polarity", "background_sigma": "background_sigma", "min_size": "min_size",
             "fill_holes": "fill_holes"},
    "watershed": {"polarity": "polarity", "background_sigma": "background_sigma", "min_size": "min_size",
                  "fill_holes": "fill_holes", "marker_depth": "split"},
    "slic": {"n_segments": "n_segments", "compactness": "compactness", "sigma": "sigma"},
    "felzenszwalb": {"region_scale": "scale", "sigma": "sigma", "min_size": "min_size"},
    "kmeans": {"clusters": "k", "seed": "seed", "min_size": "min_size"},
}
#: Options every way of segmenting takes.
SHARED = {"inputs", "out", "evaluate", "min_miou"}
#: Options never refused: the shared ones of every command but ``--seed``, which only k-means uses.
COMMON = COMMON_PARAMS - {"seed"}
#: Mask R-CNN's non-maximum suppression and most objects per image unless --iou / --max-det say
#: otherwise (torchvision's own defaults for it).
INSTANCE_IOU, INSTANCE_MAX_DET = 0.5, 100


def segment_command(
    ctx: typer.Context,
    inputs: Inputs,
    model: Model = "",
    method: Method = None,
    polarity: Polarity = None,
    background_sigma: BackgroundSigma = None,
    min_size: MinSize = None,
    fill_holes: FillHoles = None,
    marker_depth: MarkerDepth = None,
    n_segments: NSegments = None,
    compactness: Compactness = None,
    sigma: Sigma = None,
    region_scale: RegionScale = None,
    clusters: Clusters = None,
    seed: Seed = 0,
    conf: Conf = 0.5,
    iou: in_group(Iou, INSTANCE) = INSTANCE_IOU,
    max_det: in_group(MaxDet, INSTANCE) = INSTANCE_MAX_DET,
    out: OutDir = None,
    save_coco: SaveCoco = None,
    evaluate: Eval = None,
    min_miou: MinMiou = None,
    overwrite: Overwrite = False,
    imgsz: ImgSize = None,
    batch_size: BatchSize = 4,
    workers: Workers = 0,
    device: Device = "auto",
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Segment images: the share of each class and the objects found per image; masks and overlays with -o.

    -m takes a semantic model (lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1 and the other
    torchvision segmenters, from the torch cache; a checkpoint of `cnntool train --task segment`)
    or an instance model (maskrcnn_resnet50_fpn:COCO_V1: one more record per object; --conf,
    --iou and --max-det as for `cnntool detect`); --method a classical method, no model (its
    options are listed below; an option the method or model does not use, --seed included, is
    refused). With -o DIR: DIR/masks/<input>.png, the index mask of the input's size (class
    ids, 255 = no class), and DIR/overlays/<input>, the classes painted with a legend. mIoU is
    the mean IoU over the classes present in the truth or the predictions; segmentation_models_
    pytorch's default counts an absent class as IoU 1 (0.625 where this says 0.500). Exit 1 when
    some inputs failed or --min-miou trips; 2 for a model that is not a segmenter.

    Examples:

    \b
      cnntool segment samples/photos/coins.png --method watershed -o masks/
      cnntool segment photos/ -m lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1 -o seg/
      cnntool segment data/val/images -m runs/unet-1 --eval data/val --min-miou 0.8
      cnntool segment street.jpg -m maskrcnn_resnet50_fpn:COCO_V1 --save-coco masks.json
    """
    from cnntool.cli._options import refuse_unused

    output = make_output(format, quiet, verbose)
    if bool(model) == bool(method):
        raise UsageError("give a model (-m) or a classical method (--method), not both" if model
                         else "no model or method given",
                         hint="-m lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1, -m runs/NAME, or --method otsu")
    if min_miou is not None and evaluate is None:
        raise UsageError("--min-miou needs --eval", hint="add --eval MASKS (a folder of true masks)")
    coco_truth = evaluate is not None and _is_coco(evaluate)
    if method is not None:
        from cnntool.errors import unknown_choice
        from cnntool.infer.classical import METHODS

        if method not in METHODS:
            raise unknown_choice("--method", method, METHODS)
        refuse_unused(ctx, SHARED | {"method", "save_coco", *METHOD_OPTIONS[method]}, what=f"--method {method}",
                      common=COMMON)
        options = {METHOD_OPTIONS[method][name]: value for name, value in ctx.params.items()
                   if name in METHOD_OPTIONS[method] and value is not None}
        job = _Classical(method, options)
    else:
        job = _model_job(model, device, imgsz, conf, iou, max_det, output)
        refuse_unused(ctx, SHARED | job.uses, what=f"{job.kind} models", common=COMMON)
    if coco_truth and job.kind != "instance":
        raise UsageError(f"--eval {evaluate} is COCO ground truth (objects), scored with mask mAP for instance models",
                         hint="give --eval a folder of index masks")
    if min_miou is not None and coco_truth:
        raise UsageError("--min-miou gates mIoU, which --eval with COCO ground truth does not give",
                         hint="use `cnntool detect --eval ... --min-map` for a mAP gate")
    evaluation = _evaluation(evaluate, coco_truth, job, output) if evaluate is not None else None
    if coco_truth:
        from cnntool.infer.detect import EVAL_CONF

        job.floor = EVAL_CONF  # mAP needs the whole ranking; --conf decides what records and pictures show

    from cnntool.data.sources import require_inputs, resolve_inputs

    items = resolve_inputs(inputs, exclude=out)
    require_inputs(items, inputs)
    run_recipe = _check_run_files(job, inputs, out, save_coco, evaluate, overwrite)
    counts = _run(items, job, out, overwrite, evaluation, save_coco, run_recipe, batch_size, workers, max_pixels,
                  output)
    summary = _finish_evaluation(evaluation, out, run_recipe, output) if evaluation is not None else None
    output.close()
    if counts["skipped"]:
        from cnntool.data.writers import skipped_message

        output.log(skipped_message(counts["skipped"]))
    objects = f", {counts['objects']} objects" if job.kind != "semantic" else ""
    output.log(f"{counts['images']} images{objects}" + (f", {output.failed} failed" if output.failed else ""))
    if min_miou is not None:
        miou = summary.get("miou") if summary else None
        if miou is None:
            raise GateFailed("no mIoU to check against --min-miou: no input could be evaluated")
        if miou < min_miou:
            raise GateFailed(f"mIoU {miou:.4f} is under --min-miou {min_miou:g}")
    return output.exit_code


# --- the three ways ---------------------------------------------------------------------------------

class _Classical:
    kind = "classical"

    def __init__(self, method: str, options: dict):
        from cnntool.infer.segment import classical_classes

        self.method, self.options = method, options
        self.classes = classical_classes(method, **options)  # a bad value is a usage error here
        self.identity = {"method": method, "options": options}

    def read(self, items, workers, max_pixels, drawing, batch_size):
        from cnntool.data.pixels import read_images

        # the method works on the whole pixels (a downscaled copy would change what it finds)
        return read_images(items, mode="auto", max_pixels=max_pixels, workers=workers)

    def segment(self, samples, batch_size):
        from cnntool.infer.segment import classical_samples

        for sample, seg in classical_samples(samples, method=self.method, **self.options):
            yield sample, seg, None


class _Semantic:
    kind = "semantic"
    uses = {"model", "imgsz", "batch_size"}

    def __init__(self, loaded, device, spec: str):
        from cnntool.models.loading import model_identity

        self.loaded, self.device = loaded, device
        self.classes = list(loaded.classes)
        self.identity = {"model": model_identity(spec), "preprocessing": loaded.preprocessing.to_dict()}

    def read(self, items, workers, max_pixels, drawing, batch_size):
        from cnntool.data.pixels import MAX_DRAW_SIDE, read_images

        pre = self.loaded.preprocessing
        return read_images(items, mode=pre.decode_mode, max_pixels=max_pixels, workers=workers, prepare=pre.resize,
                           keep_image=drawing, max_side=MAX_DRAW_SIDE, chunk=max(1, -(-batch_size // workers)))

    def segment(self, samples, batch_size):
        from cnntool.infer.segment import segment_samples

        for sample, seg in segment_samples(self.loaded, samples, device=self.device, batch_size=batch_size):
            yield sample, seg, None


class _Instance:
    kind = "instance"
    uses = {"model", "imgsz", "batch_size", "conf", "iou", "max_det", "save_coco"}

    def __init__(self, loaded, device, spec: str, conf: float, iou: float, max_det: int):
        from cnntool.infer.detect import class_names, working_size
        from cnntool.models.loading import model_identity

        self.loaded, self.device, self.conf, self.floor = loaded, device, conf, conf
        self.iou, self.max_det = iou, max_det
        self.names = class_names(loaded)
        self.classes = ["background", *self.names]
        self.identity = {"model": model_identity(spec), "conf": conf, "iou": iou, "max_det": max_det,
                         "size": list(working_size(loaded.model))}

    def read(self, items, workers, max_pixels, drawing, batch_size):
        from cnntool.data.pixels import MAX_DRAW_SIDE, read_images
        from cnntool.infer.detect import input_preparer

        return read_images(items, mode=self.loaded.preprocessing.decode_mode, max_pixels=max_pixels, workers=workers,
                           prepare=input_preparer(self.loaded), keep_image=drawing, max_side=MAX_DRAW_SIDE,
                           chunk=max(1, -(-batch_size // workers)))

    def segment(self, samples, batch_size):
        from cnntool.infer.detect import detect_samples
        from cnntool.infer.segment import segmentation_from_detections

        for sample, found in detect_samples(self.loaded, samples, device=self.device, batch_size=batch_size,
                                            conf=self.floor, iou=self.iou, max_det=self.max_det):
            if found is None:
                yield sample, None, None
                continue
            shown = found.subset(found.scores >= self.conf)
            yield sample, segmentation_from_detections(shown), found


def _model_job(spec: str, device: str, imgsz, conf: float, iou: float, max_det: int, output):
    import torch

    from cnntool.cli._options import parse_imgsz, with_imgsz
    from cnntool.device import resolve_device
    from cnntool.models.loading import load
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    torch_device = resolve_device(device)
    torch.manual_seed(0)  # a registry model's random weights are the same on every run
    if is_checkpoint_spec(spec) or _is_instance_entry(get_entry(spec.partition(":")[0])):
        loaded = load(spec, device=str(torch_device))  # a segmenter, or a detector with masks (checked below)
    else:
        loaded = None
    if loaded is not None and loaded.task == "detection" and _is_instance_entry(loaded.entry):
        from cnntool.infer.detect import set_input_size

        if imgsz is not None:
            loaded = set_input_size(loaded, parse_imgsz(imgsz))
        job = _Instance(loaded, torch_device, spec, conf, iou, max_det)
    else:
        if loaded is None or loaded.task != "segmentation":  # load() refuses other tasks, with its hint
            loaded = load(spec, task="segmentation", device=str(torch_device))
        job = _Semantic(with_imgsz(loaded, imgsz), torch_device, spec)
    if loaded.random_weights:
        output.warn(f"{spec} has random weights (no checkpoint or pretrained weights): its masks mean nothing")
    return job


def _is_instance_entry(entry) -> bool:
    """A detector that also predicts a mask per object (Mask R-CNN)."""
    return entry.task == "detection" and any(head.endswith("mask_predictor") for head in entry.heads)


# --- evaluation -----------------------------------------------------------------------------------------

def _is_coco(path: Path) -> bool:
    return path.suffix.lower() == ".json" or (path / "annotations.json").is_file()


def _evaluation(path: Path, coco: bool, job, output):
    from cnntool.infer.segment import InstanceEvaluation, MaskEvaluation

    if not path.exists():
        raise UsageError(f"--eval {path}: no such file or folder", hint="a folder of index masks named as the inputs")
    if coco:
        from cnntool.data.boxes import load_boxes

        truth = load_boxes(path, check_files=False)
        return InstanceEvaluation(truth, job.names)
    if job.kind == "classical" and len(job.classes) < 2:
        raise UsageError(f"--method {job.method} finds regions without classes: there is nothing to compare with masks",
                         hint="evaluate otsu, watershed or kmeans, or a model")
    evaluation = MaskEvaluation(path, job.classes)
    if evaluation.names_differ():
        output.warn(f"the masks' classes ({', '.join(evaluation.truth_classes[:6])}) are not the predictions' "
                    f"({', '.join(job.classes[:6])}): compared by index")
    return evaluation


def _finish_evaluation(evaluation, out: Path | None, recipe, output) -> dict:
    from cnntool.infer.segment import InstanceEvaluation, evaluation_lines, write_evaluation

    if isinstance(evaluation, InstanceEvaluation):
        if not len(evaluation.evaluator):
            output.warn(f"no input matched an image of the ground truth ({len(evaluation.unmatched)} unmatched)")
            return {}
        summary = evaluation.summary()
        if evaluation.unmatched:
            output.warn(f"{len(evaluation.unmatched)} inputs left out of the evaluation, e.g. "
                        f"{evaluation.unmatched[0]}")
        if evaluation.dropped:
            output.warn(f"{evaluation.dropped} detections of classes the ground truth does not have were left out")
        output.emit_summary(summary)
        shown = {k: "-" if summary.get(k) is None else f"{summary[k]:.4f}" for k in ("map", "map50")}
        output.log(f"mask mAP@[.5:.95] {shown['map']}  mAP@.5 {shown['map50']}  over {summary['evaluated']} images")
        return summary
    summary = evaluation.summary()
    if summary["evaluated"] and out is not None:
        for path in write_evaluation(summary, out, recipe):
            output.debug(f"wrote {path}")
    output.emit_summary(summary)  # a table reader gets it as text below
    for line in evaluation_lines(summary):
        output.log(line)
    return summary


# --- the run ------------------------------------------------------------------------------------------

def _check_run_files(job, inputs, out: Path | None, save_coco: Path | None, evaluate: Path | None,
                     overwrite: bool):
    """The recipe of the run's own files (--save-coco, the evaluation in -o); refused before any
    work when they exist made otherwise, unless --overwrite."""
    from cnntool.data.writers import Recipe, should_skip
    from cnntool.errors import InputError
    from cnntool.infer.segment import EVALUATION_FILES

    recipe = Recipe.of("segment", {**job.identity, "inputs": list(inputs),
                                   "eval": str(evaluate.resolve()) if evaluate is not None else None},
                       summary=f"segment {job.identity.get('method') or job.identity.get('model')}")
    files = [save_coco] if save_coco is not None else []
    if out is not None and evaluate is not None:
        files += [out / name for name in EVALUATION_FILES]
    for path in files:
        try:
            should_skip(path, recipe, overwrite=overwrite)
        except InputError as exc:
            raise UsageError(str(exc).replace("; --overwrite replaces it", ""),
                             hint="add --overwrite to replace it, or choose another path") from None
    return recipe


def _run(items, job, out, overwrite, evaluation, save_coco, run_recipe, batch_size, workers, max_pixels, output) -> dict:
    import dataclasses

    from cnntool.data.writers import Recipe, plan_outputs, should_skip
    from cnntool.errors import InputError, one_line
    from cnntool.infer.segment import (InstanceEvaluation, instance_records, planned_files, segmentation_record,
                                       write_segmentation)

    made_by = Recipe.of("segment", job.identity, summary=f"segment {job.identity.get('method') or job.identity['model']}")
    plans = plan_outputs(items, out, lambda rel: planned_files(rel, out))
    todo, keep_of = [], []
    for item, plan in zip(items, plans):
        error, keep = plan.error, False
        if error is None and item.ok and plan.paths:
            try:
                keep = should_skip(plan.paths, made_by, source=item.path, overwrite=overwrite)
            except InputError as exc:
                error = str(exc)
        todo.append(dataclasses.replace(item, error=error) if error is not None else item)
        keep_of.append(keep)
    workers = default_workers(workers)
    samples = job.read(todo, workers, max_pixels, out is not None, batch_size)
    counts = {"images": 0, "objects": 0, "skipped": 0}
    results: list[dict] = []
    # with COCO truth, the file holds what the mAP scored (every detection down to the evaluation's
    # floor, the truth's ids), as `cnntool detect` writes it, so COCOeval on it gives the same mAP
    scored = isinstance(evaluation, InstanceEvaluation)
    stream = output.progress(job.segment(samples, batch_size), total=len(items), desc="segment")
    for n, ((sample, seg, found), plan, keep) in enumerate(zip(stream, plans, keep_of), start=1):
        counts["images"] += 1
        files = plan.paths if seg is not None else ()
        record = segmentation_record(sample, seg, mask_path=files[0] if files else None,
                                     overlay_path=files[1] if files else None)
        error = record.pop("error")
        if files:
            try:
                if keep:
                    counts["skipped"] += len(plan.paths)
                else:
                    write_segmentation(sample, seg, plan.paths, made_by)
            except InputError as exc:
                error, record["mask"], record["overlay"] = str(exc), None, None
            except Exception as exc:  # drawing or writing failed for this input: its error, the run goes on
                error = f"cannot write its outputs: {type(exc).__name__}: {one_line(exc)}"
                record["mask"] = record["overlay"] = None
        if seg is not None and evaluation is not None:
            error = _evaluate_one(evaluation, sample, seg, found, record, output) or error
        output.emit({**record, "error": error})
        if job.kind == "instance":
            for obj in instance_records(sample, seg):
                output.emit(obj)
        if seg is not None:
            counts["objects"] += len(seg.instances or [])
            if save_coco is not None and not scored:
                results += _coco_results(job, seg, found, n)
        sample.image = sample.input = None  # the pixels are done with
    if save_coco is not None:
        from cnntool.data.writers import atomic_write_json

        atomic_write_json(save_coco, evaluation.results if scored else results, recipe=run_recipe)
    return counts


def _evaluate_one(evaluation, sample, seg, found, record: dict, output) -> str | None:
    """Score one input (its record gets ``truth``, ``miou``, ``pixel_accuracy``); returns the
    error of a bad true mask, or None."""
    from cnntool.errors import InputError
    from cnntool.infer.segment import InstanceEvaluation

    if isinstance(evaluation, InstanceEvaluation):
        reason = evaluation.add(sample, found)
        if reason is not None:
            output.debug(f"not evaluated: {sample.path}: {reason}")
        return None
    try:
        record.update(evaluation.add(sample, seg))
    except InputError as exc:
        record.update({"truth": None, "miou": None, "pixel_accuracy": None})
        return str(exc)
    return None


def _coco_results(job, seg, found, image_number: int) -> list[dict]:
    """One image's objects in COCO's results format, image id ``image_number``: Mask R-CNN's own
    masks scoring at least --conf (overlaps kept; category id = class_id + 1), or the regions of
    a classical method (score 1). With COCO truth the evaluation collects them instead."""
    from cnntool.metrics.segmentation import coco_segm_results

    if job.kind == "instance":
        shown = found.subset(found.scores >= job.conf)
        return coco_segm_results(image_number, shown.masks, shown.labels.tolist(), shown.scores.tolist(),
                                 category_ids=list(range(1, len(job.names) + 1)))
    results = []
    for i, instance in enumerate(seg.instances or [], start=1):  # one mask at a time: bounded memory
        results += coco_segm_results(image_number, (seg.instance_mask == i)[None], [instance["class_id"]], [1.0])
    return results
