"""Train or fine-tune an image classifier end to end: data, model, recipe, run folder, resume.

:func:`train_classifier` is what ``cnntool train`` and ``cnntool finetune`` call. It prints
nothing: messages go to the ``messages`` object (anything with ``log``, ``warn`` and ``debug``,
like :class:`cnntool.cli._output.Output`) and each epoch's record to ``on_epoch``.

The run folder holds::

    best.pt        checkpoint with the best validation accuracy (ties: lower validation loss)
    last.pt        checkpoint after the last finished epoch, with the training state for --resume
    config.json    the resolved configuration, and under "machine" how this machine ran it
                   (device, processes, loader workers, threads, amp, channels_last, cached)
    metrics.csv    one row per epoch (same fields as metrics.jsonl)
    metrics.jsonl  one record per epoch
    curves.png     loss and accuracy per epoch
    confusion.png  validation confusion matrix of the best model
    summary.json   the final summary (also the record ``cnntool train`` prints)
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnntool.data.writers import atomic_write_json
from cnntool.errors import CheckpointError, CnnToolError, DatasetError, UsageError
from cnntool.train.config import DEFAULT_BATCH, TrainConfig, parse_freeze

BEST = "best.pt"
LAST = "last.pt"
CONFIG_JSON = "config.json"
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
SUMMARY_JSON = "summary.json"

#: Where runs go without ``--out``: ``runs/<arch>-<n>``.
DEFAULT_RUNS_ROOT = "runs"

#: Columns of metrics.csv / fields of each metrics.jsonl record, in order.
EPOCH_FIELDS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                "train_images_per_s", "epoch_seconds", "best")


class _Silent:
    def log(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


# --- data --------------------------------------------------------------------------------------

@dataclass
class ClassificationData:
    """The datasets of a run.

    Attributes
    ----------
    classes : list of str
    train, val : ImageDataset
    test : ImageDataset or None
        When the dataset root has a ``test/`` folder.
    skipped : list of (str, str)
        ``(path, reason)`` for every image left out (unreadable, outside a class folder).
    split : str
        ``folders`` (train/ and val/ given) or ``val_split=F`` (seeded stratified split).
    """

    classes: list[str]
    train: Any
    val: Any
    test: Any = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split: str = "folders"


def load_classification_data(root: str, *, input_size, mean, std, resize_size=None, augment=None,
                             val_split: float = 0.2, seed: int = 0, cache: str | bool = "auto",
                             verify: bool = True, workers: int | None = None,
                             max_pixels: int | None = None) -> ClassificationData:
    """Index ``root`` and build the train/val(/test) datasets for a model's input.

    Parameters
    ----------
    root : str
        Class folders, or ``train/`` + ``val/`` (+ ``test/``) folders of class folders. Without
        ``val/``, ``val_split`` of the training images (per class, seeded by ``seed``) validate.
    input_size, mean, std, resize_size
        The model's preprocessing (registry entry or checkpoint).
    augment : AugmentConfig or None
        Training augmentation; None trains on the evaluation transform.
    cache : bool or "auto" or "on"/"off"
    workers : int, optional
        Decode threads.

    Examples
    --------
    >>> data = load_classification_data("samples/digits", input_size=(1, 32, 32),
    ...                                 mean=(0.5,), std=(0.5,))  # doctest: +SKIP
    >>> len(data.train), len(data.val), data.classes[:2]  # doctest: +SKIP
    (1437, 360, ['0', '1'])
    """
    from cnntool.data.datasets import (DEFAULT_DECODE_WORKERS, ImageDataset, find_splits,
                                       index_image_folder, stratified_split)
    from cnntool.data.transforms import Preprocess, TrainTransform

    cache = {"on": True, "off": False}.get(cache, cache) if isinstance(cache, str) else cache
    workers = workers or DEFAULT_DECODE_WORKERS
    splits = find_splits(root)
    if "val" in splits and "train" not in splits:
        raise DatasetError(f"{root} has val/ but no train/ folder", hint="add train/, or drop val/ and use --val-split")
    train_index = index_image_folder(splits.get("train", root))
    classes = train_index.classes
    index_skipped = list(train_index.skipped)
    if "val" in splits:
        val_index = index_image_folder(splits["val"], classes=classes)
        index_skipped += val_index.skipped
        split = "folders"
    else:
        train_idx, val_idx = stratified_split(train_index.labels, val_fraction=val_split, seed=seed)
        train_index, val_index = train_index.subset(train_idx), train_index.subset(val_idx)
        split = f"val_split={val_split:g}"
    test_index = index_image_folder(splits["test"], classes=classes) if "test" in splits else None
    if test_index is not None:
        index_skipped += test_index.skipped

    preprocess = Preprocess(tuple(input_size), tuple(mean), tuple(std), resize_size)
    channels = int(input_size[0])
    common = dict(channels=channels, cache=cache, verify=verify, seed=seed, workers=workers, max_pixels=max_pixels)
    if augment is not None:
        transform = TrainTransform(preprocess, augment)
        train = ImageDataset(train_index.paths, train_index.labels, classes, prepare=transform.prepare,
                             augment=transform, **common)
    else:
        train = ImageDataset(train_index.paths, train_index.labels, classes, prepare=preprocess.resize, **common)
    val = ImageDataset(val_index.paths, val_index.labels, classes, prepare=preprocess.resize, **common)
    test = None
    if test_index is not None:
        test = ImageDataset(test_index.paths, test_index.labels, classes, prepare=preprocess.resize, **common)
    skipped = [*index_skipped, *train.skipped, *val.skipped, *(test.skipped if test is not None else [])]
    if len(train) == 0:
        raise DatasetError(f"no readable training images under {root}")
    if len(val) == 0:
        raise DatasetError(f"no readable validation images under {root}",
                           hint="add images to val/, or raise --val-split")
    return ClassificationData(classes, train, val, test, skipped, split)


# --- model -------------------------------------------------------------------------------------

@dataclass
class ModelSetup:
    """A model ready to train, with what its checkpoints must record."""

    model: Any
    arch: str
    head: str
    input_size: tuple
    mean: tuple
    std: tuple
    resize_size: int | None
    arch_kwargs: dict
    init: str = "pretrained"
    source: str | None = None          # finetune: the spec it started from

    @classmethod
    def from_loaded(cls, loaded, *, arch_kwargs: dict, init: str, source: str | None) -> "ModelSetup":
        """From a :class:`~cnntool.models.registry.LoadedModel` (its model, entry and preprocessing)."""
        return cls(loaded.model, loaded.entry.name, loaded.entry.head, tuple(loaded.input_size),
                   tuple(loaded.mean), tuple(loaded.std), loaded.resize_size, dict(arch_kwargs),
                   init=init, source=source)


def checkpoint_preprocessing(ckpt: dict) -> dict:
    """input_size/mean/std/resize_size/arch recorded in a checkpoint dict."""
    return {"input_size": tuple(ckpt["input_size"]), "mean": tuple(ckpt["mean"]),
            "std": tuple(ckpt["std"]), "resize_size": ckpt.get("resize_size"), "arch": ckpt["arch"]}


def source_preprocessing(cfg: TrainConfig) -> dict:
    """input_size/mean/std/resize_size/arch of the model a config trains (without building it).

    Fine-tuning a checkpoint, the dict read also comes back as ``"checkpoint"`` (for
    :func:`build_model`, so the file is read once).
    """
    from cnntool.models.checkpoint import load_checkpoint
    from cnntool.models.registry import get_entry, is_checkpoint_spec

    if cfg.finetuning and is_checkpoint_spec(cfg.init_from):
        ckpt = load_checkpoint(cfg.init_from)
        if ckpt["task"] != "classification":
            raise CheckpointError(f"{cfg.init_from} is a {ckpt['task']} checkpoint; finetune here needs a classifier")
        return {**checkpoint_preprocessing(ckpt), "checkpoint": ckpt}
    name, _, weights = (cfg.init_from if cfg.finetuning else cfg.arch).partition(":")
    entry = get_entry(name)
    if cfg.finetuning and not weights:
        raise UsageError(f"{cfg.init_from} names no weights to start from",
                         hint=f"use {name}:DEFAULT (pretrained) or a cnntool checkpoint, "
                              f"or `cnntool train --arch {name}` to train from scratch")
    if entry.task != "classification":
        raise UsageError(f"{entry.name} is a {entry.task} model; train/finetune here need a classifier",
                         hint="see `cnntool models list --task classification`")
    return {"input_size": tuple(entry.input_size), "mean": tuple(entry.mean), "std": tuple(entry.std),
            "resize_size": entry.resize_size, "arch": entry.name}


def build_model(cfg: TrainConfig, classes: list[str], *, source_checkpoint: dict | None = None) -> ModelSetup:
    """From scratch (``cfg.arch``, initialised per ``cfg.init``) or from ``cfg.init_from`` with a new head.

    ``source_checkpoint``: the checkpoint ``cfg.init_from`` names, when already read (by
    :func:`source_preprocessing`).
    """
    from cnntool.models.registry import get_entry
    from cnntool.train.initialize import init_weights

    if cfg.finetuning:
        return _finetune_model(cfg, classes, source_checkpoint)
    entry = get_entry(cfg.arch)
    model = entry.build(num_classes=len(classes))
    scheme = init_weights(model, cfg.init)
    return ModelSetup(model, entry.name, entry.head, tuple(entry.input_size), tuple(entry.mean), tuple(entry.std),
                      entry.resize_size, {}, init=scheme)


def _finetune_model(cfg: TrainConfig, classes: list[str], ckpt: dict | None = None) -> ModelSetup:
    from cnntool.models.checkpoint import model_from_checkpoint
    from cnntool.models.registry import load
    from cnntool.models.surgery import replace_head

    # source_preprocessing() checked its task and weights
    loaded = model_from_checkpoint(ckpt, cfg.init_from) if ckpt is not None else load(cfg.init_from)
    if list(loaded.classes) != list(classes):
        replace_head(loaded.model, loaded.entry.head, len(classes))
    arch_kwargs = loaded.checkpoint.get("arch_kwargs", {}) if loaded.checkpoint else {}
    return ModelSetup.from_loaded(loaded, arch_kwargs=arch_kwargs, init="pretrained", source=cfg.init_from)


def make_optimizer(cfg: TrainConfig, model, head: str | None):
    """SGD with Nesterov momentum, or AdamW; decay on weights only; a slower backbone when fine-tuning."""
    import torch

    from cnntool.train.finetune import parameter_groups

    groups = parameter_groups(model, head=head if cfg.finetuning else None, lr=cfg.lr,
                              weight_decay=cfg.weight_decay, backbone_lr_scale=cfg.backbone_lr_scale)
    if not groups:
        raise UsageError("nothing to train: every parameter is frozen", hint="use --freeze none, backbone or N")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warmup from 1/100,
    then cosine decay to 0 (or constant).

    Examples
    --------
    >>> lr_factor(0, total_steps=100, warmup_steps=0, schedule="cosine")
    1.0
    >>> round(lr_factor(50, total_steps=100, warmup_steps=0, schedule="cosine"), 3)
    0.5
    """
    if step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step LambdaLR following :func:`lr_factor`."""
    import functools

    import torch

    total = cfg.epochs * steps_per_epoch
    warmup = min(total // 2, round(cfg.warmup_epochs * steps_per_epoch))
    factor = functools.partial(lr_factor, total_steps=total, warmup_steps=warmup, schedule=cfg.schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def next_run_dir(arch: str, root: str = DEFAULT_RUNS_ROOT) -> Path:
    """``root/<arch>-<n>`` with the smallest ``n >= 1`` not taken yet.

    Examples
    --------
    >>> next_run_dir("lenet5", root="/nonexistent")
    PosixPath('/nonexistent/lenet5-1')
    """
    n = 1
    while (Path(root) / f"{arch}-{n}").exists():
        n += 1
    return Path(root) / f"{arch}-{n}"


# --- RNG state as plain data (weights_only checkpoints) ----------------------------------------

def rng_state() -> dict:
    """torch (CPU and CUDA), NumPy and Python RNG states, as tensors and plain lists."""
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    import torch

    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- the run -----------------------------------------------------------------------------------

@dataclass
class _Run:
    """Everything one training run carries from epoch to epoch."""

    cfg: TrainConfig
    setup: ModelSetup
    data: ClassificationData
    dist: Any
    device: Any
    model: Any              # DDP-wrapped when distributed
    optimizer: Any
    settings: Any           # StepSettings
    train_loader: Any
    val_loader: Any
    out_dir: Path | None    # None on ranks > 0
    machine: dict           # how this machine runs it: device, processes, workers, threads, amp...
    history: list = field(default_factory=list)
    start_epoch: int = 0
    best_accuracy: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_confusion: Any = None

    @property
    def module(self):
        """The plain model (inside DDP)."""
        return getattr(self.model, "module", self.model)

    @property
    def eval_model(self):
        ema = self.settings.ema
        return ema.module if ema is not None else self.module


def train_classifier(cfg: TrainConfig, *, resume: str | None = None, overwrite: bool = False,
                     overrides: dict | None = None, messages=None, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or fine-tune, when ``cfg.init_from`` is set) a classifier; returns the summary.

    Parameters
    ----------
    cfg : TrainConfig
        Ignored when resuming: the run's saved config is used.
    resume : str, optional
        A run folder (or its ``last.pt``) to continue exactly where it stopped.
    overrides : dict, optional
        When resuming: changes to the saved config that keep its recipe, see
        :meth:`TrainConfig.resumed` (machine options such as ``device``, and ``epochs`` to
        extend the run; the cosine schedule is then recomputed for the new length).
    overwrite : bool
        Start over in an ``out`` folder that already holds a run.
    messages : object with ``log``, ``warn``, ``debug``, optional
    on_epoch : callable, optional
        Called with each epoch's record after its checkpoints are written (on rank 0).

    Returns
    -------
    dict
        The summary record (``path`` is the run folder), also written to ``summary.json``.

    Raises
    ------
    UsageError, DatasetError, CheckpointError
        Bad options, data or checkpoints; a GPU out-of-memory error becomes a
        :class:`CnnToolError` with advice.
    """
    from cnntool.train import distributed as D
    from cnntool.device import resolve_device, set_deterministic

    messages = messages or _Silent()
    checkpoint = None
    if resume is not None:
        checkpoint = _load_resume(resume)
        cfg = TrainConfig.from_dict(checkpoint["config"]).resumed(overrides)
    elif overrides:
        raise UsageError("overrides are for resumed runs only", hint="set the options in the TrainConfig")
    cfg.validate()
    device = resolve_device(cfg.device)
    dist = D.init_distributed(device.type)
    device = D.process_device(device, dist)
    set_deterministic(cfg.deterministic)
    started = time.perf_counter()
    run = None
    try:
        run = _prepare(cfg, checkpoint, resume, overwrite, dist, device, messages)
        return _train(run, messages, on_epoch, started)
    except RuntimeError as exc:
        from cnntool.device import is_out_of_memory

        if is_out_of_memory(exc):
            batch = run.cfg.batch_size if run is not None else (cfg.batch_size or DEFAULT_BATCH)
            raise CnnToolError(
                f"out of GPU memory at --batch-size {batch}",
                hint=f"try --batch-size {max(1, batch // 2)}, and keep mixed precision on "
                     "(the default on CUDA; --amp)") from None
        raise
    finally:
        D.shutdown(dist)


