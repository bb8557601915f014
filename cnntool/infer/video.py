"""Video through the image stages: frames as samples, clip classification over windows, flow pairs.

A video is images over time. :func:`resolve_video_inputs` finds the videos (files, folders of
them, or a folder of numbered images that reads as one video), :func:`frame_samples` streams a
video's frames as :class:`~cnntool.data.pixels.Sample` (``frame`` and ``time`` set, decoded on a
thread ahead of the model), so the image stages (classify, detect, segment, explain) run on
them unchanged; ``cnntool video`` composes the stage with drawing and the video writer. Memory
stays bounded however long the video: frames stream through and only a batch is held.

Two things are video's own:

- **Clip classification** (:func:`classify_clips`): a clip model (``task="video"``) sees T frames
  ``frame_stride`` apart, so a window of ``T x frame_stride`` frames; windows step by
  ``window_stride`` (default: the window, no overlap), and a last window ends on the last frame
  so no frame is left out. Frames are prepared exactly as the clip datasets' evaluation path
  does (:func:`frame_preprocessing`, :func:`window_indices`), with the same optical flow
  channels when the model takes flow (its preprocessing's ``flow``), one record per window,
  then a verdict: the mean of the windows' class probabilities.
- **Optical flow** (:func:`frame_flows`): the flow from each frame to the next, summed up per
  pair (:func:`cnntool.infer.flow.flow_stats`).

Examples
--------
>>> window_indices(16, frames=8).tolist()            # the default window: every 2nd frame
[0, 2, 4, 6, 8, 10, 12, 14]
>>> window_indices(16, frames=8, length=5).tolist()  # a video shorter than a window
[0, 2, 4, 4, 4, 4, 4, 4]
>>> [(w.start, w.stop) for w in plan_windows(40, window=16)]
[(0, 16), (16, 32), (24, 40)]
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path, PurePath
from typing import NamedTuple

import numpy as np

from cnntool.data.pixels import Sample
from cnntool.errors import InputError, one_line

#: ``cnntool video --task``: the per-frame image stages, optical flow, and clip classification.
TASKS = ("classify", "detect", "segment", "explain", "filter", "flow", "clip")
#: Tasks that run an image stage on every frame and write an annotated video.
PER_FRAME_TASKS = ("classify", "detect", "segment", "explain", "filter")
#: The model task each ``--task`` takes (``filter`` takes no model; ``flow`` only with ``--method raft``).
MODEL_TASKS = {"classify": "classification", "detect": "detection", "segment": "segmentation",
               "explain": "classification", "clip": "video", "flow": "flow"}
#: What a model does without ``--task``, by the model's task.
DEFAULT_TASKS = {"video": "clip", "classification": "classify", "detection": "detect", "segmentation": "segment",
                 "flow": "flow"}

#: Frames decoded ahead of the stage (on a thread).
READ_AHEAD = 8

#: The flow video draws this fraction of the frame's shorter side at full colour (one scale for
#: every frame of a video, so colours mean the same speed throughout).
FLOW_FULL_COLOUR = 1 / 40


def default_task(model_task: str | None) -> str:
    """The ``--task`` a model does when none is given: clip classification for a clip model,
    the model's own stage otherwise, optical flow without a model.

    Raises
    ------
    UsageError
        A model of a task no video stage takes.

    Examples
    --------
    >>> default_task("video"), default_task("classification"), default_task(None)
    ('clip', 'classify', 'flow')
    """
    if model_task is None:
        return "flow"
    if model_task not in DEFAULT_TASKS:
        from cnntool.errors import UsageError

        takes = ", ".join(f"{task} models (--task {verb})" for task, verb in DEFAULT_TASKS.items())
        raise UsageError(f"cnntool video does not run {model_task} models", hint=f"it runs {takes}")
    return DEFAULT_TASKS[model_task]


# --- inputs -------------------------------------------------------------------------------------

def resolve_video_inputs(inputs: Sequence[str], *, exclude=None, stdin=None):
    """Videos to process, in order, without duplicates.

    A file named directly is a video whatever its extension. A folder gives the video files
    under it (:data:`~cnntool.data.video.VIDEO_EXTENSIONS`, recursed, hidden ones skipped); a
    folder with no video files under it but images directly in it is itself one video, its
    images read in natural order (``img2`` before ``img10``). Globs, ``@list.txt`` and ``-``
    work as for images.

    Returns
    -------
    cnntool.data.sources.ResolvedInputs
        :class:`~cnntool.data.sources.InputItem` per video (a folder of images: its ``rel`` is
        the folder's name); ``excluded`` lists earlier outputs left out (``exclude`` = ``-o``).

    Examples
    --------
    >>> import tempfile, cv2
    >>> folder = Path(tempfile.mkdtemp(), "frames"); folder.mkdir()
    >>> for i in (1, 2, 10): _ = cv2.imwrite(str(folder / f"img{i}.png"), np.zeros((4, 4), np.uint8))
    >>> [(Path(i.path).name, str(i.rel)) for i in resolve_video_inputs([str(folder)])]
    [('frames', 'frames')]
    """
    from cnntool.data.sources import InputItem, ResolvedInputs, resolve_inputs
    from cnntool.data.video import VIDEO_EXTENSIONS, image_sequence

    items = ResolvedInputs()
    seen: set[str] = set()
    for raw in inputs:
        found = resolve_inputs([raw], extensions=VIDEO_EXTENSIONS, exclude=exclude, stdin=stdin)
        items.excluded.extend(found.excluded)
        if not found and not found.excluded and os.path.isdir(raw) and image_sequence(raw):
            found = [InputItem(raw, PurePath(Path(raw).name or Path(raw).resolve().name))]
        for item in found:
            key = os.path.normcase(os.path.abspath(item.path)) if item.ok else f"error:{item.path}"
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items


def output_video_path(rel: PurePath, out_dir, task: str) -> Path:
    """Where a video's annotated output goes: ``OUT/<rel's folders>/<stem>_<task>.mp4``.

    Examples
    --------
    >>> str(output_video_path(PurePath("walks/cat.mov"), "out", "classify"))
    'out/walks/cat_classify.mp4'
    """
    from cnntool.data.writers import output_path

    return output_path(rel, out_dir, ext="mp4", suffix=f"_{task}")


# --- frames as samples --------------------------------------------------------------------------

def frame_samples(reader, item, *, prepare: Callable[[np.ndarray], np.ndarray] | None = None,
                  read_ahead: int = READ_AHEAD) -> Iterator[Sample]:
    """The frames of ``reader`` (a :class:`~cnntool.data.video.VideoReader`) as samples.

    Each sample's ``path`` and ``rel`` are the video's (``item``), ``frame`` the frame's index
    in the source and ``time`` its timestamp in seconds; ``input`` is ``prepare(image)`` (the
    model input, computed on the decoding thread). A video that breaks part-way yields its good
    frames, then one sample with ``error`` set and ``frame`` None (its last).

    Parameters
    ----------
    reader : VideoReader
    item : InputItem
    prepare : callable, optional
        uint8 frame -> model input; a frame it fails on becomes an error sample with its index.
    read_ahead : int
        Frames decoded ahead on a background thread (0: decode in the caller's thread).

    Examples
    --------
    >>> import tempfile
    >>> from cnntool.data.sources import InputItem
    >>> from cnntool.data.video import VideoReader, write_video
    >>> path = os.path.join(tempfile.mkdtemp(), "v.mp4")
    >>> _ = write_video(path, [np.zeros((16, 16, 3), np.uint8)] * 3, fps=10)
    >>> [(s.frame, round(s.time, 1)) for s in frame_samples(VideoReader(path), InputItem(path, PurePath("v.mp4")))]
    [(0, 0.0), (1, 0.1), (2, 0.2)]
    """

    def produce() -> Iterator[Sample]:
        try:
            for frame in reader:
                sample = Sample(item.path, item.rel, image=frame.image, frame=frame.index, time=frame.time)
                if prepare is not None:
                    try:
                        sample.input = prepare(frame.image)
                    except Exception as exc:  # this frame's own error; the video goes on
                        sample.error = f"cannot prepare the frame: {one_line(exc)}"
                yield sample
        except InputError as exc:
            yield Sample(item.path, item.rel, error=str(exc))

    return read_ahead_of(produce(), read_ahead) if read_ahead > 0 else produce()


def read_ahead_of(iterable: Iterable, depth: int) -> Iterator:
    """Iterate ``iterable`` on a background thread, at most ``depth`` items ahead of the caller.

    Its exceptions are raised in the caller; when the caller stops early, the thread stops and
    closes the iterable (a video reader closes its file).

    Examples
    --------
    >>> list(read_ahead_of(range(5), 2))
    [0, 1, 2, 3, 4]
    """
    box: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        source = iter(iterable)
        try:
            for value in source:
                if not put((True, value)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the caller
            put((False, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="cnntool-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = box.get()
            if not ok:
                raise value
            if value is done:
                return
            yield value
    finally:
        stop.set()
        thread.join()


def paired(samples: Iterable[Sample], stage: Callable[[Iterable[Sample]], Iterable]) -> Iterator[tuple]:
    """``(sample, result)`` for a stage that gives one result per sample, in order (such as
    :func:`cnntool.infer.predict.predict_records`), holding only the samples in flight.

    Examples
    --------
    >>> s = [Sample(f"v{i}", PurePath("v")) for i in range(3)]
    >>> [(a.path, r) for a, r in paired(s, lambda xs: (x.path.upper() for x in xs))]
    [('v0', 'V0'), ('v1', 'V1'), ('v2', 'V2')]
    """
    pending: deque = deque()

    def tap() -> Iterator[Sample]:
        for sample in samples:
            pending.append(sample)
            yield sample

    for result in stage(tap()):
        yield pending.popleft(), result


def fit_frame(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A drawn frame made ``shape`` (H, W[, 3]), the size of the video being written: shrunk to fit
    (aspect ratio kept) and padded with black at the right and bottom when a drawing came out
    another size (a legend beside a frame, say); returned as it is when it has the size already.

    Examples
    --------
    >>> fit_frame(np.full((10, 30, 3), 255, np.uint8), (10, 20, 3)).shape
    (10, 20, 3)
    >>> fit_frame(np.zeros((4, 4), np.uint8), (6, 8))[:, :, 0].shape
    (6, 8)
    """
    height, width = int(shape[0]), int(shape[1])
    if image.shape[:2] == (height, width):
        return image
    import cv2

    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    scale = min(1.0, height / h, width / w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    out[:rgb.shape[0], :rgb.shape[1]] = rgb
    return out


def draw_classification(image: np.ndarray, record: dict) -> np.ndarray:
    """A frame with its class, score and time written in the top-left corner (a new RGB array).

    Examples
    --------
    >>> record = {"label": "cat", "score": 0.93, "frame": 12, "time": 0.48, "error": None}
    >>> draw_classification(np.zeros((90, 160, 3), np.uint8), record).shape
    (90, 160, 3)
    """
    from cnntool.data.draw import draw_text

    if record.get("error"):
        text = f"error: {record['error']}"[:60]
    else:
        text = f"{record['label']} {record['score']:.2f}"
    if record.get("frame") is not None:
        text += f"\nframe {record['frame']}  {record['time']:.2f} s"
    return draw_text(image, text, origin=(0, 0))


# --- clip classification ------------------------------------------------------------------------

def frame_preprocessing(preprocessing):
    """A clip model's preprocessing for one frame, (C, H, W): what the clip datasets prepare
    each frame with (:func:`cnntool.data.clips.load_clip_data`'s evaluation path).

    Examples
    --------
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> frame_preprocessing(Preprocessing((3, 8, 64, 64), (0.5,) * 3, (0.25,) * 3)).input_size
    (3, 64, 64)
    """
    import dataclasses

    return dataclasses.replace(preprocessing, input_size=(preprocessing.channels, *preprocessing.size), flow=None)


def window_indices(window: int, *, frames: int, length: int | None = None) -> np.ndarray:
    """The ``frames`` positions a clip model sees in a window of ``window`` frames: spread evenly
    (``floor(i * window / frames)``), which for the model's own window ``frames x frame_stride``
    is every ``frame_stride``-th frame, as in training; clamped to a video of ``length`` frames
    that is shorter than the window (its last frame repeats, as
    :func:`cnntool.data.clips.clip_frame_indices` does).

    Examples
    --------
    >>> window_indices(24, frames=8).tolist(), window_indices(4, frames=8).tolist()
    ([0, 3, 6, 9, 12, 15, 18, 21], [0, 0, 1, 1, 2, 2, 3, 3])
    """
    positions = (np.arange(frames) * window) // frames
    if length is not None:
        positions = np.minimum(positions, length - 1)
    return positions


def plan_windows(length: int, *, window: int, stride: int | None = None) -> list[range]:
    """The windows (ranges of frame positions) over a video of ``length`` frames: from the first
    frame every ``stride`` (default ``window``) while a whole window fits, then one more ending on
    the last frame when frames are left over; one short window when the video is shorter.

    Examples
    --------
    >>> [(w.start, w.stop) for w in plan_windows(10, window=4, stride=3)]
    [(0, 4), (3, 7), (6, 10)]
    >>> [(w.start, w.stop) for w in plan_windows(3, window=4)]
    [(0, 3)]
    """
    stride = stride or window
    if length <= window:
        return [range(0, length)] if length else []
    windows = [range(s, s + window) for s in range(0, length - window + 1, stride)]
    if windows[-1].stop < length:
        windows.append(range(length - window, length))
    return windows


class ClipWindow(NamedTuple):
    """One window of a video: its frames' source indices and times, and the clip the model sees
    (uint8 (T, H, W, C))."""

    indices: list
    times: list
    clip: np.ndarray


def iter_windows(samples: Iterable[Sample], *, window: int, frames: int, stride: int | None = None) -> Iterator:
    """The windows of a stream of prepared frames (``Sample.input``), as :func:`plan_windows` lays
    them out, without holding more than one window of frames; yields :class:`ClipWindow`, and
    an error sample (a break in the video) as itself, after the windows complete before it.
    """
    stride = stride or window
    buffer: deque = deque(maxlen=window)
    seen = 0
    next_start = 0
    last_stop = 0
    for sample in samples:
        if not sample.ok:
            yield sample
            return
        buffer.append(sample)
        seen += 1
        if seen - next_start == window:
            yield _window(list(buffer), window, frames)
            last_stop, next_start = seen, next_start + stride
    if seen and seen < window:
        yield _window(list(buffer), window, frames)
    elif seen and last_stop < seen:
        yield _window(list(buffer), window, frames)   # the last window ends on the last frame


def _window(held: list, window: int, frames: int) -> ClipWindow:
    picks = window_indices(window, frames=frames, length=len(held))
    clip = np.stack([held[int(i)].input for i in picks])
    return ClipWindow([s.frame for s in held], [s.time for s in held], clip)


def classify_clips(loaded, samples: Iterable[Sample], *, device, window: int | None = None,
                   window_stride: int | None = None, batch_size: int = 8, topk: int = 5,
                   threshold: float | None = None) -> Iterator[dict]:
    """Clip classification over one video: a record per window, then the video's verdict.

    Parameters
    ----------
    loaded : LoadedModel
        A clip model (task ``video``) on ``device``.
    samples : iterable of Sample
        One video's frames from :func:`frame_samples` with
        ``prepare=frame_preprocessing(loaded.preprocessing).resize``.
    window : int, optional
        Frames per window (default ``T x frame_stride`` of the model's preprocessing).
    window_stride : int, optional
        Frames between window starts (default: ``window``).
    batch_size : int
        Windows per forward pass.
    topk : int
    threshold : float, optional
        Below this top probability the label is ``unknown``.

    Yields
    ------
    dict
        Per window: ``path``, ``start_frame``, ``end_frame`` (source indices, both in the
        window), ``start_time``, ``end_time``, ``label``, ``score``, ``topk``, ``verdict``
        (false), ``error``. Last: the verdict, ``verdict: true`` with ``windows`` (how many),
        ``start_frame``/``end_frame`` of the whole video and the mean probabilities' ``label``,
        ``score`` and ``topk``; or, for a video that breaks (or has no frames), an ``error``
        record instead.

    Raises
    ------
    UsageError
        At the call, before any frame is read: a clip the model cannot take
        (:meth:`~cnntool.models.registry.ModelEntry.check_clip_input`: MViT's 16 frames, S3D's 14...).

    Notes
    -----
    A model that takes optical flow (``preprocessing.flow``) gets it appended to each window's
    clip by :func:`cnntool.data.clips.append_flow` with the method its preprocessing names, as
    its training clips had it.

    Examples
    --------
    >>> records = list(classify_clips(load("runs/c3d/best.pt"), samples, device=torch.device("cpu")))  # doctest: +SKIP
    >>> records[-1]["verdict"], records[-1]["label"]  # doctest: +SKIP
    (True, 'left')
    """
    pre = loaded.preprocessing
    if not pre.frames:
        raise ValueError("classify_clips needs a clip model, whose input is (C, T, H, W)")
    loaded.entry.check_clip_input(pre, (loaded.checkpoint or {}).get("arch_kwargs"),
                                  source=loaded.weights if loaded.source == "checkpoint" else None)
    return _classify_clips(loaded, samples, device=device, window=window, window_stride=window_stride,
                           batch_size=batch_size, topk=topk, threshold=threshold)


def _classify_clips(loaded, samples, *, device, window, window_stride, batch_size, topk, threshold) -> Iterator[dict]:
    import torch

    from cnntool.data.clips import OpenCVFlow, append_flow
    from cnntool.data.transforms import normalize_batch
    from cnntool.device import amp_dtype, channels_last_for_inference, use_amp

    pre = loaded.preprocessing
    frames = pre.frames
    flow = OpenCVFlow(pre.flow) if pre.flow else None
    window = window or frames * pre.frame_stride
    classes = list(loaded.classes)
    amp = use_amp(device, None)
    channels_last_for_inference(loaded.model, device)  # 2-D convolutions of per-frame models; 3-D keep theirs
    probs_sum = None
    count = 0
    span: list = []
    pending: list[ClipWindow] = []

    def run(group: list[ClipWindow]) -> Iterator[dict]:
        nonlocal probs_sum, count
        clips = [append_flow(w.clip, flow) if flow is not None else w.clip for w in group]
        x = torch.from_numpy(np.ascontiguousarray(np.stack(clips).transpose(0, 4, 1, 2, 3)))
        x = normalize_batch(x.to(device), *pre.scale_and_offset())
        with torch.inference_mode(), (torch.autocast(device_type=device.type, dtype=amp_dtype(device))
                                      if amp else nullcontext()):
            probs = torch.softmax(loaded.model(x).float(), dim=1).cpu().numpy().astype(np.float64)
        for w, p in zip(group, probs):
            record = {"path": span[0], "start_frame": w.indices[0], "end_frame": w.indices[-1],
                      "start_time": w.times[0], "end_time": w.times[-1]}
            if not np.isfinite(p).all():
                yield {**record, "verdict": False,
                       "error": "the model's output is not a number (NaN/inf): its weights or the input are broken"}
                continue
            probs_sum = p if probs_sum is None else probs_sum + p
            count += 1
            yield {**record, **top_classes(p, classes, topk=topk, threshold=threshold), "verdict": False, "error": None}

    for entry in iter_windows(_remember_path(samples, span), window=window, frames=frames, stride=window_stride):
        if isinstance(entry, Sample):  # the video broke: what was read is classified, then its error
            if pending:
                yield from run(pending)
            yield {"path": entry.path, "verdict": False, "windows": count, "error": entry.error}
            return
        pending.append(entry)
        if len(pending) == batch_size:
            yield from run(pending)
            pending = []
    if pending:
        yield from run(pending)
    if not span:
        return
    if not count:
        yield {"path": span[0], "verdict": False, "windows": 0, "error": "no window could be classified"}
        return
    yield {"path": span[0], "verdict": True, "windows": count, "start_frame": span[1], "end_frame": span[2],
           **top_classes(probs_sum / count, classes, topk=topk, threshold=threshold), "error": None}


def _remember_path(samples: Iterable[Sample], span: list) -> Iterator[Sample]:
    """Pass samples through, keeping ``[path, first frame, last frame]`` of the good ones in ``span``."""
    for sample in samples:
        if sample.ok:
            if not span:
                span.extend([sample.path, sample.frame, sample.frame])
            span[2] = sample.frame
        elif not span:
            span.extend([sample.path, None, None])
        yield sample


def top_classes(probs: np.ndarray, classes: Sequence[str], *, topk: int = 5, threshold: float | None = None) -> dict:
    """``label``, ``score`` and ``topk`` (list of ``{label, score}``) of a probability vector;
    ``label`` is ``unknown`` when the top score is under ``threshold``.

    Examples
    --------
    >>> top_classes(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], topk=2)
    {'label': 'b', 'score': 0.7, 'topk': [{'label': 'b', 'score': 0.7}, {'label': 'c', 'score': 0.2}]}
    >>> top_classes(np.array([0.4, 0.6]), ["a", "b"], threshold=0.8)["label"]
    'unknown'
    """
    from cnntool.infer.predict import UNKNOWN

    order = np.argsort(-probs, kind="stable")[:max(1, min(topk, len(classes)))]
    best = float(probs[order[0]])
    label = UNKNOWN if threshold is not None and best < threshold else classes[int(order[0])]
    return {"label": label, "score": best,
            "topk": [{"label": classes[int(i)], "score": float(probs[i])} for i in order]}


# --- optical flow -------------------------------------------------------------------------------

def frame_flows(samples: Iterable[Sample], estimate: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Iterator[tuple]:
    """The flow from each frame to the next: ``(sample, flow, record)`` per pair, in order.

    ``sample`` is the pair's first frame; ``flow`` float32 (H, W, 2) in pixels (see
    :mod:`cnntool.infer.flow`); ``record`` has ``path``, ``frame``, ``next_frame``, ``time``,
    ``mean_motion`` and ``max_motion`` (vector lengths, pixels), ``mean_dx``, ``mean_dy`` and
    ``error``. A frame that failed gives its error record (flow None) and the next pair starts
    after it; an error sample ending the stream (a video that breaks) is yielded the same way.

    Examples
    --------
    >>> from cnntool.infer.flow import FlowEstimator
    >>> frames = [Sample("v", PurePath("v"), image=np.roll(np.eye(32, dtype=np.uint8) * 255, i, axis=1),
    ...                  frame=i, time=i / 10) for i in range(3)]
    >>> [(r["frame"], r["next_frame"]) for _, _, r in frame_flows(frames, FlowEstimator("farneback"))]
    [(0, 1), (1, 2)]
    """
    from cnntool.infer.flow import flow_stats

    previous = None
    for sample in samples:
        if not sample.ok:
            yield sample, None, {"path": sample.path, "frame": sample.frame, "time": sample.time,
                                 "error": sample.error}
            previous = None
            continue
        if previous is not None:
            record = {"path": previous.path, "frame": previous.frame, "next_frame": sample.frame,
                      "time": previous.time}
            try:
                flow = estimate(previous.image, sample.image)
            except Exception as exc:  # this pair's error; the video goes on
                yield previous, None, {**record, "error": f"{type(exc).__name__}: {one_line(exc)}"}
            else:
                stats = flow_stats(flow)
                yield previous, flow, {**record, "mean_motion": stats.mean_magnitude,
                                       "max_motion": stats.max_magnitude, "mean_dx": stats.mean_dx,
                                       "mean_dy": stats.mean_dy, "error": None}
        previous = sample


def flow_colour_scale(shape: tuple[int, ...]) -> float:
    """The motion (pixels) drawn at full colour in a flow video of frames of ``shape``: one value
    for the whole video (:data:`FLOW_FULL_COLOUR` of the shorter side, at least 1 px).

    Examples
    --------
    >>> flow_colour_scale((360, 640, 3)), flow_colour_scale((16, 16))
    (9.0, 1.0)
    """
    return max(1.0, math.floor(min(shape[0], shape[1]) * FLOW_FULL_COLOUR * 4) / 4)
