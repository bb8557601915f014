"""Train or fine-tune a model for any task: the run folder, resume, and the epoch loop.

:func:`train` is what ``cnntool train`` and ``cnntool finetune`` call, for every task; the task's
plug-in (:mod:`cnntool.train.tasks`) brings its data, step and evaluator. It prints nothing:
messages go to the ``messages`` object (anything with ``log``, ``warn`` and ``debug``, like
:class:`cnntool.cli._output.Output`) and each epoch's record to ``on_epoch``.

The run folder holds::

    best.pt        checkpoint with the best validation value of the task's metric (ties: the
                   task's tie-breaker, e.g. the lower validation loss)
    last.pt        checkpoint after the last finished epoch, with the training state for --resume
    config.json    the resolved configuration, and under "machine" how this machine ran it
                   (device, processes, loader workers, threads, amp, channels_last, cached)
    metrics.csv    one row per epoch (same fields as metrics.jsonl)
    metrics.jsonl  one record per epoch
    curves.png     every tracked measure per epoch (loss, accuracy, mIoU, mAP...)
    *.png          the task's figures of the best validation result (confusion.png...)
    summary.json   the final summary (also the record ``cnntool train`` prints)
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnntool.data.writers import atomic_write_json
from cnntool.errors import CheckpointError, CnnToolError, UsageError
from cnntool.train.config import DEFAULT_BATCH, TrainConfig, parse_freeze
from cnntool.train.setup import ModelSetup, build_model, resumed_model, source_preprocessing
from cnntool.train.state import load_resume, restore_rng, rng_state, seed_everything

BEST = "best.pt"
LAST = "last.pt"
CONFIG_JSON = "config.json"
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
CURVES_PNG = "curves.png"
SUMMARY_JSON = "summary.json"
TENSORBOARD_DIR = "tensorboard"

#: Where runs go without ``--out``: ``runs/<arch>-<n>``.
DEFAULT_RUNS_ROOT = "runs"

#: A training loss this many times the first epoch's (and over EXPLODED_MIN) has exploded.
EXPLODED_FACTOR = 1000.0
EXPLODED_MIN = 1e4


class _Silent:
    def log(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


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


# --- the run -----------------------------------------------------------------------------------

@dataclass
class _Run:
    """Everything one training run carries from epoch to epoch."""

    cfg: TrainConfig
    task: Any
    setup: ModelSetup
    data: Any               # TaskData
    dist: Any
    device: Any
    model: Any              # DDP-wrapped when distributed
    optimizer: Any
    settings: Any           # StepSettings
    step: Any               # the task's step function
    train_loader: Any
    val_loader: Any
    out_dir: Path | None    # None on ranks > 0
    machine: dict           # how this machine runs it: device, processes, workers, threads, amp...
    history: list = field(default_factory=list)
    start_epoch: int = 0
    best_value: float = -math.inf
    best_tie: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_result: dict = field(default_factory=dict)   # the best validation result (the task's figures)
    tensorboard: Any = None  # SummaryWriter with --tensorboard

    @property
    def module(self):
        """The plain model (inside DDP)."""
        return getattr(self.model, "module", self.model)

    @property
    def eval_model(self):
        ema = self.settings.ema
        return ema.module if ema is not None else self.module


def train(cfg: TrainConfig, *, resume: str | None = None, overwrite: bool = False, overrides: dict | None = None,
          messages=None, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or fine-tune, when ``cfg.init_from`` is set) a model for ``cfg.task``; returns the summary.

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
        :class:`CnnToolError` with advice; a diverging loss a ``TrainingDiverged`` (exit 1).
    """
    from cnntool.device import resolve_device, set_deterministic
    from cnntool.train import distributed as D

    messages = messages or _Silent()
    checkpoint = None
    if resume is not None:
        checkpoint = load_resume(resume, LAST)
        cfg = TrainConfig.from_dict(checkpoint["config"]).resumed(overrides)
    elif overrides:
        raise UsageError("overrides are for resumed runs only", hint="set the options in the TrainConfig")
    cfg.validate()
    from cnntool.train.tasks import get_task, infer_task

    if checkpoint is not None:
        cfg.task = checkpoint["task"]
    cfg.task = infer_task(cfg)
    task = get_task(cfg.task)
    if not cfg.arch and not cfg.finetuning:
        if not getattr(task, "default_arch", None):
            raise UsageError(f"--arch is required for {task.name}",
                             hint="e.g. cnntool train DATA --arch lenet5 (see `cnntool models list`)")
        cfg.arch = task.default_arch
    cfg.check_task(task)
    device = resolve_device(cfg.device)
    dist = D.init_distributed(device.type)
    device = D.process_device(device, dist)
    set_deterministic(cfg.deterministic)
    started = time.perf_counter()
    run = None
    try:
        run = _prepare(cfg, task, checkpoint, resume, overwrite, dist, device, messages)
        return _fit(run, messages, on_epoch, started)
    except RuntimeError as exc:
        from cnntool.device import is_out_of_memory

        if is_out_of_memory(exc):
            batch = run.cfg.batch_size if run is not None else (cfg.batch_size or DEFAULT_BATCH)
            raise CnnToolError(
                f"out of GPU memory at --batch-size {batch}",
                hint=f"try --batch-size {max(1, batch // 2)} (with --accumulate 2 to keep the effective batch), "
                     "and keep mixed precision on (the default on CUDA; --amp)") from None
        raise
    finally:
        D.shutdown(dist)


