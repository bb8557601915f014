"""``cnntool detect``: boxes, labels and scores over folders of images, optionally drawn, cropped,
saved as YOLO labels or COCO results, and evaluated against ground truth (mAP).

Thin on purpose: resolve the inputs, load the model, stream
:func:`cnntool.infer.detect.detect_inputs` to the output; ``--eval`` scores every input against a
COCO file or YOLO folder and ends with a ``"<summary>"`` record (the record schema is in
:mod:`cnntool.infer.detect`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import (BatchSize, Device, Format, ImgSize, Inputs, Iou, MaxDet, MaxPixels, Model, OutDir,
                                  Overwrite, Quiet, Verbose, Workers, default_workers, in_group, make_output)
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import GateFailed, UsageError

#: The groups of ``cnntool detect --help``.
DETECTING = "What to detect"
FILES = "Files"
EVALUATION = "Evaluation"
MACHINE = "Machine"

Conf = Annotated[float, typer.Option("--conf", min=0.0, max=1.0,
                                     help="Least score of a detection shown.")]
Classes = Annotated[Optional[list[str]], typer.Option("--classes", metavar="NAMES",
                                                      help="Keep only these classes: names or 0-based ids, comma-"
                                                           "separated or repeated (--classes person,car).",
                                                      show_default=False)]
SaveCrops = Annotated[bool, typer.Option("--save-crops",
                                         help="With -o: each detection's pixels as "
                                              "DIR/crops/<label>/<image>_<n>.<ext>.")]
SaveTxt = Annotated[bool, typer.Option("--save-txt",
                                       help="With -o: YOLO labels per image (DIR/labels/<image>.txt, 'class cx cy w h' "
                                            "normalised; classes in DIR/classes.txt).")]
SaveCoco = Annotated[Optional[Path], typer.Option("--save-coco", metavar="FILE", dir_okay=False,
                                                  help="Write the detections in COCO's results format (pycocotools' "
                                                       "loadRes reads it): with --eval, the ground truth's image and "
                                                       "category ids; else image ids 1, 2, ... in input order and "
                                                       "category id = class_id + 1.", show_default=False)]
Eval = Annotated[Optional[Path], typer.Option("--eval", metavar="GT",
                                              help="Score the detections against ground truth: a COCO annotations "
                                                   "file or a COCO/YOLO dataset folder (inputs matched by file name). "
                                                   "Ends with a summary record: mAP@[.5:.95], mAP@.5, mAP@.75, per-"
                                                   "class AP and recall; with -o also evaluation.json, pr_curve.png "
                                                   "and confusion.png.", show_default=False)]
MinMap = Annotated[Optional[float], typer.Option("--min-map", min=0.0, max=1.0,
                                                 help="With --eval: exit 1 when mAP@[.5:.95] is below this "
                                                      "(a CI gate).",
                                                 show_default=False)]


def detect_command(
    inputs: Inputs,
    model: in_group(Model, DETECTING) = "",
    conf: in_group(Conf, DETECTING) = 0.25,
    iou: in_group(Iou, DETECTING) = 0.45,
    classes: in_group(Classes, DETECTING) = None,
    max_det: in_group(MaxDet, DETECTING) = 300,
    out: in_group(OutDir, FILES) = None,
    save_crops: in_group(SaveCrops, FILES) = False,
    save_txt: in_group(SaveTxt, FILES) = False,
    save_coco: in_group(SaveCoco, FILES) = None,
    evaluate: in_group(Eval, EVALUATION) = None,
    min_map: in_group(MinMap, EVALUATION) = None,
    overwrite: in_group(Overwrite, FILES) = False,
    imgsz: in_group(ImgSize, DETECTING) = None,
    batch_size: in_group(BatchSize, MACHINE) = 8,
    workers: in_group(Workers, MACHINE) = 0,
    device: in_group(Device, MACHINE) = "auto",
    max_pixels: in_group(MaxPixels, MACHINE) = DEFAULT_MAX_PIXELS,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Detect objects: one record per box (label, class_id, score, box x1,y1,x2,y2 in the image's pixels).

    -m takes a detector from the registry with weights (fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1,
    from the torch cache), or a checkpoint from `cnntool train --task detect`. An image without
    detections still gets one record (label and box null). --imgsz N sets the size the detector
    resizes images to inside itself (the shorter side N; SSDs take exactly N x N). With --eval,
    every detection down to score 0.001 is scored (mAP needs the whole ranking); --conf decides
    what the records, pictures, crops and labels show. Exit 1 when some inputs failed or --min-map
    trips; 2 for a model that is not a detector.

    Examples:

    \b
      cnntool detect photos/ -m fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1 -o boxes/
      cnntool detect street.jpg -m fasterrcnn_resnet50_fpn_v2:COCO_V1 --classes person,car --conf 0.5
      cnntool detect data/val/images -m runs/tiny_fcos-1 --eval data/val/annotations.json -o eval/ --min-map 0.5
      cnntool detect frames/ -m runs/tiny_fcos-1 -o out/ --save-txt --save-crops --save-coco out/results.json
    """
    output = make_output(format, quiet, verbose)
    if not model:
        raise UsageError("no model given", hint="-m runs/NAME/best.pt, or a registry NAME:WEIGHTS such as "
                                                "fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1")
    if min_map is not None and evaluate is None:
        raise UsageError("--min-map needs --eval", hint="add --eval GT (a COCO file or a YOLO folder)")
    for flag, given in (("--save-crops", save_crops), ("--save-txt", save_txt)):
        if given and out is None:
            raise UsageError(f"{flag} needs -o DIR", hint=f"add -o DIR: {flag} writes under it")
    wanted = [part.strip() for text in classes or [] for part in text.split(",") if part.strip()] or None
    truth = _load_truth(evaluate) if evaluate is not None else None

    import torch

    from cnntool.cli._options import parse_imgsz
    from cnntool.data.sources import require_inputs, resolve_inputs
    from cnntool.device import resolve_device
    from cnntool.infer.detect import (EVAL_CONF, EVALUATION_FILES, DetectOptions, GroundTruthEvaluation, class_names,
                                      resolve_classes, set_input_size)
    from cnntool.models.loading import load, model_identity

    torch_device = resolve_device(device)
    torch.manual_seed(0)  # a registry model's random weights are the same on every run
    loaded = load(model, task="detection", device=str(torch_device))
    if imgsz is not None:
        loaded = set_input_size(loaded, parse_imgsz(imgsz))
    names = class_names(loaded)
    if wanted is not None:
        resolve_classes(wanted, names)  # an unknown class is a usage error before any work
    evaluation = GroundTruthEvaluation(truth, names) if truth is not None else None
    if truth is not None and truth.skipped:
        output.warn(f"{len(truth.skipped)} ground-truth entries of {evaluate} are left out, e.g. "
                    f"{truth.skipped[0][0]}: {truth.skipped[0][1]}")
    if loaded.random_weights:
        output.warn(f"{model} has random weights (no checkpoint or pretrained weights): its detections mean nothing")
    items = resolve_inputs(inputs, exclude=out)
    require_inputs(items, inputs)
    options = DetectOptions(conf=conf, iou=iou, classes=tuple(wanted) if wanted else None, max_det=max_det,
                            batch_size=batch_size, floor=EVAL_CONF if evaluation is not None else None, out_dir=out,
                            save_crops=save_crops, save_txt=save_txt, overwrite=overwrite,
                            workers=default_workers(workers), max_pixels=max_pixels,
                            model_id=model_identity(model), evaluate=evaluation is not None)
    from cnntool.data.writers import Recipe
    from cnntool.infer.detect import recipe

    made_by = recipe(loaded, options)
    # the run's own files depend on every input and on the ground truth too
    run_recipe = Recipe.of("detect", {"outputs": made_by.digest, "inputs": list(inputs), "coco": save_coco is not None,
                                      "eval": str(evaluate.resolve()) if evaluate is not None else None},
                           summary=made_by.summary)
    names_recipe = Recipe.of("detect", {"classes": names}, summary="the model's class names")
    run_files = {}
    if save_coco is not None:
        run_files[save_coco] = run_recipe
    if out is not None and save_txt:
        run_files[out / "classes.txt"] = names_recipe
    if out is not None and evaluation is not None:
        run_files.update({out / name: run_recipe for name in EVALUATION_FILES})
    _check_run_files(run_files, overwrite)
    summary = _run(items, loaded, options, evaluation, save_coco, run_recipe, torch_device, output)
    if out is not None and save_txt:
        from cnntool.data.writers import atomic_write_text

        atomic_write_text(out / "classes.txt", "".join(f"{name}\n" for name in names), recipe=names_recipe)
    if evaluation is not None:
        summary = _finish_evaluation(evaluation, summary, out, conf, run_recipe, output)
    output.close()
    if summary.get("skipped"):
        from cnntool.data.writers import skipped_message

        output.log(skipped_message(summary["skipped"]))
    output.log(f"{summary['images']} images, {summary['detections']} detections"
               + (f", {output.failed} failed" if output.failed else ""))
    if min_map is not None and summary.get("map") is not None and summary["map"] < min_map:
        raise GateFailed(f"mAP@[.5:.95] {summary['map']:.4f} is under --min-map {min_map:g}")
    if min_map is not None and summary.get("map") is None:
        raise GateFailed("no mAP to check against --min-map: no input matched an image with ground truth")
    return output.exit_code


