"""``cnntool video``: the image stages on every frame, clip classification, optical flow.

Composition happens here: each video's frames stream from the reader as samples
(:func:`cnntool.infer.video.frame_samples`, decoded on a thread ahead), through the task's
stage (:func:`~cnntool.infer.predict.predict_records`, :func:`~cnntool.infer.explain.explain_samples`,
the :mod:`cnntool.filters` op chain, :func:`~cnntool.infer.video.frame_flows`,
:func:`~cnntool.infer.video.classify_clips`), then each frame is drawn on worker threads and
written to the annotated video (:class:`~cnntool.data.video.VideoWriter`: H.264 yuv420p at the
source fps / ``--stride``, atomic, its frame count checked), while its records stream to stdout.
Memory stays bounded however long the video.

Inputs: video files (a file named directly is read whatever its extension), folders (the video
files under them), globs, ``@list.txt``, ``-``; a folder with no video files under it but images
directly in it is one video of those images in natural order, at 25 fps.

The task: ``--task``, else the model's: a clip model classifies clips, a classifier classifies
each frame, a detector detects and a segmenter segments each frame; without a model, optical
flow. ``--task segment`` takes what ``cnntool segment`` takes: a semantic model, Mask R-CNN or a
classical ``--method`` (no model). A drawn frame of another size than the video's is fitted in.

Records (stdout), by task:

- ``classify``, ``detect``, ``segment``, ``explain``, ``filter``: one per frame (``detect``: one
  per detection, or one with ``label`` null for a frame without any), with ``path`` (the video),
  ``frame`` (its index in the source), ``time`` (seconds) and the stage's fields (``label``,
  ``score``, ``topk`` as ``cnntool predict``; ``label``, ``class_id``, ``score``, ``box`` as
  ``cnntool detect``; ``fractions``, ``instances`` and a record per object (``object``...) as
  ``cnntool segment``; ``class``, ``score``, ``peak``, ``box`` as ``cnntool explain``; ``ops``,
  ``output_shape``, ``min``, ``max`` as ``cnntool filter``), then the video's record:
  ``path``, ``task``, ``frames`` (read), ``fps`` (of the output, as a fraction), ``output`` (the
  annotated video with ``-o``, else null), ``skipped``, ``error``.
- ``flow``: one per pair of consecutive frames: ``frame``, ``next_frame``, ``time``,
  ``mean_motion``, ``max_motion`` (pixels), ``mean_dx``, ``mean_dy``, ``flow`` (with ``-o`` the
  H x W x 2 float32 ``.npy`` of the pair, in ``OUT/<stem>_flow/``), then the video's record (its
  ``output`` the colour-wheel flow video, one frame per pair, ``flows`` the folder of arrays).
- ``clip``: one per window (``start_frame``, ``end_frame``, ``start_time``, ``end_time``,
  ``label``, ``score``, ``topk``, ``verdict: false``), then the verdict (``verdict: true``,
  ``windows``, and the mean probabilities' ``label``, ``score``, ``topk``). Nothing is written.
  A flow model gets the flow its checkpoint names; a clip length the model cannot take (MViT's
  16 frames, S3D's 14 or more) is a usage error; a video the model fails on, an error record.

A video that cannot be read gives an error record; one that breaks part-way keeps its good
frames' records and ends with an error record (its output video is not written). Exit 1 when
any record has an error. With ``-o``, a video whose output exists, made with the same options
from the same input, is skipped (its record says ``skipped: true``; ``--overwrite`` redoes it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from cnntool.cli._options import (BatchSize, Device, Format, ImgSize, Model, OutDir, Overwrite, Quiet, Verbose,
                                  Workers, default_workers, make_output)
from cnntool.cli.detect import Classes, Conf, Iou, MaxDet
from cnntool.errors import UsageError

FRAMES = "Frames"
PER_TASK = "Task options"

VideoInputs = Annotated[list[str], typer.Argument(
    help="Video files (.mp4 .mov .mkv .avi .webm ...), folders of them (recursed), a folder of numbered images "
         "(one video), quoted globs, @list.txt, or - for paths on stdin.", show_default=False)]
Task = Annotated[Optional[str], typer.Option(
    "--task", metavar="TASK",
    help="classify | detect | segment | explain | filter (each frame; an annotated video with -o) | flow "
         "(optical flow between frames) | clip (clip classification over windows) [default: the model's: clip "
         "for a video model, classify, detect or segment for an image model; flow without -m].",
    show_default=False)]
Method = Annotated[Optional[str], typer.Option(
    "--method", help="explain: gradcam | gradcam++ | xgradcam | hirescam | layercam | scorecam | eigencam | cam "
                     "(gradcam if not given); flow: dis | farneback | raft (dis if not given; raft with -m "
                     "raft_small or raft_large); segment: otsu | watershed | slic | felzenszwalb | kmeans "
                     "(a classical method instead of a model, with `cnntool segment`'s default settings).",
    show_default=False)]
Stride = Annotated[int, typer.Option("--stride", min=1, rich_help_panel=FRAMES,
                                     help="Read every Nth frame; the output plays at the source fps / N, so it lasts "
                                          "as long as the source.")]
Start = Annotated[float, typer.Option("--start", min=0.0, rich_help_panel=FRAMES,
                                      help="Seconds: start at the first frame at or after this.")]
End = Annotated[Optional[float], typer.Option("--end", rich_help_panel=FRAMES, show_default=False,
                                              help="Seconds: stop before the first frame at or after this.")]
MaxFrames = Annotated[Optional[int], typer.Option("--max-frames", min=1, rich_help_panel=FRAMES, show_default=False,
                                                  help="Stop after this many frames (counted after --stride).")]
TopK = Annotated[int, typer.Option("--topk", min=1, rich_help_panel=PER_TASK,
                                   help="classify, clip: classes listed per record.")]
Threshold = Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0, rich_help_panel=PER_TASK,
                                                    show_default=False,
                                                    help="classify, clip: answer 'unknown' under this top "
                                                         "probability.")]
Window = Annotated[Optional[int], typer.Option("--window", min=1, rich_help_panel=PER_TASK, show_default=False,
                                               help="clip: frames per window [default: the model's clip length x "
                                                    "its frame stride].")]
WindowStride = Annotated[Optional[int], typer.Option("--window-stride", min=1, rich_help_panel=PER_TASK,
                                                     show_default=False,
                                                     help="clip: frames between window starts [default: the "
                                                          "window].")]
Layer = Annotated[Optional[str], typer.Option("--layer", rich_help_panel=PER_TASK, show_default=False,
                                              help="explain: target layer [default: the model's cam_layer].")]
Target = Annotated[Optional[str], typer.Option("--target", rich_help_panel=PER_TASK, show_default=False,
                                               help="explain: class to explain, by name or index [default: each "
                                                    "frame's predicted class].")]
Kernel = Annotated[Optional[list[str]], typer.Option(
    "--kernel", "-k", metavar="NAME[:KEY=VALUE...]", rich_help_panel=PER_TASK, show_default=False,
    help="filter: op to apply to every frame; repeat to chain (the syntax of `cnntool filter -k`, see "
         "`cnntool filter --list`).")]
Pad = Annotated[str, typer.Option("--pad", rich_help_panel=PER_TASK,
                                  help="filter: same | valid | full | N pixels each side.")]
Border = Annotated[str, typer.Option("--border", rich_help_panel=PER_TASK,
                                     help="filter: what the padding holds (as `cnntool filter`).")]
Color = Annotated[str, typer.Option("--color", rich_help_panel=PER_TASK,
                                    help="filter: channels | gray | luminance (as `cnntool filter`).")]
Scale = Annotated[str, typer.Option("--scale", rich_help_panel=PER_TASK,
                                    help="filter: how results become 8-bit frames: auto | clip | abs | minmax | "
                                         "offset.")]

#: The options (parameter names) each task uses besides the reader's and the output's.
TASK_OPTIONS = {
    "classify": {"topk", "threshold", "batch_size", "imgsz"},
    "detect": {"conf", "iou", "classes", "max_det", "batch_size", "imgsz"},
    "segment": {"batch_size", "imgsz", "method", "conf", "iou", "max_det"},   # per kind: _refuse_segment_options
    "explain": {"method", "layer", "target", "batch_size", "imgsz"},
    "filter": {"kernel", "pad", "border", "color", "scale"},
    "flow": {"method"},
    "clip": {"topk", "threshold", "window", "window_stride", "batch_size", "imgsz"},
}
#: Every task's: which frames, and where the output goes (clip writes nothing: no -o).
READER_OPTIONS = {"inputs", "task", "stride", "start", "end", "max_frames"}


def video_command(
    ctx: typer.Context,
    inputs: VideoInputs,
    task: Task = None,
    model: Model = "",
    method: Method = None,
    stride: Stride = 1,
    start: Start = 0.0,
    end: End = None,
    max_frames: MaxFrames = None,
    topk: TopK = 5,
    threshold: Threshold = None,
    window: Window = None,
    window_stride: WindowStride = None,
    layer: Layer = None,
    target: Target = None,
    conf: Conf = 0.25,
    iou: Iou = 0.45,
    classes: Classes = None,
    max_det: MaxDet = 300,
    kernel: Kernel = None,
    pad: Pad = "same",
    border: Border = "zero",
    color: Color = "channels",
    scale: Scale = "auto",
    out: OutDir = None,
    overwrite: Overwrite = False,
    imgsz: ImgSize = None,
    batch_size: BatchSize = 4,
    workers: Workers = 0,
    device: Device = "auto",
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Run a stage on every frame of videos, classify clips, or compute optical flow.

    Per frame (classify, detect, segment, explain, filter): records per frame, and with -o an annotated
    video OUT/<name>_<task>.mp4 (H.264, plays in browsers) at the source fps / --stride. Clip
    classification (a video model's default): a record per window and a verdict per video.
    Flow (the default without -m): motion per frame pair, with -o the flow arrays and a
    colour-wheel video. Exit 1 when a video (or a frame) failed, 2 for bad options.

    Examples:

    \b
      cnntool video walk.mp4 -m runs/c3d_small-1            # clip classification, a verdict per video
      cnntool video walk.mp4 -m runs/cats/best.pt -o out/   # classify every frame: out/walk_classify.mp4
      cnntool video street.mp4 -m fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1 --classes person -o out/
      cnntool video walk.mp4 -m resnet18:DEFAULT --task explain --stride 5 -o out/
      cnntool video walk.mp4 --task filter -k sobel:axis=magnitude -o out/
      cnntool video walk.mp4 -o flow/                       # optical flow (DIS): arrays and a colour video
      cnntool video walk.mp4 -m raft_small:C_T_V2 --task flow --start 2 --end 4
      cnntool video frames/ -m runs/cats/best.pt            # a folder of numbered images is a video
    """
    from cnntool.cli._options import refuse_unused

    output = make_output(format, quiet, verbose)
    if task is None:
        task = _task_from_model(model) if model else "flow"
    task = task.strip().lower()
    from cnntool.infer.video import TASKS

    if task not in TASKS:
        from cnntool.errors import unknown_choice

        raise unknown_choice("--task", task, TASKS)
    used = READER_OPTIONS | TASK_OPTIONS[task] | ({"out"} if task != "clip" else set())
    refuse_unused(ctx, used, what=f"--task {task}")
    if end is not None and end <= start:
        raise UsageError(f"--end {end:g} is not after --start {start:g}")
    from cnntool.cli._options import given_options

    stage = _build_stage(task, {**ctx.params, "given": given_options(ctx)}, workers=default_workers(workers),
                         draw=out is not None, output=output)
    from cnntool.data.sources import require_inputs
    from cnntool.data.video import VIDEO_EXTENSIONS
    from cnntool.data.writers import Recipe, plan_outputs, skipped_message
    from cnntool.infer.video import output_video_path, resolve_video_inputs

    items = resolve_video_inputs(inputs, exclude=out)
    require_inputs(items, inputs, extensions=VIDEO_EXTENSIONS, what="videos")
    reading = {"stride": stride, "start": start, "end": end, "max_frames": max_frames}
    recipe = Recipe.of("video", {"task": task, **reading, **stage.options},
                       summary=f"video --task {task}" + (f" {stage.about}" if stage.about else ""))
    out_dir = out if task != "clip" else None
    plans = plan_outputs(items, out_dir, lambda rel: output_video_path(rel, out_dir, task))
    run = _Run(stage, reading, recipe, output, default_workers(workers), overwrite)
    for item, plan in zip(items, plans):
        run.video(item, plan.paths[0] if plan.paths else None, plan.error)
    output.close()
    if run.skipped:
        output.log(skipped_message(run.skipped))
    output.log(f"{len(items)} videos, {run.frames} frames" + (f", {output.failed} failed records" if output.failed
                                                               else ""))
    return output.exit_code