def _load_resume(resume: str) -> dict:
    from cnntool.models.checkpoint import load_checkpoint

    path = Path(resume)
    if path.is_dir():
        path = path / LAST
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt or "config" not in ckpt or not ckpt["config"]:
        raise CheckpointError(f"{path} holds no training state to resume from",
                              hint=f"resume from a run folder's {LAST}, written by `cnntool train`")
    if ckpt.get("task") != "classification":
        raise CheckpointError(f"{path} is a {ckpt.get('task')} run; this command trains classifiers")
    ckpt["_path"] = str(path)
    return ckpt


def _prepare(cfg, checkpoint, resume, overwrite, dist, device, messages) -> _Run:
    import torch

    from cnntool.data.loaders import default_loader_workers, make_loader
    from cnntool.train import distributed as D
    from cnntool.device import configure_cpu_threads

    seed_everything(cfg.seed)  # cfg.validate() checked --freeze
    pre = _preprocessing(cfg, checkpoint)
    data = load_classification_data(
        cfg.data, input_size=pre["input_size"], mean=pre["mean"], std=pre["std"],
        resize_size=pre["resize_size"], augment=cfg.aug if cfg.augment else None, val_split=cfg.val_split,
        seed=cfg.seed, cache=cfg.cache, verify=cfg.verify, max_pixels=cfg.max_pixels)
    for path, reason in data.skipped:
        if dist.is_main:
            messages.warn(f"skipped {path}: {reason}")
    if checkpoint is not None and list(checkpoint["classes"]) != data.classes:
        raise CheckpointError(f"the data's classes changed since the run started ({resume})",
                              hint="resume with the same dataset folder")
    cfg = cfg.resolve(train_size=len(data.train), world_size=dist.world_size)
    if not cfg.arch:
        cfg.arch = pre["arch"]

    cached = data.train.cached and data.val.cached
    workers = cfg.workers if cfg.workers is not None else default_loader_workers(
        cached=cached, device_type=device.type, processes=dist.local_world_size)
    threads = None
    if device.type == "cpu":
        threads = configure_cpu_threads(cfg.threads, workers=workers, processes=dist.local_world_size)

    setup = _model_for_run(cfg, data.classes, checkpoint, pre.pop("checkpoint", None))
    model = setup.model.to(device)
    frozen_norms: list = []
    if cfg.finetuning:
        from cnntool.train.finetune import apply_freeze, frozen_norm_layers

        frozen = apply_freeze(model, setup.head, parse_freeze(cfg.freeze))
        frozen_norms = frozen_norm_layers(model)
        if dist.is_main and frozen:
            messages.debug(f"frozen blocks: {', '.join(frozen)}")
    settings = _step_settings(cfg, setup, device)
    settings.frozen_norms = tuple(frozen_norms)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    seed_everything(cfg.seed + dist.rank)  # per-process randomness (mixup, dropout) after a shared init
    optimizer = make_optimizer(cfg, model, setup.head)
    pin = device.type == "cuda"
    train_loader = make_loader(data.train, batch_size=cfg.batch_size, train=True, seed=cfg.seed, workers=workers,
                               rank=dist.rank, world_size=dist.world_size, pin_memory=pin)
    val_loader = make_loader(data.val, batch_size=cfg.batch_size * 2, workers=workers, rank=dist.rank,
                             world_size=dist.world_size, pin_memory=pin)
    settings.scheduler = make_scheduler(optimizer, cfg, len(train_loader))
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        settings.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    wrapped = D.wrap_model(model, device, dist)
    out_dir = _run_dir(cfg, resume, overwrite, setup.arch, dist)
    machine = {"device": str(device), "processes": dist.world_size, "workers": workers, "threads": threads,
               "amp": settings.amp, "channels_last": settings.channels_last, "cached": cached}
    run = _Run(cfg, setup, data, dist, device, wrapped, optimizer, settings, train_loader, val_loader, out_dir,
               machine)
    if checkpoint is not None:
        _restore(run, checkpoint)
    return run