def _load_truth(path: Path):
    from cnntool.data.boxes import load_boxes

    if not path.exists():
        raise UsageError(f"--eval {path}: no such file or folder",
                         hint="a COCO annotations .json, or a COCO/YOLO dataset folder")
    return load_boxes(path, check_files=False)


def _check_run_files(files: dict, overwrite: bool) -> None:
    """Files of the whole run (not of one input), ``{path: recipe}``: refused before any work
    when they exist made otherwise, unless --overwrite; made the same way, they are written again."""
    from cnntool.data.writers import should_skip
    from cnntool.errors import InputError

    for path, made_by in files.items():
        try:
            should_skip(path, made_by, overwrite=overwrite)
        except InputError as exc:
            raise UsageError(str(exc).replace("; --overwrite replaces it", ""),
                             hint="add --overwrite to replace it, or choose another path") from None


def _run(items, loaded, options, evaluation, save_coco: Path | None, run_recipe, device, output) -> dict:
    """Emit every input's records; feed the evaluation and the COCO results."""
    from cnntool.infer.detect import detect_inputs
    from cnntool.metrics.detection import coco_results

    results: list[dict] = []
    counts = {"images": 0, "detections": 0, "skipped": 0}
    for n, result in enumerate(output.progress(detect_inputs(items, loaded, options, device=device),
                                               total=len(items), desc="detect"), start=1):
        counts["images"] += 1
        counts["skipped"] += result.skipped
        if result.shown is not None:
            counts["detections"] += len(result.shown)
        for record in result.records:
            output.emit(record)
        if result.detections is None:
            continue
        if evaluation is not None:
            reason = evaluation.add(result.sample, result.detections)
            if reason is not None:
                output.debug(f"not evaluated: {result.sample.path}: {reason}")
        elif save_coco is not None:
            d = result.detections
            results += coco_results([{"boxes": d.boxes, "scores": d.scores, "labels": d.labels}], [n],
                                    list(range(1, len(d.names) + 1)))
    if save_coco is not None:
        from cnntool.data.writers import atomic_write_json

        atomic_write_json(save_coco, evaluation.results if evaluation is not None else results, recipe=run_recipe)
    return counts


