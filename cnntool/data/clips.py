"""Video classification datasets: clips of T frames sampled from ``root/<class>/*.mp4``.

The layout (DESIGN section 5) is ``root/<class>/*.mp4`` (any format :mod:`cnntool.data.video`
reads), or ``root/train`` and ``root/val`` (and ``root/test``) each holding class folders;
without ``val/`` a seeded stratified split of the videos validates (as for images).

:class:`ClipDataset` is a map-style dataset for ``torch.utils.data.DataLoader``. A sample is
``(clip, label)`` with ``clip`` a uint8 tensor (C, T, H, W): T frames, ``frame_stride`` source
frames apart. In training each video gives one clip per epoch from a random start (temporal
jitter); for evaluation each video gives its centred clip, or ``windows`` uniformly spaced
ones (each a sample; :attr:`ClipDataset.video_index` maps samples back to videos). Videos
shorter than a clip repeat their last frame.

Frames go through ``prepare`` (the deterministic, cacheable per-frame step, for example
:meth:`~cnntool.data.preprocessing.Preprocessing.resize`) when a video is decoded; small datasets
keep every prepared video in memory. Training augmentation is a
:class:`~cnntool.data.transforms.TrainTransform`: one set of random parameters is drawn per
clip and applied to each of its frames, so a clip is zoomed, shifted or rotated as a whole
and its motion stays intact. (Never mirror direction classes: a flipped "left" is "right".)

Optical flow for a model that takes it (:func:`cnntool.models.video_nets.two_stream` with
``motion="flow"``, whose :class:`~cnntool.data.preprocessing.Preprocessing` names the method in
``flow``) is computed on each clip after augmentation, from each frame to the next, with
:class:`OpenCVFlow` (DIS or Farneback, the estimators ``cnntool video --task flow`` uses too),
or with any ``flow=`` function ``(prev, next) -> (H, W, 2)``. :func:`append_flow` adds it as two
uint8 channels, ``round(d * FLOW_SCALE) + FLOW_OFFSET`` (quarter-pixel steps, +-32 px), so with
the preprocessing's :meth:`~cnntool.data.preprocessing.Preprocessing.scale_and_offset` (mean
``FLOW_OFFSET / 255`` and std ``FLOW_SCALE / 255`` for those channels) the model sees the flow in
pixels. Clip classification (:func:`cnntool.infer.video.classify_clips`) appends the same flow.

Example::

    from cnntool.data.clips import load_clip_data
    from cnntool.data.preprocessing import Preprocessing
    data = load_clip_data("squares", preprocessing=Preprocessing((3, 8, 64, 64), (0.5,) * 3, (0.25,) * 3),
                          frame_stride=2)
    clips, labels = data.train.__getitems__([0, 1])      # uint8 (2, 3, 8, 64, 64), int64 (2,)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnntool.data.preprocessing import FLOW_METHODS, FLOW_OFFSET, FLOW_SCALE
from cnntool.errors import DatasetError, InputError

#: DIS presets (OpenCV's): faster presets stop at a coarser scale.
DIS_PRESETS = ("ultrafast", "fast", "medium")

#: Farneback parameters: pyramid scale, levels, window, iterations, poly_n, poly_sigma. More
#: levels and a larger window than OpenCV's sample (0.5, 3, 15, 3, 5, 1.2) reach larger motions.
FARNEBACK_PARAMS = (0.5, 5, 21, 5, 7, 1.5)


class OpenCVFlow:
    """Dense optical flow with OpenCV: DIS (``medium`` preset by default) or Farneback, on
    grayscale frames; ``(prev, next) -> float32 (H, W, 2)`` ``(dx, dy)`` in pixels.

    The one implementation of the classical methods: clip datasets compute a flow model's input
    with it, and :class:`cnntool.infer.flow.FlowEstimator` runs it for ``cnntool video --task
    flow``. Safe to share between threads (each thread gets its own DIS instance).

    Parameters
    ----------
    method : {"dis", "farneback"}
    preset : {"ultrafast", "fast", "medium"}
        DIS preset.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> import cv2
    >>> scene = cv2.GaussianBlur(rng.uniform(0, 255, (64, 80)).astype(np.float32), (0, 0), 2).astype(np.uint8)
    >>> flow = OpenCVFlow("dis")(scene, np.roll(scene, 3, axis=1))      # everything moves 3 px right
    >>> flow.shape, bool(np.allclose(np.median(flow[8:-8, 8:-8], axis=(0, 1)), [3, 0], atol=0.2))
    ((64, 80, 2), True)
    """

    def __init__(self, method: str = "dis", *, preset: str = "medium"):
        import threading

        from cnntool.errors import unknown_choice

        if method not in FLOW_METHODS:
            raise unknown_choice("flow method", method, FLOW_METHODS)
        if preset not in DIS_PRESETS:
            raise unknown_choice("DIS preset", preset, DIS_PRESETS)
        self.method, self.preset = method, preset
        self._local = threading.local()

    def __getstate__(self) -> dict:  # DataLoader workers started by spawn pickle the dataset
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        import threading

        self.__dict__.update(state)
        self._local = threading.local()  # each process makes its own OpenCV objects

    def __call__(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """Flow from ``prev`` to ``next`` (uint8 or [0, 1] floats, (H, W), (H, W, 1) or (H, W, 3) RGB)."""
        import cv2

        a, b = as_gray_uint8(prev), as_gray_uint8(next)
        if a.shape != b.shape:
            raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")
        if self.method == "dis":
            dis = getattr(self._local, "dis", None)
            if dis is None:
                dis = self._local.dis = cv2.DISOpticalFlow_create(
                    getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.preset.upper()}"))
            flow = dis.calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK_PARAMS, 0)
        return np.ascontiguousarray(flow, dtype=np.float32)


def as_gray_uint8(image: np.ndarray) -> np.ndarray:
    """A frame as uint8 (H, W) luma: uint8 or [0, 1] float input, (H, W), (H, W, 1) or RGB (H, W, 3).

    Examples
    --------
    >>> as_gray_uint8(np.full((2, 2, 3), 0.5)).tolist()
    [[128, 128], [128, 128]]
    """
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"frames must be uint8 or floats in [0, 1], not {image.dtype}")
        image = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if image.ndim == 3:
        if image.shape[2] not in (1, 3):
            raise ValueError(f"frames must be (H, W) or (H, W, 3), not {image.shape}")
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.shape[2] == 3 else image[:, :, 0]
    elif image.ndim != 2:
        raise ValueError(f"frames must be (H, W) or (H, W, 3), not {image.shape}")
    return np.ascontiguousarray(image)


def append_flow(clip: np.ndarray, flow: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """uint8 clip (T, H, W, C) -> (T, H, W, C + 2): the flow from each frame to the next, quantised
    (``round(d * FLOW_SCALE) + FLOW_OFFSET``, clipped to 0..255), after the image channels; the last
    frame's flow is zero. Returns a new array.

    Examples
    --------
    >>> clip = np.zeros((3, 16, 16, 3), np.uint8); clip[:, 4:8, 4:8] = 255
    >>> out = append_flow(clip, OpenCVFlow("farneback"))
    >>> out.shape, int(out[2, :, :, 3:].min()), int(out[2, :, :, 3:].max())
    ((3, 16, 16, 5), 128, 128)
    """
    clip = np.asarray(clip)
    out = np.full(clip.shape[:3] + (2,), FLOW_OFFSET, np.uint8)
    for t in range(len(clip) - 1):
        field = np.asarray(flow(clip[t], clip[t + 1]), np.float32)
        out[t] = np.clip(np.rint(field * FLOW_SCALE) + FLOW_OFFSET, 0, 255).astype(np.uint8)
    return np.concatenate([clip, out], axis=3)


def index_video_folder(root: str | os.PathLike, *, classes: Sequence[str] | None = None):
    """Index ``root/<class>/**/*.<video ext>`` into a :class:`~cnntool.data.datasets.FolderIndex`
    (:func:`~cnntool.data.datasets.index_image_folder` for videos).

    Folders of numbered images inside a class folder are not clips: give video files.

    Raises
    ------
    DatasetError
        No such folder, no class folders, a class the training data lacks, or no videos.
    """
    from cnntool.data.datasets import index_image_folder
    from cnntool.data.video import VIDEO_EXTENSIONS

    return index_image_folder(root, classes=classes, extensions=VIDEO_EXTENSIONS, what="videos")


def clip_frame_indices(length: int, start: int, *, frames: int, frame_stride: int = 1) -> np.ndarray:
    """Frame indices of the clip that starts at ``start``: ``frames`` of them, ``frame_stride``
    apart, clamped to the last frame of a video of ``length`` frames.

    Examples
    --------
    >>> clip_frame_indices(10, 2, frames=4, frame_stride=3).tolist()
    [2, 5, 8, 9]
    """
    return np.minimum(start + frame_stride * np.arange(frames), length - 1)


def window_starts(length: int, *, frames: int, frame_stride: int = 1, windows: int = 1) -> list[int]:
    """Starts of ``windows`` evaluation clips: the centred clip for one window, else windows
    spread uniformly from the first frame to the last full clip.

    Examples
    --------
    >>> window_starts(40, frames=16), window_starts(40, frames=16, windows=3), window_starts(8, frames=16)
    ([12], [0, 12, 24], [0])
    """
    span = (frames - 1) * frame_stride + 1
    room = max(0, length - span)
    if windows == 1:
        return [room // 2]
    return [int(round(room * i / (windows - 1))) for i in range(windows)]


class ClipDataset:
    """Clips and labels for a DataLoader: videos decoded and checked once, optionally cached.

    Parameters
    ----------
    paths : sequence of str
    labels : sequence of int
    classes : sequence of str
    frames : int
        Clip length T.
    frame_stride : int
        Source frames between two frames of a clip.
    train : bool
        One clip per video from a random start each epoch (seeded by ``seed``, the epoch and
        the video); otherwise fixed windows.
    windows : int
        Evaluation clips per video (centred when 1); training datasets take 1.
    prepare : callable, optional
        uint8 (H, W, 3) RGB frame -> uint8 (H, W, C): resize and channels; its output is what
        the cache holds. Every prepared frame must have one size. Default: the frame as is.
    augment : TrainTransform, optional
        Random per-clip augmentation (``draw`` a parameter row per clip, ``apply`` it to each
        frame); training only.
    flow : callable, optional
        ``(prev, next) -> (H, W, 2)`` flow, appended as two uint8 channels (module notes).
    cache : bool or "auto"
        Keep prepared videos in memory; ``auto`` when they fit in
        :data:`~cnntool.data.datasets.CACHE_BUDGET_BYTES` (estimated from the first video).
    verify : bool
        Without the cache, still decode every video once to count its frames and drop the
        broken ones (as the cache does); False counts packets instead (fast, but a video that
        breaks part-way then fails when a clip reaches the break).
    seed : int
    workers : int
        Threads that decode videos when the dataset is built.

    Attributes
    ----------
    skipped : list of (str, str)
        ``(path, reason)`` for videos dropped because they could not be decoded.
    lengths : numpy.ndarray
        Frames of each kept video.
    targets : numpy.ndarray
        int64 label of each sample.
    video_index : numpy.ndarray
        The video each sample comes from.
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int], classes: Sequence[str], *,
                 frames: int = 16, frame_stride: int = 1, train: bool = False, windows: int = 1,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None, augment=None,
                 flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 cache: bool | str = "auto", verify: bool = True, seed: int = 0, workers: int | None = None):
        from cnntool.data.datasets import DEFAULT_DECODE_WORKERS

        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        if frames < 1 or frame_stride < 1 or windows < 1:
            raise ValueError("frames, frame_stride and windows must be at least 1")
        if train and windows != 1:
            raise ValueError("windows is for evaluation: a training video gives one random clip per epoch")
        if augment is not None and not train:
            raise ValueError("augment is for training datasets")
        self.classes = list(classes)
        self.frames, self.frame_stride = int(frames), int(frame_stride)
        self.train, self.windows = bool(train), int(windows)
        self.prepare = prepare or (lambda image: image)
        self.augment, self.flow = augment, flow
        self.seed, self.epoch, self.verify = seed, 0, bool(verify)
        self.skipped: list[tuple[str, str]] = []
        workers = workers or DEFAULT_DECODE_WORKERS
        probed = self._try_decode(paths[0]) if cache == "auto" and len(paths) else None
        if cache == "auto":
            from cnntool.data.datasets import CACHE_BUDGET_BYTES

            cache = (probed is None or isinstance(probed, InputError)
                     or probed.nbytes * len(paths) <= CACHE_BUDGET_BYTES)
        self.cached = bool(cache)
        self._videos: list[np.ndarray] | None = [] if self.cached else None
        self._load(list(paths), list(labels), workers, probed)
        per_video = 1 if self.train else self.windows
        self.video_index = np.repeat(np.arange(len(self.paths)), per_video)
        self.targets = np.asarray(self.labels, np.int64)[self.video_index]

    # building -------------------------------------------------------------------------------
    def _try_decode(self, path: str):
        from cnntool.data.video import VideoReader

        try:
            prepared = [self.prepare(frame.image) for frame in VideoReader(path)]
            shapes = {p.shape for p in prepared}
            if len(shapes) != 1:
                raise InputError(f"prepared frames differ in size: {sorted(shapes)[:2]}")
            return np.stack(prepared)
        except InputError as exc:
            return exc

    def _try_count(self, path: str):
        from cnntool.data.video import probe_video

        try:
            return probe_video(path, decode=self.verify).frames
        except InputError as exc:
            return exc

    def _load(self, paths: list[str], labels: list[int], workers: int, probed) -> None:
        import itertools

        from cnntool.data.loaders import thread_map

        work = self._try_decode if self.cached else self._try_count
        first = [probed] if probed is not None and self.cached else []
        results = itertools.chain(first, thread_map(work, paths[len(first):], workers=workers))
        self.paths, self.labels, lengths = [], [], []
        for path, label, result in zip(paths, labels, results):
            if isinstance(result, InputError):
                self.skipped.append((path, str(result)))
                continue
            if not self.cached and result == 0:
                self.skipped.append((path, "the video has no frames"))
                continue
            self.paths.append(path)
            self.labels.append(label)
            lengths.append(len(result) if self.cached else int(result))
            if self.cached:
                self._videos.append(result)
        self.lengths = np.asarray(lengths, np.int64)

    # access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.video_index)

    def set_epoch(self, epoch: int) -> None:
        """Clip starts and augmentation of the next epoch are seeded by (seed, epoch)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int):
        clips, labels = self.__getitems__([index])
        return clips[0], int(labels[0])

    def __getitems__(self, indices: Sequence[int]):
        """A whole batch: ``(uint8 tensor (N, C, T, H, W), int64 tensor (N,))``."""
        import torch

        indices = [int(i) for i in indices]
        rng = np.random.default_rng([self.seed, self.epoch, indices[0] if indices else 0])
        params = self.augment.draw(rng, len(indices)) if self.augment is not None else [None] * len(indices)
        clips = [self._clip(i, rng, p) for i, p in zip(indices, params)]
        batch = np.stack(clips).transpose(0, 4, 1, 2, 3)              # (N, T, H, W, C) -> (N, C, T, H, W)
        return torch.from_numpy(np.ascontiguousarray(batch)), torch.from_numpy(self.targets[indices])

    def clip_indices(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The source frame indices of sample ``index`` (training draws its start from ``rng``)."""
        video = int(self.video_index[index])
        length = int(self.lengths[video])
        if self.train:
            room = max(0, length - ((self.frames - 1) * self.frame_stride + 1))
            start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
        else:
            start = window_starts(length, frames=self.frames, frame_stride=self.frame_stride,
                                  windows=self.windows)[index - int(np.searchsorted(self.video_index, video))]
        return clip_frame_indices(length, start, frames=self.frames, frame_stride=self.frame_stride)

    def _clip(self, index: int, rng: np.random.Generator, params) -> np.ndarray:
        video = int(self.video_index[index])
        wanted = self.clip_indices(index, rng)
        if self._videos is not None:
            clip = self._videos[video][wanted]
        else:
            clip = self._read_frames(self.paths[video], wanted)
        if params is not None:
            clip = np.stack([self.augment.apply(frame, params) for frame in clip])
        if self.flow is not None:
            clip = append_flow(clip, self.flow)
        return clip

    def _read_frames(self, path: str, wanted: np.ndarray) -> np.ndarray:
        """Decode only the frames of one clip (seeking to its first frame)."""
        from cnntool.data.video import VideoReader

        first, last = int(wanted.min()), int(wanted.max())
        needed = set(wanted.tolist())
        found: dict[int, np.ndarray] = {}
        fps = float(VideoReader(path).fps)
        for start in (max(0.0, (first - 0.5) / fps), 0.0):   # a variable frame rate can miss: retry from 0
            for frame in VideoReader(path, start=start):
                if frame.index in needed:
                    found[frame.index] = self.prepare(frame.image)
                if frame.index >= last:
                    break
            if needed <= set(found) or start == 0.0:
                break
        missing = needed - set(found)
        if missing:
            raise InputError(f"{path}: frames {sorted(missing)[:3]} could not be read again")
        return np.stack([found[i] for i in wanted.tolist()])