def _prepare(cfg, task, checkpoint, resume, overwrite, dist, device, messages) -> _Run:
    import torch

    from cnntool.data.loaders import default_loader_workers, make_loader
    from cnntool.device import configure_cpu_threads, to_channels_last
    from cnntool.train import distributed as D

    seed_everything(cfg.seed)  # cfg.validate() checked --freeze
    source_ckpt = None
    if checkpoint is not None:
        from cnntool.models.checkpoint import checkpoint_preprocessing

        preprocessing, arch = checkpoint_preprocessing(checkpoint), checkpoint["arch"]
    else:
        preprocessing, arch, source_ckpt = source_preprocessing(cfg, task)
    if dist.is_main:  # before minutes of decoding: the run folder must not be inside the data
        _check_out_dir(cfg, resume)
    data = task.load_data(cfg, preprocessing, dist)
    data.sizes = _readable_sizes(data, dist)
    if dist.is_main:
        for path, reason in data.skipped:
            messages.warn(f"skipped {path}: {reason}")
    if checkpoint is not None and list(checkpoint["classes"]) != list(data.model_classes):
        raise CheckpointError(f"the data's classes changed since the run started ({resume})",
                              hint="resume with the same dataset folder")
    cfg = cfg.resolve(train_size=data.sizes.get("train", len(data.train)), world_size=dist.world_size,
                      defaults=task.recipe)
    if not cfg.arch:
        cfg.arch = arch

    workers = cfg.workers if cfg.workers is not None else default_loader_workers(
        cached=data.cached, device_type=device.type, processes=dist.local_world_size)
    threads = None
    if device.type == "cpu":
        threads = configure_cpu_threads(cfg.threads, workers=workers, processes=dist.local_world_size)

    setup = resumed_model(checkpoint) if checkpoint is not None else build_model(
        cfg, task, data.model_classes, preprocessing, source_checkpoint=source_ckpt)
    model = setup.model.to(device)
    frozen_norms: list = []
    if cfg.finetuning:
        from cnntool.train.finetune import apply_freeze, frozen_norm_layers

        frozen = apply_freeze(model, setup.heads, parse_freeze(cfg.freeze))
        frozen_norms = frozen_norm_layers(model)
        if dist.is_main and frozen:
            messages.debug(f"frozen blocks: {', '.join(frozen)}")
    settings = _step_settings(cfg, setup, device)
    settings.frozen_norms = tuple(frozen_norms)
    if settings.channels_last:
        to_channels_last(model)
    seed_everything(cfg.seed + dist.rank)  # per-process randomness (mixup, dropout) after a shared init
    from cnntool.train.optim import make_optimizer, make_scheduler

    optimizer = make_optimizer(cfg, model, setup.heads)
    pin = device.type == "cuda"
    batch_sampler = getattr(task, "batch_sampler", None)
    sampler = getattr(task, "sampler", None)
    train_loader = make_loader(data.train, batch_size=cfg.batch_size, train=True, seed=cfg.seed, workers=workers,
                               pin_memory=pin, collate_fn=data.collate,
                               batch_sampler=batch_sampler(data.train, cfg) if batch_sampler else None,
                               sampler=sampler(data, cfg) if sampler else None)
    val_loader = make_loader(data.val, batch_size=cfg.batch_size * 2, workers=workers, pin_memory=pin,
                             collate_fn=data.collate)
    steps = math.ceil(len(train_loader) / max(1, cfg.accumulate))
    settings.scheduler = make_scheduler(optimizer, cfg, steps)
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        settings.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    wrapped = D.wrap_model(model, device, dist)
    out_dir = _run_dir(cfg, resume, overwrite, setup.arch, dist)
    machine = {"device": str(device), "processes": dist.world_size, "workers": workers, "threads": threads,
               "amp": settings.amp, "channels_last": settings.channels_last, "cached": data.cached}
    run = _Run(cfg, task, setup, data, dist, device, wrapped, optimizer, settings, task.step(cfg, data), train_loader,
               val_loader, out_dir, machine)
    if checkpoint is not None:
        _restore(run, checkpoint)
    return run


