"""Preprocessing built from a registry entry or checkpoint: no stage hard-codes a mean or a size.

:class:`Preprocess` is the evaluation transform (resize, centre crop, channels, scale,
normalise) as plain NumPy/OpenCV, so it runs in decode threads and DataLoader workers alike.
:class:`TrainTransform` adds training augmentation on top of it (:class:`AugmentConfig`: one
affine warp per image for rotation, shift, zoom, shear, flips and random resized crops, plus
colour jitter), and :func:`normalize_batch` normalises a whole uint8 batch on its device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocess:
    """uint8 image (H, W) or (H, W, 3) -> float32 (C, H, W), normalised.

    Parameters
    ----------
    input_size : tuple of int
        (C, H, W) the model takes. C = 1 converts to grayscale (luma), C = 3 to RGB.
    mean, std : tuple of float
        Per-channel, applied after scaling to [0, 1].
    resize_size : int or None
        Resize the shorter side to this, then centre-crop (H, W) (the ImageNet recipe);
        None resizes straight to (H, W).
    interpolation : {"bilinear", "bicubic", "nearest"}
        How the weights were trained to see images enlarged (EfficientNet's are bicubic).
        Shrinking always averages areas (OpenCV's INTER_AREA), the antialiasing that
        torchvision's ``antialias=True`` resize applies whatever the filter.

    Examples
    --------
    >>> p = Preprocess((1, 32, 32), (0.5,), (0.5,))
    >>> p(np.zeros((8, 8), np.uint8)).shape
    (1, 32, 32)
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int | None = None
    interpolation: str = "bilinear"

    @classmethod
    def from_loaded(cls, loaded) -> "Preprocess":
        """From a :class:`~cnntool.models.registry.LoadedModel`."""
        return cls(tuple(loaded.input_size), tuple(loaded.mean), tuple(loaded.std), loaded.resize_size,
                   getattr(loaded, "interpolation", "bilinear"))

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Resize/crop to (H, W) and convert channels; still uint8, (H, W, C)."""
        channels, height, width = self.input_size
        image = to_channels(image, channels)
        if self.resize_size:
            h, w = image.shape[:2]
            scale = self.resize_size / min(h, w)
            new = (max(width, round(w * scale)), max(height, round(h * scale)))
            image = _resize(image, new, self.interpolation)
            top = (image.shape[0] - height) // 2
            left = (image.shape[1] - width) // 2
            image = image[top:top + height, left:left + width]
        elif image.shape[:2] != (height, width):
            image = _resize(image, (width, height), self.interpolation)
        if image.ndim == 2:
            image = image[:, :, None]
        return np.ascontiguousarray(image)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, C) -> float32 (C, H, W) normalised."""
        x = image.astype(np.float32).transpose(2, 0, 1) / 255.0
        mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((x - mean) / std)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.normalize(self.resize(image))

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """float (C, H, W) normalised -> uint8 (H, W, C): for showing what the model saw."""
        mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        img = (np.asarray(x, np.float32) * std + mean).transpose(1, 2, 0)
        return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


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


def _resize(image: np.ndarray, size_wh: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Antialiased when shrinking (INTER_AREA), ``interpolation`` when growing, like torchvision's
    antialias=True resize."""
    import cv2

    h, w = image.shape[:2]
    shrink = size_wh[0] < w or size_wh[1] < h
    flag = cv2.INTER_AREA if shrink else getattr(cv2, _ENLARGE.get(interpolation, "INTER_LINEAR"))
    return cv2.resize(image, size_wh, interpolation=flag)


# --- training augmentation ---------------------------------------------------------------------

#: Fill value for pixels an affine warp brings in from outside the image: black, like the
#: background of digit and medical datasets (a photo's border is rarely visible at these angles).
BORDER_VALUE = 0


@dataclass(frozen=True)
class AugmentConfig:
    """What :class:`TrainTransform` varies, each drawn uniformly per image.

    The defaults are the small geometric distortions the lectures teach (zoom, shifts, shear,
    small rotations), which no class label depends on. Flips and colour changes are off: a
    mirrored "2" or "7" is not a digit, and colour can be the very thing that separates classes.

    Parameters
    ----------
    rotate : float
        Rotation in degrees, in [-rotate, rotate].
    shift : float
        Translation as a fraction of the output size, per axis, in [-shift, shift].
    zoom : float
        Scale factor in [1 - zoom, 1 + zoom].
    shear : float
        Horizontal shear angle in degrees, in [-shear, shear].
    crop_scale : tuple of float or None
        Random resized crop: the crop covers this fraction range of the image area (the
        ImageNet recipe uses (0.08, 1.0)); None keeps the evaluation framing (resize, centre crop).
    crop_ratio : tuple of float
        Aspect ratio range of the random crop (log-uniform).
    hflip, vflip : bool
        Mirror left-right / top-bottom with probability 0.5.
    brightness, contrast, saturation : float
        Colour jitter: multiply by a factor in [1 - v, 1 + v] (saturation only for RGB).

    Examples
    --------
    >>> AugmentConfig().hflip
    False
    """

    rotate: float = 10.0                     # degrees
    shift: float = 0.1                       # fraction of the output width/height
    zoom: float = 0.1                        # scale in [0.9, 1.1]
    shear: float = 5.0                       # degrees
    crop_scale: tuple[float, float] | None = None   # e.g. (0.08, 1.0) for ImageNet-sized photos
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = False                      # off: many classes (digits, text) are not mirror-invariant
    vflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    @property
    def color(self) -> bool:
        return bool(self.brightness or self.contrast or self.saturation)


@dataclass(frozen=True)
class TrainTransform:
    """Random augmentation on top of a :class:`Preprocess`: uint8 image -> uint8 (H, W, C).

    Resize (or crop), rotation, shift, zoom, shear and flips are composed into one affine matrix
    and applied with a single ``cv2.warpAffine``, so an image is interpolated once. Draw the
    random parameters for a batch with :meth:`draw` and apply them with :meth:`apply`; the
    same generator state gives the same images. Normalisation is left to the batch
    (:func:`normalize_batch`), where it runs once per batch on the training device.

    Parameters
    ----------
    preprocess : Preprocess
        The evaluation transform: output size, channels and the framing (resize / centre crop).
    augment : AugmentConfig

    Examples
    --------
    >>> t = TrainTransform(Preprocess((1, 32, 32), (0.5,), (0.5,)), AugmentConfig())
    >>> image = t.prepare(np.zeros((8, 8), np.uint8))
    >>> params = t.draw(np.random.default_rng(0), 1)
    >>> t.apply(image, params[0]).shape
    (32, 32, 1)
    """

    preprocess: Preprocess
    augment: AugmentConfig = AugmentConfig()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The deterministic, cacheable step: channels, and a shrink when the image is larger
        than the model needs (so a cache of prepared images stays small). Never enlarges."""
        channels, height, width = self.preprocess.input_size
        image = to_channels(image, channels)
        h, w = image.shape[:2]
        resize_size = self.preprocess.resize_size
        if resize_size and min(h, w) > resize_size:
            scale = resize_size / min(h, w)
            image = _resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
        elif not resize_size and (h > height or w > width):
            image = _resize(image, (width, height))
        if image.ndim == 2:
            image = image[:, :, None]
        return np.ascontiguousarray(image)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Random parameters for ``n`` images: an (n, 14) float array, one row per image."""
        a = self.augment
        columns = [
            rng.uniform(-a.rotate, a.rotate, n),
            rng.uniform(-a.shear, a.shear, n),
            rng.uniform(1 - a.zoom, 1 + a.zoom, n),
            rng.uniform(-a.shift, a.shift, n),
            rng.uniform(-a.shift, a.shift, n),
            (rng.random(n) < 0.5) & a.hflip,
            (rng.random(n) < 0.5) & a.vflip,
            rng.uniform(1 - a.brightness, 1 + a.brightness, n),
            rng.uniform(1 - a.contrast, 1 + a.contrast, n),
            rng.uniform(1 - a.saturation, 1 + a.saturation, n),
            rng.random(n),   # crop: area fraction quantile
            rng.random(n),   # crop: aspect ratio quantile (log-uniform)
            rng.random(n),   # crop: left position quantile
            rng.random(n),   # crop: top position quantile
        ]
        return np.stack([np.asarray(c, np.float64) for c in columns], axis=1)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Warp one prepared image (H', W', C) with one row of :meth:`draw`; uint8 (H, W, C) out."""
        import cv2

        channels, height, width = self.preprocess.input_size
        matrix = self._affine(image.shape[0], image.shape[1], params)
        out = cv2.warpAffine(image, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(BORDER_VALUE,) * 4)
        if out.ndim == 2:
            out = out[:, :, None]
        if self.augment.color:
            out = _jitter(out, brightness=params[7], contrast=params[8], saturation=params[9])
        return out

    def _framing(self, h: int, w: int, params: np.ndarray) -> np.ndarray:
        """3x3 matrix from image corner coordinates to output corner coordinates."""
        _, height, width = self.preprocess.input_size
        a = self.augment
        if a.crop_scale is not None:
            area = h * w * (a.crop_scale[0] + params[10] * (a.crop_scale[1] - a.crop_scale[0]))
            log_lo, log_hi = np.log(a.crop_ratio[0]), np.log(a.crop_ratio[1])
            ratio = np.exp(log_lo + params[11] * (log_hi - log_lo))
            crop_w = min(w, np.sqrt(area * ratio))
            crop_h = min(h, np.sqrt(area / ratio))
            left, top = (w - crop_w) * params[12], (h - crop_h) * params[13]
            return _scale_translate(width / crop_w, height / crop_h, -left, -top)
        resize_size = self.preprocess.resize_size
        if resize_size:
            scale = resize_size / min(h, w)
            sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
            return _scale_translate(sw / w, sh / h, 0.0, 0.0, post=(-((sw - width) // 2), -((sh - height) // 2)))
        return _scale_translate(width / w, height / h, 0.0, 0.0)

    def _affine(self, h: int, w: int, params: np.ndarray) -> np.ndarray:
        """Pixel-centre 3x3 matrix: framing, then rotation/shear/zoom/flip about the centre, then shift."""
        _, height, width = self.preprocess.input_size
        angle, shear = np.radians(params[0]), np.radians(params[1])
        zoom = params[2]
        cos, sin = np.cos(angle), np.sin(angle)
        rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        shear_m = np.array([[1.0, np.tan(shear), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        flip = np.diag([-1.0 if params[5] else 1.0, -1.0 if params[6] else 1.0, 1.0])
        centre = np.array([[1.0, 0.0, -width / 2], [0.0, 1.0, -height / 2], [0.0, 0.0, 1.0]])
        back = np.array([[1.0, 0.0, width / 2 + params[3] * width],
                         [0.0, 1.0, height / 2 + params[4] * height], [0.0, 0.0, 1.0]])
        corners = back @ rotate @ shear_m @ np.diag([zoom, zoom, 1.0]) @ flip @ centre @ self._framing(h, w, params)
        # cv2 puts pixel centres at integer coordinates; corner coordinates put them at +0.5
        return _PIXEL_FROM_CORNER @ corners @ _CORNER_FROM_PIXEL


_CORNER_FROM_PIXEL = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_PIXEL_FROM_CORNER = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def _scale_translate(sx: float, sy: float, tx: float, ty: float, post: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Translate by (tx, ty), scale by (sx, sy), then translate by ``post``."""
    return np.array([[sx, 0.0, sx * tx + post[0]], [0.0, sy, sy * ty + post[1]], [0.0, 0.0, 1.0]])


def _jitter(image: np.ndarray, *, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Colour jitter on uint8 (H, W, C): brightness, contrast about the mean, saturation (RGB)."""
    x = image.astype(np.float32) * brightness
    x = (x - x.mean()) * contrast + x.mean()
    if image.shape[2] == 3 and saturation != 1.0:
        gray = x @ np.asarray(_LUMA, np.float32)
        x = (x - gray[:, :, None]) * saturation + gray[:, :, None]
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


#: ITU-R 601 luma weights (the ones OpenCV's RGB2GRAY uses).
_LUMA = (0.299, 0.587, 0.114)


def normalize_batch(images, mean, std):
    """uint8 (N, C, H, W) tensor -> float32 normalised, on the tensor's device.

    ``mean`` and ``std`` are per-channel sequences (or tensors). Computes
    ``x * (1 / (255 std)) - mean / std`` in place after the conversion to float,
    which equals :meth:`Preprocess.normalize`'s ``(x / 255 - mean) / std`` within float32
    rounding (a few 1e-7).

    Examples
    --------
    >>> import torch
    >>> normalize_batch(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.5,))[0, 0, 0, 0].item()
    1.0
    """
    scale, offset = batch_affine(mean, std, images.device)
    return images.float().mul_(scale).add_(offset)


def batch_affine(mean, std, device):
    """``(scale, offset)``, float32 (1, C, 1, 1) tensors on ``device`` with normalised =
    ``x * scale + offset``; cached, so a training loop does not rebuild them every batch."""
    key = (tuple(float(m) for m in mean), tuple(float(s) for s in std), str(device))
    if key not in _AFFINE_CACHE:
        import torch

        m = torch.tensor(key[0], dtype=torch.float64)
        sd = torch.tensor(key[1], dtype=torch.float64)
        scale = (1.0 / (255.0 * sd)).float().reshape(1, -1, 1, 1).to(device)
        offset = (-m / sd).float().reshape(1, -1, 1, 1).to(device)
        _AFFINE_CACHE[key] = (scale, offset)
    return _AFFINE_CACHE[key]


_AFFINE_CACHE: dict = {}
