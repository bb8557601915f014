"""The one typed description of how a model sees pixels: :class:`Preprocessing`.

A registry entry declares it, pretrained weights refine it (their own crop and resize), a
checkpoint stores it, and the data layer applies it; the same frozen object travels the whole
way, so no stage hard-codes a mean, a size or a resize filter, and nothing is lost on the way
(a fine-tuned model keeps the interpolation its weights were trained with).

Resize policies (``resize_mode``):

``stretch``  resize straight to (H, W) (cnntool's own small models)
``crop``     resize the shorter side to ``resize_size`` (or to exactly ``resize_size`` = (h, w)),
             then centre-crop (H, W): the ImageNet evaluation recipe, and the video one
``shorter``  resize the shorter side to ``resize_size`` and keep the aspect ratio; the size
             varies per image (torchvision's semantic segmentation presets)
``none``     keep the image as it is; the model resizes inside (torchvision's detectors)

Pixels are scaled to [0, 1] and normalised with ``mean``/``std``, unless ``normalize_in_model``
says the model does that itself (torchvision's detectors take [0, 1] floats); ``mean``/``std``
then still describe the model, for showing what it saw.

Examples
--------
>>> p = Preprocessing((1, 32, 32), (0.5,), (0.5,))
>>> p(np.zeros((8, 8), np.uint8)).shape
(1, 32, 32)
>>> Preprocessing.from_dict(p.to_dict()) == p
True
>>> p.with_size((64, 48)).input_size
(1, 64, 48)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

RESIZE_MODES = ("stretch", "crop", "shorter", "none")
#: Optical flow methods a clip model can take as input channels (OpenCV's: deterministic, on the
#: CPU, in :class:`cnntool.data.clips.OpenCVFlow`), and the one a flow model gets by default.
FLOW_METHODS = ("dis", "farneback")
DEFAULT_FLOW = "dis"
#: Flow channels hold ``round(d * FLOW_SCALE) + FLOW_OFFSET`` (uint8) for a displacement ``d`` in
#: pixels: quarter-pixel steps, +-32 px; normalised with mean ``FLOW_OFFSET / 255`` and std
#: ``FLOW_SCALE / 255``, the model sees the flow in pixels.
FLOW_OFFSET = 128
FLOW_SCALE = 4
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
#: A model input larger than this many values per image is refused as malformed metadata
#: (3 x 4096 x 4096; a checkpoint saying 3 x 100000 x 100000 must not allocate 120 GB).
MAX_INPUT_VALUES = 3 * 4096 * 4096


@dataclass(frozen=True)
class Preprocessing:
    """uint8 image (H, W) or (H, W, 3) -> float32 (C, H, W): resize, channels, scale, normalise.

    Parameters
    ----------
    input_size : tuple of int
        (C, H, W) the model takes, or (C, T, H, W) for clip models (T frames). C = 1 converts to
        grayscale (luma), C = 3 to RGB. With ``resize_mode`` ``shorter`` or ``none``, (H, W) is
        the nominal size (for summaries), not a constraint.
    mean, std : tuple of float
        Per channel, applied after scaling to [0, 1].
    resize_mode : {"stretch", "crop", "shorter", "none"}
        See the module docstring.
    resize_size : int or (int, int) or None
        ``crop``: the shorter side before the centre crop (256 for 224 crops), or an exact
        (h, w) (video models: 128 x 171 before a 112 crop). ``shorter``: the shorter side.
    interpolation : {"bilinear", "bicubic", "nearest"}
        How the weights were trained to see images enlarged (EfficientNet's are bicubic).
        Shrinking always averages areas (OpenCV's INTER_AREA), the antialiasing that
        torchvision's ``antialias=True`` resize applies whatever the filter.
    normalize_in_model : bool
        The model takes [0, 1] floats and normalises itself.
    frame_stride : int
        Clip models: the model sees every ``frame_stride``-th frame of the video (its T frames
        span ``T x frame_stride`` source frames).
    flow : {"dis", "farneback"} or None
        Clip models that take optical flow: the method whose flow from each frame to the next
        follows the C image channels as two more (``dx``, ``dy``; quantised as
        :data:`FLOW_SCALE` and :data:`FLOW_OFFSET` say, zero for the last frame). C and
        ``mean``/``std`` stay the image's; :attr:`model_input_size` is what the model takes.
    """

    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: str = "stretch"
    resize_size: int | tuple[int, int] | None = None
    interpolation: str = "bilinear"
    normalize_in_model: bool = False
    frame_stride: int = 1
    flow: str | None = None

    # --- shape ---------------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return int(self.input_size[0])

    @property
    def frames(self) -> int | None:
        """Frames per clip (T) for clip models, None for image models."""
        return int(self.input_size[1]) if len(self.input_size) == 4 else None

    @property
    def model_input_size(self) -> tuple[int, ...]:
        """The input the model takes: :attr:`input_size` with the two flow channels added when
        it takes optical flow.

        Examples
        --------
        >>> Preprocessing((3, 8, 32, 32), (0.5,) * 3, (0.25,) * 3, flow="dis").model_input_size
        (5, 8, 32, 32)
        """
        return (self.channels + (2 if self.flow else 0), *self.input_size[1:])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.input_size[-2]), int(self.input_size[-1])

    @property
    def decode_mode(self) -> str:
        """How to decode images for this model: ``gray`` for one channel, else ``rgb``."""
        return decode_mode(self.channels)

    def with_size(self, size: tuple[int, int] | int) -> "Preprocessing":
        """The same preprocessing at another (H, W) (``--imgsz``); a crop policy keeps its
        resize-to-crop ratio (256/224).

        Examples
        --------
        >>> p = Preprocessing((3, 224, 224), (0.5,) * 3, (0.5,) * 3, resize_mode="crop", resize_size=256)
        >>> p.with_size(112).resize_size
        128
        """
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        resize_size = self.resize_size
        if self.resize_mode == "crop" and isinstance(resize_size, int):
            resize_size = int(round(resize_size * min(height, width) / min(self.size)))
        elif self.resize_mode == "crop" and resize_size is not None:
            scale = min(height, width) / min(self.size)
            resize_size = (int(round(resize_size[0] * scale)), int(round(resize_size[1] * scale)))
        elif self.resize_mode == "shorter":
            resize_size = min(height, width)
        return dataclasses.replace(self, input_size=(*self.input_size[:-2], height, width), resize_size=resize_size)

    def with_channels(self, channels: int) -> "Preprocessing":
        """For a model built with ``channels`` inputs: one channel from RGB takes the average
        mean/std (a gray image seen as equal R, G, B); more repeat the values cyclically.

        Examples
        --------
        >>> Preprocessing((3, 8, 8), (0.25, 0.5, 0.75), (1.0, 1.0, 1.0)).with_channels(1).mean
        (0.5,)
        """
        if channels == self.channels:
            return self
        if channels == 1:
            mean, std = (sum(self.mean) / len(self.mean),), (sum(self.std) / len(self.std),)
        else:
            mean = tuple(self.mean[i % len(self.mean)] for i in range(channels))
            std = tuple(self.std[i % len(self.std)] for i in range(channels))
        return dataclasses.replace(self, input_size=(channels, *self.input_size[1:]), mean=mean, std=std)

    # --- plain data (checkpoints) --------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        if isinstance(self.resize_size, tuple):
            d["resize_size"] = list(self.resize_size)
        if d["flow"] is None:  # the field of flow models only: every other dict stays as it was
            del d["flow"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """Validated: :class:`ValueError` naming the first bad field.

        Examples
        --------
        >>> Preprocessing.from_dict({"input_size": [3, 8, 8], "mean": "abc", "std": [1, 1, 1]})
        Traceback (most recent call last):
        ...
        ValueError: mean must be a list of numbers, one per input channel
        """
        if not isinstance(data, dict):
            raise ValueError("preprocessing must be a dict")
        size = data.get("input_size")
        if not (isinstance(size, (list, tuple)) and len(size) in (3, 4)
                and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)):
            raise ValueError(f"input_size must be 3 or 4 positive integers (C, [T,] H, W), not {size!r}")
        if size[0] not in (1, 3) or math.prod(size) > MAX_INPUT_VALUES * (size[1] if len(size) == 4 else 1):
            raise ValueError(f"input_size {list(size)} is not a plausible model input")
        values = {"input_size": tuple(int(n) for n in size)}
        for name in ("mean", "std"):
            seq = data.get(name)
            if not (isinstance(seq, (list, tuple)) and len(seq) == size[0]
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in seq)):
                raise ValueError(f"{name} must be a list of numbers, one per input channel")
            values[name] = tuple(float(v) for v in seq)
        if any(s <= 0 for s in values["std"]):
            raise ValueError("std must be positive")
        mode = data.get("resize_mode", "stretch")
        if mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, not {mode!r}")
        resize = data.get("resize_size")
        if isinstance(resize, (list, tuple)) and len(resize) == 2 and all(isinstance(n, int) and n > 0 for n in resize):
            resize = (int(resize[0]), int(resize[1]))
        elif resize is not None and not (isinstance(resize, int) and not isinstance(resize, bool) and 0 < resize <= 16384):
            raise ValueError(f"resize_size must be a positive integer, a pair of them, or null, not {resize!r}")
        if mode in ("crop", "shorter") and resize is None:
            raise ValueError(f"resize_mode {mode} needs a resize_size")
        interpolation = data.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
        in_model = data.get("normalize_in_model", False)
        if not isinstance(in_model, bool):
            raise ValueError("normalize_in_model must be true or false")
        frame_stride = data.get("frame_stride", 1)
        if not (isinstance(frame_stride, int) and not isinstance(frame_stride, bool) and 1 <= frame_stride <= 64):
            raise ValueError(f"frame_stride must be a whole number from 1 to 64, not {frame_stride!r}")
        flow = data.get("flow")
        if flow is not None and (flow not in FLOW_METHODS or len(size) != 4):
            raise ValueError(f"flow must be one of {', '.join(FLOW_METHODS)} for a clip model, or null, not {flow!r}")
        return cls(resize_mode=mode, resize_size=resize, interpolation=interpolation, normalize_in_model=in_model,
                   frame_stride=frame_stride, flow=flow, **values)

    # --- pixels ----------------------------------------------------------------------------------
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) of :meth:`resize`'s result for an image of ``height`` x ``width``.

        Examples
        --------
        >>> Preprocessing((3, 8, 8), (0,) * 3, (1,) * 3, resize_mode="shorter", resize_size=16).output_size(10, 20)
        (16, 32)
        """
        if self.resize_mode in ("stretch", "crop"):
            return self.size
        if self.resize_mode == "none":
            return height, width
        scale = self.resize_size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Resize/crop and convert channels; still uint8, (H, W, C). Returns a new array."""
        height, width = self.size
        image = to_channels(image, self.channels)
        h, w = image.shape[:2]
        if self.resize_mode == "crop":
            if isinstance(self.resize_size, tuple):
                new = (max(width, self.resize_size[1]), max(height, self.resize_size[0]))
            else:
                scale = self.resize_size / min(h, w)
                new = (max(width, round(w * scale)), max(height, round(h * scale)))
            image = resize_image(image, new, self.interpolation)
            top = (image.shape[0] - height) // 2
            left = (image.shape[1] - width) // 2
            image = image[top:top + height, left:left + width]
        elif self.resize_mode == "stretch" and (h, w) != (height, width):
            image = resize_image(image, (width, height), self.interpolation)
        elif self.resize_mode == "shorter":
            out_h, out_w = self.output_size(h, w)
            if (out_h, out_w) != (h, w):
                image = resize_image(image, (out_w, out_h), self.interpolation)
        if image.ndim == 2:
            image = image[:, :, None]
        return np.ascontiguousarray(image)

    # --- geometry: model input <-> original image ------------------------------------------------
    def input_to_image(self, image_shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[float, ...]]:
        """The affine map from model-input pixels to the pixels of an image of ``image_shape``,
        and the region of the image the model saw, mirroring :meth:`resize`.

        Pixel centres map to pixel centres. Detection boxes, segmentation masks and heatmaps go
        back onto the photo through this one map.

        Returns
        -------
        matrix : numpy.ndarray
            2 x 3, ``[x, y] = matrix @ [u, v, 1]`` with (u, v) input pixels, (x, y) image pixels.
        seen : tuple of float
            ``(x0, y0, x1, y1)``: the part of the image the model saw.

        Examples
        --------
        >>> m, seen = Preprocessing((3, 50, 50), (0,) * 3, (1,) * 3).input_to_image((100, 200))
        >>> m[:, 2].tolist(), seen
        ([1.5, 0.5], (0.0, 0.0, 200.0, 100.0))
        """
        h, w = image_shape[:2]
        height, width = self.size
        left = top = 0
        if self.resize_mode == "crop":
            if isinstance(self.resize_size, tuple):
                new_w, new_h = max(width, self.resize_size[1]), max(height, self.resize_size[0])
            else:
                scale = self.resize_size / min(h, w)
                new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
            left, top = (new_w - width) // 2, (new_h - height) // 2
        elif self.resize_mode == "stretch":
            new_w, new_h = width, height
        else:  # shorter / none: the whole image, maybe rescaled
            new_h, new_w = self.output_size(h, w)
            width, height = new_w, new_h
        sx, sy = w / new_w, h / new_h
        matrix = np.array([[sx, 0.0, (left + 0.5) * sx - 0.5],
                           [0.0, sy, (top + 0.5) * sy - 0.5]])
        seen = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
        return matrix, seen

    def map_to_image(self, array: np.ndarray, image_shape: tuple[int, ...], *, nearest: bool = False,
                     fill: float = 0, geometry=None) -> np.ndarray:
        """A map at the model's input size (a heatmap, a class mask) warped onto an image of
        ``image_shape``: (h, w), ``fill`` outside the region the model saw (the centre crop).

        ``nearest`` keeps values (class indices); otherwise bilinear. ``geometry`` is
        :meth:`input_to_image`'s result when the caller has it already.

        Examples
        --------
        >>> heat = np.zeros((8, 8), np.float32); heat[0, 0] = 1
        >>> big = Preprocessing((1, 8, 8), (0.5,), (0.5,)).map_to_image(heat, (32, 32))
        >>> big.shape, [int(v) for v in np.unravel_index(big.argmax(), big.shape)]
        ((32, 32), [0, 0])
        """
        import cv2

        h, w = image_shape[:2]
        matrix, seen = geometry or self.input_to_image(image_shape)
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        source = np.asarray(array)
        if source.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
            source = source.astype(np.float32 if not nearest else np.int32 if source.max(initial=0) > 32767
                                   else np.int16)
        out = cv2.warpAffine(source, matrix, (w, h), flags=flags,
                             borderMode=cv2.BORDER_REPLICATE)
        out[~seen_mask((h, w), seen)] = fill
        return out

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, C) -> float32 (C, H, W), normalised (or only scaled to [0, 1] when the
        model normalises itself)."""
        x = image.astype(np.float32).transpose(2, 0, 1) / 255.0
        if self.normalize_in_model:
            return np.ascontiguousarray(x)
        mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((x - mean) / std)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.normalize(self.resize(image))

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """float (C, H, W) model input -> uint8 (H, W, C): for showing what the model saw."""
        img = np.asarray(x, np.float32)
        if not self.normalize_in_model:
            mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
            std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
            img = img * std + mean
        return np.clip(img.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def scale_and_offset(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) to apply to a batch scaled to [0, 1]: (0, 1) when the model normalises itself;
        a flow model's two flow channels follow, scaled to pixels.

        Examples
        --------
        >>> mean, std = Preprocessing((3, 4, 8, 8), (0.5,) * 3, (0.25,) * 3, flow="dis").scale_and_offset()
        >>> [round(v * 255, 3) for v in mean[3:]], [round(v * 255, 3) for v in std[3:]]
        ([128.0, 128.0], [4.0, 4.0])
        """
        if self.normalize_in_model:
            mean, std = (0.0,) * self.channels, (1.0,) * self.channels
        else:
            mean, std = self.mean, self.std
        if self.flow:
            mean, std = (*mean, *(FLOW_OFFSET / 255,) * 2), (*std, *(FLOW_SCALE / 255,) * 2)
        return mean, std


def seen_mask(shape: tuple[int, int], seen: tuple[float, ...]) -> np.ndarray:
    """Boolean (h, w): the pixels whose centres lie in the region ``seen`` = (x0, y0, x1, y1).

    Examples
    --------
    >>> seen_mask((2, 4), (0, 0, 2, 2)).tolist()
    [[True, True, False, False], [True, True, False, False]]
    """
    h, w = shape
    x0, y0, x1, y1 = seen
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    return ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]


def decode_mode(channels: int) -> str:
    """The :func:`~cnntool.data.decode.decode_image` mode for a model with ``channels`` inputs.

    Examples
    --------
    >>> decode_mode(1), decode_mode(3)
    ('gray', 'rgb')
    """
    return "gray" if channels == 1 else "rgb"


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> (H, W) for 1 channel, (H, W, 3) for 3. Returns a new array."""
    import cv2

    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image.copy()
    if channels == 3:
        return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image.copy()
    raise ValueError(f"models with {channels} input channels are not supported for images")


#: OpenCV flags for enlarging, by the registry's interpolation names.
_ENLARGE = {"bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC", "nearest": "INTER_NEAREST"}


def resize_image(image: np.ndarray, size_wh: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Antialiased when shrinking (INTER_AREA), ``interpolation`` when growing, like torchvision's
    antialias=True resize.

    Examples
    --------
    >>> resize_image(np.zeros((4, 6), np.uint8), (3, 2)).shape
    (2, 3)
    """
    import cv2

    h, w = image.shape[:2]
    shrink = size_wh[0] < w or size_wh[1] < h
    flag = cv2.INTER_AREA if shrink else getattr(cv2, _ENLARGE.get(interpolation, "INTER_LINEAR"))
    return cv2.resize(image, size_wh, interpolation=flag)