def _task_from_model(spec: str) -> str:
    """The task a model does without --task, read from its registry entry or checkpoint (no weights loaded)."""
    from cnntool.infer.video import default_task

    return default_task(_model_facts(spec)[0])


def _model_facts(spec: str):
    """``(task, entry)`` of a model spec, from its registry entry or checkpoint (no weights loaded)."""
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    if is_checkpoint_spec(spec):
        from cnntool.models.checkpoint import checkpoint_entry, load_checkpoint
        from cnntool.models.loading import resolve_checkpoint_path

        ckpt = load_checkpoint(resolve_checkpoint_path(spec))
        return ckpt["task"], checkpoint_entry(spec, ckpt)
    entry = get_entry(spec.partition(":")[0])
    return entry.task, entry


# --- the stages ---------------------------------------------------------------------------------

@dataclass
class _Stage:
    """One task ready to run over frames.

    ``run(samples)`` yields ``(sample, payload)`` per frame (or per pair); ``finish(sample,
    payload, files)`` turns one into ``(records, drawn frame)`` on a worker thread (``files`` says
    where per-frame files go, or None; the frame is None when nothing is drawn: no ``-o``);
    ``clips(samples)`` replaces both for clip classification (records only). ``options`` is what
    makes the outputs (the output ledger's recipe); ``prepare`` the per-frame model input, made
    on the decoding thread.
    """

    task: str
    options: dict
    about: str = ""
    prepare: Callable | None = None
    run: Callable | None = None
    finish: Callable | None = None
    clips: Callable | None = None
    per_frame_files: bool = False