def _preprocessing(cfg: TrainConfig, checkpoint) -> dict:
    if checkpoint is not None:
        return checkpoint_preprocessing(checkpoint)
    return source_preprocessing(cfg)


def _model_for_run(cfg: TrainConfig, classes: list[str], checkpoint, source_checkpoint=None) -> ModelSetup:
    if checkpoint is None:
        return build_model(cfg, classes, source_checkpoint=source_checkpoint)
    from cnntool.models.checkpoint import model_from_checkpoint

    loaded = model_from_checkpoint(checkpoint, checkpoint["_path"])  # _load_resume checked its task
    return ModelSetup.from_loaded(loaded, arch_kwargs=checkpoint.get("arch_kwargs", {}),
                                  init=checkpoint.get("init", "resumed"), source=checkpoint.get("finetuned_from"))


def _step_settings(cfg: TrainConfig, setup: ModelSetup, device):
    import functools

    import torch
    import torch.nn.functional as F

    from cnntool.train.augment import Mixer
    from cnntool.device import amp_dtype, use_amp, use_channels_last
    from cnntool.train.loop import StepSettings

    amp = use_amp(device, cfg.amp)
    scaler = None
    if amp and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    mixer = Mixer(cfg.mixup, cfg.cutmix)
    return StepSettings(
        device=device, mean=setup.mean, std=setup.std,
        loss_fn=functools.partial(F.cross_entropy, label_smoothing=cfg.label_smoothing),
        amp=amp, amp_dtype=amp_dtype(device) if amp else None,
        channels_last=use_channels_last(device, cfg.channels_last),
        scaler=scaler, grad_clip=cfg.grad_clip, mixer=mixer if mixer.active else None)


