"""Optimiser and learning-rate schedule of a run, for every task.

SGD with Nesterov momentum or AdamW; weight decay on weights only (never biases or norm layers);
when fine-tuning, the backbone at a fraction of the new head's rate. The schedule is a linear
warmup from lr/100, then cosine decay to 0 (or constant), stepped after every optimiser step.
"""

from __future__ import annotations

import math

from cnntool.errors import UsageError


def make_optimizer(cfg, model, heads):
    """The optimiser ``cfg`` asks for over ``model``'s trainable parameters.

    ``heads`` are the layers a new head replaced (the rest is the backbone, which learns at
    ``lr x backbone_lr_scale`` when fine-tuning).
    """
    import torch

    from cnntool.train.finetune import parameter_groups

    groups = parameter_groups(model, heads=heads if cfg.finetuning else None, lr=cfg.lr,
                              weight_decay=cfg.weight_decay, backbone_lr_scale=cfg.backbone_lr_scale)
    if not groups:
        raise UsageError("nothing to train: every parameter is frozen", hint="use --freeze none, backbone or N")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str, steps_per_epoch: int = 1,
              lr_step: int = 30, gamma: float = 0.1, plateau: list | None = None) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warmup from 1/100,
    then cosine decay to 0, constant, ``gamma`` every ``lr_step`` epochs (step), or the factor
    the plateau rule has reached so far (``plateau[0]``, lowered by :func:`plateau_step`).

    Examples
    --------
    >>> lr_factor(0, total_steps=100, warmup_steps=0, schedule="cosine")
    1.0
    >>> round(lr_factor(50, total_steps=100, warmup_steps=0, schedule="cosine"), 3)
    0.5
    >>> lr_factor(35, total_steps=100, warmup_steps=0, schedule="step", steps_per_epoch=1, lr_step=30)
    0.1
    """
    if step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** ((step // max(1, steps_per_epoch)) // max(1, lr_step))
    if schedule == "plateau":
        return plateau[0] if plateau else 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def plateau_step(scheduler, *, bad_epochs: int, patience: int, gamma: float) -> bool:
    """The plateau rule, after each epoch: with ``bad_epochs`` (epochs since the best) a multiple
    of ``patience``, the learning rate drops by ``gamma``; returns whether it did."""
    holder = getattr(scheduler, "plateau", None)
    if holder is None or bad_epochs == 0 or bad_epochs % patience:
        return False
    holder[0] *= gamma
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    return True


def make_scheduler(optimizer, cfg, steps_per_epoch: int):
    """A per-step LambdaLR following :func:`lr_factor` over ``cfg.epochs`` epochs."""
    import functools

    import torch

    total = cfg.epochs * steps_per_epoch
    warmup = min(total // 2, round(cfg.warmup_epochs * steps_per_epoch))
    plateau = [1.0]  # the plateau rule's factor so far (saved with the run for --resume)
    factor = functools.partial(lr_factor, total_steps=total, warmup_steps=warmup, schedule=cfg.schedule,
                               steps_per_epoch=steps_per_epoch, lr_step=cfg.lr_step, gamma=cfg.gamma, plateau=plateau)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    scheduler.plateau = plateau if cfg.schedule == "plateau" else None
    return scheduler