@dataclass
class ClipData:
    """The clip datasets of a run (like :class:`cnntool.train.classify.ClassificationData`).

    Attributes
    ----------
    classes : list of str
    train, val : ClipDataset
    test : ClipDataset or None
    skipped : list of (str, str)
        ``(path, reason)`` for every video left out.
    split : str
        ``folders`` or ``val_split=F``.
    sizes : dict
        Videos indexed per split (``train``, ``val``, ``test``), over every process's shard.
    """

    classes: list[str]
    train: Any
    val: Any
    test: Any = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split: str = "folders"
    sizes: dict = field(default_factory=dict)


def load_clip_data(root: str | os.PathLike, *, preprocessing, frames: int | None = None, frame_stride: int = 1,
                   augment=None, windows: int = 1, flow=None, val_split: float = 0.2, seed: int = 0,
                   cache: bool | str = "auto", verify: bool = True, workers: int | None = None, rank: int = 0,
                   world_size: int = 1) -> ClipData:
    """Index ``root`` and build train/val(/test) :class:`ClipDataset` for a model's input.

    Parameters
    ----------
    root : path-like
        Class folders of videos, or ``train/`` + ``val/`` (+ ``test/``) folders of them.
        Without ``val/``, ``val_split`` of the videos of each class (seeded) validate.
    preprocessing : Preprocessing
        The model's, with ``input_size`` (C, T, H, W) or (C, H, W): frame size and channels (C
        counts image channels only; ``flow`` adds two).
    frames : int, optional
        Clip length; default the T of ``preprocessing``.
    frame_stride : int
        Source frames between two frames of a clip.
    augment : AugmentConfig, optional
        Training augmentation, drawn once per clip.
    windows : int
        Evaluation clips per validation/test video.
    flow : callable, optional
        See :class:`ClipDataset`. Default: :class:`OpenCVFlow` with the preprocessing's ``flow``
        method when it names one (a model that takes optical flow), else no flow.
    cache, verify, workers
        See :class:`ClipDataset`.
    rank, world_size : int
        This process's shard (DDP): it decodes only its own videos
        (:func:`~cnntool.data.loaders.shard_indices`; training shards padded to equal sizes).

    Examples
    --------
    >>> from cnntool.data.preprocessing import Preprocessing
    >>> import tempfile
    >>> root = write_moving_squares(tempfile.mkdtemp(), per_class=2, frames=8, size=32)
    >>> data = load_clip_data(root, preprocessing=Preprocessing((3, 4, 32, 32), (0.5,) * 3, (0.25,) * 3),
    ...                       frame_stride=2)
    >>> clips, labels = data.train.__getitems__([0, 1])
    >>> tuple(clips.shape), labels.tolist(), data.classes
    ((2, 3, 4, 32, 32), [0, 0], ['down', 'left', 'right', 'up'])
    """
    import dataclasses

    from cnntool.data.datasets import split_class_folders
    from cnntool.data.loaders import shard_indices
    from cnntool.data.transforms import TrainTransform

    frames = frames or preprocessing.frames
    if flow is None and preprocessing.flow:
        flow = OpenCVFlow(preprocessing.flow)
    if not frames:
        raise ValueError("give frames, or a preprocessing whose input_size is (C, T, H, W)")
    per_frame = dataclasses.replace(preprocessing, input_size=(preprocessing.channels, *preprocessing.size), flow=None)
    folders = split_class_folders(root, val_split=val_split, seed=seed, index=index_video_folder)
    train_index, val_index, test_index, split = folders.train, folders.val, folders.test, folders.split
    classes, skipped, sizes = train_index.classes, list(folders.skipped), folders.sizes

    def shard(index, *, train: bool):
        return index.subset(shard_indices(len(index), rank=rank, world_size=world_size, seed=seed, shuffle=train))

    train_index, val_index = shard(train_index, train=True), shard(val_index, train=False)
    test_index = shard(test_index, train=False) if test_index is not None else None
    common = dict(frames=frames, frame_stride=frame_stride, flow=flow, cache=cache, verify=verify, seed=seed,
                  workers=workers)
    if augment is not None:
        transform = TrainTransform(per_frame, augment)
        train = ClipDataset(train_index.paths, train_index.labels, classes, train=True, prepare=transform.prepare,
                            augment=transform, **common)
    else:
        train = ClipDataset(train_index.paths, train_index.labels, classes, train=True,
                            prepare=per_frame.resize, **common)
    evaluation = dict(common, windows=windows, prepare=per_frame.resize)
    val = ClipDataset(val_index.paths, val_index.labels, classes, **evaluation)
    test = None
    if test_index is not None:
        test = ClipDataset(test_index.paths, test_index.labels, classes, **evaluation)
    skipped += [*train.skipped, *val.skipped, *(test.skipped if test is not None else [])]
    if len(train) == 0:
        raise DatasetError(f"no readable training videos under {root}")
    if len(val) == 0 and world_size == 1:
        raise DatasetError(f"no readable validation videos under {root}", hint="add videos to val/, or raise --val-split")
    return ClipData(classes, train, val, test, skipped, split, sizes)


