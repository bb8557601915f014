"""Preprocessing built from a registry entry or checkpoint: no stage hard-codes a mean or a size.

:class:`Preprocess` is the evaluation transform (resize, centre crop, channels, scale,
normalise) as plain NumPy/OpenCV, so it runs in decode threads and DataLoader workers alike.
Training augmentation is built on top of it by the train stage.
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

    @classmethod
    def from_loaded(cls, loaded) -> "Preprocess":
        """From a :class:`~cnntool.models.registry.LoadedModel`."""
        return cls(tuple(loaded.input_size), tuple(loaded.mean), tuple(loaded.std), loaded.resize_size)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Resize/crop to (H, W) and convert channels; still uint8, (H, W, C)."""
        import cv2

        channels, height, width = self.input_size
        image = to_channels(image, channels)
        if self.resize_size:
            h, w = image.shape[:2]
            scale = self.resize_size / min(h, w)
            new = (max(width, round(w * scale)), max(height, round(h * scale)))
            image = _resize(image, new)
            top = (image.shape[0] - height) // 2
            left = (image.shape[1] - width) // 2
            image = image[top:top + height, left:left + width]
        elif image.shape[:2] != (height, width):
            image = _resize(image, (width, height))
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


def _resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Antialiased when shrinking (INTER_AREA), bilinear when growing, like torchvision's antialias=True."""
    import cv2

    h, w = image.shape[:2]
    shrink = size_wh[0] < w or size_wh[1] < h
    out = cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out
