"""Optical flow between two frames: DIS and Farneback (OpenCV), or RAFT (torchvision).

Optical flow gives each pixel of the first frame the displacement ``(dx, dy)`` in pixels to where
it appears in the second: ``prev[y, x] ~ next[y + dy, x + dx]``, as a float32 (H, W, 2) array
(x first, as OpenCV and torchvision store it). Motion "calculates and highlights local motions"
between consecutive frames; :func:`flow_to_color` draws it on the Middlebury colour wheel and
:func:`flow_stats` sums it up for a record.

Methods
-------
``dis``
    Dense Inverse Search (Kroeger et al., 2016), OpenCV's ``DISOpticalFlow`` with the
    ``medium`` preset on grayscale frames: the default. Fast on a CPU and good on large motions:
    on scikit-image's ``stereo_motorcycle`` pair (741 x 500, motions up to 60 px) it scores an
    end-point error of 2.63 px in about 50 ms (``fast``: 3.23 px, ``ultrafast``: 3.77 px).
``farneback``
    Farneback's polynomial expansion (2003), OpenCV's ``calcOpticalFlowFarneback``. Smooth, but
    it misses large motions (21.7 px on the same pair).
``raft``
    RAFT (Teed and Deng, 2020), a torchvision ``raft_small``/``raft_large`` module that the caller
    builds (from the registry, with its weights). Frames are padded by repeating their edges
    to a multiple of 8 pixels, and to at least 128 (its correlation pyramid's minimum), and
    the flow is cropped back.

DIS and Farneback run through :class:`cnntool.data.clips.OpenCVFlow`, the same code that
computes the flow channels of a two-stream model's input, in training and in ``cnntool video``.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> import cv2
>>> scene = cv2.GaussianBlur(rng.uniform(0, 255, (64, 80)).astype(np.float32), (0, 0), 2)
>>> prev = scene.astype(np.uint8)
>>> nxt = np.roll(prev, 3, axis=1)                   # everything moves 3 px right
>>> flow = optical_flow(prev, nxt)
>>> flow.shape, flow.dtype
((64, 80, 2), dtype('float32'))
>>> bool(np.allclose(np.median(flow[8:-8, 8:-8], axis=(0, 1)), [3, 0], atol=0.2))
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnntool.data.clips import DIS_PRESETS, OpenCVFlow
from cnntool.errors import UsageError, unknown_choice

METHODS = ("dis", "farneback", "raft")

#: RAFT refinement iterations (torchvision's default).
RAFT_UPDATES = 12

#: RAFT's correlation pyramid needs frames of at least this many pixels a side.
RAFT_MIN_SIDE = 128


class FlowStats(NamedTuple):
    """Summary of a flow field, in pixels: the mean and largest motion (vector length), and
    the mean displacement ``(mean_dx, mean_dy)`` (a camera pan shows up there)."""

    mean_magnitude: float
    max_magnitude: float
    mean_dx: float
    mean_dy: float


class FlowEstimator:
    """Optical flow with one method and its settings, reusable over the frames of a video.

    Parameters
    ----------
    method : {"dis", "farneback", "raft"}
    model : torch.nn.Module, optional
        For ``raft``: a torchvision RAFT model (``raft_small`` or ``raft_large``), put in eval
        mode here.
    device : str or torch.device, optional
        Where RAFT runs; default the model's own device.
    preset : {"ultrafast", "fast", "medium"}
        DIS preset.
    num_flow_updates : int
        RAFT refinement iterations.

    Examples
    --------
    >>> estimate = FlowEstimator("farneback")
    >>> estimate(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)).shape
    (16, 16, 2)
    """

    def __init__(self, method: str = "dis", *, model=None, device=None, preset: str = "medium",
                 num_flow_updates: int = RAFT_UPDATES):
        if method not in METHODS:
            raise unknown_choice("flow --method", method, METHODS)
        if preset not in DIS_PRESETS:
            raise unknown_choice("DIS preset", preset, DIS_PRESETS)
        self.method = method
        self.preset = preset
        self.num_flow_updates = int(num_flow_updates)
        self.model = model
        self.device = None
        self._opencv = OpenCVFlow(method, preset=preset) if method != "raft" else None
        if method == "raft":
            if model is None:
                raise UsageError("--method raft needs a RAFT model", hint="use -m raft_small or -m raft_large")
            model.eval()
            import torch

            self.device = torch.device(device) if device is not None else next(model.parameters()).device
            model.to(self.device)
        elif model is not None:
            raise UsageError(f"--method {method} takes no model", hint="use --method raft with a RAFT model")

    def __call__(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """Flow from ``prev`` to ``next``: uint8 (H, W, 3) RGB or (H, W) gray, or floats in
        [0, 1]; returns a new float32 (H, W, 2) array."""
        prev, next = np.asarray(prev), np.asarray(next)
        if prev.shape != next.shape:
            raise ValueError(f"frames differ in shape: {prev.shape} and {next.shape}")
        if prev.ndim not in (2, 3) or (prev.ndim == 3 and prev.shape[2] not in (1, 3)):
            raise ValueError(f"frames must be (H, W) or (H, W, 3), not {prev.shape}")
        if self.method == "raft":
            return self._raft(_as_rgb_uint8(prev), _as_rgb_uint8(next))
        return self._opencv(prev, next)

    def _raft(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        height, width = prev.shape[:2]
        pad_h = max(RAFT_MIN_SIDE, height + -height % 8) - height
        pad_w = max(RAFT_MIN_SIDE, width + -width % 8) - width
        pair = torch.from_numpy(np.stack([prev, next])).permute(0, 3, 1, 2).float()
        pair = pair.to(self.device).mul_(2 / 255).sub_(1)        # [-1, 1], as RAFT was trained
        if pad_h or pad_w:
            pair = F.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            flows = self.model(pair[:1], pair[1:], num_flow_updates=self.num_flow_updates)
        flow = flows[-1] if isinstance(flows, (list, tuple)) else flows
        flow = flow[0, :, :height, :width].permute(1, 2, 0)
        return np.ascontiguousarray(flow.float().cpu().numpy())


def optical_flow(prev: np.ndarray, next: np.ndarray, *, method: str = "dis", model=None, device=None,
                 preset: str = "medium") -> np.ndarray:
    """Dense optical flow from ``prev`` to ``next``.

    Parameters
    ----------
    prev, next : numpy.ndarray
        Two frames of the same shape: uint8 RGB (H, W, 3) or gray (H, W), or floats in [0, 1].
    method : {"dis", "farneback", "raft"}
        See the module notes; DIS is the default.
    model : torch.nn.Module, optional
        The RAFT model for ``method="raft"``.
    device : str or torch.device, optional
        Where RAFT runs (default: the model's device).
    preset : {"ultrafast", "fast", "medium"}
        DIS preset.

    Returns
    -------
    numpy.ndarray
        float32 (H, W, 2): ``(dx, dy)`` in pixels for each pixel of ``prev``.

    Examples
    --------
    >>> optical_flow(np.zeros((12, 20, 3), np.uint8), np.zeros((12, 20, 3), np.uint8)).shape
    (12, 20, 2)
    """
    return FlowEstimator(method, model=model, device=device, preset=preset)(prev, next)


def flow_to_color(flow: np.ndarray, *, max_magnitude: float | None = None) -> np.ndarray:
    """Draw a flow field on the Middlebury colour wheel (Baker et al., 2011): uint8 RGB (H, W, 3).

    The hue is the direction (right red, down yellow, left blue-cyan, up violet) and the
    saturation the speed: white is still, full colour is ``max_magnitude`` or more.

    Parameters
    ----------
    flow : numpy.ndarray
        (H, W, 2) ``(dx, dy)`` in pixels.
    max_magnitude : float, optional
        The speed drawn at full colour. Default: this field's largest motion. Give one value for
        every frame of a video, or colours rescale from frame to frame.

    Examples
    --------
    >>> flow = np.zeros((2, 2, 2), np.float32)
    >>> flow[0, 1] = (4, 0)                                # one pixel moving right
    >>> flow_to_color(flow)[0].tolist()
    [[255, 255, 255], [255, 0, 0]]
    >>> flow_to_color(flow, max_magnitude=8)[0, 1].tolist()   # half speed: half saturated
    [255, 127, 127]
    """
    import torch
    from torchvision.utils import flow_to_image

    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), not {flow.shape}")
    field = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))
    field = torch.nan_to_num(field, nan=0.0, posinf=0.0, neginf=0.0)
    width = field.shape[2]
    if max_magnitude is not None:
        if max_magnitude <= 0:
            raise ValueError("max_magnitude must be positive")
        # flow_to_image scales by the field's largest motion: clip to max_magnitude and add a
        # column moving at exactly max_magnitude, cropped off afterwards
        norm = torch.linalg.vector_norm(field, dim=0, keepdim=True)
        field = field * torch.clamp(max_magnitude / norm.clamp_min(1e-12), max=1.0)
        column = torch.zeros(2, field.shape[1], 1)
        column[0] = float(max_magnitude)
        field = torch.cat([field, column], dim=2)
    image = flow_to_image(field)[:, :, :width]
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def flow_stats(flow: np.ndarray) -> FlowStats:
    """Mean and largest motion of a flow field, and its mean displacement.

    Examples
    --------
    >>> flow = np.zeros((2, 2, 2), np.float32); flow[0, 0] = (3, 4)
    >>> flow_stats(flow)
    FlowStats(mean_magnitude=1.25, max_magnitude=5.0, mean_dx=0.75, mean_dy=1.0)
    """
    flow = np.asarray(flow, np.float64)
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    return FlowStats(float(magnitude.mean()), float(magnitude.max()), float(flow[..., 0].mean()),
                     float(flow[..., 1].mean()))


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = _as_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    gray = image if image.ndim == 2 else image[:, :, 0]
    return np.repeat(gray[:, :, None], 3, axis=2)


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    raise ValueError(f"frames must be uint8 or floats in [0, 1], not {image.dtype}")