def _run_dir(cfg: TrainConfig, resume, overwrite: bool, arch: str, dist) -> Path | None:
    """Rank 0 decides and creates the run folder (other ranks write nothing, and get None);
    an error there stops every process."""
    from cnntool.train import distributed as D

    result: Any = None
    if dist.is_main:
        try:
            result = _make_run_dir(cfg, resume, overwrite, arch)
        except UsageError as exc:
            result = exc
    failure = D.broadcast_object(result if isinstance(result, UsageError) else None, dist)
    if failure is not None:
        raise failure
    return result


def _make_run_dir(cfg: TrainConfig, resume, overwrite: bool, arch: str) -> Path:
    if resume is not None:
        path = Path(resume)
        return path.parent if path.is_file() else path
    out = Path(cfg.out) if cfg.out else next_run_dir(arch)
    if (out / LAST).exists() and not overwrite:
        raise UsageError(f"{out} already holds a training run",
                         hint=f"continue it with --resume {out}, start over with --overwrite, or pick another -o")
    out.mkdir(parents=True, exist_ok=True)
    cfg.out = str(out)
    return out


def _restore(run: _Run, ckpt: dict) -> None:
    run.optimizer.load_state_dict(ckpt["optimizer"])
    scheduler = run.settings.scheduler
    scheduler.load_state_dict(ckpt["scheduler"])  # the step count; the schedule's length is this run's
    if run.cfg.epochs != (ckpt.get("config") or {}).get("epochs"):
        # --epochs extended the run: the learning rate follows the schedule recomputed for the
        # new length from the current step on (not the old one's end value, about 0 for cosine)
        for group, base, factor in zip(run.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
    if run.settings.scaler is not None and ckpt.get("scaler"):
        run.settings.scaler.load_state_dict(ckpt["scaler"])
    if run.settings.ema is not None and ckpt.get("ema_state_dict") is not None:
        run.settings.ema.load_state_dict(ckpt["ema_state_dict"])
    state = ckpt.get("train_state", {})
    run.history = list(state.get("history", []))
    run.start_epoch = int(ckpt.get("epoch") or 0)
    run.best_accuracy = float(state.get("best_accuracy", -1.0))
    run.best_loss = float(state.get("best_loss", math.inf))
    run.best_epoch = int(state.get("best_epoch", 0))
    run.bad_epochs = int(state.get("bad_epochs", 0))
    if state.get("best_confusion") is not None:
        run.best_confusion = np.asarray(state["best_confusion"], np.int64)
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])