def _build_stage(task: str, o: dict, *, workers: int, draw: bool, output) -> _Stage:
    """The task's stage from the command's options ``o`` (checked here: a bad one is a usage error)."""
    model = o["model"]
    if task == "filter":
        if model:
            raise UsageError("--task filter takes no model", hint="leave out -m")
        return _filter_stage(o, draw=draw)
    if task == "flow":
        return _flow_stage(model, o["method"], device=o["device"], draw=draw, output=output)
    if task == "segment" and (o["method"] or not model):
        return _classical_segment_stage(model, o, draw=draw)
    if not model:
        raise UsageError(f"--task {task} needs a model", hint="-m runs/NAME/best.pt, or a registry NAME:WEIGHTS")
    import torch

    from cnntool.device import resolve_device
    from cnntool.infer.video import MODEL_TASKS
    from cnntool.models.loading import load, model_identity

    device = resolve_device(o["device"])
    torch.manual_seed(0)  # a registry model's random weights are the same on every run (its model_identity)
    instance = task == "segment" and _is_instance_model(model)   # Mask R-CNN: a detector with masks
    loaded = load(model, task="detection" if instance else MODEL_TASKS[task], device=str(device))
    if task == "segment":
        _refuse_segment_options(o, "instance" if instance else "semantic",
                                uses={"batch_size", "imgsz", *(INSTANCE_DEFAULTS if instance else ())})
    if instance:
        stage = _instance_segment_stage(loaded, device, o, draw=draw, model_id=model_identity(model))
    elif task == "detect":
        stage = _detect_stage(loaded, device, o, draw=draw, model_id=model_identity(model))
    else:
        from cnntool.cli._options import with_imgsz

        loaded = with_imgsz(loaded, o["imgsz"])
        common = {"model": model_identity(model), "preprocessing": loaded.preprocessing.to_dict()}
        if task == "explain":
            stage = _explain_stage(loaded, o, workers=workers, draw=draw, common=common)
        elif task == "segment":
            stage = _segment_stage(loaded, device, o, draw=draw, common=common)
        elif task == "classify":
            stage = _classify_stage(loaded, device, o, draw=draw, common=common)
        else:
            stage = _clip_stage(loaded, device, o, common=common)
    if loaded.random_weights:  # after every usage check: a refusal comes first
        output.warn(f"{model} has random weights (no checkpoint or pretrained weights): its results mean nothing")
    return stage


