"""Checkpoints: one self-describing file per model, loaded without executing code from it.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which only accepts tensors and plain Python data::

    {
      "format": "cnntool.checkpoint", "format_version": 1, "cnntool_version": "0.1.0",
      "arch": "lenet5", "task": "classification", "classes": ["0", "1", ...],
      "input_size": [1, 32, 32], "mean": [...], "std": [...], "resize_size": None,
      "arch_kwargs": {}, "config": {...training options...}, "metrics": {...final metrics...},
      "epoch": 12, "created": "2026-11-22T00:00:00+00:00",
      "state_dict": {...tensors...},
      # training state, present in last.pt for --resume: "optimizer", "scheduler", "scaler",
      # "ema_state_dict", "rng" (plain data only)
    }
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from pathlib import Path
from typing import Any

from cnntool.errors import CheckpointError

FORMAT = "cnntool.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("arch", "task", "classes", "input_size", "mean", "std", "state_dict")


def make_checkpoint(model, *, arch: str, task: str, classes: list[str], input_size, mean, std,
                    resize_size: int | None = None, arch_kwargs: dict | None = None,
                    config: dict | None = None, metrics: dict | None = None, epoch: int | None = None,
                    **extra: Any) -> dict:
    """Build the checkpoint dict for ``model`` (its ``state_dict`` moved to the CPU)."""
    from cnntool import __version__

    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cnntool_version": __version__,
        "arch": arch,
        "task": task,
        "classes": [str(c) for c in classes],
        "input_size": [int(x) for x in input_size],
        "mean": [float(x) for x in mean],
        "std": [float(x) for x in std],
        "resize_size": resize_size,
        "arch_kwargs": dict(arch_kwargs or {}),
        "config": _plain(config or {}),
        "metrics": _plain(metrics or {}),
        "epoch": epoch,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dict": state,
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write a checkpoint dict atomically."""
    import torch

    from cnntool.data.writers import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu") -> dict:
    """Read and validate a checkpoint; never unpickles code.

    Raises
    ------
    CheckpointError
        Missing file, not a torch file, a file that needs code execution to load, or a dict
        that is not a cnntool checkpoint.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}",
                              hint="give a registry name (see `cnntool models list`) or an existing .pt file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a plain-data checkpoint (it would need to execute code to load)",
            hint=f"refused by torch.load(weights_only=True): {str(exc).splitlines()[0][:160]}",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {str(exc).splitlines()[0][:200]}",
                              hint="the file may be truncated or corrupted") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cnntool checkpoint",
                              hint="cnntool reads checkpoints written by `cnntool train` or `finetune`")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer cnntool (format {ckpt['format_version']})",
                              hint="upgrade cnntool")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}", hint="the checkpoint is incomplete")
    return ckpt


def load_checkpoint_model(path: str | os.PathLike, *, expect_task: str | None = None):
    """Rebuild the model a checkpoint describes and load its weights: a :class:`LoadedModel`."""
    from cnntool.models.registry import LoadedModel, get_entry

    ckpt = load_checkpoint(path)
    if expect_task is not None and ckpt["task"] != expect_task:
        raise CheckpointError(f"{path} is a {ckpt['task']} checkpoint, this command needs {expect_task}")
    entry = get_entry(ckpt["arch"])
    model = entry.build(num_classes=len(ckpt["classes"]), in_channels=int(ckpt["input_size"][0]),
                        **ckpt.get("arch_kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {ckpt['arch']}: {str(exc).splitlines()[0]}") from None
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "scheduler", "scaler",
                                                       "ema_state_dict", "rng")}
    return LoadedModel(
        model=model, entry=entry, task=ckpt["task"], classes=list(ckpt["classes"]),
        input_size=tuple(ckpt["input_size"]), mean=tuple(ckpt["mean"]), std=tuple(ckpt["std"]),
        resize_size=ckpt.get("resize_size"), source="checkpoint", weights=str(path), checkpoint=meta,
    )


def _unwrap(model):
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _plain(obj: Any) -> Any:
    """Config and metrics as plain data (weights_only loading refuses anything else)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
