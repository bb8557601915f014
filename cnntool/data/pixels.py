"""Pixel sources: what every inference stage consumes, whatever the pixels came from.

A stage (predict, explain, detect, segment) takes an iterator of :class:`Sample` (a key, the
uint8 pixels, and where its outputs go) and batches of them (:func:`batches`), never file paths:
so the same stage runs over image files (:func:`read_images`, decoding on threads, in input
order) and over the frames of a video (the video reader's samples), and draws its pictures from
the array already in memory.

Examples
--------
>>> import numpy as np
>>> from pathlib import PurePath
>>> samples = [Sample(f"frame{i}", PurePath(f"f{i}.png"), np.zeros((4, 6, 3), np.uint8)) for i in range(3)]
>>> [b.inputs.shape for b in batches(samples, 2, prepare=lambda im: im)]
[(2, 3, 4, 6), (1, 3, 4, 6)]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath

import numpy as np

from cnntool.errors import InputError, one_line

#: The memory budget of pictures drawn over inputs (overlays, heatmaps, annotated images): an
#: input larger than this on its longer side is kept and drawn at this size (records still give
#: coordinates in the original pixels).
MAX_DRAW_SIDE = 4096


@dataclass
class Sample:
    """One unit of pixels a stage works on: an image file, or one frame of a video.

    Attributes
    ----------
    path : str
        The record's ``path``: the input as the user gave it (the video, for a frame).
    rel : PurePath
        Where its outputs go under ``-o``.
    image : numpy.ndarray or None
        The pixels as decoded, uint8 (H, W, 3) or (H, W); None when it failed, or when the
        source was told not to keep it (only ``input`` was needed). May be a downscaled copy
        when the source kept it under a size budget (``scale`` says by how much).
    error : str or None
        Why it could not be read (one line).
    frame, time : int, float or None
        The frame index and its timestamp in seconds, for video frames.
    size : (int, int) or None
        The original (height, width), even when ``image`` was downscaled or dropped.
    input : numpy.ndarray or None
        The model input prepared from the pixels (uint8 (H, W, C)), when the source prepared it
        on its threads.
    scale : float
        ``image``'s size over the original's (1.0 when kept whole).
    """

    path: str
    rel: PurePath
    image: np.ndarray | None = None
    error: str | None = None
    frame: int | None = None
    time: float | None = None
    size: tuple[int, int] | None = None
    input: np.ndarray | None = None
    scale: float = 1.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __post_init__(self):
        if self.size is None and self.image is not None:
            self.size = (int(self.image.shape[0]), int(self.image.shape[1]))


def fit_within(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area-averaged) so its longer side is at most ``max_side``; the scale.

    Examples
    --------
    >>> small, scale = fit_within(np.zeros((100, 400), np.uint8), 200)
    >>> small.shape, scale
    ((50, 200), 0.5)
    """
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def read_images(items: Sequence, *, mode: str = "rgb", max_pixels: int | None = None, workers: int | None = None,
                prepare: Callable[[np.ndarray], np.ndarray] | None = None, keep_image: bool = True,
                max_side: int | None = None, chunk: int = 8) -> Iterator[Sample]:
    """Decode resolved inputs on threads into :class:`Sample`, in input order.

    Parameters
    ----------
    items : sequence of InputItem
        From :func:`cnntool.data.sources.resolve_inputs` (a failed one becomes an error sample).
    mode : {"rgb", "gray", "auto"}
        As :func:`~cnntool.data.decode.decode_image`.
    max_pixels : int, optional
    workers : int, optional
        Decode threads (default: all cores); at most two chunks per thread are in flight, so
        memory stays bounded on long inputs.
    prepare : callable, optional
        uint8 image -> model input, run on the decode threads (``Sample.input``).
    keep_image : bool
        Keep the decoded pixels (for drawing); False keeps only ``input`` and the size.
    max_side : int, optional
        Keep the pixels shrunk to this longer side at most (a memory budget for drawings of huge
        images); ``Sample.scale`` says by how much.
    chunk : int
        Images per thread task (small images decode faster than a task costs).
    """
    from cnntool.data.decode import decode_image
    from cnntool.data.loaders import thread_map

    def load(item) -> Sample:
        if not item.ok:
            return Sample(item.path, item.rel, error=item.error)
        try:
            image = decode_image(item.path, mode=mode, max_pixels=max_pixels)
            size = (int(image.shape[0]), int(image.shape[1]))
            prepared = prepare(image) if prepare is not None else None
        except InputError as exc:
            return Sample(item.path, item.rel, error=str(exc))
        except Exception as exc:  # an image that breaks the model's preparation: its own error
            return Sample(item.path, item.rel, error=f"cannot prepare the image: {one_line(exc)}")
        kept, scale = fit_within(image, max_side) if keep_image else (None, 1.0)
        return Sample(item.path, item.rel, image=kept, size=size, input=prepared, scale=scale)

    items = list(items)
    workers = workers or os.cpu_count() or 1
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    for loaded in thread_map(lambda part: [load(item) for item in part], chunks, workers=workers):
        yield from loaded