def _classify_stage(loaded, device, o: dict, *, draw: bool, common: dict) -> _Stage:
    from cnntool.infer.predict import predict_records
    from cnntool.infer.video import draw_classification, paired

    def run(samples):
        return paired(samples, lambda s: predict_records(loaded, s, device=device, batch_size=o["batch_size"],
                                                         topk=o["topk"], threshold=o["threshold"]))

    def finish(sample, record, files):
        return [record], draw_classification(sample.image, record) if draw else None

    return _Stage("classify", {**common, "threshold": o["threshold"]}, about=common["model"],
                  prepare=loaded.preprocessing.resize, run=run, finish=finish)


def _segment_stage(loaded, device, o: dict, *, draw: bool, common: dict) -> _Stage:
    from cnntool.infer.segment import segment_samples

    return _Stage("segment", common, about=common["model"], prepare=loaded.preprocessing.resize,
                  run=lambda samples: segment_samples(loaded, samples, device=device, batch_size=o["batch_size"]),
                  finish=_segment_finish(draw, instances=False))


#: Mask R-CNN's --conf, --iou and --max-det when not given: ``cnntool segment``'s (torchvision's defaults).
INSTANCE_DEFAULTS = {"conf": 0.5, "iou": 0.5, "max_det": 100}


def _is_instance_model(spec: str) -> bool:
    """A detector that also predicts a mask per object (Mask R-CNN)."""
    task, entry = _model_facts(spec)
    return task == "detection" and any(head.endswith("mask_predictor") for head in entry.heads)