def _train(run: _Run, messages, on_epoch, started: float) -> dict:
    from cnntool.train import distributed as D
    from cnntool.train.loop import evaluate, train_one_epoch

    cfg, dist = run.cfg, run.dist
    if dist.is_main:
        atomic_write_json(run.out_dir / CONFIG_JSON, {**cfg.to_dict(), "machine": run.machine})
        messages.log(_describe_start(run))
    training = time.perf_counter()
    stopped_early = False
    for epoch in range(run.start_epoch, cfg.epochs):
        run.train_loader.sampler.set_epoch(epoch)
        run.data.train.set_epoch(epoch)
        trained = train_one_epoch(run.model, run.train_loader, run.optimizer, run.settings)
        validated = evaluate(run.eval_model, run.val_loader, run.settings, num_classes=len(run.data.classes),
                             dist=dist)
        record = _epoch_record(run, epoch + 1, trained, validated)
        improved = _track_best(run, record, validated)
        if dist.is_main:
            _save_epoch(run, record, improved)
            messages.log(_describe_epoch(record, cfg.epochs))
            if on_epoch is not None:
                on_epoch(record)
        if cfg.patience is not None and run.bad_epochs >= cfg.patience:
            stopped_early = D.any_process(True, dist, run.device)
            if dist.is_main:
                messages.log(f"stopping early: no better validation accuracy for {cfg.patience} epochs")
            break
    timing = {"seconds": time.perf_counter() - started, "train_seconds": time.perf_counter() - training}
    return _finish(run, timing, stopped_early, messages)