def watch_sizes(samples: Iterable[Sample], check: Callable[[list], None], *, first: int = 64) -> Iterator[Sample]:
    """Pass samples through; call ``check(sizes)`` once with the (h, w) of the first ``first``
    good ones (or of all, when there are fewer): an early look at what the inputs are like.

    Examples
    --------
    >>> seen = []
    >>> out = list(watch_sizes([Sample("a", PurePath("a"), np.zeros((4, 6), np.uint8))], seen.append))
    >>> seen
    [[(4, 6)]]
    """
    sizes: list = []
    done = False
    for sample in samples:
        if sample.ok and sample.size is not None and not done:
            sizes.append(sample.size)
            if len(sizes) >= first:
                check(sizes)
                done = True
        yield sample
    if not done and sizes:
        check(sizes)


@dataclass
class Batch:
    """Samples grouped for one forward pass.

    ``inputs`` holds the model inputs of the good samples, in order: one uint8 (N, C, H, W)
    array when their sizes agree (or clips (N, C, T, H, W)), else a list of (C, H, W) arrays
    (detection and segmentation take images of any size). None when no sample is good.
    """

    samples: list[Sample]
    inputs: np.ndarray | list | None

    @property
    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]


def batches(samples: Iterable[Sample], batch_size: int, *, prepare: Callable[[np.ndarray], np.ndarray] | None = None,
            stack: bool | None = None) -> Iterator[Batch]:
    """Group samples into batches of ``batch_size``, in order, with their model inputs.

    A sample's input is its ``input`` (prepared on the decode threads), else ``prepare(image)``
    here (a preparation that fails makes that sample an error, not the batch). ``stack``:
    True stacks (sizes must agree), False gives lists, None stacks when the sizes agree.
    """
    group: list[Sample] = []
    for sample in samples:
        group.append(sample)
        if len(group) == batch_size:
            yield _batch(group, prepare, stack)
            group = []
    if group:
        yield _batch(group, prepare, stack)


def _batch(group: list[Sample], prepare, stack) -> Batch:
    inputs = []
    for i, sample in enumerate(group):
        if not sample.ok:
            continue
        if sample.input is None:
            try:
                sample.input = prepare(sample.image) if prepare is not None else sample.image
            except Exception as exc:
                group[i] = replace(sample, error=f"cannot prepare the image: {one_line(exc)}", input=None)
                continue
        inputs.append(_channels_first(sample.input))
    if not inputs:
        return Batch(group, None)
    same = all(x.shape == inputs[0].shape for x in inputs)
    if stack or (stack is None and same):
        return Batch(group, np.ascontiguousarray(np.stack(inputs)))
    return Batch(group, inputs)


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (C, H, W); clips (T, H, W, C) -> (C, T, H, W)."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x.transpose(2, 0, 1)
    return x.transpose(3, 0, 1, 2)