def _refuse_segment_options(o: dict, kind: str, *, uses: set[str]) -> None:
    """A --task segment option given to a kind of segmenting that does not use it is refused."""
    if unused := sorted((o["given"] & TASK_OPTIONS["segment"]) - uses):
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise UsageError(f"{flags} {'does' if len(unused) == 1 else 'do'} nothing for --task segment with "
                         f"{kind} {'methods' if kind == 'classical' else 'models'}",
                         hint="leave it out (see --help for which options each way of segmenting uses)")


def _segment_finish(draw: bool, *, instances: bool):
    from cnntool.infer.segment import draw_segmentation, instance_records, segmentation_record

    def finish(sample, segmentation, files):
        image = (draw_segmentation(sample.image, segmentation) if segmentation is not None else sample.image) \
            if draw else None
        extra = instance_records(sample, segmentation) if instances else []
        return [segmentation_record(sample, segmentation), *extra], image

    return finish


def _classical_segment_stage(model: str, o: dict, *, draw: bool) -> _Stage:
    """--task segment --method M: a `cnntool segment` classical method (default settings) on every frame."""
    from cnntool.errors import unknown_choice
    from cnntool.infer.classical import METHODS
    from cnntool.infer.segment import classical_classes, classical_samples

    if model or not o["method"]:
        raise UsageError("give a model (-m) or a classical method (--method), not both" if model else
                         "--task segment needs a model or a classical method",
                         hint="-m lraspp_mobilenet_v3_large:COCO_WITH_VOC_LABELS_V1, -m runs/NAME, or --method otsu")
    if (method := o["method"].strip().lower()) not in METHODS:
        raise unknown_choice("--method", method, METHODS)
    _refuse_segment_options(o, "classical", uses={"method"})
    classical_classes(method)  # a method that cannot run is a usage error before any video
    return _Stage("segment", {"method": method}, about=method, finish=_segment_finish(draw, instances=True),
                  run=lambda samples: classical_samples(samples, method=method))