def _epoch_record(run: _Run, epoch: int, trained: dict, validated: dict) -> dict:
    from cnntool.train import distributed as D

    if run.dist.enabled:  # all processes together: sums of loss, correct answers and images
        import torch

        n = float(trained["images"])
        sums = torch.tensor([trained["loss"] * n, trained["accuracy"] * n, n], dtype=torch.float64,
                            device=run.device)
        loss_sum, correct, images = D.all_reduce_sum(sums, run.dist).tolist()
        trained = {**trained, "loss": loss_sum / max(1.0, images), "accuracy": correct / max(1.0, images),
                   "images": images}
    images_per_s = trained["images"] / trained["seconds"] if trained["seconds"] > 0 else 0.0
    return {
        "epoch": epoch,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "train_loss": trained["loss"],
        "train_accuracy": trained["accuracy"],
        "val_loss": validated["loss"],
        "val_accuracy": validated["accuracy"],
        "train_images_per_s": images_per_s,
        "epoch_seconds": trained["seconds"] + validated["seconds"],
        "best": False,
    }


def _track_best(run: _Run, record: dict, validated: dict) -> bool:
    better = (record["val_accuracy"] > run.best_accuracy
              or (record["val_accuracy"] == run.best_accuracy and record["val_loss"] < run.best_loss))
    if better:
        run.best_accuracy, run.best_loss, run.best_epoch = record["val_accuracy"], record["val_loss"], record["epoch"]
        run.bad_epochs = 0
        run.best_confusion = validated["confusion"]
        record["best"] = True
    else:
        run.bad_epochs += 1
    return better