def _readable_sizes(data, dist) -> dict:
    """Images per split that were read (skipped ones left out), over every process's shard.

    ``data.sizes`` holds the indexed counts; training shards are padded to equal sizes (see
    :func:`cnntool.data.loaders.shard_indices`), which is taken off again here.
    """
    splits = {"train": data.train, "val": data.val, **({"test": data.test} if data.test is not None else {})}
    local = {k: len(ds) for k, ds in splits.items()}
    if not dist.enabled:
        return local
    import torch

    from cnntool.train import distributed as D

    keys = sorted(local)
    summed = D.all_reduce_sum(torch.tensor([float(local[k]) for k in keys], dtype=torch.float64), dist).tolist()
    sizes = {k: int(v) for k, v in zip(keys, summed)}
    indexed = data.sizes.get("train", sizes["train"])
    sizes["train"] -= -(-indexed // dist.world_size) * dist.world_size - indexed
    return sizes


def _step_settings(cfg: TrainConfig, setup: ModelSetup, device):
    import torch

    from cnntool.device import amp_dtype, use_amp, use_channels_last
    from cnntool.train.loop import StepSettings

    amp = use_amp(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    return StepSettings(device=device, preprocessing=setup.preprocessing, amp=amp,
                        amp_dtype=amp_dtype(device) if amp else None,
                        channels_last=use_channels_last(device, cfg.channels_last) and len(
                            setup.preprocessing.input_size) == 3,
                        scaler=scaler, grad_clip=cfg.grad_clip, accumulate=cfg.accumulate)


def _check_out_dir(cfg: TrainConfig, resume) -> None:
    """A run folder inside the dataset would feed the run's own pictures to the next run."""
    if resume is not None or not cfg.out or not cfg.data:
        return
    import os

    out, data = os.path.realpath(cfg.out), os.path.realpath(cfg.data)
    if out == data or out.startswith(data.rstrip(os.sep) + os.sep):
        raise UsageError(f"the run folder {cfg.out} is inside the dataset {cfg.data}",
                         hint="its checkpoints and figures would become training data: pick an -o outside it")


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
    """Optimiser, schedule, scaler, EMA, history and RNG of a resumed run (validated on load)."""
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
    state = ckpt.get("train_state") or {}
    run.history = list(state.get("history", []))
    run.start_epoch = int(ckpt.get("epoch") or 0)
    run.best_value = float(state.get("best_value", -math.inf))
    run.best_tie = float(state.get("best_tie", math.inf))
    run.best_epoch = int(state.get("best_epoch", 0))
    run.bad_epochs = int(state.get("bad_epochs", 0))
    run.best_result = dict(state.get("best_result") or {})
    holder = getattr(scheduler, "plateau", None)
    if holder is not None and state.get("plateau"):
        holder[0] = float(state["plateau"][0])
        for group, base, factor in zip(run.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
    restore_rng(ckpt.get("rng"))


def _fit(run: _Run, messages, on_epoch, started: float) -> dict:
    from cnntool.train import distributed as D
    from cnntool.train.loop import evaluate, train_one_epoch

    cfg, dist, task = run.cfg, run.dist, run.task
    if dist.is_main:
        atomic_write_json(run.out_dir / CONFIG_JSON, {**cfg.to_dict(), "machine": run.machine})
        messages.log(_describe_start(run))
        if run.start_epoch == 0:
            messages.log(f"each epoch: training then validation; '*' marks a new best {task.best[0]} "
                         f"(saved as {BEST})")
    training = time.perf_counter()
    stopped_early = False
    evaluator = task.evaluator(run.data, cfg)
    for epoch in range(run.start_epoch, cfg.epochs):
        for sampler in (run.train_loader.sampler, run.train_loader.batch_sampler):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        if hasattr(run.data.train, "set_epoch"):
            run.data.train.set_epoch(epoch)
        bar = messages.bar(len(run.train_loader), f"epoch {epoch + 1}/{cfg.epochs}") if (
            dist.is_main and hasattr(messages, "bar")) else None
        try:
            trained = train_one_epoch(run.model, run.train_loader, run.optimizer, run.settings, run.step,
                                      on_batch=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        validated = evaluate(run.eval_model, run.val_loader, run.settings, evaluator, dist=dist)
        record = _epoch_record(run, epoch + 1, trained, validated)
        _check_diverged(run, record)
        improved = _track_best(run, record, validated)
        if cfg.schedule == "plateau":
            from cnntool.train.optim import plateau_step

            if plateau_step(run.settings.scheduler, bad_epochs=run.bad_epochs, patience=cfg.plateau_patience,
                            gamma=cfg.gamma) and dist.is_main:
                messages.log(f"no better {task.best[0]} for {run.bad_epochs} epochs: learning rate x {cfg.gamma:g}")
        if dist.is_main:
            _save_epoch(run, record, improved)
            messages.log(_describe_epoch(record, cfg.epochs, task))
            if on_epoch is not None:
                on_epoch(record)
        if cfg.patience is not None and run.bad_epochs >= cfg.patience:
            stopped_early = D.any_process(True, dist, run.device)
            if dist.is_main:
                messages.log(f"stopping early: no better {task.best[0]} for {cfg.patience} epochs")
            break
    timing = {"seconds": time.perf_counter() - started, "train_seconds": time.perf_counter() - training}
    return _finish(run, timing, stopped_early, messages, evaluator)


def _epoch_record(run: _Run, epoch: int, trained: dict, validated: dict) -> dict:
    from cnntool.train import distributed as D

    sums = trained["sums"]
    if run.dist.enabled:  # all processes together
        import torch

        keys = sorted(sums)
        packed = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=run.device)
        sums = dict(zip(keys, D.all_reduce_sum(packed, run.dist).tolist()))
    images = sums.get("count", 0.0)
    record = {"epoch": epoch, "lr": float(run.optimizer.param_groups[0]["lr"])}
    record.update(run.task.epoch_metrics(sums))
    record.update({f"val_{k}": v for k, v in validated.items() if _is_number(v) and k not in ("seconds", "images")})
    record["train_images_per_s"] = images / trained["seconds"] if trained["seconds"] > 0 else 0.0
    record["epoch_seconds"] = trained["seconds"] + validated["seconds"]
    record["best"] = False
    return record


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_diverged(run: _Run, record: dict) -> None:
    from cnntool.train.loop import TrainingDiverged

    loss = record.get("train_loss")
    first = run.history[0].get("train_loss") if run.history else None
    if loss is None:
        return
    if not math.isfinite(loss) or (first is not None and loss > max(EXPLODED_MIN, EXPLODED_FACTOR * abs(first))):
        raise TrainingDiverged(f"the training loss exploded at epoch {record['epoch']} ({loss:.4g})",
                               hint="lower --lr, add --grad-clip 5, or check --weight-decay")


def _track_best(run: _Run, record: dict, validated: dict) -> bool:
    metric, mode = run.task.best
    value = record.get(metric)
    sign = 1.0 if mode == "max" else -1.0
    value = sign * value if value is not None and math.isfinite(value) else -math.inf
    tie = math.inf
    if run.task.tie is not None:
        tie_metric, tie_mode = run.task.tie
        raw = record.get(tie_metric)
        tie = (raw if tie_mode == "min" else -raw) if raw is not None and math.isfinite(raw) else math.inf
    better = value > run.best_value or (value == run.best_value and tie < run.best_tie) or not run.best_epoch
    if better:
        run.best_value, run.best_tie, run.best_epoch = value, tie, record["epoch"]
        run.bad_epochs = 0
        run.best_result = dict(validated)
        record["best"] = True
    else:
        run.bad_epochs += 1
    return better


def _checkpoint(run: _Run, model, metrics: dict, epoch: int, **extra) -> dict:
    from cnntool.models.checkpoint import make_checkpoint

    s = run.setup
    if s.source is not None:
        extra["finetuned_from"] = s.source
    if run.data.profile:
        extra["data_profile"] = run.data.profile
    return make_checkpoint(model, arch=s.arch, task=run.task.name, classes=run.data.model_classes,
                           preprocessing=s.preprocessing, arch_kwargs=s.arch_kwargs, config=run.cfg.to_dict(),
                           metrics=metrics, epoch=epoch, init=s.init, **extra)


def _save_epoch(run: _Run, record: dict, improved: bool) -> None:
    from cnntool.models.checkpoint import save_checkpoint

    run.history.append(record)
    settings = run.settings
    if improved:
        save_checkpoint(run.out_dir / BEST, _checkpoint(run, run.eval_model, record, record["epoch"]))
    train_state = {"history": run.history, "best_value": run.best_value, "best_tie": run.best_tie,
                   "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
                   "best_result": _plain_result(run.best_result),
                   "plateau": list(getattr(settings.scheduler, "plateau", None) or [])}
    last = _checkpoint(
        run, run.module, record, record["epoch"],
        optimizer=run.optimizer.state_dict(), scheduler=settings.scheduler.state_dict(),
        scaler=settings.scaler.state_dict() if settings.scaler is not None else None,
        ema_state_dict=settings.ema.state_dict() if settings.ema is not None else None,
        rng=rng_state(), train_state=train_state)
    save_checkpoint(run.out_dir / LAST, last)
    _write_metrics(run.out_dir, run.history, run.task)
    _write_tensorboard(run, record)


def _plain_result(result: dict) -> dict:
    """A validation result as plain data for ``last.pt`` (arrays as lists)."""
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in result.items()}


def epoch_fields(task) -> tuple[str, ...]:
    """Columns of metrics.csv / fields of each metrics.jsonl record, in order."""
    return ("epoch", "lr", *task.epoch_fields, "train_images_per_s", "epoch_seconds", "best")


def _write_metrics(out_dir: Path, history: list[dict], task) -> None:
    from cnntool.data.writers import atomic_write_text

    atomic_write_text(out_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(epoch_fields(task)), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / METRICS_CSV, buf.getvalue())


def _write_tensorboard(run: _Run, record: dict) -> None:
    """With ``--tensorboard``: the epoch's numbers as TensorBoard scalars in the run folder."""
    if not run.cfg.tensorboard:
        return
    if run.tensorboard is None:
        from torch.utils.tensorboard import SummaryWriter

        run.tensorboard = SummaryWriter(log_dir=str(run.out_dir / TENSORBOARD_DIR))
    for key, value in record.items():
        if key != "epoch" and _is_number(value):
            run.tensorboard.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key,
                                       value, record["epoch"])
    run.tensorboard.flush()


def _finish(run: _Run, timing: dict, stopped_early: bool, messages, evaluator) -> dict:
    from cnntool.train.loop import evaluate

    cfg, dist, task = run.cfg, run.dist, run.task
    if run.tensorboard is not None:
        run.tensorboard.close()
    test = None
    if run.data.test is not None:
        _load_best(run)
        from cnntool.data.loaders import make_loader

        loader = make_loader(run.data.test, batch_size=cfg.batch_size * 2, workers=run.machine["workers"],
                             collate_fn=run.data.collate)
        test = evaluate(run.eval_model, loader, run.settings, evaluator, dist=dist)
    if not dist.is_main:
        return {}
    from cnntool.metrics.plots import plot_learning_curves

    plot_learning_curves(run.history, run.out_dir / CURVES_PNG)
    task.figures(run.out_dir, run.best_result, run.data.model_classes, run.best_epoch)
    last = run.history[-1] if run.history else {}
    rates = [r["train_images_per_s"] for r in run.history]
    summary = {
        "path": str(run.out_dir),
        "task": task.name,
        "arch": run.setup.arch,
        "classes": len(run.data.classes),
        "train_images": run.data.sizes.get("train"),
        "val_images": run.data.sizes.get("val"),
        "split": run.data.split,
        "epochs": len(run.history),
        "best_epoch": run.best_epoch,
        "best_metric": task.best[0],
        **task.summary(run.best_result, last, test),
        "train_images_per_s": sum(rates) / len(rates) if rates else None,
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
    best = run.best_result.get(task.best[0].removeprefix("val_"))
    shown = f"{best:.4f}" if isinstance(best, float) else str(best)
    messages.log(f"best {task.best[0]} {shown} at epoch {run.best_epoch}; checkpoints in {run.out_dir}")
    return summary


def _load_best(run: _Run) -> None:
    """Load best.pt's weights into the evaluation model (for the test set)."""
    from cnntool.models.checkpoint import load_checkpoint
    from cnntool.train import distributed as D

    path = D.broadcast_object(str(run.out_dir / BEST) if run.dist.is_main else None, run.dist)
    run.eval_model.load_state_dict(load_checkpoint(path)["state_dict"])


def _describe_start(run: _Run) -> str:
    cfg, data = run.cfg, run.data
    sizes = data.sizes
    unit = getattr(run.task, "unit", "images")  # what one training example is (a video task: videos)
    parts = [f"training {run.setup.arch} ({run.task.name}) on {sizes.get('train')} {unit}, validating on "
             f"{sizes.get('val')} ({data.describe})",
             f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, device {run.device}"]
    if run.dist.enabled:
        parts.append(f"{run.dist.world_size} processes")
    if data.skipped:
        parts.append(f"{len(data.skipped)} {unit} skipped")
    return "; ".join(parts)


def _describe_epoch(record: dict, epochs: int, task) -> str:
    mark = " *" if record["best"] else ""
    def shown(prefix: str) -> str:
        return " ".join(f"{k.removeprefix(prefix).replace('accuracy', 'acc')} {record[k]:.4f}"
                        for k in task.epoch_fields if k.startswith(prefix) and _is_number(record.get(k)))

    train, val = shown("train_"), shown("val_")
    return (f"epoch {record['epoch']}/{epochs}: train {train}, val {val}, "
            f"{record['train_images_per_s']:.0f} img/s{mark}")