def _instance_segment_stage(loaded, device, o: dict, *, draw: bool, model_id: str) -> _Stage:
    """--task segment with Mask R-CNN: its detections as a class mask and objects, as `cnntool segment`."""
    from cnntool.infer.detect import detect_samples, input_preparer, set_input_size
    from cnntool.infer.segment import segmentation_from_detections

    if o["imgsz"] is not None:
        from cnntool.cli._options import parse_imgsz

        loaded = set_input_size(loaded, parse_imgsz(o["imgsz"]))
    options = {name: o[name] if name in o["given"] else value for name, value in INSTANCE_DEFAULTS.items()}

    def run(samples):
        for sample, found in detect_samples(loaded, samples, device=device, batch_size=o["batch_size"], **options):
            yield sample, segmentation_from_detections(found) if found is not None else None

    return _Stage("segment", {"model": model_id, "preprocessing": loaded.preprocessing.to_dict(), **options},
                  about=model_id, prepare=input_preparer(loaded), run=run, finish=_segment_finish(draw, instances=True))


def _explain_stage(loaded, o: dict, *, workers: int, draw: bool, common: dict) -> _Stage:
    import numpy as np

    from cnntool.infer.cam import CAM_METHODS
    from cnntool.data.draw import overlay_heatmap
    from cnntool.infer.explain import ExplainConfig, Explainer, RunOptions, canonical, explain_samples

    method = canonical(o["method"] or "gradcam")
    if method not in CAM_METHODS:
        raise UsageError(f"--method {method} does not explain frames",
                         hint="use a heatmap method (" + ", ".join(CAM_METHODS) + "), or `cnntool explain` for it")
    explainer = Explainer(loaded, ExplainConfig(method=method, layer=o["layer"], target=o["target"],
                                                batch_size=o["batch_size"]))
    options = RunOptions(workers=workers, model_id=common["model"])

    def drawn(samples):
        for sample in samples:
            sample.extra["draw"] = True
            yield sample

    def run(samples):
        return explain_samples(drawn(samples) if draw else samples, explainer, options)

    def finish(sample, record, files):
        overlay = sample.extra.pop("overlay", None)
        if draw and overlay is None:  # the frame failed: shown without a heatmap, so the video keeps it
            overlay = overlay_heatmap(sample.image, np.zeros(sample.image.shape[:2], np.float32), text="error")
        return [record], overlay

    about = f"{method} of {common['model']} at {explainer.layer}"
    return _Stage("explain", {**common, "method": method, "layer": explainer.layer, "target": explainer.target},
                  about=about, prepare=loaded.preprocessing.resize, run=run, finish=finish)


def _clip_stage(loaded, device, o: dict, *, common: dict) -> _Stage:
    from cnntool.infer.video import classify_clips, frame_preprocessing

    loaded.entry.check_clip_input(loaded.preprocessing, (loaded.checkpoint or {}).get("arch_kwargs"),
                                  source=loaded.weights if loaded.source == "checkpoint" else None)

    def clips(samples):
        return classify_clips(loaded, samples, device=device, window=o["window"], window_stride=o["window_stride"],
                              batch_size=o["batch_size"], topk=o["topk"], threshold=o["threshold"])

    return _Stage("clip", common, about=common["model"], prepare=frame_preprocessing(loaded.preprocessing).resize,
                  clips=clips)


def _detect_stage(loaded, device, o: dict, *, draw: bool, model_id: str) -> _Stage:
    from cnntool.infer.detect import (class_names, detect_samples, detection_records, draw_detections, input_preparer,
                                      resolve_classes, set_input_size)

    if o["imgsz"] is not None:
        from cnntool.cli._options import parse_imgsz

        loaded = set_input_size(loaded, parse_imgsz(o["imgsz"]))
    wanted = [part.strip() for text in o["classes"] or [] for part in text.split(",") if part.strip()] or None
    if wanted is not None:
        resolve_classes(wanted, class_names(loaded))  # an unknown class is a usage error before any work
    options = {"conf": o["conf"], "iou": o["iou"], "classes": wanted, "max_det": o["max_det"]}

    def run(samples):
        return detect_samples(loaded, samples, device=device, batch_size=o["batch_size"], **options)

    def finish(sample, detections, files):
        image = None
        if draw:
            image = draw_detections(sample.image, detections) if detections is not None else sample.image
        return detection_records(sample, detections), image

    return _Stage("detect", {"model": model_id, "preprocessing": loaded.preprocessing.to_dict(), **options},
                  about=model_id, prepare=input_preparer(loaded), run=run, finish=finish)