def _checkpoint(run: _Run, model, metrics: dict, epoch: int, **extra) -> dict:
    from cnntool.models.checkpoint import make_checkpoint

    s = run.setup
    if s.source is not None:
        extra["finetuned_from"] = s.source
    return make_checkpoint(model, arch=s.arch, task="classification", classes=run.data.classes,
                           input_size=s.input_size, mean=s.mean, std=s.std, resize_size=s.resize_size,
                           arch_kwargs=s.arch_kwargs, config=run.cfg.to_dict(), metrics=metrics, epoch=epoch,
                           init=s.init, **extra)


def _save_epoch(run: _Run, record: dict, improved: bool) -> None:
    from cnntool.models.checkpoint import save_checkpoint

    run.history.append(record)
    settings = run.settings
    if improved:
        save_checkpoint(run.out_dir / BEST, _checkpoint(run, run.eval_model, record, record["epoch"]))
    train_state = {"history": run.history, "best_accuracy": run.best_accuracy, "best_loss": run.best_loss,
                   "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
                   "best_confusion": None if run.best_confusion is None else run.best_confusion.tolist()}
    last = _checkpoint(
        run, run.module, record, record["epoch"],
        optimizer=run.optimizer.state_dict(), scheduler=settings.scheduler.state_dict(),
        scaler=settings.scaler.state_dict() if settings.scaler is not None else None,
        ema_state_dict=settings.ema.state_dict() if settings.ema is not None else None,
        rng=rng_state(), train_state=train_state)
    save_checkpoint(run.out_dir / LAST, last)
    _write_metrics(run.out_dir, run.history)


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    from cnntool.data.writers import atomic_write_text

    atomic_write_text(out_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EPOCH_FIELDS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / METRICS_CSV, buf.getvalue())


