"""One epoch of training and one pass of evaluation, for any classifier and DataLoader.

Batches arrive as uint8 ``(N, C, H, W)`` and are normalised on the device
(:func:`~cnntool.data.transforms.normalize_batch`). Mixed precision, channels-last, gradient
clipping, mixup/cutmix, a per-step learning-rate schedule and an EMA of the weights are all
optional and cost nothing when off.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnntool.data.transforms import normalize_batch


@dataclass
class StepSettings:
    """How a batch is fed and a step is taken.

    Attributes
    ----------
    device : torch.device
    mean, std : tuple of float
        Normalisation of the model (from the registry entry or checkpoint).
    loss_fn : callable
        ``loss_fn(logits, labels)`` for training (label smoothing lives here).
    amp : bool
        Autocast to ``amp_dtype`` (float16 on CUDA with ``scaler``).
    amp_dtype : torch.dtype or None
    channels_last : bool
    scaler : torch.amp.GradScaler or None
    grad_clip : float or None
        Max global gradient norm.
    mixer : cnntool.train.augment.Mixer or None
    scheduler : LR scheduler stepped after every optimiser step, or None
    ema : torch.optim.swa_utils.AveragedModel or None
        Updated after every step.
    frozen_norms : tuple of modules
        Batch-norm layers kept in eval mode while training (a frozen backbone's).
    """

    device: Any
    mean: tuple
    std: tuple
    loss_fn: Any
    amp: bool = False
    amp_dtype: Any = None
    channels_last: bool = False
    scaler: Any = None
    grad_clip: float | None = None
    mixer: Any = None
    scheduler: Any = None
    ema: Any = None
    frozen_norms: tuple = ()

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def to_device(images, labels, settings: StepSettings):
    """uint8 batch -> normalised float batch on the device (channels-last when asked)."""
    import torch

    non_blocking = settings.device.type == "cuda"
    images = images.to(settings.device, non_blocking=non_blocking)
    labels = labels.to(settings.device, non_blocking=non_blocking)
    x = normalize_batch(images, settings.mean, settings.std)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels


def train_one_epoch(model, loader, optimizer, settings: StepSettings) -> dict:
    """Train ``model`` for one pass over ``loader``.

    Returns
    -------
    dict
        ``loss`` (mean training loss, with smoothing and mixing), ``accuracy`` (of the
        predictions on the training batches against their unmixed labels), ``images``,
        ``seconds`` (wall time of the pass, data loading included).
    """
    import torch

    model.train()
    for norm in settings.frozen_norms:
        norm.eval()
    device = settings.device
    losses, predictions, targets = [], [], []  # reduced once at the end, not per step
    start = time.perf_counter()
    for images, labels in loader:
        x, y = to_device(images, labels, settings)
        if settings.mixer is not None:
            x, y_a, y_b, lam = settings.mixer(x, y)
        with settings.autocast():
            logits = model(x)
            if settings.mixer is not None:
                loss = lam * settings.loss_fn(logits, y_a) + (1.0 - lam) * settings.loss_fn(logits, y_b)
            else:
                loss = settings.loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        _backward_and_step(loss, model, optimizer, settings)
        if settings.scheduler is not None:
            settings.scheduler.step()
        if settings.ema is not None:
            settings.ema.update_parameters(model)
        losses.append(loss.detach())
        predictions.append(logits.detach().argmax(1))
        targets.append(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if not losses:
        return {"loss": 0.0, "accuracy": 0.0, "images": 0, "seconds": seconds}
    sizes = torch.tensor([len(y) for y in targets], dtype=torch.float64, device=device)
    seen = int(sizes.sum().item())
    loss_sum = (torch.stack(losses).double() * sizes).sum().item()
    correct = (torch.cat(predictions) == torch.cat(targets)).sum().item()
    return {"loss": loss_sum / seen, "accuracy": correct / seen, "images": seen, "seconds": seconds}


def _backward_and_step(loss, model, optimizer, settings: StepSettings) -> None:
    scaler = settings.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
        if settings.grad_clip:
            scaler.unscale_(optimizer)
            _clip(model, settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if settings.grad_clip:
        _clip(model, settings.grad_clip)
    optimizer.step()


def _clip(model, max_norm: float) -> None:
    import torch

    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


def evaluate(model, loader, settings: StepSettings, *, num_classes: int, dist=None) -> dict:
    """Loss, accuracy and confusion matrix of ``model`` over ``loader`` (summed across processes).

    The loss is plain cross-entropy (no smoothing), so validation losses of different recipes
    compare.

    Returns
    -------
    dict
        ``loss``, ``accuracy``, ``images``, ``confusion`` (int64 array, true x predicted),
        ``seconds``.
    """
    import torch
    import torch.nn.functional as F

    from cnntool.train.distributed import all_reduce_sum

    from cnntool.train.metrics import confusion_matrix

    model.eval()
    device = settings.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    truth, predicted = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for images, labels in loader:
            x, y = to_device(images, labels, settings)
            with settings.autocast():
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            truth.append(y)
            predicted.append(logits.argmax(1))
    # counted on the CPU: CUDA's bincount has no deterministic kernel for --deterministic
    y_true = torch.cat(truth).cpu().numpy() if truth else np.zeros(0, np.int64)
    y_pred = torch.cat(predicted).cpu().numpy() if predicted else np.zeros(0, np.int64)
    counts = torch.from_numpy(confusion_matrix(y_true, y_pred, num_classes=num_classes)).to(device)
    if dist is not None:
        all_reduce_sum(loss_sum, dist)
        all_reduce_sum(counts, dist)
    matrix = counts.cpu().numpy().astype(np.int64)
    total = int(matrix.sum())
    return {"loss": float(loss_sum.item()) / max(1, total),
            "accuracy": float(np.trace(matrix)) / max(1, total),
            "images": total, "confusion": matrix, "seconds": time.perf_counter() - start}
