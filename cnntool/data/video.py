"""Video in and out: a streaming frame reader, an atomic H.264 writer, and a probe.

Reading (:class:`VideoReader`) decodes with PyAV (FFmpeg) and falls back to OpenCV where PyAV
cannot open a file; a folder of numbered images reads as a video too. Frames stream one at a
time as :class:`Frame` (uint8 RGB (H, W, 3), the frame's index in the source, its time in
seconds), so memory stays bounded however long the video. Times come from the decoder's
timestamps, never from a frame-count property (which many files get wrong).

Writing (:class:`VideoWriter`, :func:`write_video`) makes H.264 mp4 files in yuv420p, which every
browser plays, with PyAV's libx264; OpenCV's ``mp4v`` (MPEG-4 Part 2) is the fallback where
H.264 is not available. Writes are atomic like :mod:`cnntool.data.writers`: frames go to a hidden
temporary file in the destination folder, whose frame count is checked before it is renamed to
its final name, so an exception or a kill never leaves a half-written video under that name.

After ``--stride N`` the output runs at ``source fps / N`` (:func:`output_fps`), kept as an exact
fraction (NTSC's 30000/1001 over 2 is 15000/1001), so a processed video lasts as long as its
source.

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "ramp.mp4")
>>> frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(6)]
>>> written = write_video(path, frames, fps=25)
>>> written.frames, written.codec, str(written.fps)
(6, 'h264', '25')
>>> reader = VideoReader(path, stride=2)
>>> [(f.index, round(f.time, 2)) for f in reader], str(reader.output_fps)
([(0, 0.0), (2, 0.08), (4, 0.16)], '25/2')
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnntool.errors import InputError, one_line

#: Extensions read as videos when a folder is searched for them (compared case-insensitively).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts",
                              ".wmv", ".flv", ".3gp", ".ogv", ".gif"})

#: Containers :class:`VideoWriter` writes, by extension (FFmpeg's muxer names).
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
WRITE_EXTENSIONS = frozenset(_CONTAINERS)

#: Frame rate of a folder of numbered images when none is given (FFmpeg's image2 default).
DEFAULT_IMAGE_FPS = Fraction(25)

#: libx264 quality (constant rate factor: 0 lossless, 23 x264's default, 51 worst) and speed preset.
DEFAULT_CRF = 23
DEFAULT_PRESET = "veryfast"

CODECS = ("auto", "h264", "mp4v")


class Frame(NamedTuple):
    """One frame: ``image`` uint8 RGB (H, W, 3); ``index`` its 0-based position in the source
    (before any stride); ``time`` its presentation time in seconds from the video's start."""

    image: np.ndarray
    index: int
    time: float


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` finds.

    Attributes
    ----------
    path : str
    fps : fractions.Fraction
        Average frame rate.
    frames : int
        Frames counted in the file (see :func:`probe_video`).
    width, height : int
        Frame size as displayed (after the file's rotation).
    duration : float
        Seconds.
    codec : str
        Decoder name (``h264``, ``mpeg4``...), or ``images`` for a folder of images.
    backend : str
        ``pyav``, ``opencv`` or ``images``.
    """

    path: str
    fps: Fraction
    frames: int
    width: int
    height: int
    duration: float
    codec: str
    backend: str


def output_fps(fps, stride: int = 1) -> Fraction:
    """The frame rate of a video made of every ``stride``-th frame of one at ``fps``.

    Examples
    --------
    >>> str(output_fps(Fraction(30000, 1001), 2)), str(output_fps(25, 3)), str(output_fps(29.97))
    ('15000/1001', '25/3', '2997/100')
    """
    if int(stride) < 1:
        raise ValueError("stride must be at least 1")
    return as_fraction(fps) / int(stride)


def as_fraction(fps) -> Fraction:
    """A frame rate as an exact fraction (floats to the nearest fraction with a denominator up
    to 1001 * 1000, so 29.97002997 becomes 30000/1001)."""
    if isinstance(fps, Fraction):
        value = fps
    elif isinstance(fps, int):
        value = Fraction(fps)
    else:
        value = Fraction(float(fps)).limit_denominator(1001 * 1000)
    if value <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    return value


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``.

    Examples
    --------
    >>> sorted(["img10.png", "img2.png", "img1.png"], key=natural_key)
    ['img1.png', 'img2.png', 'img10.png']
    """
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def image_sequence(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (hidden ones skipped), in natural order."""
    from cnntool.data.sources import IMAGE_EXTENSIONS

    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


# --- reading -----------------------------------------------------------------------------------

class VideoReader:
    """Stream the frames of a video file, or of a folder of numbered images.

    Opening checks the file (an :class:`~cnntool.errors.InputError` with a one-line reason for a
    missing, empty, truncated or non-video file) and reads its frame rate and size; each
    iteration then decodes the video afresh, one frame at a time.

    Parameters
    ----------
    path : path-like
        A video file, or a folder of images read in natural order (``img2`` before ``img10``).
    stride : int
        Yield every ``stride``-th frame, counting from the first one at or after ``start``.
    start, end : float, optional
        Seconds: yield frames whose time is in ``[start, end)``.
    max_frames : int, optional
        Stop after yielding this many frames.
    fps : float or Fraction, optional
        Frame rate of an image folder (default :data:`DEFAULT_IMAGE_FPS`). Refused for video
        files, whose rate comes from the file.

    Attributes
    ----------
    fps : fractions.Fraction
        The source's average frame rate.
    output_fps : fractions.Fraction
        ``fps / stride``: the rate at which the yielded frames play at the source's speed.
    width, height : int
        Frame size as yielded (after the file's rotation, as players show it).
    codec, backend : str
        See :class:`VideoInfo`.

    Notes
    -----
    ``Frame.time`` is the decoder's presentation timestamp (``pts * time_base``) less the
    stream's start time; ``Frame.index`` counts frames from the start of the file, also after
    a seek to ``start`` (the packets before it are counted without being decoded). A frame with
    no timestamp gets ``index / fps``. A file that breaks part-way yields its good frames and
    then raises :class:`~cnntool.errors.InputError`. The OpenCV fallback cannot tell a truncated
    file from its end: it stops at the last frame it could decode.
    """

    def __init__(self, path: str | os.PathLike, *, stride: int = 1, start: float = 0.0,
                 end: float | None = None, max_frames: int | None = None, fps=None):
        self.path = os.fspath(path)
        self.stride = int(stride)
        self.start = float(start or 0.0)
        self.end = None if end is None else float(end)
        self.max_frames = None if max_frames is None else int(max_frames)
        if self.stride < 1:
            raise ValueError("stride must be at least 1")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError("need 0 <= start < end")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if os.path.isdir(self.path):
            self._images = image_sequence(self.path)
            if not self._images:
                raise InputError(f"no images in folder {self.path}")
            from cnntool.data.decode import decode_image

            first = decode_image(self._images[0])
            self.fps = DEFAULT_IMAGE_FPS if fps is None else as_fraction(fps)
            self.height, self.width = first.shape[:2]
            self.codec = self.backend = "images"
            return
        if fps is not None:
            raise ValueError("fps is only for folders of images: a video file has its own")
        if not os.path.isfile(self.path):
            raise InputError(f"no such file: {self.path}")
        if os.path.getsize(self.path) == 0:
            raise InputError(f"empty file: {self.path}")
        self._images = None
        try:
            self._open_pyav()
        except InputError as pyav_error:
            if not self._open_opencv():
                raise pyav_error from None

    @property
    def output_fps(self) -> Fraction:
        return output_fps(self.fps, self.stride)

    def __iter__(self) -> Iterator[Frame]:
        if self.backend == "images":
            frames = self._iter_images()
        elif self.backend == "pyav":
            frames = self._iter_pyav()
        else:
            frames = self._iter_opencv()
        return self._select(frames)

    def _select(self, frames: Iterator[tuple]) -> Iterator[Frame]:
        """Apply start/end/stride/max_frames to ``(index, time, get_image)`` triples; images are
        converted only for frames that are yielded."""
        yielded = 0
        first = None
        for index, time, get_image in frames:
            if time < self.start - 1e-9:
                continue
            if self.end is not None and time >= self.end - 1e-9:
                return
            if first is None:
                first = index
            if (index - first) % self.stride:
                continue
            yield Frame(get_image(), index, time)
            yielded += 1
            if self.max_frames is not None and yielded >= self.max_frames:
                return

    # PyAV ------------------------------------------------------------------------------------
    def _open_pyav(self) -> None:
        try:
            import av
        except ImportError as exc:
            raise InputError(f"PyAV is not installed: {one_line(exc)}") from None
        try:
            with av.open(self.path) as container:
                if not container.streams.video:
                    raise InputError("no video stream in the file")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                if not rate:
                    raise InputError("the video has no frame rate")
                first = next(iter(container.decode(stream)), None)
                if first is None:
                    raise InputError("the video has no frames")
                self.fps = Fraction(rate)
                self.codec = stream.codec_context.name
                self.height, self.width = _pyav_rgb(first).shape[:2]
        except InputError:
            raise
        except Exception as exc:  # av.error.FFmpegError and friends
            raise InputError(f"not a readable video: {one_line(exc)}") from None
        self.backend = "pyav"

    def _iter_pyav(self) -> Iterator[tuple]:
        import av

        container = av.open(self.path)
        index = -1
        try:
            stream = container.streams.video[0]
            # no frame threading: it hides decoding errors (a truncated file would just end)
            base, origin = stream.time_base, stream.start_time or 0
            start_pts = None
            if self.start > 0 and base is not None:
                start_pts = origin + math.ceil(Fraction(repr(self.start)) / base)
                before = _packets_before(container, stream, start_pts)
                try:
                    container.seek(start_pts, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError:  # not seekable: decode from the start instead
                    container.close()
                    container = av.open(self.path)
                    stream = container.streams.video[0]
                    start_pts, before = None, 0
                index = before - 1
            for frame in container.decode(stream):
                if start_pts is not None and frame.pts is not None and frame.pts < start_pts:
                    continue  # between the key frame the seek landed on and start
                index += 1
                if frame.pts is not None and base is not None:
                    time = float((frame.pts - origin) * base)
                else:
                    time = index / float(self.fps)
                yield index, time, lambda frame=frame: _pyav_rgb(frame)
        except av.error.FFmpegError as exc:
            raise InputError(f"video broken after frame {index}: {one_line(exc)}") from None
        finally:
            container.close()

    # OpenCV ----------------------------------------------------------------------------------
    def _open_opencv(self) -> bool:
        import cv2

        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                return False
            ok, bgr = cap.read()
            if not ok:
                return False
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = as_fraction(fps) if fps and fps > 0 else DEFAULT_IMAGE_FPS
            self.height, self.width = bgr.shape[:2]
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            self.codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip() or "unknown"
            self.backend = "opencv"
            return True
        finally:
            cap.release()

    def _iter_opencv(self) -> Iterator[tuple]:
        import cv2

        cap = cv2.VideoCapture(self.path)
        try:
            index = -1
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                index += 1
                msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                time = msec / 1000.0 if msec or index == 0 else index / float(self.fps)
                yield index, time, lambda bgr=bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    # image folders ---------------------------------------------------------------------------
    def _iter_images(self) -> Iterator[tuple]:
        from cnntool.data.decode import decode_image

        for index, path in enumerate(self._images):
            try:
                image = decode_image(path)
            except InputError as exc:
                raise InputError(f"frame {index} ({path.name}): {exc}") from None
            if image.shape[:2] != (self.height, self.width):
                raise InputError(f"frame {index} ({path.name}) is {image.shape[1]}x{image.shape[0]}, "
                                 f"not {self.width}x{self.height} like the first image")
            yield index, index / float(self.fps), lambda image=image: image


def _pyav_rgb(frame) -> np.ndarray:
    """A PyAV frame as uint8 RGB (H, W, 3), turned upright by the file's display rotation
    (counter-clockwise degrees, as players and OpenCV apply it)."""
    image = frame.to_ndarray(format="rgb24")
    turns = (int(getattr(frame, "rotation", 0) or 0) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _packets_before(container, stream, start_pts: int) -> int:
    """How many frames of ``stream`` present before ``start_pts``, from the packets' timestamps
    (demuxed, not decoded). Decode timestamps only grow and a frame never presents before it
    decodes, so the scan stops at the first packet whose dts reaches ``start_pts``."""
    before = 0
    for packet in container.demux(stream):
        if packet.dts is not None and packet.dts >= start_pts:
            break
        if packet.size and packet.pts is not None and packet.pts < start_pts:
            before += 1
    return before


def probe_video(path: str | os.PathLike, *, decode: bool = False, fps=None) -> VideoInfo:
    """Frame rate, frame count, size, duration and codec of a video (or image folder).

    Parameters
    ----------
    path : path-like
    decode : bool
        Count frames by decoding every one (slow, exact for any file) instead of counting the
        video stream's packets (fast; exact wherever a packet holds one frame, which is the case
        for H.264, HEVC, VP9, AV1, MPEG-4 and MJPEG files). The count written in a file's
        header is never used.
    fps : float or Fraction, optional
        Frame rate of an image folder (see :class:`VideoReader`).

    Returns
    -------
    VideoInfo
        ``duration`` is ``frames / fps``.

    Raises
    ------
    InputError
        Missing, empty, truncated or non-video files.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.mp4")
    >>> _ = write_video(path, [np.full((33, 41, 3), 128, np.uint8)] * 4, fps=Fraction(30000, 1001))
    >>> info = probe_video(path)
    >>> info.frames, str(info.fps), (info.width, info.height), info.codec
    (4, '30000/1001', (42, 34), 'h264')
    """
    reader = VideoReader(path, fps=fps)
    if reader.backend == "images":
        frames = len(reader._images)
    elif reader.backend == "pyav":
        frames = sum(1 for _ in reader._iter_pyav()) if decode else _count_packets(reader.path)
    else:
        frames = sum(1 for _ in reader._iter_opencv())
    return VideoInfo(reader.path, reader.fps, frames, reader.width, reader.height,
                     frames / float(reader.fps), reader.codec, reader.backend)


def _count_packets(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.FFmpegError as exc:
        raise InputError(f"not a readable video: {one_line(exc)}") from None


# --- writing -----------------------------------------------------------------------------------

class WrittenVideo(NamedTuple):
    """What :meth:`VideoWriter.close` wrote: the final ``path``, the ``frames`` counted back from
    the file, its exact ``fps``, the (even) ``width`` and ``height``, and the ``codec``
    (``h264`` or ``mp4v``)."""

    path: str
    frames: int
    fps: Fraction
    width: int
    height: int
    codec: str


def h264_available() -> bool:
    """Whether PyAV is installed with the libx264 encoder."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class VideoWriter:
    """Write RGB frames to a video file atomically: H.264 mp4 (yuv420p) with PyAV's libx264.

    Use it as a context manager (an exception inside the block discards the file) or call
    :meth:`close` (or :meth:`abort`) yourself. Frames go to a hidden temporary file in the
    destination folder, named like :func:`cnntool.data.writers.atomic_open`'s (so a later run
    removes it when the run that wrote it was killed), which :meth:`close` checks and renames to
    ``path``: a killed run leaves nothing under ``path``.

    Parameters
    ----------
    path : path-like
        ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``. Parent folders are created.
    fps : int, float or Fraction
        Frame rate, kept exact (see :func:`output_fps` for strided input).
    codec : {"auto", "h264", "mp4v"}
        ``auto`` is ``h264`` where PyAV has libx264, else ``mp4v`` (OpenCV's MPEG-4 Part 2,
        which browsers do not play).
    crf : int
        libx264's constant rate factor (quality: lower is better and larger).
    preset : str
        libx264's speed preset (``ultrafast`` ... ``veryslow``).
    verify : bool
        Count the frames in the written file before renaming it, and fail on a mismatch.

    Notes
    -----
    Every frame must have the size of the first. Odd widths and heights are made even (as
    yuv420p needs) by repeating the last column or row, so no source pixel is lost. Grayscale
    (H, W) frames are written as RGB. The stream is tagged BT.601 limited range, the
    conversion FFmpeg applies, so players show the colours that were written.
    """

    def __init__(self, path: str | os.PathLike, *, fps, codec: str = "auto", crf: int = DEFAULT_CRF,
                 preset: str = DEFAULT_PRESET, verify: bool = True):
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITE_EXTENSIONS:
            raise ValueError(f"cannot write {self.path.suffix or 'extension-less'} videos: "
                             f"use one of {', '.join(sorted(WRITE_EXTENSIONS))}")
        if codec not in CODECS:
            from cnntool.errors import unknown_choice

            raise unknown_choice("video codec", codec, CODECS)
        if codec == "auto":
            codec = "h264" if h264_available() else "mp4v"
        elif codec == "h264" and not h264_available():
            raise ValueError("H.264 needs PyAV with libx264; use codec='mp4v'")
        self.fps = as_fraction(fps)
        self.codec = codec
        self.crf, self.preset, self.verify = int(crf), str(preset), bool(verify)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the input frames
        self._tmp: str | None = None
        self._container = self._stream = self._cv_writer = None
        self._closed = False
        self.result: WrittenVideo | None = None  # set by close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()

    def write(self, image: np.ndarray) -> None:
        """Append one uint8 RGB (H, W, 3) or grayscale (H, W) frame."""
        if self._closed:
            raise ValueError("the video writer is closed")
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"video frames must be uint8, not {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"video frames must be (H, W, 3) or (H, W), not {image.shape}")
        size = (image.shape[1], image.shape[0])
        if self.size is None:
            self._open(size)
        elif size != self.size:
            raise ValueError(f"frame {self.frames} is {size[0]}x{size[1]}, "
                             f"not {self.size[0]}x{self.size[1]} like the first")
        pad_w, pad_h = size[0] % 2, size[1] % 2
        if pad_w or pad_h:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        try:
            if self.codec == "h264":
                self._write_pyav(image)
            else:
                self._cv_writer.write(np.ascontiguousarray(image[:, :, ::-1]))
        except BaseException:
            self.abort()
            raise
        self.frames += 1

    def _open(self, size: tuple[int, int]) -> None:
        self.size = size
        width, height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self._tmp = _temporary_path(self.path, keep_extension=self.codec != "h264")
        try:
            if self.codec == "h264":
                import av

                suffix = self.path.suffix.lower()
                options = {"movflags": "+faststart"} if suffix != ".mkv" else {}
                self._container = av.open(self._tmp, "w", format=_CONTAINERS[suffix], options=options)
                stream = self._container.add_stream("libx264", rate=self.fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"crf": str(self.crf), "preset": self.preset}
                context = stream.codec_context
                context.colorspace = context.color_primaries = context.color_trc = 6  # SMPTE 170M (BT.601)
                context.color_range = 1  # limited ("MPEG") range
                self._stream = stream
            else:
                import cv2

                self._cv_writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*"mp4v"),
                                                  float(self.fps), (width, height))
                if not self._cv_writer.isOpened():
                    raise OSError(f"OpenCV cannot write mp4v video to {self.path}")
        except BaseException:
            self.abort()
            raise

    def _write_pyav(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> WrittenVideo:
        """Finish the file, check its frame count, and move it to ``path``.

        Raises
        ------
        InputError
            No frame was written, or the file holds a different number of frames (nothing is
            left under ``path`` then).
        """
        if self._closed:
            raise ValueError("the video writer is closed")
        if self.frames == 0:
            self.abort()
            raise InputError(f"no frames to write to {self.path}")
        try:
            if self.codec == "h264":
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            else:
                self._cv_writer.release()
            self._container = self._cv_writer = None
            if self.verify:
                found = _count_packets(self._tmp) if self.codec == "h264" else probe_video(self._tmp).frames
                if found != self.frames:
                    raise InputError(f"wrote {self.frames} frames to {self.path} but the file holds {found}")
            from cnntool.data.writers import finish_temporary

            finish_temporary(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._tmp, self._closed = None, True
        width, height = self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2
        self.result = WrittenVideo(str(self.path), self.frames, self.fps, width, height, self.codec)
        return self.result

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left untouched."""
        self._closed = True
        with contextlib.suppress(Exception):  # the file is thrown away: how it ends does not matter
            if self._container is not None:
                self._container.close()
            if self._cv_writer is not None:
                self._cv_writer.release()
        self._container = self._cv_writer = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], *, fps, codec: str = "auto",
                crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> WrittenVideo:
    """Write an iterable of uint8 RGB frames as a video, atomically (see :class:`VideoWriter`).

    Frames are consumed one at a time, so a generator of any length uses bounded memory.

    Examples
    --------
    >>> import tempfile, os
    >>> out = write_video(os.path.join(tempfile.mkdtemp(), "a.mp4"), [np.zeros((8, 8, 3), np.uint8)] * 3, fps=10)
    >>> out.frames, out.width
    (3, 8)
    """
    with VideoWriter(path, fps=fps, codec=codec, crf=crf, preset=preset) as writer:
        for image in frames:
            writer.write(image)
    return writer.result


def _temporary_path(path: Path, *, keep_extension: bool = False) -> str:
    """A hidden temporary file next to ``path`` that a later run cleans up if this one dies
    (OpenCV picks the container by extension: ``keep_extension``)."""
    from cnntool.data.writers import temporary_path

    return temporary_path(path, keep_extension=keep_extension)