def _finish_evaluation(evaluation, counts: dict, out: Path | None, conf: float, made_by, output) -> dict:
    if not len(evaluation.evaluator):
        output.warn(f"no input matched an image of the ground truth ({len(evaluation.unmatched)} unmatched, e.g. "
                    f"{evaluation.unmatched[0] if evaluation.unmatched else 'none'}): nothing was evaluated")
        return {**counts, "map": None}
    summary, report, matrix = evaluation.summary(conf=conf)
    summary = {"images": counts["images"], **summary}
    if evaluation.unmatched:
        output.warn(f"{len(evaluation.unmatched)} inputs left out of the evaluation, e.g. {evaluation.unmatched[0]}")
    if evaluation.dropped:
        output.warn(f"{evaluation.dropped} detections of classes the ground truth does not have were left out")
    if out is not None:
        _write_evaluation(summary, report, matrix, out, conf, made_by, output)
    output.emit_summary(summary)  # a table reader gets it on stderr below
    for line in evaluation_lines(summary):
        output.log(line)
    return {**counts, **summary}


def _write_evaluation(summary: dict, report, matrix, out: Path, conf: float, made_by, output) -> None:
    """evaluation.json, pr_curve.png and confusion.png in -o, recorded in its ledger."""
    from cnntool.data.writers import atomic_write_json, record_output
    from cnntool.metrics.detection import plot_detection_confusion, plot_pr_curves

    atomic_write_json(out / "evaluation.json", summary, recipe=made_by)
    plot_pr_curves(report, out / "pr_curve.png")
    record_output(out / "pr_curve.png", made_by)
    plot_detection_confusion(matrix, report.classes, out / "confusion.png", score_threshold=conf)
    record_output(out / "confusion.png", made_by)
    output.debug(f"wrote {out / 'evaluation.json'}, {out / 'pr_curve.png'}, {out / 'confusion.png'}")


def evaluation_lines(summary: dict) -> list[str]:
    """The evaluation as text for stderr: mAP and a per-class table.

    Examples
    --------
    >>> evaluation_lines({"map": 0.5, "map50": 0.75, "map75": 0.5, "evaluated": 2, "per_class": []})[0]
    'mAP@[.5:.95] 0.5000  mAP@.5 0.7500  mAP@.75 0.5000  over 2 images'
    """
    def shown(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [f"mAP@[.5:.95] {shown(summary['map'])}  mAP@.5 {shown(summary['map50'])}  "
             f"mAP@.75 {shown(summary['map75'])}  over {summary['evaluated']} images"]
    rows = [("class", "AP", "AP50", "AP75", "recall", "objects", "scored")]  # scored: the detections ranked
    rows += [(r["class"], shown(r["ap"]), shown(r["ap50"]), shown(r["ap75"]), shown(r["recall"]), str(r["objects"]),
              str(r["detections"])) for r in summary["per_class"]]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines += ["  ".join(v.rjust(w) if k else v.ljust(w) for k, (v, w) in enumerate(zip(row, widths))).rstrip()
              for row in rows]
    return lines
