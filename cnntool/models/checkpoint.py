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
import re
from pathlib import Path
from typing import Any

from cnntool.errors import CheckpointError

FORMAT = "cnntool.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("arch", "task", "classes", "input_size", "mean", "std", "state_dict")
# Resume-only entries, left out of LoadedModel.checkpoint.
_TRAINING_STATE = ("state_dict", "optimizer", "scheduler", "scaler", "ema_state_dict", "rng")
#: From this many parameters on, a checkpoint's model is built on the meta device (see
#: _build_with_weights): random init of VGG-16 takes seconds, meta set-up about one.
_META_BUILD_MIN_PARAMS = 5_000_000
_ZIP_MAGIC = b"PK\x03\x04"
# torch's weights-only unpickler names the class or function a file wanted to import.
_UNSAFE_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


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
        Missing file, not a torch file (empty, truncated, random bytes), a file that needs code
        execution to load, or a dict that is not a cnntool checkpoint.
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}",
                              hint="give a registry name (see `cnntool models list`) or an existing .pt file")
    # torch.save writes a zip archive; anything else (empty, text, random bytes, a legacy pickle)
    # is not a cnntool checkpoint, and a cut-off archive has no central directory.
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head == _ZIP_MAGIC:
            raise CheckpointError(f"{path} is a truncated or corrupted checkpoint",
                                  hint="the copy or the save was cut off: copy it again or re-run training")
        raise CheckpointError(f"{path} is not a cnntool checkpoint (not a PyTorch zip archive)",
                              hint="cnntool reads checkpoints written by `cnntool train` or `finetune`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        needs_code = _UNSAFE_GLOBAL.search(str(exc))
        if needs_code is None:
            raise CheckpointError(f"{path} is a corrupted checkpoint: its data does not unpickle",
                                  hint="copy it again or re-run training") from None
        raise CheckpointError(
            f"{path} is not a plain-data checkpoint: loading it would run code ({needs_code.group(1)})",
            hint="refused by torch.load(weights_only=True); cnntool only loads tensors and plain data",
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError... for damaged archives
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint: {first}",
                              hint="the file may be truncated or corrupted") from None
    _validate(path, ckpt)
    return ckpt


def checkpoint_entry(path: str | os.PathLike, ckpt: dict):
    """The registry entry of the checkpoint's ``arch``; :class:`CheckpointError` if this cnntool lacks it."""
    from cnntool.errors import UnknownModelError
    from cnntool.models.registry import get_entry

    try:
        return get_entry(ckpt["arch"])
    except UnknownModelError as exc:
        raise CheckpointError(f"{path} needs architecture {ckpt['arch']!r}, which this cnntool does not have",
                              hint=exc.hint) from None


def load_checkpoint_model(path: str | os.PathLike, *, expect_task: str | None = None):
    """Rebuild the model a checkpoint describes and load its weights: a :class:`LoadedModel`.

    Raises
    ------
    CheckpointError
        Anything :func:`load_checkpoint` refuses, a task other than ``expect_task``, an
        architecture not in the registry, or weights that do not fit the architecture.
    """
    ckpt = load_checkpoint(path)
    if expect_task is not None and ckpt["task"] != expect_task:
        raise CheckpointError(f"{path} is a {ckpt['task']} checkpoint, this command needs {expect_task}",
                              hint=f"give a {expect_task} model (see `cnntool models list --task {expect_task}`)")
    return model_from_checkpoint(ckpt, path)


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike):
    """The :class:`LoadedModel` of a checkpoint dict already read by :func:`load_checkpoint`
    from ``path`` (named in errors and recorded as the weights).

    Large models adopt the dict's tensors rather than copying them.

    Raises
    ------
    CheckpointError
        An architecture not in the registry, or weights that do not fit the architecture.
    """
    from cnntool.models.registry import LoadedModel

    entry = checkpoint_entry(path, ckpt)
    model = _build_with_weights(entry, ckpt, path).eval()  # as LoadedModel promises
    meta = {k: v for k, v in ckpt.items() if k not in _TRAINING_STATE}
    return LoadedModel(
        model=model, entry=entry, task=ckpt["task"], classes=list(ckpt["classes"]),
        input_size=tuple(int(n) for n in ckpt["input_size"]), mean=tuple(ckpt["mean"]), std=tuple(ckpt["std"]),
        resize_size=ckpt.get("resize_size"), source="checkpoint", weights=str(path), checkpoint=meta,
        interpolation=ckpt.get("interpolation") or entry.interpolation,
    )


def _build_with_weights(entry, ckpt: dict, path):
    """Build the architecture and load the checkpoint's tensors into it.

    Large models are built on the meta device and adopt the tensors (``assign=True``): no
    random init to throw away (seconds for VGG-16). Small ones are built normally, which is
    cheaper than the one-off set-up of the meta device's init kernels.
    """
    import torch

    kwargs = dict(num_classes=len(ckpt["classes"]), in_channels=int(ckpt["input_size"][0]),
                  **(ckpt.get("arch_kwargs") or {}))
    on_meta = (entry.reference_params or 0) >= _META_BUILD_MIN_PARAMS
    try:
        if on_meta:
            with torch.device("meta"):
                model = entry.build(**kwargs)
            model.load_state_dict(ckpt["state_dict"], strict=True, assign=True)
            if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
                on_meta = False  # state outside the state_dict: build it for real
        if not on_meta:
            model = entry.build(**kwargs)
            model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {ckpt['arch']}: {str(exc).strip().splitlines()[0]}",
                              hint="the file was changed, or written for another version of the architecture") from None
    return model


def _validate(path: Path, ckpt: Any) -> None:
    """A dict with cnntool's format marker and well-formed required fields."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        kind = "a plain state_dict" if isinstance(ckpt, dict) and ckpt and "format" not in ckpt else "foreign data"
        raise CheckpointError(f"{path} is not a cnntool checkpoint ({kind})",
                              hint="cnntool reads checkpoints written by `cnntool train` or `finetune`")
    if not isinstance(ckpt.get("format_version"), int) or ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer cnntool (format {ckpt.get('format_version')})",
                              hint="upgrade cnntool")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}", hint="the checkpoint is incomplete")
    from cnntool.models.registry import TASKS

    problems = []
    if ckpt["task"] not in TASKS:
        problems.append(f"task {ckpt['task']!r}")
    if not isinstance(ckpt["classes"], list) or not ckpt["classes"]:
        problems.append("classes")
    size = ckpt["input_size"]
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(n, int) and n > 0 for n in size)):
        problems.append(f"input_size {size!r}")
    elif not (len(ckpt["mean"]) == len(ckpt["std"]) == size[0]):
        problems.append("mean/std (one value per input channel)")
    if not isinstance(ckpt["state_dict"], dict):
        problems.append("state_dict")
    if problems:
        raise CheckpointError(f"{path} has a malformed {', '.join(problems)}", hint="the checkpoint is damaged")


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