def write_moving_squares(root: str | os.PathLike, *, per_class: int, val_per_class: int | None = None,
                         frames: int = 16, size: int = 64, fps: int = 10, seed: int = 0,
                         workers: int | None = None) -> Path:
    """Write a video classification dataset of moving squares (the class is the direction).

    Clips from :func:`cnntool.data.synthetic.moving_square_clip` are written as H.264 mp4 files
    ``root/train/<direction>/clip_0000.mp4`` and ``root/val/<direction>/...``. No single frame
    tells the class: a model has to see the motion.

    Parameters
    ----------
    root : path-like
    per_class : int
        Training clips per direction.
    val_per_class : int, optional
        Validation clips per direction (default ``per_class // 3``, at least 1).
    frames, size : int
        Frames per clip and frame side in pixels.
    fps : int
    seed : int
        The same seed writes the same clips (each clip has its own generator, so the number of
        ``workers`` does not matter).
    workers : int, optional
        Threads writing clips.

    Returns
    -------
    pathlib.Path
        ``root``.

    Examples
    --------
    >>> import tempfile
    >>> root = write_moving_squares(tempfile.mkdtemp(), per_class=1, frames=4, size=32)
    >>> sorted(p.parent.name for p in (root / "val").rglob("*.mp4"))
    ['down', 'left', 'right', 'up']
    """
    from cnntool.data.loaders import thread_map
    from cnntool.data.synthetic import DIRECTIONS, moving_square_clip
    from cnntool.data.video import write_video

    root = Path(root)
    val_per_class = max(1, per_class // 3) if val_per_class is None else int(val_per_class)
    jobs = [(split_id, split, class_id, direction, i)
            for split_id, (split, count) in enumerate((("train", per_class), ("val", val_per_class)))
            for class_id, direction in enumerate(DIRECTIONS) for i in range(count)]

    def write(job) -> None:
        split_id, split, class_id, direction, i = job
        rng = np.random.default_rng([seed, split_id, class_id, i])
        clip = moving_square_clip(rng, direction=direction, frames=frames, size=size)
        write_video(root / split / direction / f"clip_{i:04d}.mp4", clip.frames, fps=fps)

    for _ in thread_map(write, jobs, workers=workers):
        pass
    return root
