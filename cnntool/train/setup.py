"""The model a run trains: where its preprocessing comes from, and how it is built.

From scratch (``--arch``, initialised per ``--init``), from pretrained weights or a checkpoint
(``finetune --from``, with new heads for the data's classes), or from a run's ``last.pt``
(``--resume``). The model's task must be the run's; ``--imgsz`` changes the input size here, so
the data, the model and every checkpoint agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnntool.errors import UsageError
from cnntool.models.registry import TIMM_PREFIX
from cnntool.train.config import TrainConfig


@dataclass
class ModelSetup:
    """A model ready to train, with what its checkpoints must record."""

    model: Any
    arch: str
    heads: tuple[str, ...]
    preprocessing: Any
    arch_kwargs: dict
    init: str = "pretrained"
    source: str | None = None          # finetune: the spec it started from


def source_preprocessing(cfg: TrainConfig, task) -> tuple[Any, str, dict | None]:
    """``(preprocessing, arch, checkpoint)`` of the model a config trains, without building it.

    Fine-tuning a checkpoint, the dict read comes back too (so the file is read once). The
    model's task must be the run's. ``--imgsz`` changes the input size here, so the data, the
    model and every checkpoint agree on it.
    """
    from cnntool.models.checkpoint import checkpoint_entry, checkpoint_preprocessing, load_checkpoint
    from cnntool.models.loading import resolve_checkpoint_path
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    ckpt = None
    spec = cfg.init_from if cfg.finetuning else cfg.arch
    if cfg.finetuning and is_checkpoint_spec(spec):
        ckpt = load_checkpoint(resolve_checkpoint_path(spec))
        ckpt["_path"] = str(resolve_checkpoint_path(spec))
        _check_model_task(spec, ckpt["task"], task)
        preprocessing, arch = checkpoint_preprocessing(ckpt), ckpt["arch"]
        entry = checkpoint_entry(ckpt["_path"], ckpt)
        entry.check_clip_input(preprocessing, ckpt.get("arch_kwargs"), source=str(ckpt["_path"]))
    else:
        name, _, weights = spec.partition(":")
        entry = get_entry(name)
        if cfg.finetuning and not weights:
            raise UsageError(f"{spec} names no weights to start from",
                             hint=f"use {name}:DEFAULT (pretrained) or a cnntool checkpoint, "
                                  f"or `cnntool train --arch {name}` to train from scratch")
        _check_model_task(spec, entry.task, task)
        preprocessing, arch = entry.preprocessing, entry.name
        if weights:
            from cnntool.models.loading import pretrained_preprocessing

            preprocessing = pretrained_preprocessing(entry, entry.torchvision_weights(weights))
        # a clip model's T and flow input follow its builder options (--arch-arg frames=, motion=flow)
        preprocessing = entry.clip_preprocessing(preprocessing, None if cfg.finetuning else cfg.arch_kwargs)
    if cfg.imgsz is not None:
        preprocessing = preprocessing.with_size(cfg.imgsz)
    return preprocessing, arch, ckpt


def _check_model_task(spec: str, model_task: str, task) -> None:
    if model_task != task.name:
        from cnntool.models.tasks import TASK_INFO

        raise UsageError(f"{spec} is a {model_task} model; this run trains {task.name}",
                         hint=f"pick a {task.name} model (`cnntool models list --task {task.name}`), or "
                              f"--task {TASK_INFO[model_task].verb}")


def build_model(cfg: TrainConfig, task, classes: list[str], preprocessing, *, source_checkpoint: dict | None = None) -> ModelSetup:
    """From scratch (``cfg.arch``, initialised per ``cfg.init``) or from ``cfg.init_from`` with new heads.

    ``classes`` are the model's outputs (the task's ``model_classes``).
    """
    from cnntool.models.registry import get_entry
    from cnntool.train.initialize import init_weights

    if cfg.finetuning:
        return _finetune_model(cfg, task, classes, preprocessing, source_checkpoint)
    entry = get_entry(cfg.arch)
    arch_kwargs = dict(cfg.arch_kwargs or {})
    try:
        model = entry.build(num_classes=len(classes), in_channels=preprocessing.channels, **arch_kwargs)
    except TypeError as exc:
        raise UsageError(f"{entry.name} does not take these model options: {exc}",
                         hint="see `cnntool models info " + entry.name + "`") from None
    if cfg.imgsz is not None:
        check_input_size(model, preprocessing, entry.name)
    scheme = cfg.init if cfg.init != "auto" else task.default_init
    if cfg.init == "auto" and entry.name.startswith(TIMM_PREFIX):
        scheme = "torch"  # timm's builders initialise their own way (zero-init residual norms...)
    scheme = init_weights(model, scheme)
    return ModelSetup(model, entry.name, entry.heads, preprocessing, arch_kwargs, init=scheme)


def check_input_size(model, preprocessing, name: str) -> None:
    """A model that cannot take ``preprocessing``'s input size (``--imgsz``) is a usage error
    before any training, found by one forward pass on zeros (the model is left as it was)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *preprocessing.model_input_size)))   # a flow model's flow channels too
    except (RuntimeError, ValueError) as exc:
        from cnntool.errors import first_line

        raise UsageError(f"{name} cannot take a {'x'.join(map(str, preprocessing.input_size))} input: "
                         f"{first_line(exc, 160)}", hint="pick another --imgsz, or leave it out") from None
    finally:
        model.train(was_training)


def _finetune_model(cfg: TrainConfig, task, classes: list[str], preprocessing, ckpt: dict | None) -> ModelSetup:
    from cnntool.models.checkpoint import build_from_checkpoint
    from cnntool.models.loading import load
    from cnntool.models.surgery import replace_heads

    if ckpt is not None:  # source_preprocessing() checked its task
        entry, model = build_from_checkpoint(ckpt, ckpt["_path"])
        source_classes, arch_kwargs = list(ckpt["classes"]), dict(ckpt.get("arch_kwargs") or {})
    else:
        loaded = load(cfg.init_from, task=task.name)
        entry, model, source_classes, arch_kwargs = loaded.entry, loaded.model, loaded.classes, {}
    if source_classes != list(classes):
        replace_heads(model, entry.heads, len(classes))
    if task.name == "detection" and cfg.imgsz is not None:
        arch_kwargs.update(_resize_detector(model, cfg.imgsz, entry.name))
    return ModelSetup(model, entry.name, entry.heads, preprocessing, arch_kwargs, init="pretrained",
                      source=cfg.init_from)


def _resize_detector(model, size: tuple[int, int], name: str) -> dict:
    """Make a fine-tuned detector resize images as ``--imgsz`` asks (in place), and return the
    builder options that rebuild it so (recorded in the checkpoint)."""
    from cnntool.models.detector_size import resize_detector, working_size

    if working_size(model)[2] is not None:
        raise UsageError(f"{name} takes a fixed input size; --imgsz cannot change it when fine-tuning",
                         hint="leave --imgsz out")
    try:
        short, long, _ = resize_detector(model, size)
    except ValueError:
        raise UsageError(f"{name} has no input size to set", hint="leave --imgsz out") from None
    return {"min_size": short, "max_size": long}


def resumed_model(ckpt: dict) -> ModelSetup:
    from cnntool.models.checkpoint import build_from_checkpoint, checkpoint_preprocessing

    entry, model = build_from_checkpoint(ckpt, ckpt["_path"])
    return ModelSetup(model, entry.name, entry.heads, checkpoint_preprocessing(ckpt, entry),
                      dict(ckpt.get("arch_kwargs") or {}), init=ckpt.get("init", "resumed"),
                      source=ckpt.get("finetuned_from"))