def _filter_stage(o: dict, *, draw: bool) -> _Stage:
    from cnntool.cli.filter import parse_choice, parse_pad_option
    from cnntool.filters.batch import FilterJob
    from cnntool.filters.names import BORDERS, COLOR_MODES, SCALES
    from cnntool.filters.ops import ConvDefaults, chain_scale, keeps_size, parse_ops, run_ops
    from cnntool.filters.scale import to_uint8

    if not o["kernel"]:
        raise UsageError("--task filter needs ops", hint="-k OP (repeat to chain), e.g. -k gaussian:sigma=2")
    defaults = ConvDefaults(pad=parse_pad_option(o["pad"]), border=parse_choice(o["border"], BORDERS, "--border"))
    color = parse_choice(o["color"], COLOR_MODES, "--color")
    scale = parse_choice(o["scale"], ("auto", *SCALES), "--scale")
    ops = tuple(parse_ops(o["kernel"], defaults))
    if color == "luminance" and not keeps_size(ops):
        raise UsageError("--color luminance needs ops that keep the image size",
                         hint="drop stride/pooling/valid padding, or use --color channels or gray")
    job = FilterJob(ops=ops, color=color, scale=chain_scale(ops) if scale == "auto" else scale)

    def run(samples):
        return ((sample, None) for sample in samples)

    def finish(sample, _, files):
        record = {"path": sample.path, "frame": sample.frame, "time": sample.time, "ops": job.text}
        try:
            result = run_ops(sample.image, job.ops, color=job.color)
        except (ValueError, MemoryError) as exc:
            from cnntool.errors import one_line

            return [{**record, "error": one_line(exc)}], None
        record.update(output_shape=list(result.shape), min=float(result.min()), max=float(result.max()), error=None)
        return [record], to_uint8(result, job.scale) if draw else None

    return _Stage("filter", {"filter": job.recipe.digest}, about=job.text, run=run, finish=finish)


def _flow_stage(model: str, method, *, device, draw, output) -> _Stage:
    from cnntool.infer.flow import METHODS, FlowEstimator

    method = (method or ("raft" if model else "dis")).strip().lower()
    if method not in METHODS:
        from cnntool.errors import unknown_choice

        raise unknown_choice("--method", method, METHODS)
    loaded = None
    if method == "raft":
        if not model:
            raise UsageError("--method raft needs a RAFT model",
                             hint="-m raft_small:C_T_V2 or -m raft_large:C_T_SKHT_V2")
        from cnntool.device import resolve_device
        from cnntool.models.loading import load

        loaded = load(model, task="flow", device=str(resolve_device(device)))
        if loaded.random_weights:
            output.warn(f"{model} has random weights: its flow means nothing (use {model}:DEFAULT)")
    elif model:
        raise UsageError(f"--method {method} takes no model", hint="leave out -m, or use --method raft")
    estimate = FlowEstimator(method, model=loaded.model if loaded is not None else None)
    from cnntool.infer.video import flow_colour_scale, frame_flows

    def run(samples):
        return ((sample, (flow, record)) for sample, flow, record in frame_flows(samples, estimate))

    def finish(sample, payload, files):
        from cnntool.data.writers import write_npy
        from cnntool.infer.flow import flow_to_color

        flow, record = payload
        if flow is None:
            return [record], None
        path = None
        if files is not None:
            path = files["folder"] / f"{sample.frame:06d}.npy"
            write_npy(path, flow, recipe=files["recipe"], source=sample.path)
        image = flow_to_color(flow, max_magnitude=flow_colour_scale(flow.shape)) if draw else None
        return [{**record, "flow": str(path) if path is not None else None}], image

    options = {"method": method}
    if loaded is not None:
        from cnntool.models.loading import model_identity

        options["model"] = model_identity(model)
    return _Stage("flow", options, about=method, run=run, finish=finish, per_frame_files=True)


# --- one video ----------------------------------------------------------------------------------