def _finish(run: _Run, timing: dict, stopped_early: bool, messages) -> dict:
    from cnntool.train.loop import evaluate

    cfg, dist = run.cfg, run.dist
    test = None
    if run.data.test is not None:
        _load_best(run)
        from cnntool.data.loaders import make_loader

        loader = make_loader(run.data.test, batch_size=cfg.batch_size * 2, workers=run.machine["workers"],
                             rank=dist.rank, world_size=dist.world_size)
        test = evaluate(run.eval_model, loader, run.settings, num_classes=len(run.data.classes), dist=dist)
    if not dist.is_main:
        return {}
    from cnntool.train.plots import plot_confusion, plot_learning_curves

    plot_learning_curves(run.history, run.out_dir / CURVES_PNG)
    if run.best_confusion is not None:
        plot_confusion(run.best_confusion, run.data.classes, run.out_dir / CONFUSION_PNG,
                       title=f"validation, epoch {run.best_epoch}")
    last = run.history[-1] if run.history else {}
    rates = [r["train_images_per_s"] for r in run.history]
    summary = {
        "path": str(run.out_dir),
        "arch": run.setup.arch,
        "classes": len(run.data.classes),
        "train_images": len(run.data.train),
        "val_images": len(run.data.val),
        "split": run.data.split,
        "epochs": len(run.history),
        "best_epoch": run.best_epoch,
        "best_val_accuracy": run.best_accuracy,
        "val_accuracy": last.get("val_accuracy"),
        "val_loss": last.get("val_loss"),
        "train_loss": last.get("train_loss"),
        "test_accuracy": test["accuracy"] if test else None,
        "train_images_per_s": float(np.mean(rates)) if rates else None,
        "seconds": timing["seconds"],             # data loading, training, validation
        "train_seconds": timing["train_seconds"],   # the epochs only
        "stopped_early": stopped_early,
        "device": str(run.device),
        "processes": dist.world_size,
        "checkpoint": str(run.out_dir / BEST),
        "skipped": len(run.data.skipped),
        "skipped_files": [{"path": p, "error": r} for p, r in run.data.skipped],
    }
    if run.setup.source is not None:
        summary["finetuned_from"] = run.setup.source
    atomic_write_json(run.out_dir / SUMMARY_JSON, summary)
    messages.log(f"best val accuracy {run.best_accuracy:.4f} at epoch {run.best_epoch}; "
                 f"checkpoints in {run.out_dir}")
    return summary


def _load_best(run: _Run) -> None:
    """Load best.pt's weights into the evaluation model (for the test set)."""
    from cnntool.models.checkpoint import load_checkpoint
    from cnntool.train import distributed as D

    path = D.broadcast_object(str(run.out_dir / BEST) if run.dist.is_main else None, run.dist)
    state = load_checkpoint(path)["state_dict"]
    run.eval_model.load_state_dict(state)


def _describe_start(run: _Run) -> str:
    cfg, data = run.cfg, run.data
    parts = [f"training {run.setup.arch} on {len(data.train)} images, validating on {len(data.val)} "
             f"({len(data.classes)} classes, {data.split})",
             f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, device {run.device}"]
    if run.dist.enabled:
        parts.append(f"{run.dist.world_size} processes")
    if data.skipped:
        parts.append(f"{len(data.skipped)} images skipped")
    return "; ".join(parts)


def _describe_epoch(record: dict, epochs: int) -> str:
    mark = " *" if record["best"] else ""
    return (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.4f}, val loss {record['val_loss']:.4f} "
            f"acc {record['val_accuracy']:.4f}, {record['train_images_per_s']:.0f} img/s{mark}")
