"""Loading a model by spec: what every stage calls to get a model and everything to use it.

A spec is a registry name (``resnet18``: random weights), ``name:WEIGHTS`` (pretrained, from
torchvision's cache), a checkpoint file, or a run folder (its ``best.pt``). :func:`load`
returns a :class:`LoadedModel`: the module in eval mode with its entry, task, class names and
:class:`~cnntool.data.preprocessing.Preprocessing`, so no stage hard-codes any of them; with
``task=`` it is the one place a model for another task is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import CheckpointError
from cnntool.models.registry import TIMM_PREFIX, ModelEntry, build_pretrained, get_entry, is_checkpoint_spec
from cnntool.models.tasks import TASK_INFO

#: The checkpoint a run folder stands for.
RUN_FOLDER_CHECKPOINT = "best.pt"


@dataclass
class LoadedModel:
    """A model with everything needed to use it: what :func:`load` returns.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on the requested device.
    entry : ModelEntry
    task : str
    classes : list of str
        Class names, in the model's output order (``class_0``... when unknown; detection
        models' class 0 is the background).
    preprocessing : Preprocessing
        How the model sees pixels (the weights' or the checkpoint's own).
    source : str
        ``registry`` (random weights), ``pretrained`` or ``checkpoint``.
    weights : str or None
        Weights name (pretrained) or checkpoint path.
    checkpoint : dict
        The checkpoint's metadata (everything but tensors and training state) when loaded from one.
    """

    model: Any
    entry: ModelEntry
    task: str
    classes: list[str]
    preprocessing: Preprocessing
    source: str
    weights: str | None = None
    checkpoint: dict = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, ...]:
        return self.preprocessing.input_size

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocessing.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocessing.std

    @property
    def random_weights(self) -> bool:
        """Built from the registry with random weights: its outputs mean nothing."""
        return self.source == "registry"


def resolve_checkpoint_path(spec: str) -> Path:
    """A checkpoint file, or a run folder's :data:`RUN_FOLDER_CHECKPOINT`.

    Examples
    --------
    >>> str(resolve_checkpoint_path("runs/x/best.pt"))
    'runs/x/best.pt'
    """
    path = Path(spec)
    if path.is_dir():
        best = path / RUN_FOLDER_CHECKPOINT
        if not best.is_file():
            raise CheckpointError(f"{path} is a folder without a {RUN_FOLDER_CHECKPOINT}",
                                  hint="give a checkpoint file, or a run folder written by `cnntool train`")
        return best
    return path


def model_identity(spec: str, *, seed: int = 0) -> str:
    """A string naming the weights ``spec`` loads, for cache keys and output ledgers, without
    loading anything.

    A checkpoint is named by its content digest, pretrained weights by their name, and random
    weights by the seed plus the torch and cnntool versions that draw them.

    Examples
    --------
    >>> model_identity("ResNet18:IMAGENET1K_V1")
    'resnet18:IMAGENET1K_V1'
    """
    if is_checkpoint_spec(spec) and os.path.exists(spec):
        from cnntool.data.sources import content_digest

        return f"ckpt-{content_digest(resolve_checkpoint_path(spec))}"
    name, _, weights = spec.partition(":")
    if weights:
        return f"{name.lower()}:{weights}"
    from importlib.metadata import version

    from cnntool import __version__

    return f"{name.lower()}:random-seed{seed}-torch{version('torch')}-cnntool{__version__}"


def load(spec: str, *, task: str | None = None, device: str = "cpu", num_classes: int | None = None) -> LoadedModel:
    """Load a model by spec: ``name``, ``name:WEIGHTS``, a checkpoint path or a run folder.

    Parameters
    ----------
    spec : str
        ``resnet18`` (random init), ``resnet18:IMAGENET1K_V1`` or ``resnet18:DEFAULT``
        (pretrained, from torchvision's cache or the network), or a cnntool checkpoint file
        (``runs/lenet5-1/best.pt``) or run folder (``runs/lenet5-1``).
    task : str, optional
        The task the caller needs: a model for another task is refused here (exit 2).
    device : str
        Where to put the model (already resolved: ``cpu``, ``cuda:0``...).
    num_classes : int, optional
        The number of model outputs: heads of another size are replaced by fresh ones (and the
        class names become ``class_0``...).

    Raises
    ------
    UnknownModelError, MissingWeightsError, CheckpointError, UsageError

    Examples
    --------
    >>> loaded = load("lenet5")
    >>> loaded.input_size, loaded.classes[:2], loaded.random_weights
    ((1, 32, 32), ['class_0', 'class_1'], True)
    """
    if is_checkpoint_spec(spec):
        loaded = _from_checkpoint(resolve_checkpoint_path(spec), task)
    else:
        name, _, weights = spec.partition(":")
        entry = get_entry(name)
        _check_task(spec, entry.task, task)
        if weights:
            loaded = _pretrained(entry, weights)
        else:
            loaded = LoadedModel(model=entry.build(), entry=entry, task=entry.task,
                                 classes=[f"class_{i}" for i in range(entry.num_classes)],
                                 preprocessing=entry.preprocessing, source="registry")
    if num_classes is not None and num_classes != len(loaded.classes):
        from cnntool.models.surgery import replace_heads

        replace_heads(loaded.model, loaded.entry.heads, num_classes)
        loaded.classes = [f"class_{i}" for i in range(num_classes)]
    loaded.model.to(device)
    loaded.model.eval()
    return loaded


def _check_task(spec: str, actual: str, wanted: str | None) -> None:
    if wanted is None or actual == wanted:
        return
    info = TASK_INFO[wanted]
    raise CheckpointError(f"{spec} is a {actual} model; this command needs a {wanted} model",
                          hint=f"use `cnntool {TASK_INFO[actual].command}` for it, or pick a {wanted} model "
                               f"(`cnntool models list --task {info.name}`)")


def _pretrained(entry: ModelEntry, weights: str) -> LoadedModel:
    member = entry.torchvision_weights(weights)
    model = build_pretrained(entry, weights)
    categories = [str(c) for c in (member.meta.get("categories") or [])]
    classes = categories if len(categories) == entry.num_classes else [f"class_{i}" for i in range(entry.num_classes)]
    return LoadedModel(model=model, entry=entry, task=entry.task, classes=classes,
                       preprocessing=pretrained_preprocessing(entry, member), source="pretrained",
                       weights=member.name)


def _from_checkpoint(path: Path, task: str | None) -> LoadedModel:
    from cnntool.models.checkpoint import build_from_checkpoint, checkpoint_meta, checkpoint_preprocessing, load_checkpoint

    ckpt = load_checkpoint(path)
    _check_task(str(path), ckpt["task"], task)
    entry, model = build_from_checkpoint(ckpt, path)
    preprocessing = checkpoint_preprocessing(ckpt, entry)
    if preprocessing.frames is not None:  # a clip model: the frames and flow it takes (exit 2 otherwise)
        entry.check_clip_input(preprocessing, ckpt.get("arch_kwargs"), source=str(path))
    return LoadedModel(model=model.eval(), entry=entry, task=ckpt["task"], classes=list(ckpt["classes"]),
                       preprocessing=preprocessing, source="checkpoint",
                       weights=str(path), checkpoint=checkpoint_meta(ckpt))


def pretrained_preprocessing(entry: ModelEntry, member) -> Preprocessing:
    """The entry's preprocessing refined by what torchvision's weights ``member`` were evaluated
    with: their crop, resize and interpolation.

    Mean and std stay the entry's: they describe the model as cnntool builds it (GoogLeNet is
    built without torchvision's ``transform_input``, so its entry says 0.5/0.5). timm's weights
    (``timm/`` entries) carry their whole preprocessing, mean and std included.
    """
    import dataclasses

    if entry.name.startswith(TIMM_PREFIX):
        return member.preprocessing
    transform = member.transforms()
    p = entry.preprocessing
    changes: dict = {}
    crop = getattr(transform, "crop_size", None)
    if crop:
        changes["input_size"] = (*p.input_size[:-2], int(crop[0]), int(crop[-1]))
    resize = getattr(transform, "resize_size", None)
    if resize and p.resize_mode in ("crop", "shorter"):
        changes["resize_size"] = int(resize[0]) if len(resize) == 1 else (int(resize[0]), int(resize[1]))
    interpolation = getattr(transform, "interpolation", None)
    if interpolation is not None:
        changes["interpolation"] = interpolation.value
    return dataclasses.replace(p, **changes)
