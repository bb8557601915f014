"""The registry: a typed :class:`ModelEntry` per architecture, and :func:`load` by spec.

An entry is data: the builder, the task, the input size and normalisation, the layer to replace
for a new head, the layer Grad-CAM uses, the first convolution, and the pretrained weights
available. Stages never hard-code any of these; they ask the entry, or the
:class:`LoadedModel` that :func:`load` returns.

Every builder has one signature, ``builder(*, num_classes, in_channels, **kwargs) -> nn.Module``
(torchvision's builders are adapted by :meth:`ModelEntry.build`). Entries are registered by the
modules listed in ``_ENTRY_MODULES``, imported on first use, so importing the registry imports
no torch.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnntool.errors import CheckpointError, MissingWeightsError, UnknownModelError, first_line

TASKS = ("classification", "detection", "segmentation", "video")

#: ImageNet normalisation, which torchvision's pretrained classifiers expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Modules whose import registers entries. Later tasks (detection, segmentation, video) add theirs.
_ENTRY_MODULES = ("cnntool.models.entries", "cnntool.models.zoo")


@dataclass(frozen=True)
class ModelEntry:
    """One architecture in the registry (cf. timm's pretrained config, torchvision's Weights).

    Attributes
    ----------
    name : str
        Registry name, lower case (``resnet18``).
    task : str
        One of :data:`TASKS`.
    builder : str or callable
        ``"module:function"`` (imported lazily) or a callable; called as
        ``builder(num_classes=..., in_channels=..., **kwargs)`` for cnntool's own models, or as a
        torchvision builder (``weights=..., num_classes=...``) when ``torchvision_name`` is set.
    family : str
        Grouping for listings and method support (``lenet``, ``resnet``, ``vgg``...).
    input_size : tuple of int
        Default (C, H, W).
    mean, std : tuple of float
        Normalisation applied after scaling pixels to [0, 1], one value per channel.
    resize_size : int or None
        Shorter side to resize to before the centre crop at evaluation (256 for 224 crops);
        None resizes straight to ``input_size``. For torchvision models, what the default
        weights' own transforms use (232 for some ``IMAGENET1K_V2`` weights).
    num_classes : int
        Outputs of the default head.
    head : str
        Dotted module path of the layer replaced when fine-tuning (``fc``, ``classifier.6``).
    cam_layer : str
        Dotted module path of the layer Grad-CAM uses by default (the last conv block).
    first_conv : str
        Dotted module path of the first convolution (``--method kernels``, changing channels).
    weights : tuple of str
        Names of the pretrained weights available (torchvision's enum member names).
    default_weights : str or None
        What ``name:DEFAULT`` means.
    torchvision_name : str or None
        The name in ``torchvision.models`` when torchvision provides the model.
    reference_params : int or None
        Parameter count with the default head, as published; a test checks it.
    description : str
        One line for listings.
    builder_kwargs : dict
        Fixed keyword arguments for the builder (``aux_logits=False``...).
    interpolation : str
        Resize filter of the evaluation transform (``bilinear``; ``bicubic`` for EfficientNet).
    """

    name: str
    task: str
    builder: str | Callable[..., Any]
    family: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    head: str
    cam_layer: str
    first_conv: str
    resize_size: int | None = None
    weights: tuple[str, ...] = ()
    default_weights: str | None = None
    torchvision_name: str | None = None
    reference_params: int | None = None
    description: str = ""
    builder_kwargs: dict = field(default_factory=dict)
    interpolation: str = "bilinear"

    def builder_fn(self) -> Callable[..., Any]:
        if callable(self.builder):
            return self.builder
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, *, num_classes: int | None = None, in_channels: int | None = None,
              weights: str | None = None, **kwargs):
        """Build the model: random init, or pretrained ``weights``; then adapt head and input.

        A pretrained model keeps its pretrained head unless ``num_classes`` differs, in which
        case the :attr:`head` layer is replaced by a fresh one of the right size. A different
        ``in_channels`` replaces :attr:`first_conv` likewise.
        """
        num_classes = num_classes or self.num_classes
        in_channels = in_channels or self.input_size[0]
        kwargs = {**self.builder_kwargs, **kwargs}
        fn = self.builder_fn()
        if self.torchvision_name is not None:
            if weights is not None:
                model = fn(weights=self.torchvision_weights(weights), **kwargs)
                if num_classes != self.num_classes:
                    from cnntool.models.surgery import replace_head

                    replace_head(model, self.head, num_classes)
            else:
                model = fn(weights=None, num_classes=num_classes, **kwargs)
            if in_channels != self.input_size[0]:
                from cnntool.models.surgery import replace_first_conv

                replace_first_conv(model, self.first_conv, in_channels)
            return model
        if weights is not None:
            raise MissingWeightsError(f"{self.name} has no pretrained weights",
                                      hint="train it with `cnntool train`, then use the checkpoint")
        return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)

    def normalization(self, in_channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) with one value per input channel, for a model built with ``in_channels``.

        One channel from an RGB entry takes the average (a gray image seen as equal R, G, B);
        more channels than the entry repeat its values cyclically.

        Examples
        --------
        >>> from cnntool.models.registry import get_entry   # doctest: +SKIP
        >>> get_entry("simple_cnn").normalization(1)         # doctest: +SKIP
        ((0.5,), (0.5,))
        """
        channels = in_channels or self.input_size[0]
        if channels == len(self.mean):
            return tuple(self.mean), tuple(self.std)
        if channels == 1:
            return (sum(self.mean) / len(self.mean),), (sum(self.std) / len(self.std),)
        return (tuple(self.mean[i % len(self.mean)] for i in range(channels)),
                tuple(self.std[i % len(self.std)] for i in range(channels)))

    def torchvision_weights(self, name: str):
        """The torchvision Weights enum member ``name`` (``DEFAULT`` allowed, any case).

        Only the weights the entry lists: an enum member it leaves out (VGG-16's
        ``IMAGENET1K_FEATURES``, whose classifier is untrained) is not offered.
        """
        if self.torchvision_name is None or not self.weights:
            raise MissingWeightsError(f"{self.name} has no pretrained weights",
                                      hint="train it with `cnntool train`, then use the checkpoint")
        from torchvision.models import get_model_weights

        key = self.default_weights if name.upper() == "DEFAULT" else name.upper()
        if key not in self.weights:
            raise MissingWeightsError(
                f"{self.name} has no weights named {name!r}",
                hint="available: " + ", ".join(["DEFAULT", *self.weights]),
            )
        return get_model_weights(self.torchvision_name)[key]


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
        Class names (``class_0``... when unknown).
    input_size : tuple of int
        (C, H, W) the model expects.
    mean, std : tuple of float
    resize_size : int or None
    source : str
        ``registry``, ``pretrained`` or ``checkpoint``.
    weights : str or None
        Weights name (pretrained) or checkpoint path.
    checkpoint : dict
        The checkpoint's metadata (everything but tensors) when loaded from one.
    interpolation : str
        Resize filter of the evaluation transform.
    """

    model: Any
    entry: ModelEntry
    task: str
    classes: list[str]
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int | None
    source: str
    weights: str | None = None
    checkpoint: dict = field(default_factory=dict)
    interpolation: str = "bilinear"


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register(entry: ModelEntry) -> ModelEntry:
    """Add an entry; names are unique and lower case."""
    if entry.name != entry.name.lower():
        raise ValueError(f"registry names are lower case: {entry.name!r}")
    if entry.name in _REGISTRY:
        raise ValueError(f"{entry.name!r} is already registered")
    if entry.task not in TASKS:
        raise ValueError(f"{entry.name}: task must be one of {TASKS}")
    _REGISTRY[entry.name] = entry
    return entry


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _ENTRY_MODULES:
            importlib.import_module(module)


def list_models(task: str | None = None) -> list[ModelEntry]:
    """All entries (of one task, if given), sorted by name."""
    _ensure_loaded()
    return sorted((e for e in _REGISTRY.values() if task is None or e.task == task), key=lambda e: e.name)


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name`` (case-insensitive), or :class:`UnknownModelError` with close matches."""
    _ensure_loaded()
    key = name.lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    import difflib

    close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "see `cnntool models list`"
    raise UnknownModelError(f"unknown model {name!r}", hint=hint)


def is_checkpoint_spec(spec: str) -> bool:
    """A spec is a checkpoint when it names a file, or looks like one (has a path separator or .pt/.pth)."""
    return os.path.exists(spec) or os.sep in spec or spec.endswith((".pt", ".pth", ".ckpt", ".safetensors"))


def load(spec: str, *, device: str = "cpu", num_classes: int | None = None) -> LoadedModel:
    """Load a model by spec: ``name``, ``name:WEIGHTS`` or a checkpoint path.

    Parameters
    ----------
    spec : str
        ``resnet18`` (random init), ``resnet18:IMAGENET1K_V1`` or ``resnet18:DEFAULT``
        (pretrained, from torchvision's cache or the network), or a cnntool checkpoint file.
    device : str
        Where to put the model (already resolved: ``cpu``, ``cuda:0``...).
    num_classes : int, optional
        The size of the head: a pretrained or checkpoint head is replaced by a fresh one if it
        differs (and the class names become ``class_0``...).

    Raises
    ------
    UnknownModelError, MissingWeightsError, CheckpointError

    Examples
    --------
    >>> loaded = load("lenet5")                                  # doctest: +SKIP
    >>> loaded.input_size, loaded.classes[:2]                    # doctest: +SKIP
    ((1, 32, 32), ['class_0', 'class_1'])
    """
    if is_checkpoint_spec(spec):
        from cnntool.models.checkpoint import load_checkpoint_model

        loaded = load_checkpoint_model(spec)
        if num_classes is not None and num_classes != len(loaded.classes):
            from cnntool.models.surgery import replace_head

            replace_head(loaded.model, loaded.entry.head, num_classes)
            loaded.classes = [f"class_{i}" for i in range(num_classes)]
    else:
        name, _, weights = spec.partition(":")
        entry = get_entry(name)
        weights = weights or None
        n = num_classes or entry.num_classes
        classes = [f"class_{i}" for i in range(n)]
        if weights is not None:
            member = entry.torchvision_weights(weights)
            model = _build_pretrained(entry, weights, num_classes)
            categories = list(member.meta.get("categories") or [])
            if len(categories) == n:
                classes = categories
            loaded = LoadedModel(model=model, entry=entry, task=entry.task, classes=classes,
                                 mean=entry.mean, std=entry.std, source="pretrained",
                                 weights=member.name, **pretrained_preprocessing(entry, member))
        else:
            loaded = LoadedModel(
                model=entry.build(num_classes=num_classes), entry=entry, task=entry.task,
                classes=classes, input_size=entry.input_size, mean=entry.mean, std=entry.std,
                resize_size=entry.resize_size, interpolation=entry.interpolation, source="registry",
            )
    loaded.model.to(device)
    loaded.model.eval()
    return loaded


def pretrained_preprocessing(entry: ModelEntry, member) -> dict:
    """Input size, resize and filter that torchvision's weights ``member`` were evaluated with.

    Mean and std stay the entry's: they describe the model as cnntool builds it (GoogLeNet is
    built without torchvision's ``transform_input``, so its entry says 0.5/0.5).
    """
    transform = member.transforms()
    crop = transform.crop_size[0]
    return {
        "input_size": (entry.input_size[0], crop, crop),
        "resize_size": transform.resize_size[0] if transform.resize_size else None,
        "interpolation": transform.interpolation.value,
    }


def cached_weights_path(entry: ModelEntry, weights: str) -> Path:
    """Where torchvision's hub cache keeps the file of ``weights`` (``$TORCH_HOME/hub/checkpoints/...``)."""
    from torch.hub import get_dir

    member = entry.torchvision_weights(weights)
    return Path(get_dir()) / "checkpoints" / os.path.basename(member.url)


def _build_pretrained(entry: ModelEntry, weights: str, num_classes: int | None):
    """Build with pretrained weights; an offline machine gets a message naming the cache file."""
    url = entry.torchvision_weights(weights).url
    cached = cached_weights_path(entry, weights)
    import pickle

    try:
        return entry.build(weights=weights, num_classes=num_classes)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = first_line(exc)
        if cached.exists():
            raise MissingWeightsError(
                f"the cached weights file {cached} is corrupted or incomplete: {reason}",
                hint=f"delete it and download again from {url}",
            ) from None
        raise MissingWeightsError(
            f"weights {entry.name}:{weights} are not in the cache ({cached}) and cannot be downloaded: {reason}",
            hint=f"download {url} and place it at {cached} (set TORCH_HOME to move the cache)",
        ) from None
