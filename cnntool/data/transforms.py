"""Training augmentation for classifiers, and batch normalisation on the device.

The evaluation transform is :class:`~cnntool.data.preprocessing.Preprocessing` (resize, centre
crop, channels, scale, normalise: plain NumPy/OpenCV, so it runs in decode threads and
DataLoader workers alike). :class:`TrainTransform` adds training augmentation on top of it (:class:`AugmentConfig`: one
affine warp per image for rotation, shift, zoom, shear, flips and random resized crops, plus
colour jitter), and :func:`normalize_batch` normalises a whole uint8 batch on its device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnntool.data.preprocessing import Preprocessing, resize_image, to_channels


# --- training augmentation ---------------------------------------------------------------------

#: Fill value for pixels an affine warp brings in from outside the image: black, like the
#: background of digit and medical datasets (a photo's border is rarely visible at these angles).
BORDER_VALUE = 0

#: ``--zoom``'s default for classification and video (a scale in [0.9, 1.1]); a task's recipe may
#: replace it (detection's and segmentation's are 0: off), see
#: :meth:`cnntool.train.config.TrainConfig.resolve`.
DEFAULT_ZOOM = 0.1

#: The geometric distortions' defaults for classification and video (degrees, fraction, scale,
#: degrees); a field left None takes its task's recipe value, else this one.
GEOMETRY_DEFAULTS = {"rotate": 10.0, "shift": 0.1, "zoom": DEFAULT_ZOOM, "shear": 5.0}


@dataclass(frozen=True)
class AugmentConfig:
    """What :class:`TrainTransform` varies, each drawn uniformly per image.

    The defaults are the small geometric distortions the lectures teach (zoom, shifts, shear,
    small rotations), which no class label depends on. Flips and colour changes are off: a
    mirrored "2" or "7" is not a digit, and colour can be the very thing that separates classes.

    Parameters
    ----------
    rotate : float or None
        Rotation in degrees, in [-rotate, rotate].
    shift : float or None
        Translation as a fraction of the output size, per axis, in [-shift, shift].
    zoom : float or None
        Scale factor in [1 - zoom, 1 + zoom] (detection: a box-aware zoom-out instead).
    shear : float or None
        Horizontal shear angle in degrees, in [-shear, shear].

        Each of the four left None means its task's default: :data:`GEOMETRY_DEFAULTS` for
        classification and video, off for segmentation (and zoom off for detection);
        :meth:`cnntool.train.config.TrainConfig.resolve` records the number.
    crop_scale : tuple of float or None
        Random resized crop: the crop covers this fraction range of the image area (the
        ImageNet recipe uses (0.08, 1.0)); None keeps the evaluation framing (resize, centre crop).
    crop_ratio : tuple of float
        Aspect ratio range of the random crop (log-uniform).
    hflip, vflip : bool
        Mirror left-right / top-bottom with probability 0.5. ``hflip`` None means the task's
        default: off for classification, on for detection.
    brightness, contrast, saturation : float
        Colour jitter: multiply by a factor in [1 - v, 1 + v] (saturation only for RGB).
    policy : {"none", "randaugment", "trivialaugment"}
        An automatic augmentation policy after the warp (torchvision's ``RandAugment`` with its
        defaults, or ``TrivialAugmentWide``), seeded like everything else.
    erasing : float
        Probability of random erasing (torchvision's ``RandomErasing``) of a patch of each image.

    Examples
    --------
    >>> bool(AugmentConfig().hflip), AugmentConfig().zoom is None, AugmentConfig().geometry("zoom")
    (False, True, 0.1)
    """

    rotate: float | None = None              # degrees; None: the task's (10; segmentation: off)
    shift: float | None = None               # fraction of the output width/height; None: the task's (0.1)
    zoom: float | None = None                # None: the task's (DEFAULT_ZOOM: [0.9, 1.1]; detection: off)
    shear: float | None = None               # degrees; None: the task's (5; segmentation: off)
    crop_scale: tuple[float, float] | None = None   # e.g. (0.08, 1.0) for ImageNet-sized photos
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool | None = None                # None: the task's default (off for classification: digits and text are not mirror-invariant)
    vflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    policy: str = "none"                     # randaugment | trivialaugment (torchvision's policies)
    erasing: float = 0.0                     # probability of erasing a random patch

    def geometry(self, name: str) -> float:
        """``rotate``, ``shift``, ``zoom`` or ``shear``, or its :data:`GEOMETRY_DEFAULTS` value
        when None (the classification default).

        Examples
        --------
        >>> AugmentConfig(rotate=3).geometry("rotate"), AugmentConfig().geometry("shear")
        (3.0, 5.0)
        """
        value = getattr(self, name)
        return GEOMETRY_DEFAULTS[name] if value is None else float(value)

    @property
    def color(self) -> bool:
        return bool(self.brightness or self.contrast or self.saturation)


@dataclass(frozen=True)
class TrainTransform:
    """Random augmentation on top of a :class:`Preprocessing`: uint8 image -> uint8 (H, W, C).

    Resize (or crop), rotation, shift, zoom, shear and flips are composed into one affine matrix
    and applied with a single ``cv2.warpAffine``, so an image is interpolated once. Draw the
    random parameters for a batch with :meth:`draw` and apply them with :meth:`apply`; the
    same generator state gives the same images. Normalisation is left to the batch
    (:func:`normalize_batch`), where it runs once per batch on the training device.

    Parameters
    ----------
    preprocess : Preprocessing
        The evaluation transform: output size, channels and the framing (resize / centre crop).
    augment : AugmentConfig

    Examples
    --------
    >>> t = TrainTransform(Preprocessing((1, 32, 32), (0.5,), (0.5,)), AugmentConfig())
    >>> image = t.prepare(np.zeros((8, 8), np.uint8))
    >>> params = t.draw(np.random.default_rng(0), 1)
    >>> t.apply(image, params[0]).shape
    (32, 32, 1)
    """

    preprocess: Preprocessing
    augment: AugmentConfig = AugmentConfig()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The deterministic, cacheable step: channels, and a shrink when the image is larger
        than the model needs (so a cache of prepared images stays small). Never enlarges."""
        channels, (height, width) = self.preprocess.channels, self.preprocess.size
        image = to_channels(image, channels)
        h, w = image.shape[:2]
        resize_size = self._crop_resize()
        if isinstance(resize_size, tuple):  # an exact (h, w) before the crop (video models: 128 x 171)
            if h > resize_size[0] or w > resize_size[1]:
                image = resize_image(image, (resize_size[1], resize_size[0]))
        elif resize_size and min(h, w) > resize_size:
            scale = resize_size / min(h, w)
            image = resize_image(image, (max(1, round(w * scale)), max(1, round(h * scale))))
        elif not resize_size and (h > height or w > width):
            image = resize_image(image, (width, height))
        if image.ndim == 2:
            image = image[:, :, None]
        return np.ascontiguousarray(image)

    def _crop_resize(self) -> int | tuple[int, int] | None:
        """The shorter side (or the exact (h, w)) before the centre crop (``crop`` policy), else None."""
        p = self.preprocess
        if p.resize_mode != "crop":
            return None
        return p.resize_size

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Random parameters for ``n`` images: an (n, 15) float array, one row per image."""
        a = self.augment
        columns = [
            rng.uniform(-a.geometry("rotate"), a.geometry("rotate"), n),
            rng.uniform(-a.geometry("shear"), a.geometry("shear"), n),
            rng.uniform(1 - a.geometry("zoom"), 1 + a.geometry("zoom"), n),
            rng.uniform(-a.geometry("shift"), a.geometry("shift"), n),
            rng.uniform(-a.geometry("shift"), a.geometry("shift"), n),
            (rng.random(n) < 0.5) & bool(a.hflip),
            (rng.random(n) < 0.5) & a.vflip,
            rng.uniform(1 - a.brightness, 1 + a.brightness, n),
            rng.uniform(1 - a.contrast, 1 + a.contrast, n),
            rng.uniform(1 - a.saturation, 1 + a.saturation, n),
            rng.random(n),   # crop: area fraction quantile
            rng.random(n),   # crop: aspect ratio quantile (log-uniform)
            rng.random(n),   # crop: left position quantile
            rng.random(n),   # crop: top position quantile
            rng.integers(0, 2**31 - 1, n),   # seed of the policy / erasing draws
        ]
        return np.stack([np.asarray(c, np.float64) for c in columns], axis=1)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Warp one prepared image (H', W', C) with one row of :meth:`draw`; uint8 (H, W, C) out."""
        import cv2

        height, width = self.preprocess.size
        matrix = self._affine(image.shape[0], image.shape[1], params)
        out = cv2.warpAffine(image, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(BORDER_VALUE,) * 4)
        if out.ndim == 2:
            out = out[:, :, None]
        if self.augment.color:
            out = _jitter(out, brightness=params[7], contrast=params[8], saturation=params[9])
        if self.augment.policy != "none" or self.augment.erasing > 0:
            out = _policy(out, self.augment, int(params[14]))
        return out

    def _framing(self, h: int, w: int, params: np.ndarray) -> np.ndarray:
        """3x3 matrix from image corner coordinates to output corner coordinates."""
        height, width = self.preprocess.size
        a = self.augment
        if a.crop_scale is not None:
            area = h * w * (a.crop_scale[0] + params[10] * (a.crop_scale[1] - a.crop_scale[0]))
            log_lo, log_hi = np.log(a.crop_ratio[0]), np.log(a.crop_ratio[1])
            ratio = np.exp(log_lo + params[11] * (log_hi - log_lo))
            crop_w = min(w, np.sqrt(area * ratio))
            crop_h = min(h, np.sqrt(area / ratio))
            left, top = (w - crop_w) * params[12], (h - crop_h) * params[13]
            return _scale_translate(width / crop_w, height / crop_h, -left, -top)
        resize_size = self._crop_resize()
        if isinstance(resize_size, tuple):
            sw, sh = max(width, resize_size[1]), max(height, resize_size[0])
            return _scale_translate(sw / w, sh / h, 0.0, 0.0, post=(-((sw - width) // 2), -((sh - height) // 2)))
        if resize_size:
            scale = resize_size / min(h, w)
            sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
            return _scale_translate(sw / w, sh / h, 0.0, 0.0, post=(-((sw - width) // 2), -((sh - height) // 2)))
        return _scale_translate(width / w, height / h, 0.0, 0.0)

    def _affine(self, h: int, w: int, params: np.ndarray) -> np.ndarray:
        """Pixel-centre 3x3 matrix: framing, then rotation/shear/zoom/flip about the centre, then shift."""
        height, width = self.preprocess.size
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


#: Automatic augmentation policies (``--randaugment``, ``--trivialaugment``).
POLICIES = ("none", "randaugment", "trivialaugment")


def _policy(image: np.ndarray, augment: AugmentConfig, seed: int) -> np.ndarray:
    """torchvision's RandAugment / TrivialAugmentWide and RandomErasing on one uint8 (H, W, C)
    image, drawn from a generator seeded by ``seed`` (the same seed gives the same image)."""
    import torch
    from torchvision.transforms import v2

    steps = []
    if augment.policy == "randaugment":
        steps.append(v2.RandAugment())
    elif augment.policy == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    if augment.erasing > 0:
        steps.append(v2.RandomErasing(p=augment.erasing, value=0))
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in steps:
            x = step(x)
    return np.ascontiguousarray(x.numpy().transpose(1, 2, 0))


#: ITU-R 601 luma weights (the ones OpenCV's RGB2GRAY uses).
_LUMA = (0.299, 0.587, 0.114)


def normalize_batch(images, mean, std):
    """uint8 (N, C, H, W) tensor (or clips (N, C, T, H, W)) -> float32 normalised, on the tensor's device.

    ``mean`` and ``std`` are per-channel sequences (or tensors). Computes
    ``x * (1 / (255 std)) - mean / std`` in place after the conversion to float,
    which equals :meth:`Preprocessing.normalize`'s ``(x / 255 - mean) / std`` within float32
    rounding (a few 1e-7).

    Examples
    --------
    >>> import torch
    >>> normalize_batch(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.5,))[0, 0, 0, 0].item()
    1.0
    """
    scale, offset = batch_affine(mean, std, images.device)
    if images.ndim != 4:  # clips (N, C, T, H, W): the channel axis is still the second
        shape = (1, -1) + (1,) * (images.ndim - 2)
        scale, offset = scale.reshape(shape), offset.reshape(shape)
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
