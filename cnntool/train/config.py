"""The training recipe as one dataclass: every option of ``cnntool train`` / ``finetune``, with
the defaults the lectures' recipe suggests. The resolved config (``None`` filled in, by the task's
own recipe where it has one) is saved in the run folder (``config.json``) and in every
checkpoint, and ``--resume`` reads it back. The command line's options are declared from these
fields (:data:`FLAGS` names the flag of every field; a test checks each has one).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from cnntool.data.transforms import GEOMETRY_DEFAULTS, AugmentConfig
from cnntool.errors import UsageError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant", "step", "plateau")
BALANCE = ("none", "weights", "sampler")
INITS = ("auto", "kaiming", "xavier", "torch")
CACHE_CHOICES = ("auto", "on", "off")

#: Optimiser steps the automatic epoch count aims for (``epochs=None``): enough for a small
#: dataset to converge under augmentation, bounded by MIN_/MAX_AUTO_EPOCHS.
AUTO_EPOCH_STEPS = 1500
MIN_AUTO_EPOCHS = 10
MAX_AUTO_EPOCHS = 60

#: The reference batch size of the default learning rates (scaled linearly for other sizes).
REFERENCE_BATCH = 64

#: Automatic batch size (``batch_size=None``): DEFAULT_BATCH, or for small datasets the largest
#: power of two that still gives MIN_STEPS_PER_EPOCH steps an epoch, at least MIN_AUTO_BATCH.
DEFAULT_BATCH = 64
MIN_AUTO_BATCH = 16
MIN_STEPS_PER_EPOCH = 8

#: Options that choose how this machine runs a training, not what it computes: ``--resume``
#: takes them (a run started on a GPU can go on on a CPU-only machine).
MACHINE_OPTIONS = ("device", "amp", "channels_last", "workers", "threads", "cache", "tensorboard")

#: The hint of every refusal to change a resumed run's recipe.
RESUME_HINT = "a resumed run keeps its recipe; start a new run to change it"

#: What :meth:`TrainConfig.resolve` gives augmentation options left at None when the task's recipe
#: does not name them: the classification recipe (no flips, zoom in [0.9, 1.1]).
AUG_DEFAULTS = {"hflip": False, **GEOMETRY_DEFAULTS}

#: Written into every saved config: 2 since those options' defaults depend on the task (a config
#: without it holds the classification defaults whatever the task; see ``_legacy_aug``).
AUG_VERSION = 2


#: Config fields whose flag is not ``--field-name``.
FLAGS = {"init_from": "--from", "cache": "--cache-images", "aug": "--rotate, --shift, --zoom, --shear, --crop-scale, "
         "--hflip, --vflip, --color-jitter, --auto-augment, --erasing", "arch_kwargs": "--arch-arg"}


def flag_name(name: str, value=None) -> str:
    """The command-line flag of a config field, as the user typed it.

    Examples
    --------
    >>> flag_name("init_from"), flag_name("label_smoothing"), flag_name("hflip", False)
    ('--from', '--label-smoothing', '--no-hflip')
    """
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    return flag.replace("--", "--no-", 1) if value is False else flag

@dataclass
class TrainConfig:
    """Everything that decides a training run. ``None`` means "choose for me" (see :meth:`resolve`).

    Examples
    --------
    >>> cfg = TrainConfig(data="samples/digits", arch="lenet5").resolve(train_size=1437)
    >>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer
    (60, 64, 0.05, 'sgd')
    """

    # what to train ------------------------------------------------------------------------------
    data: str = ""                        # dataset root: class folders, or train/ val/ (test/) folders
    task: str | None = None               # classification | detection | segmentation | video; None: from the model or the data
    arch: str = ""                        # registry name (train); the source's arch (finetune); "" : the task's default
    arch_kwargs: dict = field(default_factory=dict)  # builder options, e.g. {"depth": 5} for unet
    init_from: str | None = None          # finetune: NAME[:WEIGHTS] or a checkpoint path
    imgsz: tuple[int, int] | None = None  # (H, W) model input; None: the model's own
    out: str | None = None                # run folder; None: runs/<arch>-<n>
    val_split: float = 0.2                # validation fraction when DATA has no val/ folder (stratified, seeded)
    # schedule and optimiser ---------------------------------------------------------------------
    epochs: int | None = None             # None: about AUTO_EPOCH_STEPS steps, 10..60 epochs
    batch_size: int | None = None         # per process; None: 64, smaller for small datasets (>= 8 steps an epoch)
    optimizer: str | None = None          # sgd (Nesterov momentum) | adamw; None: the task's (sgd for classification)
    lr: float | None = None               # None: sgd 0.05 (train) / 0.01 (finetune), adamw 1e-3, x batch/64 for sgd
    momentum: float = 0.9                 # sgd momentum (adamw: beta1)
    weight_decay: float | None = None     # None: sgd 5e-4, adamw 0.05; never on biases and norm layers
    schedule: str = "cosine"              # cosine decay to 0 | constant | step (x gamma every lr_step epochs) | plateau (x gamma after plateau_patience epochs without a better best metric)
    lr_step: int = 30                     # step schedule: epochs between decays
    gamma: float = 0.1                    # step/plateau: the decay factor
    plateau_patience: int = 3             # plateau: epochs without improvement before a decay
    warmup_epochs: float = 1.0            # linear warmup from lr/100 (fractions of an epoch allowed)
    accumulate: int = 1                   # optimiser step every N batches (effective batch N x batch_size)
    label_smoothing: float = 0.1          # soft targets: 1 - eps on the class, eps spread over all
    dice_weight: float = 0.0              # segmentation: add this x a soft Dice loss to the cross-entropy; 0: off
    balance: str = "none"                 # skewed classes: none | weights (loss weights ~ 1/frequency) | sampler (class-balanced sampling)
    mixup: float = 0.0                    # Beta(alpha, alpha) mixup; 0: off (try 0.2)
    cutmix: float = 0.0                   # Beta(alpha, alpha) cutmix; 0: off (try 1.0); with mixup, one per batch
    grad_clip: float | None = None        # clip the gradient norm to this; None: no clipping
    patience: int | None = None           # stop after this many epochs without a better val accuracy; None: never
    ema: float | None = None              # keep an exponential moving average of weights (e.g. 0.999); evaluate it
    init: str = "auto"                    # from scratch: auto (Kaiming for ReLU nets, Xavier for tanh/sigmoid nets) | kaiming | xavier | torch
    # augmentation -------------------------------------------------------------------------------
    augment: bool = True                  # random distortions of training images (below)
    aug: AugmentConfig = field(default_factory=AugmentConfig)   # rotate 10, shift 0.1, zoom 0.1, shear 5; no flips
    # fine-tuning --------------------------------------------------------------------------------
    freeze: str = "none"                  # none | backbone (train the head only) | N (the head and the last N blocks)
    backbone_lr_scale: float = 0.1        # backbone learning rate = lr x this (the new head learns at lr)
    # machine ------------------------------------------------------------------------------------
    device: str = "auto"                  # auto | cpu | cuda | cuda:N | mps
    amp: bool | None = None               # mixed precision; None: on for CUDA
    channels_last: bool | None = None     # NHWC layout; None: on for CUDA and the CPU
    workers: int | None = None            # DataLoader workers; None: 0 for cached data, else by cores
    threads: int | None = None            # CPU compute threads; None: physical cores / processes - workers
    cache: str = "auto"                   # keep decoded images in memory: auto (when they fit in 2 GiB) | on | off
    verify: bool = True                   # decode every image once up front, skipping corrupt ones
    max_pixels: int | None = None         # refuse larger images (decompression bombs); None: cnntool's default
    seed: int = 0                         # every random choice (init, order, augmentation) follows it
    deterministic: bool = False           # deterministic GPU kernels (slower); the CPU is deterministic already
    tensorboard: bool = False             # also write TensorBoard event files to <run>/tensorboard

    # --------------------------------------------------------------------------------------------
    @property
    def finetuning(self) -> bool:
        return self.init_from is not None

    def validate(self) -> "TrainConfig":
        """Check option values and ranges; :class:`UsageError` naming the flag otherwise."""
        if self.task is not None:
            from cnntool.models.tasks import canonical_task

            self.task = canonical_task(self.task)
        if self.optimizer is not None:
            _choice(self.optimizer, OPTIMIZERS, "--optimizer")
        _choice(self.schedule, SCHEDULES, "--schedule")
        _choice(self.balance, BALANCE, "--balance")
        _number(self.gamma, "--gamma", low=0.0, high=1.0, low_open=True)
        _choice(self.init, INITS, "--init")
        _choice(self.cache, CACHE_CHOICES, "--cache-images")
        _number(self.val_split, "--val-split", low=0.0, high=1.0, low_open=True, high_open=True)
        _number(self.label_smoothing, "--label-smoothing", low=0.0, high=1.0, high_open=True)
        _number(self.dice_weight, "--dice-weight", low=0.0)
        _number(self.lr, "--lr", low=0.0, optional=True)
        _number(self.weight_decay, "--weight-decay", low=0.0, optional=True)
        _number(self.momentum, "--momentum", low=0.0, high=1.0, high_open=True)
        _number(self.warmup_epochs, "--warmup-epochs", low=0.0)
        _number(self.mixup, "--mixup", low=0.0)
        _number(self.cutmix, "--cutmix", low=0.0)
        _number(self.grad_clip, "--grad-clip", low=0.0, low_open=True, optional=True)
        _number(self.ema, "--ema", low=0.0, high=1.0, low_open=True, high_open=True, optional=True)
        _number(self.backbone_lr_scale, "--backbone-lr-scale", low=0.0)
        for name, value in (("epochs", self.epochs), ("batch_size", self.batch_size), ("patience", self.patience),
                            ("accumulate", self.accumulate), ("workers", self.workers), ("threads", self.threads),
                            ("lr_step", self.lr_step), ("plateau_patience", self.plateau_patience)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < (0 if name == "workers" else 1)):
                raise UsageError(f"{flag_name(name)} must be a whole number >= {0 if name == 'workers' else 1}, "
                                 f"not {value!r}")
        if self.imgsz is not None and (len(self.imgsz) != 2 or min(self.imgsz) < 8 or max(self.imgsz) > 4096):
            raise UsageError(f"--imgsz {self.imgsz} is out of range", hint="sides from 8 to 4096 pixels, e.g. 224")
        if not isinstance(self.arch_kwargs, dict):
            raise UsageError("--arch-arg takes KEY=VALUE pairs")
        for name in ("rotate", "shift", "zoom", "shear", "brightness", "contrast", "saturation", "erasing"):
            _number(getattr(self.aug, name), flag_name(name) if name not in ("brightness", "contrast", "saturation")
                    else "--color-jitter", low=0.0, optional=name in ("rotate", "shift", "zoom", "shear"))
        if self.aug.zoom is not None and self.aug.zoom >= 1.0:
            raise UsageError(f"--zoom must be below 1 (a scale in [1 - zoom, 1 + zoom]), not {self.aug.zoom}")
        from cnntool.data.transforms import POLICIES

        _choice(self.aug.policy, POLICIES, "--auto-augment")
        if self.aug.erasing > 1.0:
            raise UsageError(f"--erasing is a probability in [0, 1], not {self.aug.erasing}")
        parse_freeze(self.freeze)
        return self

    def check_task(self, task) -> None:
        """Refuse options the task does not use (``task.ignores``): a flag that would do nothing
        is an error, not a silent no-op."""
        defaults = TrainConfig()
        recipe = getattr(task, "recipe", None) or {}
        given = [name for name in getattr(task, "ignores", ()) if _differs(self, defaults, name, recipe)]
        if given:
            flags = ", ".join(flag_name(n) if n in FIELD_NAMES else _aug_flag(n) for n in given)
            raise UsageError(f"{flags} does nothing when training {task.name}",
                             hint="leave it out; see `cnntool train --help` for the options of each task")

    def resolved_aug(self, defaults: dict | None = None) -> AugmentConfig:
        """The augmentation with every option left None filled: from ``defaults`` (a task's
        recipe) first, then :data:`AUG_DEFAULTS`. A task builds its transforms from this, so it
        sees its own defaults whether or not the config was resolved yet.

        Examples
        --------
        >>> a = TrainConfig().resolved_aug({"zoom": 0.0, "hflip": True})
        >>> a.zoom, a.hflip, a.rotate
        (0.0, True, 10.0)
        """
        names = {f.name for f in dataclasses.fields(AugmentConfig)}
        filled = {**AUG_DEFAULTS, **{k: v for k, v in (defaults or {}).items() if k in names}}
        return dataclasses.replace(self.aug, **{k: v for k, v in filled.items() if getattr(self.aug, k) is None})

    def resolve(self, *, train_size: int, world_size: int = 1, defaults: dict | None = None) -> "TrainConfig":
        """A copy with every ``None`` default replaced by its value for this dataset.

        ``train_size`` is the number of training images, ``world_size`` the number of
        processes (the global batch is ``batch_size * world_size``). ``defaults`` (a task's
        recipe) fill ``None`` fields first (``{"optimizer": "adamw", "lr": 2e-3, "epochs": 40}``;
        augmentation options too, ``{"hflip": True, "zoom": 0.0}``), then :data:`AUG_DEFAULTS`
        the augmentation options still None.

        Examples
        --------
        >>> TrainConfig().resolve(train_size=100).aug.zoom
        0.1
        >>> TrainConfig().resolve(train_size=100, defaults={"zoom": 0.0}).aug.zoom
        0.0
        >>> cfg = TrainConfig(aug=AugmentConfig(zoom=0.1))  # given: the recipe does not replace it
        >>> cfg.resolve(train_size=100, defaults={"zoom": 0.0}).aug.zoom
        0.1
        """
        cfg = dataclasses.replace(self, aug=self.resolved_aug(defaults))
        for name, value in (defaults or {}).items():
            if name in FIELD_NAMES and getattr(cfg, name) is None:
                setattr(cfg, name, value)
        if cfg.optimizer is None:
            cfg.optimizer = "sgd"
        if cfg.batch_size is None:
            cfg.batch_size = auto_batch_size(train_size // max(1, world_size))
        global_batch = cfg.batch_size * world_size
        if cfg.epochs is None:
            steps_per_epoch = max(1, math.ceil(train_size / global_batch))
            cfg.epochs = int(min(MAX_AUTO_EPOCHS, max(MIN_AUTO_EPOCHS, round(AUTO_EPOCH_STEPS / steps_per_epoch))))
        if cfg.lr is None:
            if cfg.optimizer == "sgd":
                base = 0.01 if cfg.finetuning else 0.05
                cfg.lr = base * global_batch / REFERENCE_BATCH
            else:
                cfg.lr = 1e-4 if cfg.finetuning else 1e-3
        if cfg.weight_decay is None:
            cfg.weight_decay = 5e-4 if cfg.optimizer == "sgd" else 0.05
        return cfg

    def to_dict(self) -> dict:
        """Plain data (for config.json and checkpoints), marked with :data:`AUG_VERSION`."""
        d = dataclasses.asdict(self)
        d["aug_version"] = AUG_VERSION
        if d["aug"]["crop_scale"] is not None:
            d["aug"]["crop_scale"] = list(d["aug"]["crop_scale"])
        d["aug"]["crop_ratio"] = list(d["aug"]["crop_ratio"])
        if d["imgsz"] is not None:
            d["imgsz"] = list(d["imgsz"])
        return d

    def resumed(self, overrides: dict | None = None) -> "TrainConfig":
        """This (saved) config for ``--resume``, with ``overrides`` applied.

        ``overrides`` may hold the :data:`MACHINE_OPTIONS` (they replace the saved values),
        ``epochs`` (at least the saved number: it extends the run, and the learning-rate schedule
        is recomputed for the new length, as if the run had been planned that long), and
        ``data`` (only the same folder, e.g. given again on the command line). Anything else
        changes the recipe: :class:`UsageError` naming it.

        Examples
        --------
        >>> TrainConfig(data="d", arch="lenet5", epochs=2).resumed({"epochs": 3, "device": "cpu"}).epochs
        3
        """
        import os

        cfg = dataclasses.replace(self, aug=dataclasses.replace(self.aug))
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name in MACHINE_OPTIONS:
                setattr(cfg, name, value)
            elif name == "epochs":
                if cfg.epochs is not None and value < cfg.epochs:
                    raise UsageError(f"--epochs {value} is fewer than the resumed run's {cfg.epochs}",
                                     hint="--epochs can only extend a resumed run; start a new run to shorten it")
                cfg.epochs = value
            elif name == "data":
                if os.path.realpath(str(value)) != os.path.realpath(cfg.data):
                    raise UsageError(f"DATA {value} is not the resumed run's dataset {cfg.data}", hint=RESUME_HINT)
            else:
                raise UsageError(f"{flag_name(name, value)} cannot be changed on a resumed run", hint=RESUME_HINT)
        return cfg.validate()

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The inverse of :meth:`to_dict`; unknown keys (from a newer cnntool) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("imgsz"), list):
            values["imgsz"] = tuple(values["imgsz"])
        aug = dict(values.pop("aug", {}) or {})
        aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
        aug = {k: (tuple(v) if isinstance(v, list) else v) for k, v in aug.items() if k in aug_known}
        if data.get("aug_version") is None:  # saved before the per-task defaults: see _legacy_aug
            aug = _legacy_aug(aug)
        return cls(**values, aug=AugmentConfig(**aug))


def _legacy_aug(aug: dict) -> dict:
    """Augmentation saved before :data:`AUG_VERSION` 2, made to mean what it did then.

    Such configs hold the classification defaults (rotate 10, shift 0.1, zoom 0.1, shear 5, no
    flips) whatever the task, and detection and segmentation ignored them. A value equal to that
    default becomes None ("not given"), so that resolving the config for its task gives what the
    run trained with: classification and video the same numbers, segmentation flips and no warp,
    detection no zoom-out. Other values were given by the user (and only classification and
    video took them) and are kept.

    Examples
    --------
    >>> _legacy_aug({"rotate": 10.0, "shift": 0.2, "zoom": 0.1, "hflip": False})
    {'rotate': None, 'shift': 0.2, 'zoom': None, 'hflip': None}
    """
    return {k: (None if k in AUG_DEFAULTS and v == AUG_DEFAULTS[k] else v) for k, v in aug.items()}


def auto_batch_size(train_size: int) -> int:
    """DEFAULT_BATCH, or less for a small dataset so that an epoch has MIN_STEPS_PER_EPOCH steps
    (a power of two, at least MIN_AUTO_BATCH): 150 images train in batches of 16.

    Examples
    --------
    >>> auto_batch_size(1437), auto_batch_size(150), auto_batch_size(20)
    (64, 16, 16)
    """
    batch = DEFAULT_BATCH
    while batch > MIN_AUTO_BATCH and train_size < batch * MIN_STEPS_PER_EPOCH:
        batch //= 2
    return batch


def parse_freeze(text: str) -> str | int:
    """``none`` | ``backbone`` | a number of blocks N >= 0 (as int).

    Examples
    --------
    >>> parse_freeze("2"), parse_freeze("backbone")
    (2, 'backbone')
    """
    value = str(text).strip().lower()
    if value in ("none", "backbone"):
        return value
    if value.isdigit():
        return int(value)
    raise UsageError(f"bad --freeze {text!r}",
                     hint="use none (train everything), backbone (train the head only), or N (the last N blocks)")


def _choice(value: str, choices: tuple[str, ...], flag: str) -> None:
    if value not in choices:
        from cnntool.errors import unknown_choice

        raise unknown_choice(flag, value, choices)


def _number(value, flag: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, optional: bool = False) -> None:
    """A finite number in range, else :class:`UsageError` naming the flag and the range."""
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise UsageError(f"{flag} must be a number {' and '.join(x for x in (lo, hi) if x)}, not {value!r}")


def _differs(cfg: "TrainConfig", defaults: "TrainConfig", name: str, recipe: dict | None = None) -> bool:
    """Whether ``name`` was given: it differs from its default, and (an augmentation option whose
    default is None) from the value :meth:`TrainConfig.resolve` gives it for the task of ``recipe``,
    which a saved (resolved) config holds when resumed."""
    if name in FIELD_NAMES:
        return getattr(cfg, name) != getattr(defaults, name)
    value, default = getattr(cfg.aug, name), getattr(defaults.aug, name)
    if default is None and name in AUG_DEFAULTS:
        return value is not None and value != (recipe or {}).get(name, AUG_DEFAULTS[name])
    return value != default


def _aug_flag(name: str) -> str:
    return {"brightness": "--color-jitter", "contrast": "--color-jitter", "saturation": "--color-jitter",
            "crop_scale": "--crop-scale", "policy": "--auto-augment"}.get(name, "--" + name.replace("_", "-"))


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))
