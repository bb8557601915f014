"""Checkpoints: one self-describing file per model, loaded without executing code from it.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which only accepts tensors and plain Python data::

    {
      "format": "cnntool.checkpoint", "format_version": 2, "cnntool_version": "0.1.0",
      "arch": "lenet5", "task": "classification", "classes": ["0", "1", ...],
      "preprocessing": {"input_size": [1, 32, 32], "mean": [...], "std": [...],
                        "resize_mode": "stretch", "resize_size": None, "interpolation": "bilinear",
                        "normalize_in_model": False},
      "arch_kwargs": {}, "config": {...training options...}, "metrics": {...final metrics...},
      "epoch": 12, "created": "2026-11-22T00:00:00+00:00",
      "state_dict": {...tensors...}, "weights_digest": "blake2b:...",
      # training state, present in last.pt for --resume: "optimizer", "scheduler", "scaler",
      # "ema_state_dict", "rng", "train_state" (plain data only)
    }

Format 1 (before the preprocessing was one typed object) kept ``input_size``, ``mean``, ``std``,
``resize_size`` and ``interpolation`` at the top level; it is still read. ``weights_digest``
covers every tensor of ``state_dict``: a file damaged inside its archive (the zip structure
intact) is refused instead of predicting nonsense. Every metadata field is validated, so a
malformed file is a one-line :class:`~cnntool.errors.CheckpointError`, never an internal error.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
from pathlib import Path
from typing import Any

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import CheckpointError, first_line

FORMAT = "cnntool.checkpoint"
FORMAT_VERSION = 2
_REQUIRED = ("arch", "task", "classes", "state_dict")
# Resume-only entries, left out of LoadedModel.checkpoint.
_TRAINING_STATE = ("state_dict", "optimizer", "scheduler", "scaler", "ema_state_dict", "rng", "train_state")
#: From this many parameters on, a checkpoint's model is built on the meta device (see
#: _build_with_weights): random init of VGG-16 takes seconds, meta set-up about one.
_META_BUILD_MIN_PARAMS = 5_000_000
_ZIP_MAGIC = b"PK\x03\x04"
# torch's weights-only unpickler names the class or function a file wanted to import.
_UNSAFE_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")
_HINT_DAMAGED = "the checkpoint is damaged or was not written by cnntool: copy it again or re-run training"


def make_checkpoint(model, *, arch: str, task: str, classes: list[str], preprocessing: Preprocessing,
                    arch_kwargs: dict | None = None, config: dict | None = None, metrics: dict | None = None,
                    epoch: int | None = None, **extra: Any) -> dict:
    """Build the checkpoint dict for ``model`` (its ``state_dict`` moved to the CPU, digested)."""
    from cnntool import __version__

    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cnntool_version": __version__,
        "arch": arch,
        "task": task,
        "classes": [str(c) for c in classes],
        "preprocessing": preprocessing.to_dict(),
        "arch_kwargs": _plain(dict(arch_kwargs or {})),
        "config": _plain(config or {}),
        "metrics": _plain(metrics or {}),
        "epoch": epoch,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dict": state,
        "weights_digest": weights_digest(state),
        **extra,
    }


def weights_digest(state: dict) -> str:
    """A digest of every tensor in a state dict (names, dtypes, shapes and bytes), in key order.

    Examples
    --------
    >>> import torch
    >>> a = weights_digest({"w": torch.zeros(3)}); b = weights_digest({"w": torch.tensor([0.0, 1.0, 0.0])})
    >>> a.startswith("blake2b:"), a == b
    (True, False)
    """
    import hashlib

    import torch

    h = hashlib.blake2b(digest_size=20)
    for key in sorted(state):
        tensor = state[key]
        h.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(memoryview(flat.view(torch.uint8).numpy()))
    return "blake2b:" + h.hexdigest()


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
        raise CheckpointError(f"{path} is not a readable checkpoint: {first_line(exc, 200)}",
                              hint="the file may be truncated or corrupted") from None
    _validate(path, ckpt)
    digest = ckpt.get("weights_digest")
    if digest is not None and digest != weights_digest(ckpt["state_dict"]):
        raise CheckpointError(f"{path} is damaged: its weights do not match the digest written with them",
                              hint="copy it again, or re-run training")
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


def build_from_checkpoint(ckpt: dict, path: str | os.PathLike):
    """``(entry, model)``: the architecture a checkpoint dict (read by :func:`load_checkpoint`
    from ``path``, named in errors) describes, with its weights loaded, in eval mode.

    Large models adopt the dict's tensors rather than copying them.

    Raises
    ------
    CheckpointError
        An architecture not in the registry, or weights that do not fit the architecture.
    """
    entry = checkpoint_entry(path, ckpt)
    return entry, _build_with_weights(entry, ckpt, path).eval()


def checkpoint_preprocessing(ckpt: dict, entry=None) -> Preprocessing:
    """The :class:`Preprocessing` a checkpoint records (format 1's loose fields too)."""
    if "preprocessing" in ckpt:
        return Preprocessing.from_dict(ckpt["preprocessing"])
    resize = ckpt.get("resize_size")
    return Preprocessing.from_dict({
        "input_size": ckpt.get("input_size"), "mean": ckpt.get("mean"), "std": ckpt.get("std"),
        "resize_mode": "crop" if resize else "stretch", "resize_size": resize,
        "interpolation": ckpt.get("interpolation") or (entry.preprocessing.interpolation if entry else "bilinear"),
    })


def checkpoint_meta(ckpt: dict) -> dict:
    """Everything but tensors and training state (what ``LoadedModel.checkpoint`` holds)."""
    return {k: v for k, v in ckpt.items() if k not in _TRAINING_STATE}


def _build_with_weights(entry, ckpt: dict, path):
    """Build the architecture and load the checkpoint's tensors into it.

    Large models are built on the meta device and adopt the tensors (``assign=True``): no
    random init to throw away (seconds for VGG-16). Small ones are built normally, which is
    cheaper than the one-off set-up of the meta device's init kernels.
    """
    import torch

    kwargs = dict(num_classes=len(ckpt["classes"]), in_channels=checkpoint_preprocessing(ckpt, entry).channels,
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
        raise CheckpointError(f"{path}: weights do not fit {ckpt['arch']}: {first_line(exc)}",
                              hint="the file was changed, or written for another version of the architecture") from None
    except (TypeError, ValueError) as exc:  # arch_kwargs the builder does not take
        raise CheckpointError(f"{path}: cannot build {ckpt['arch']} with its arch_kwargs: {first_line(exc)}",
                              hint=_HINT_DAMAGED) from None
    return model


def _validate(path: Path, ckpt: Any) -> None:
    """A dict with cnntool's format marker and well-formed metadata, field by field."""
    from cnntool.models.tasks import TASK_INFO

    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        kind = "a plain state_dict" if isinstance(ckpt, dict) and ckpt and "format" not in ckpt else "foreign data"
        raise CheckpointError(f"{path} is not a cnntool checkpoint ({kind})",
                              hint="cnntool reads checkpoints written by `cnntool train` or `finetune`")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has a malformed format_version {version!r}", hint=_HINT_DAMAGED)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer cnntool (format {version})", hint="upgrade cnntool")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if version == 1:
        missing += [k for k in ("input_size", "mean", "std") if k not in ckpt]
    elif "preprocessing" not in ckpt:
        missing.append("preprocessing")
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}", hint="the checkpoint is incomplete")
    problems = []
    if ckpt["task"] not in TASK_INFO:
        problems.append(f"task {ckpt['task']!r}")
    if not isinstance(ckpt["arch"], str) or not ckpt["arch"]:
        problems.append("arch")
    classes = ckpt["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        problems.append("classes")
    try:
        preprocessing = checkpoint_preprocessing(ckpt)
    except ValueError as exc:
        problems.append(f"preprocessing ({exc})")
    else:
        task = TASK_INFO.get(ckpt["task"])
        if task is not None and len(preprocessing.input_size) != task.input_dims + 0:
            problems.append(f"input_size {list(preprocessing.input_size)} for a {task.name} model")
    for name in ("arch_kwargs", "config", "metrics"):
        if ckpt.get(name) is not None and not isinstance(ckpt[name], dict):
            problems.append(name)
    epoch = ckpt.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        problems.append(f"epoch {epoch!r}")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "dtype") and hasattr(v, "shape") for v in state.values()):
        problems.append("state_dict")
    digest = ckpt.get("weights_digest")
    if digest is not None and not isinstance(digest, str):
        problems.append("weights_digest")
    if problems:
        raise CheckpointError(f"{path} has a malformed {', '.join(problems)}", hint=_HINT_DAMAGED)


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
        return _plain(obj.tolist())
    return str(obj)
