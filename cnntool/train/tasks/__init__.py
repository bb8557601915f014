"""Task plug-ins of the trainer: the small, task-specific part of a run.

The runner (:mod:`cnntool.train.runner`) owns everything every task needs: run folder, resume,
RNG state, optimiser and schedule, DDP, AMP, channels-last, EMA, gradient clipping and
accumulation, early stopping, checkpoints and metric files. A plug-in is a class with these
members, kept flat (no hooks, no framework):

``name``                      the task (``classification``...), as checkpoints record it
``best``                      ``(metric, "max" | "min")``: the validation value that picks best.pt
``tie``                       ``(metric, "max" | "min")`` breaking ties, or None
``epoch_fields``              the task's columns of metrics.csv (``train_loss``, ``val_accuracy``...)
``default_init``              ``--init auto`` for a model trained from scratch (``auto``: by its
                              activations; ``torch``: the builder's own, e.g. a detector's priors)
``recipe``                    defaults for the recipe options the user left out (epochs, lr...)
``load_data(cfg, preprocessing, dist)`` -> :class:`TaskData`
``step(cfg, data)``           -> ``step(model, batch, settings) -> (loss, stats)`` for training
``sampler(data, cfg)``        optional: the training order (class-balanced...), or None
``batch_sampler(dataset, cfg)`` optional: whole batches (aspect-ratio groups), or None
``evaluator(data, cfg)``      -> an object with ``reset()``, ``update(model, batch, settings)``,
                              ``compute(dist) -> dict`` (summed over processes)
``epoch_metrics(sums)``       training sums -> the ``train_*`` fields of the epoch record
``figures(out_dir, best)``    the task's pictures of the best validation result (confusion...)
``summary(best, test)``       the task's fields of the run summary

A second, toy plug-in in the tests proves that the seam holds for a task that is not
classification.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from cnntool.models.tasks import TASKS, canonical_task

#: Where each task's plug-in lives (imported on first use).
PLUGINS = {
    "classification": "cnntool.train.tasks.classify:ClassifyTask",
    "detection": "cnntool.train.tasks.detect:DetectTask",
    "segmentation": "cnntool.train.tasks.segment:SegmentTask",
    "video": "cnntool.train.tasks.video:VideoTask",
}


@dataclass
class TaskData:
    """The datasets of a run, as a plug-in's ``load_data`` returns them.

    Attributes
    ----------
    classes : list of str
        The dataset's class names (what the user's folders or labels say).
    model_classes : list of str
        The model's outputs in order: ``classes``, or with a background class first (detection).
    train, val : datasets
        This process's shard of each (DDP: each rank decodes only its own).
    test : dataset or None
    sizes : dict
        ``train``, ``val`` (and ``test``) image counts of the whole dataset, every shard.
    skipped : list of (str, str)
        ``(path, reason)`` for everything left out (unreadable images, bad labels).
    split : str
        ``folders`` (train/ and val/ given) or ``val_split=F`` (seeded split).
    collate : callable or None
        The DataLoader's collate function (None: the data layer's default).
    cached : bool
        The decoded data is held in memory (then loader workers only slow things down).
    profile : dict or None
        What the training images look like (:func:`cnntool.data.datasets.size_profile`), kept in
        checkpoints so inference can warn about inputs unlike them.
    describe : str
        What the data is, for the run's first log line (``10 classes, folders``).
    """

    classes: list[str]
    model_classes: list[str]
    train: Any
    val: Any
    test: Any = None
    sizes: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split: str = "folders"
    collate: Any = None
    cached: bool = False
    describe: str = ""
    profile: dict | None = None


def get_task(name: str):
    """The plug-in instance for a task name or verb (``classify``, ``detection``...)."""
    task = canonical_task(name)
    target = PLUGINS.get(task)
    if target is None:
        from cnntool.errors import UsageError

        raise UsageError(f"training for the {task} task is not available in this cnntool",
                         hint="trainable tasks: " + ", ".join(PLUGINS))
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


def infer_task(cfg) -> str:
    """The task of a run: ``--task``, else the model's (``--arch`` or ``--from``), else what the
    dataset's layout says (:func:`cnntool.data.datasets.dataset_task`)."""
    if cfg.task:
        return canonical_task(cfg.task)
    spec = cfg.init_from if cfg.finetuning else cfg.arch
    if spec:
        from cnntool.models.registry import get_entry, is_checkpoint_spec

        if is_checkpoint_spec(spec):
            from cnntool.models.checkpoint import load_checkpoint
            from cnntool.models.loading import resolve_checkpoint_path

            return load_checkpoint(resolve_checkpoint_path(spec))["task"]
        return get_entry(spec.partition(":")[0]).task
    from cnntool.data.datasets import dataset_task

    return dataset_task(cfg.data)


def register_plugin(name: str, target: str) -> None:
    """Make ``train --task name`` use the plug-in class at ``"module:Class"``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}")
    PLUGINS[name] = target
