"""The registry: a typed :class:`ModelEntry` per architecture (load one with
:func:`cnntool.models.loading.load`).

An entry is data: the builder, the task, the :class:`~cnntool.data.preprocessing.Preprocessing`,
the layer(s) to replace for new classes, the layer Grad-CAM uses, the first convolution, the
pretrained weights available and the stored facts listings show (parameter count). Stages never
hard-code any of these; they ask the entry, or the ``LoadedModel`` that ``load`` returns.

Every builder has one signature, ``builder(*, num_classes, in_channels, **kwargs) -> nn.Module``
(torchvision's builders are adapted by :meth:`ModelEntry.build`, which never lets them download
a backbone nobody asked for). Entries are registered by the modules listed in
``_ENTRY_MODULES``, imported on first use, so importing the registry imports no torch.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import MissingWeightsError, UnknownModelError, did_you_mean, first_line
from cnntool.models.tasks import TASK_INFO, TASKS

#: ImageNet normalisation, which torchvision's pretrained classifiers expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Names under this prefix come from timm (``timm/convnext_tiny``), see ``models/timm_source.py``.
TIMM_PREFIX = "timm/"

# Modules whose import registers entries. Later tasks (detection, segmentation, video) add theirs.
_ENTRY_MODULES = ("cnntool.models.entries", "cnntool.models.zoo", "cnntool.models.zoo_tasks")
#: Prefixed names whose entries are made on first use, by "module:function" (data, like builders:
#: the source module stands on this one, never the other way round).
_ENTRY_SOURCES = {TIMM_PREFIX: "cnntool.models.timm_source:timm_entry"}


@dataclass(frozen=True)
class ModelEntry:
    """One architecture in the registry (cf. timm's pretrained config, torchvision's Weights).

    Attributes
    ----------
    name : str
        Registry name, lower case (``resnet18``).
    task : str
        One of :data:`~cnntool.models.tasks.TASKS`.
    builder : str or callable
        ``"module:function"`` (imported lazily) or a callable; called as
        ``builder(num_classes=..., in_channels=..., **kwargs)`` for cnntool's own models, or as a
        torchvision builder (``weights=..., num_classes=...``) when ``torchvision_name`` is set.
    family : str
        Grouping for listings and method support (``lenet``, ``resnet``, ``fcos``...).
    preprocessing : Preprocessing
        How the model sees pixels with its default (or no) weights; pretrained weights may
        refine it (their own crop), see :func:`cnntool.models.loading.pretrained_preprocessing`.
    num_classes : int
        Outputs of the default head (detection: including the background class 0).
    head : str or None
        Dotted module path of the layer a new head replaces for other classes (``fc``,
        ``classifier.6``, ``roi_heads.box_predictor``, ``head.classification_head``).
    extra_heads : tuple of str
        Further layers sized by the classes, replaced with ``head`` (a segmenter's auxiliary
        classifier, Mask R-CNN's mask predictor, LR-ASPP's low-resolution classifier).
    cam_layer, first_conv : str or None
        The layer Grad-CAM uses by default (the last spatial feature map), and the stem
        convolution (``--method kernels``, changing input channels). None where they do not apply.
    weights : tuple of str
        Names of the pretrained weights available (torchvision's enum member names).
    default_weights : str or None
        What ``name:DEFAULT`` means.
    torchvision_name : str or None
        The name in ``torchvision.models`` when torchvision provides the model.
    reference_params : int
        Parameter count with the default head as cnntool builds the model without weights (for
        torchvision's entries, the published count; detectors built without pretrained weights
        have trainable BatchNorm where the published ones have frozen statistics, which adds
        those layers' affine parameters): a stored fact, so listings need not build the model;
        a test checks it against a build.
    description : str
        One line for listings.
    builder_kwargs : dict
        Fixed keyword arguments for the builder (``aux_logits=False``...).
    min_frames, exact_frames : int or None
        Clip models' input contract on T, the frames per clip: at least ``min_frames`` (S3D's
        pooling needs 14), or exactly ``exact_frames`` (MViT's positional embeddings are sized
        for 16). :meth:`check_clip_input` enforces it wherever a clip model is trained or loaded.
    frames_kwarg : str or None
        The builder keyword that sets T when the model is built for one clip length (two-stream's
        ``frames``): the model then takes exactly that many frames (``--arch-arg frames=N``
        changes the clip length of a run).
    flow_kwarg : (str, str) or None
        ``(keyword, value)``: built with ``keyword=value`` the model takes optical flow as two more
        input channels after the image's (two-stream's ``("motion", "flow")``); its
        preprocessing then names the flow method (:attr:`Preprocessing.flow`).
    """

    name: str
    task: str
    builder: str | Callable[..., Any]
    family: str
    preprocessing: Preprocessing
    num_classes: int
    reference_params: int
    head: str | None = None
    extra_heads: tuple[str, ...] = ()
    cam_layer: str | None = None
    first_conv: str | None = None
    weights: tuple[str, ...] = ()
    default_weights: str | None = None
    torchvision_name: str | None = None
    description: str = ""
    builder_kwargs: dict = field(default_factory=dict)
    min_frames: int | None = None
    exact_frames: int | None = None
    frames_kwarg: str | None = None
    flow_kwarg: tuple[str, str] | None = None

    @property
    def input_size(self) -> tuple[int, ...]:
        """The default (C, H, W) or (C, T, H, W): ``preprocessing.input_size``."""
        return self.preprocessing.input_size

    @property
    def heads(self) -> tuple[str, ...]:
        """Every layer sized by the classes: :attr:`head` then :attr:`extra_heads`."""
        return ((self.head,) if self.head else ()) + tuple(self.extra_heads)

    def takes_flow(self, kwargs: dict | None = None) -> bool:
        """Whether the model built with ``kwargs`` (on top of :attr:`builder_kwargs`) takes
        optical-flow channels (:attr:`flow_kwarg`)."""
        if self.flow_kwarg is None:
            return False
        key, value = self.flow_kwarg
        return {**self.builder_kwargs, **(kwargs or {})}.get(key) == value

    def clip_preprocessing(self, preprocessing: Preprocessing, kwargs: dict | None = None) -> Preprocessing:
        """``preprocessing`` for the model built with ``kwargs``: T from :attr:`frames_kwarg`
        when given, the default flow method when the model takes flow (:attr:`flow_kwarg`), none
        when it does not; then checked (:meth:`check_clip_input`). Image models' is returned as is.

        Examples
        --------
        >>> p = get_entry("two_stream").clip_preprocessing(get_entry("two_stream").preprocessing,
        ...                                                {"frames": 6, "motion": "flow"})
        >>> p.frames, p.flow
        (6, 'dis')
        """
        import dataclasses

        if not preprocessing.frames:
            return preprocessing
        kwargs = dict(kwargs or {})
        if self.frames_kwarg is not None and self.frames_kwarg in kwargs:
            frames = kwargs[self.frames_kwarg]
            if not (isinstance(frames, int) and not isinstance(frames, bool) and frames >= 1):
                from cnntool.errors import UsageError

                raise UsageError(f"{self.name}: {self.frames_kwarg} must be a whole number of frames, not {frames!r}")
            size = preprocessing.input_size
            preprocessing = dataclasses.replace(preprocessing, input_size=(size[0], frames, *size[2:]))
        if self.takes_flow(kwargs) != bool(preprocessing.flow):
            from cnntool.data.preprocessing import DEFAULT_FLOW

            preprocessing = dataclasses.replace(preprocessing, flow=DEFAULT_FLOW if self.takes_flow(kwargs) else None)
        self.check_clip_input(preprocessing, kwargs)
        return preprocessing

    def check_clip_input(self, preprocessing: Preprocessing, kwargs: dict | None = None, *,
                         source: str | None = None) -> None:
        """Refuse a clip input the model cannot take: T against :attr:`min_frames`,
        :attr:`exact_frames` and the T the model was built for (:attr:`frames_kwarg`), and the
        flow channels against what the model takes (:attr:`flow_kwarg`).

        Parameters
        ----------
        preprocessing : Preprocessing
        kwargs : dict, optional
            The builder keywords the model was (or will be) built with (a checkpoint's ``arch_kwargs``).
        source : str, optional
            Where the preprocessing comes from (a checkpoint path), named in the message.

        Raises
        ------
        UsageError
            One line naming the model, the frames it takes and the frames it was given.

        Examples
        --------
        >>> from cnntool.data.preprocessing import Preprocessing
        >>> get_entry("mvit_v1_b").check_clip_input(Preprocessing((3, 8, 224, 224), (0.45,) * 3, (0.225,) * 3))
        Traceback (most recent call last):
        ...
        cnntool.errors.UsageError: mvit_v1_b takes clips of exactly 16 frames, not 8
        """
        frames = preprocessing.frames
        if frames is None:
            return
        from cnntool.errors import UsageError

        where = f"{source}: " if source else ""
        exact = self.exact_frames
        if self.frames_kwarg is not None:
            exact = {**self.builder_kwargs, **(kwargs or {})}.get(self.frames_kwarg, exact)
        if exact is not None and frames != exact:
            raise UsageError(f"{where}{self.name} takes clips of exactly {exact} frames, not {frames}",
                             hint=f"use {exact} frames (its preprocessing's T), or another video model")
        if self.min_frames is not None and frames < self.min_frames:
            raise UsageError(f"{where}{self.name} takes clips of at least {self.min_frames} frames, not {frames}",
                             hint=f"use {self.min_frames} or more frames, or another video model")
        if self.takes_flow(kwargs) and not preprocessing.flow:
            raise UsageError(f"{where}{self.name} takes optical flow channels, but its preprocessing names no "
                             f"flow method", hint="retrain it with this cnntool (its flow input was never computed)")
        if preprocessing.flow and not self.takes_flow(kwargs):
            raise UsageError(f"{where}{self.name} as built takes no optical flow, but its preprocessing adds "
                             f"{preprocessing.flow} flow channels", hint="the file was changed: retrain it")

    def builder_fn(self) -> Callable[..., Any]:
        if callable(self.builder):
            return self.builder
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, *, num_classes: int | None = None, in_channels: int | None = None,
              weights: str | None = None, **kwargs):
        """Build the model: random init, or pretrained ``weights``; then adapt head and input.

        A pretrained model keeps its pretrained head unless ``num_classes`` differs, in which
        case the :attr:`heads` are replaced by fresh ones of the right size
        (:func:`cnntool.models.surgery.replace_heads`). A different ``in_channels`` replaces
        :attr:`first_conv` likewise. torchvision builders that would fetch ImageNet backbone
        weights by default (detectors, segmenters) get ``weights_backbone=None`` unless the
        entry's ``builder_kwargs`` say otherwise: nothing is downloaded that nobody asked for.
        """
        num_classes = num_classes or self.num_classes
        in_channels = in_channels or self.input_size[0]
        kwargs = {**self.builder_kwargs, **kwargs}
        fn = self.builder_fn()
        if self.torchvision_name is not None:
            if _takes(fn, "weights_backbone"):
                kwargs.setdefault("weights_backbone", None)
            if weights is not None:
                model = fn(weights=self.torchvision_weights(weights), **kwargs)
                if num_classes != self.num_classes:
                    from cnntool.models.surgery import replace_heads

                    replace_heads(model, self.heads, num_classes)
            elif self.heads:
                model = fn(weights=None, num_classes=num_classes, **kwargs)
            else:  # no class-sized output (optical flow)
                model = fn(weights=None, **kwargs)
            if in_channels != self.input_size[0]:
                from cnntool.models.surgery import replace_first_conv

                replace_first_conv(model, self.first_conv, in_channels)
            return model
        if weights is not None:
            raise MissingWeightsError(f"{self.name} has no pretrained weights",
                                      hint="train it with `cnntool train`, then use the checkpoint")
        return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)

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


def _takes(fn, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register(entry: ModelEntry) -> ModelEntry:
    """Add an entry; names are unique and lower case."""
    if entry.name != entry.name.lower():
        raise ValueError(f"registry names are lower case: {entry.name!r}")
    if entry.name in _REGISTRY:
        raise ValueError(f"{entry.name!r} is already registered")
    if entry.task not in TASK_INFO:
        raise ValueError(f"{entry.name}: task must be one of {TASKS}")
    if not isinstance(entry.preprocessing, Preprocessing):
        raise ValueError(f"{entry.name}: preprocessing must be a Preprocessing")
    if entry.preprocessing.frames is not None:  # an entry keeps its own input contract
        entry.check_clip_input(entry.preprocessing)
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
    for prefix, source in _ENTRY_SOURCES.items():  # timm's 1,000+ architectures, entries made on first use
        if key.startswith(prefix):
            module, _, function = source.partition(":")
            return getattr(importlib.import_module(module), function)(name[len(prefix):])
    raise UnknownModelError(f"unknown model {name!r}",
                            hint=did_you_mean(key, list(_REGISTRY), fallback="see `cnntool models list`"))


def is_checkpoint_spec(spec: str) -> bool:
    """A spec is a checkpoint when it names a file or folder, or looks like one (has a path
    separator or .pt/.pth); ``timm/NAME`` is a registry name.

    Examples
    --------
    >>> is_checkpoint_spec("runs/a/best.pt"), is_checkpoint_spec("timm/convnext_tiny"), is_checkpoint_spec("resnet18")
    (True, False, False)
    """
    if spec.lower().startswith(TIMM_PREFIX) and not os.path.exists(spec):
        return False
    return os.path.exists(spec) or os.sep in spec or spec.endswith((".pt", ".pth", ".ckpt", ".safetensors"))


def cached_weights_path(entry: ModelEntry, weights: str) -> Path:
    """Where torchvision's hub cache keeps the file of ``weights`` (``$TORCH_HOME/hub/checkpoints/...``);
    for ``timm/`` entries, where the local Hugging Face cache keeps it (or would)."""
    if entry.name.startswith(TIMM_PREFIX):
        return entry.torchvision_weights(weights).cache_path
    from torch.hub import get_dir

    member = entry.torchvision_weights(weights)
    return Path(get_dir()) / "checkpoints" / os.path.basename(member.url)


def build_pretrained(entry: ModelEntry, weights: str, num_classes: int | None = None):
    """Build with pretrained weights from torch's cache, downloading them first when missing.

    The user asked for these weights by name, so a download is allowed; it goes through
    :func:`fetch_weights` (no "Downloading:" line from torch's hub, a progress bar only on a
    terminal), and an offline machine gets one :class:`MissingWeightsError` naming the URL and
    the exact cache path to put the file at. ``timm/`` entries never download: they read the
    local Hugging Face cache only (:meth:`cnntool.models.timm_source.TimmEntry.build`).
    """
    import pickle

    if entry.name.startswith(TIMM_PREFIX):
        return entry.build(weights=weights, num_classes=num_classes)
    url = entry.torchvision_weights(weights).url
    cached = cached_weights_path(entry, weights)
    if not cached.is_file():
        fetch_weights(url, cached, what=f"{entry.name}:{weights}")
    try:
        return entry.build(weights=weights, num_classes=num_classes)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise MissingWeightsError(
            f"the cached weights file {cached} is corrupted or incomplete: {first_line(exc)}",
            hint=f"delete it and download again from {url}",
        ) from None


def fetch_weights(url: str, path: Path, *, what: str | None = None) -> None:
    """Download ``url`` to ``path`` (checking the hash its torchvision file name carries).

    Raises
    ------
    MissingWeightsError
        No network, or the download failed: the message names the file to place in the cache.
    """
    import sys

    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None,
                                       progress=_isatty(sys.stderr))
    except Exception as exc:  # URLError, timeouts, hash mismatch, disk errors
        raise MissingWeightsError(
            f"weights {what or path.name} are not in the cache ({path}) and cannot be downloaded: {first_line(exc)}",
            hint=f"download {url} and place it at {path} (set TORCH_HOME to move the cache)",
        ) from None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