@dataclass
class _Run:
    """Runs the stage over each video, emitting its records."""

    stage: _Stage
    reading: dict
    recipe: Any
    output: Any
    workers: int
    overwrite: bool
    frames: int = 0
    skipped: int = 0

    def video(self, item, out_path, planned_error: str | None) -> None:
        from cnntool.data.video import VideoReader
        from cnntool.data.writers import check_not_input, should_skip
        from cnntool.errors import InputError

        task = self.stage.task
        base = {"path": item.path, "task": task}
        error = item.error or planned_error
        if error is None and out_path is not None:
            try:
                check_not_input(out_path, item.path)
                if should_skip([out_path], self.recipe, source=item.path, overwrite=self.overwrite):
                    self.skipped += 1
                    self.output.emit({**base, "frames": None, "fps": None, "output": str(out_path), "skipped": True,
                                      "error": None})
                    return
            except InputError as exc:
                error = str(exc)
        if error is None:
            try:
                reader = VideoReader(item.path, **self.reading)
            except InputError as exc:
                error = str(exc)
        if error is not None:
            self.output.emit({**base, "error": error} if task != "clip" else
                             {"path": item.path, "verdict": False, "error": error})
            return
        if task == "clip":
            self._clips(item, reader)
        else:
            self._frames(item, reader, out_path)

    def _clips(self, item, reader) -> None:
        from cnntool.errors import InputError, one_line
        from cnntool.infer.video import frame_samples

        counted = self._count(frame_samples(reader, item, prepare=self.stage.prepare))
        try:
            for record in self.stage.clips(counted):
                self.output.emit(record)
        except Exception as exc:  # one video's failure is its error record; the run goes on
            error = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {one_line(exc)}"
            self.output.emit({"path": item.path, "verdict": False, "error": error})

    def _count(self, samples):
        for sample in samples:
            self.frames += sample.frame is not None
            yield sample

    def _frames(self, item, reader, out_path) -> None:
        from cnntool.data.loaders import thread_map
        from cnntool.data.video import VideoWriter
        from cnntool.data.writers import record_output
        from cnntool.errors import InputError, one_line
        from cnntool.infer.video import fit_frame, frame_samples

        base = {"path": item.path, "task": self.stage.task}
        files = None
        if out_path is not None and self.stage.per_frame_files:
            files = {"folder": out_path.with_name(out_path.stem), "recipe": self.recipe}
        writer = VideoWriter(out_path, fps=reader.output_fps) if out_path is not None else None
        broken: list[str] = []
        frames = 0

        def good(samples):  # a break in the video ends the stream; its error is the video's
            nonlocal frames
            for sample in samples:
                if sample.frame is None:
                    broken.append(sample.error)
                    return
                frames += 1
                yield sample

        bar = self.output.bar(None, item.path, unit="frame")
        try:
            samples = good(frame_samples(reader, item, prepare=self.stage.prepare))
            finished = thread_map(lambda job: self.stage.finish(job[0], job[1], files), self.stage.run(samples),
                                  workers=self.workers)
            for records, image in finished:
                for record in records:
                    self.output.emit(record)
                if writer is not None and image is not None:
                    writer.write(image if writer.size is None else fit_frame(image, writer.size[::-1]))
                bar.update(1, images=1)
            if broken:
                raise InputError(broken[0])
            written = writer.close() if writer is not None else None
            if written is not None:
                record_output(written.path, self.recipe, source=item.path)
        except InputError as exc:
            self._failed(writer, {**base, "frames": frames, "output": None, "error": str(exc)})
            return
        except Exception as exc:  # one video's unexpected failure is its error record; the run goes on
            self._failed(writer, {**base, "frames": frames, "output": None,
                                  "error": f"{type(exc).__name__}: {one_line(exc)}"})
            return
        finally:
            bar.close()
            self.frames += frames
            if writer is not None and writer.result is None:
                writer.abort()  # interrupted: no half-written video
        record = {**base, "frames": frames, "fps": str(reader.output_fps),
                  "output": written.path if written is not None else None, "skipped": False, "error": None}
        if files is not None:
            record["flows"] = str(files["folder"])
        self.output.emit(record)

    def _failed(self, writer, record: dict) -> None:
        if writer is not None and writer.result is None:
            writer.abort()
        self.output.emit(record)
