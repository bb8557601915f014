"""The state a resumed run needs beyond its weights: RNG states as plain data, and a validated
``last.pt``.

``--resume`` reads a run's ``last.pt``; everything in it that steers the run (the config, the
optimiser and scheduler states, the epoch, the RNG states, the history) is checked here before
it is used, so a damaged or hand-edited file is a one-line :class:`~cnntool.errors.CheckpointError`
(exit 2), never an internal error half-way into a run.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from cnntool.errors import CheckpointError, UsageError


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


def restore_rng(state: dict | None) -> None:
    """Restore what :func:`rng_state` captured (nothing when ``state`` is empty)."""
    if not state:
        return
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


def load_resume(resume: str, last_name: str = "last.pt") -> dict:
    """Read and validate the ``last.pt`` of a run folder (or the file given) for ``--resume``.

    Raises
    ------
    CheckpointError
        Not a checkpoint, no training state, or a malformed config, optimiser, scheduler, epoch,
        RNG state or history.
    """
    from cnntool.models.checkpoint import load_checkpoint

    path = Path(resume)
    if path.is_dir():
        path = path / last_name
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt or not ckpt.get("config"):
        raise CheckpointError(f"{path} holds no training state to resume from",
                              hint=f"resume from a run folder's {last_name}, written by `cnntool train`")
    problems = validate_training_state(ckpt)
    if problems:
        raise CheckpointError(f"{path} has a malformed {', '.join(problems)}",
                              hint="the run's last.pt is damaged: start a new run, or resume an intact copy")
    ckpt["_path"] = str(path)
    return ckpt


def validate_training_state(ckpt: dict) -> list[str]:
    """The names of the malformed parts of a ``last.pt``'s training state (empty when sound).

    Examples
    --------
    >>> validate_training_state({"config": {"epochs": "ten"}, "epoch": -3, "optimizer": {}, "scheduler": {}})[1:]
    ['epoch -3', 'optimizer', 'scheduler']
    """
    from cnntool.train.config import TrainConfig

    problems = []
    config = ckpt.get("config")
    try:
        if not isinstance(config, dict):
            raise UsageError("not a dict")
        cfg = TrainConfig.from_dict(config)
        cfg.validate()
        if cfg.epochs is None:
            raise UsageError("no epochs")
    except UsageError as exc:
        problems.append(f"config ({exc})")
    except (TypeError, ValueError, AttributeError):
        problems.append("config")
    epoch = ckpt.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0 or (
            isinstance(config, dict) and isinstance(config.get("epochs"), int) and epoch > config["epochs"]):
        problems.append(f"epoch {epoch!r}")
    optimizer = ckpt.get("optimizer")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list) and optimizer["param_groups"]):
        problems.append("optimizer")
    scheduler = ckpt.get("scheduler")
    if not (isinstance(scheduler, dict) and isinstance(scheduler.get("last_epoch"), int)
            and not isinstance(scheduler.get("last_epoch"), bool) and scheduler["last_epoch"] >= 0):
        problems.append("scheduler")
    if ckpt.get("rng") and not _rng_ok(ckpt["rng"]):
        problems.append("rng")
    train_state = ckpt.get("train_state")
    if train_state is not None and not (isinstance(train_state, dict)
                                        and isinstance(train_state.get("history", []), list)):
        problems.append("train_state")
    return problems


def _rng_ok(state) -> bool:
    """An RNG state as :func:`rng_state` writes it; checked by restoring it into a sandbox."""
    try:
        import torch

        if not isinstance(state, dict):
            return False
        torch_state = state["torch"]
        if not (hasattr(torch_state, "dtype") and torch_state.dtype == torch.uint8
                and torch_state.numel() == torch.get_rng_state().numel()):
            return False
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.RandomState().set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = state["python"]
        random.Random().setstate((version, tuple(internal), gauss_next))
        return True
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
