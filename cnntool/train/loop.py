"""One epoch of training and one pass of evaluation, for any task, model and DataLoader.

The task plug-in says what a step is (``step(model, batch, settings) -> (loss, stats)``) and how
outputs are scored (an evaluator with ``update``/``compute``); this module owns the machinery
around them: train/eval modes, mixed precision, gradient scaling and clipping, gradient
accumulation, the per-step learning-rate schedule and the EMA of the weights. Everything optional
costs nothing when off. Per-step statistics stay on the device and are summed there, so a step
never waits for the GPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

from cnntool.data.transforms import normalize_batch
from cnntool.errors import CnnToolError


class TrainingDiverged(CnnToolError):
    """The loss became NaN/infinite or exploded: the run stops (exit 1) instead of training on."""

    exit_code = 1


@dataclass
class StepSettings:
    """How a batch is fed and a step is taken.

    Attributes
    ----------
    device : torch.device
    preprocessing : Preprocessing
        Normalisation of the model inputs (the model's own, from the registry or checkpoint).
    amp : bool
        Autocast to ``amp_dtype`` (float16 on CUDA with ``scaler``).
    amp_dtype : torch.dtype or None
    channels_last : bool
    scaler : torch.amp.GradScaler or None
    grad_clip : float or None
        Max global gradient norm.
    accumulate : int
        Optimiser step every this many batches (gradient accumulation); the loss is divided by it.
    scheduler : LR scheduler stepped after every optimiser step, or None
    ema : torch.optim.swa_utils.AveragedModel or None
        Updated after every optimiser step.
    frozen_norms : tuple of modules
        Batch-norm layers kept in eval mode while training (a frozen backbone's).
    """

    device: Any
    preprocessing: Any
    amp: bool = False
    amp_dtype: Any = None
    channels_last: bool = False
    scaler: Any = None
    grad_clip: float | None = None
    accumulate: int = 1
    scheduler: Any = None
    ema: Any = None
    frozen_norms: tuple = ()

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def inputs(self, images):
        """uint8 images on the host -> normalised floats on the device.

        A stacked batch ((N, C, H, W) or clips (N, C, T, H, W)) is normalised as one tensor
        (channels-last when asked); a list of differently sized images (detection) stays a list.
        """
        import torch

        non_blocking = self.device.type == "cuda"
        mean, std = self.preprocessing.scale_and_offset()
        if isinstance(images, (list, tuple)):
            return [normalize_batch(im.to(self.device, non_blocking=non_blocking)[None], mean, std)[0]
                    for im in images]
        x = normalize_batch(images.to(self.device, non_blocking=non_blocking), mean, std)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def to_device(self, value):
        """Tensors (in lists, tuples and dicts) moved to the device, non-blocking on CUDA."""
        non_blocking = self.device.type == "cuda"
        if hasattr(value, "to"):
            return value.to(self.device, non_blocking=non_blocking)
        if isinstance(value, dict):
            return {k: self.to_device(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.to_device(v) for v in value)
        return value


def train_one_epoch(model, loader, optimizer, settings: StepSettings, step, *, on_batch=None) -> dict:
    """Train ``model`` for one pass over ``loader`` with the task's ``step``.

    ``step(model, batch, settings)`` returns ``(loss, stats)``: the loss to minimise (a scalar
    tensor) and a dict of tensors to sum over the epoch (``loss`` as a sum over samples and
    ``count``, the samples, at least). ``on_batch(n, images=k)`` is called after every batch (a
    progress bar). Returns ``{"sums": {name: float}, "seconds": float}``.

    Raises
    ------
    TrainingDiverged
        The epoch's loss is not finite.
    """
    import torch

    model.train()
    for norm in settings.frozen_norms:
        norm.eval()
    sums: dict = {}
    start = time.perf_counter()
    accumulate = max(1, settings.accumulate)
    optimizer.zero_grad(set_to_none=True)
    batches = len(loader) if hasattr(loader, "__len__") else None
    for index, batch in enumerate(loader):
        with settings.autocast():
            loss, stats = step(model, batch, settings)
        last = batches is not None and index + 1 == batches
        _backward(loss / accumulate if accumulate > 1 else loss, settings)
        if (index + 1) % accumulate == 0 or last:
            _optimizer_step(model, optimizer, settings)
            optimizer.zero_grad(set_to_none=True)
            if settings.scheduler is not None:
                settings.scheduler.step()
            if settings.ema is not None:
                settings.ema.update_parameters(model)
        for key, value in stats.items():
            value = value.detach() if hasattr(value, "detach") else value
            sums[key] = sums[key] + value if key in sums else value
        if on_batch is not None:
            count = stats.get("count", 0)
            on_batch(1, images=int(count) if isinstance(count, int) else 0)
    if settings.device.type == "cuda":
        torch.cuda.synchronize(settings.device)
    seconds = time.perf_counter() - start
    plain = {k: float(v) for k, v in sums.items()}
    if "loss" in plain and not math.isfinite(plain["loss"]):
        raise TrainingDiverged("the training loss became NaN or infinite",
                               hint="lower --lr, add --grad-clip 5, or check the data (unreadable labels, "
                                    "empty masks)")
    return {"sums": plain, "seconds": seconds}


def _backward(loss, settings: StepSettings) -> None:
    if settings.scaler is not None:
        settings.scaler.scale(loss).backward()
    else:
        loss.backward()


def _optimizer_step(model, optimizer, settings: StepSettings) -> None:
    scaler = settings.scaler
    if scaler is not None:
        if settings.grad_clip:
            scaler.unscale_(optimizer)
            _clip(model, settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    if settings.grad_clip:
        _clip(model, settings.grad_clip)
    optimizer.step()


def _clip(model, max_norm: float) -> None:
    import torch

    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


def evaluate(model, loader, settings: StepSettings, evaluator, *, dist=None) -> dict:
    """Run ``model`` over ``loader`` in inference mode, scoring with the task's ``evaluator``.

    ``evaluator.update(model, batch, settings)`` scores one batch; ``evaluator.compute(dist)``
    sums across processes and returns the metrics (``val_``-less names: ``loss``, ``accuracy``,
    ``miou``, ``map50``...) plus whatever the task draws from them. ``seconds`` is added.
    """
    import torch

    model.eval()
    evaluator.reset()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            evaluator.update(model, batch, settings)
    result = evaluator.compute(dist)
    result["seconds"] = time.perf_counter() - start
    return result
