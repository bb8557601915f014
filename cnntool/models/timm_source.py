"""timm's architectures as registry entries, made on first use: ``timm/NAME`` and ``timm/NAME:TAG``.

timm (PyTorch Image Models) has over a thousand architectures and, for many of them, several
pretrained weights, named by a tag (``convnext_tiny.fb_in1k``, ``convnext_tiny.in12k_ft_in1k``).
:func:`~cnntool.models.registry.get_entry` sends every ``timm/NAME`` here (:func:`timm_entry`),
and gets a :class:`TimmEntry`, a :class:`~cnntool.models.registry.ModelEntry` like any other:

- ``builder``: :func:`create_model`, ``timm.create_model(NAME, pretrained=False, num_classes=...,
  in_chans=...)``: random weights, nothing downloaded;
- ``preprocessing``: the default weights' pretrained config, as timm's own evaluation transform
  reads it (:func:`timm_preprocessing`: input size, ``crop_pct`` -> the resize before the centre
  crop, ``crop_mode``, interpolation, mean and std); other weights carry their own
  (:attr:`TimmWeights.preprocessing`);
- ``head``: the config's ``classifier`` (DeiT's distillation head goes to ``extra_heads``);
  ``first_conv``: its ``first_conv``; ``cam_layer``: the last spatial NCHW feature map
  (:func:`last_feature_map`, one forward pass on the meta device; None for token and NHWC
  models such as ViT and Swin, where ``--layer`` is the way);
- ``reference_params``: counted on the meta device (no memory, no init);
- ``weights``: the tags timm lists with a weights file; ``DEFAULT`` is timm's default tag.

Pretrained weights are read from the local caches timm itself fills, and from nowhere else: the
Hugging Face hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``)
for weights on the hub, torch's hub cache (``TORCH_HOME``) for the few that only have a URL.
Nothing is downloaded: a missing file is a :class:`~cnntool.errors.MissingWeightsError` naming
the file, the place to put it and the command that fetches it. Weights trained on another label
set than the entry's (ImageNet-22k, feature encoders without a classifier) keep their backbone
and get a fresh head of the entry's size, as any other class count does.

Importing this module imports neither torch nor timm.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from cnntool.data.preprocessing import INTERPOLATIONS, Preprocessing
from cnntool.errors import MissingWeightsError, UnknownModelError, did_you_mean, first_line
from cnntool.models.registry import IMAGENET_MEAN, IMAGENET_STD, TIMM_PREFIX, ModelEntry

#: Outputs of an entry whose default weights have no classifier (feature encoders: DINOv2, AIMv2).
DEFAULT_NUM_CLASSES = 1000
#: timm's crop fraction when a config gives none.
DEFAULT_CROP_PCT = 0.875
#: The weights files of a timm repository on the Hugging Face hub, in the order timm prefers them.
HF_WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
_HF_URL = "https://huggingface.co/{repo}/resolve/{revision}/{filename}"


def create_model(*, model_name: str, num_classes: int, in_channels: int, **kwargs):
    """``timm.create_model`` with random weights: the builder of every timm entry.

    Examples
    --------
    >>> model = create_model(model_name="test_resnet", num_classes=3, in_channels=1)
    >>> model.fc.out_features, model.conv1[0].in_channels
    (3, 1)
    """
    import timm

    return timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment at each call.

    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``: the rule
    huggingface_hub applies once, at import.

    Examples
    --------
    >>> hf_hub_cache().is_absolute()
    True
    """
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        path = explicit
    else:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
        path = os.path.join(home, "hub")
    return Path(os.path.expanduser(os.path.expandvars(path))).absolute()


def timm_preprocessing(cfg) -> Preprocessing:
    """The evaluation preprocessing of a timm pretrained config (a ``PretrainedCfg`` or its dict).

    As ``timm.data.create_transform(**resolve_data_config(...))`` builds it: the input size, the
    resize to ``floor(size / crop_pct)`` before the centre crop (the shorter side for
    ``crop_mode`` ``center``, both sides for ``squash``), the interpolation, mean and std.
    ``border`` (fit the longer side, pad to a square: six vision encoders) has no counterpart in
    :class:`Preprocessing` and becomes ``stretch``.

    Examples
    --------
    >>> p = timm_preprocessing({"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic",
    ...                         "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
    >>> p.input_size, p.resize_mode, p.resize_size, p.interpolation
    ((3, 224, 224), 'crop', 256, 'bicubic')
    >>> timm_preprocessing({"input_size": (3, 384, 384), "crop_pct": 1.0, "crop_mode": "squash",
    ...                     "mean": (0.5,) * 3, "std": (0.5,) * 3}).resize_size
    (384, 384)
    """
    cfg = cfg if isinstance(cfg, dict) else cfg.to_dict()
    channels, height, width = (int(n) for n in cfg["input_size"])
    crop_pct = cfg.get("crop_pct") or DEFAULT_CROP_PCT
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    mode = cfg.get("crop_mode") or "center"
    if mode == "squash":
        resize_mode, resize_size = "crop", scale
    elif mode == "border":
        resize_mode, resize_size = "stretch", None
    else:
        resize_mode, resize_size = "crop", min(scale)
    interpolation = cfg.get("interpolation") or "bicubic"
    return Preprocessing(
        (channels, height, width),
        tuple(float(v) for v in cfg.get("mean") or IMAGENET_MEAN),
        tuple(float(v) for v in cfg.get("std") or IMAGENET_STD),
        resize_mode=resize_mode, resize_size=resize_size,
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
    )


# --- weights ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimmWeights:
    """One set of timm pretrained weights (a tag), read where cnntool reads a torchvision
    ``Weights`` member (``name``, ``url``, ``meta``), with its whole :class:`Preprocessing`.

    Attributes
    ----------
    name : str
        The tag (``fb_in1k``).
    arch : str
        timm's architecture name (``convnext_tiny``).
    preprocessing : Preprocessing
        How these weights see pixels (:func:`timm_preprocessing` of their config).
    meta : dict
        ``categories`` (class names, when timm knows them and they match ``num_classes``),
        ``num_classes`` (0: no classifier), ``license``, ``hf_hub_id``.
    url : str
        Where the weights file can be downloaded, for the person reading an error: cnntool never does.
    hf_hub_id : str or None
        The repository on the Hugging Face hub (None: a URL only, kept in torch's hub cache).
    revision : str
        The repository revision (``main`` unless timm pins one).
    filenames : tuple of str
        The files looked for in the repository, preferred first.
    """

    name: str
    arch: str
    preprocessing: Preprocessing
    meta: dict
    url: str
    hf_hub_id: str | None
    revision: str = "main"
    filenames: tuple[str, ...] = HF_WEIGHTS_FILES

    @property
    def spec(self) -> str:
        """``timm/NAME:TAG``."""
        return f"{TIMM_PREFIX}{self.arch}:{self.name}"

    def cached_file(self) -> Path | None:
        """The weights file in the local cache, or None. Looks, never downloads."""
        if self.hf_hub_id is None:
            path = self._torch_cache_path()
            return path if path.is_file() else None
        from huggingface_hub import try_to_load_from_cache

        cache = hf_hub_cache()
        for filename in self.filenames:
            found = try_to_load_from_cache(self.hf_hub_id, filename, cache_dir=str(cache), revision=self.revision)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None

    @property
    def cache_path(self) -> Path:
        """The cached file when there is one, else where it belongs (:attr:`expected_path`)."""
        return self.cached_file() or self.expected_path

    @property
    def expected_path(self) -> Path:
        """Where a file placed by hand is found: in the hub cache,
        ``<cache>/models--ORG--NAME/snapshots/<revision>/model.safetensors`` (the commit that
        ``refs/<revision>`` names when the repository folder has one, else the revision itself);
        in torch's cache, ``$TORCH_HOME/hub/checkpoints/<file name of the URL>``."""
        if self.hf_hub_id is None:
            return self._torch_cache_path()
        folder = hf_hub_cache() / ("models--" + self.hf_hub_id.replace("/", "--"))
        ref = folder / "refs" / self.revision
        snapshot = ref.read_text().strip() if ref.is_file() else self.revision
        return folder / "snapshots" / snapshot / self.filenames[0]

    def _torch_cache_path(self) -> Path:
        from urllib.parse import urlparse

        from torch.hub import get_dir

        return Path(get_dir()) / "checkpoints" / os.path.basename(urlparse(self.url).path)

    def missing(self) -> MissingWeightsError:
        """The error for weights that are not in the cache: what to put where, and how to fetch it."""
        path = self.expected_path
        if self.hf_hub_id is None:
            return MissingWeightsError(
                f"weights {self.spec} are not in torch's cache ({path.parent}); cnntool does not download them",
                hint=f"download {self.url} and place it at {path} (set TORCH_HOME to move the cache)")
        return MissingWeightsError(
            f"weights {self.spec} are not in the local Hugging Face cache ({hf_hub_cache()}); "
            "cnntool does not download them",
            hint=f"place {self.filenames[0]} from {self.url} at {path}, or run `hf download {self.hf_hub_id} "
                 f"{self.filenames[0]}` where there is a network and copy the cache over "
                 "(HF_HOME or HF_HUB_CACHE move it)")


@functools.lru_cache(maxsize=None)
def timm_weights(arch: str, tag: str) -> TimmWeights:
    """The :class:`TimmWeights` of timm's ``arch.tag`` (both as timm spells them).

    Examples
    --------
    >>> w = timm_weights("test_resnet", "r160_in1k")
    >>> w.hf_hub_id, w.preprocessing.input_size, w.meta["categories"][0]
    ('timm/test_resnet.r160_in1k', (3, 160, 160), 'tench')
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}")
    if cfg is None or not cfg.has_weights:
        raise MissingWeightsError(f"timm has no weights {arch}.{tag}", hint=f"see `cnntool models info {TIMM_PREFIX}{arch}`")
    meta = {"categories": _categories(cfg), "num_classes": int(cfg.num_classes or 0),
            "license": cfg.license, "hf_hub_id": cfg.hf_hub_id}
    preprocessing = timm_preprocessing(cfg)
    if not cfg.hf_hub_id:
        return TimmWeights(tag, arch, preprocessing, meta, url=str(cfg.url), hf_hub_id=None)
    repo, _, revision = cfg.hf_hub_id.partition("@")
    filenames = _hub_filenames(cfg.hf_hub_filename)
    url = _HF_URL.format(repo=repo, revision=revision or "main", filename=filenames[0])
    return TimmWeights(tag, arch, preprocessing, meta, url=url, hf_hub_id=repo, revision=revision or "main",
                       filenames=filenames)


def _hub_filenames(filename: str | None) -> tuple[str, ...]:
    """The files timm would read for a repository: its safetensors form first."""
    if not filename:
        return HF_WEIGHTS_FILES
    if filename == HF_WEIGHTS_FILES[1]:
        return HF_WEIGHTS_FILES
    if filename.endswith(".bin"):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def _categories(cfg) -> list[str]:
    """Class names of a pretrained config: its own, else the ImageNet subset its class count
    names (the first lemma: ``tench``), else none."""
    if cfg.label_names and len(cfg.label_names) == cfg.num_classes:
        return [str(n) for n in cfg.label_names]
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(cfg)
    if subset is None or cfg.label_offset:
        return []
    info = ImageNetInfo(subset)
    if info.num_classes() != cfg.num_classes:
        return []
    return [d.split(",")[0].strip() for d in info.label_descriptions()]


# --- entries ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimmEntry(ModelEntry):
    """A registry entry for a timm architecture; its weights are timm's tags, read from the
    local caches only (see the module docstring)."""

    @property
    def timm_name(self) -> str:
        """timm's name of the architecture (``convnext_tiny``)."""
        return self.builder_kwargs["model_name"]

    def torchvision_weights(self, name: str) -> TimmWeights:
        """The weights called ``name`` (a tag, or ``DEFAULT``; any case) as :class:`TimmWeights`,
        which stand where torchvision's ``Weights`` member does for other entries.

        Raises
        ------
        MissingWeightsError
            An architecture without pretrained weights, or a tag it does not have.
        """
        if not self.weights:
            raise MissingWeightsError(f"{self.name} has no pretrained weights in timm",
                                      hint="train it with `cnntool train`, then use the checkpoint")
        tags = {t.lower(): t for t in self.weights}
        tag = self.default_weights if name.upper() == "DEFAULT" else tags.get(name.lower())
        if tag is None:
            raise MissingWeightsError(f"{self.name} has no weights named {name!r}",
                                      hint="available: " + ", ".join(["DEFAULT", *self.weights]))
        return timm_weights(self.timm_name, tag)

    def build(self, *, num_classes: int | None = None, in_channels: int | None = None,
              weights: str | None = None, **kwargs):
        """Random weights (timm's own init), or the pretrained ``weights`` from the local cache.

        Pretrained, timm loads the file (strictly, when its classifier has the entry's size)
        and adapts the stem to ``in_channels``; a different ``num_classes`` then gets fresh
        :attr:`heads` (:func:`~cnntool.models.surgery.replace_heads`). Weights without a
        classifier are loaded into a model built with ``num_classes`` outputs.

        Raises
        ------
        MissingWeightsError
            The file is not in the cache (nothing is downloaded), or it is damaged or does not
            fit the architecture.
        """
        if weights is None:
            return super().build(num_classes=num_classes, in_channels=in_channels, **kwargs)
        import pickle

        import timm
        from safetensors import SafetensorError

        member = self.torchvision_weights(weights)
        path = member.cached_file()
        if path is None:
            raise member.missing()
        num_classes = num_classes or self.num_classes
        own = int(member.meta["num_classes"])
        kwargs = {**self.builder_kwargs, **kwargs}
        arch = kwargs.pop("model_name")
        try:
            model = timm.create_model(f"{arch}.{member.name}", pretrained=True,
                                      pretrained_cfg_overlay={"file": str(path)},
                                      num_classes=own if own > 0 else num_classes,
                                      in_chans=in_channels or self.input_size[0], **kwargs)
        except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError, SafetensorError) as exc:
            raise MissingWeightsError(
                f"the cached weights file {path} is damaged or does not fit {self.name}: {first_line(exc, 200)}",
                hint=f"delete it and fetch it again from {member.url}") from None
        if own > 0 and own != num_classes:
            from cnntool.models.surgery import replace_heads

            replace_heads(model, self.heads, num_classes)
        return model


def timm_entry(name: str) -> TimmEntry:
    """The registry entry of timm's architecture ``name`` (any case), made once per process.

    Raises
    ------
    UnknownModelError
        Not a timm architecture (with close names), or a name with a tag (``NAME.TAG``, where
        cnntool writes ``NAME:TAG``).

    Examples
    --------
    >>> entry = timm_entry("test_resnet")
    >>> entry.name, entry.head, entry.cam_layer, entry.first_conv, entry.default_weights
    ('timm/test_resnet', 'fc', 'layer4', 'conv1.0', 'r160_in1k')
    """
    return _timm_entry(_architecture(name))


def _architecture(name: str) -> str:
    import timm

    arch = name.strip().lower()
    spelled = TIMM_PREFIX + name
    base, dot, tag = arch.partition(".")
    if dot and timm.is_model(base):
        raise UnknownModelError(f"unknown model {spelled!r}", hint=f"weights follow a colon: {TIMM_PREFIX}{base}:{tag}")
    if not dot and timm.is_model(arch):
        return arch
    hint = did_you_mean(TIMM_PREFIX + arch, [TIMM_PREFIX + n for n in timm.list_models()],
                        fallback="timm's names: python -c \"import timm; print(timm.list_models('*convnext*'))\"")
    raise UnknownModelError(f"unknown model {spelled!r}", hint=hint)


@functools.lru_cache(maxsize=None)
def _timm_entry(arch: str) -> TimmEntry:
    from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg, model_entrypoint

    default = get_pretrained_cfg(arch)
    tags = tuple(full.partition(".")[2] for full, cfg in get_arch_pretrained_cfgs(arch).items() if cfg.has_weights)
    default_tag = default.tag if default.tag in tags else (tags[0] if tags else None)
    preprocessing = timm_preprocessing(default)
    num_classes = default.num_classes if (default.num_classes or 0) > 0 else DEFAULT_NUM_CLASSES
    heads = _names(default.classifier)
    params, cam_layer = _architecture_facts(arch, num_classes, preprocessing.input_size)
    family = model_entrypoint(arch).__module__.rpartition(".")[2]
    weights_text = (f"{len(tags)} pretrained weights, default {default_tag}" if tags
                    else "no pretrained weights in timm")
    return TimmEntry(
        name=TIMM_PREFIX + arch, task="classification", builder=f"{__name__}:create_model", family=family,
        preprocessing=preprocessing, num_classes=num_classes, reference_params=params,
        head=heads[0] if heads else None, extra_heads=heads[1:], cam_layer=cam_layer,
        first_conv=(_names(default.first_conv) or (None,))[0], weights=tags, default_weights=default_tag,
        description=f"timm's {arch} ({family}); {weights_text}", builder_kwargs={"model_name": arch},
    )


def _names(value) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _architecture_facts(arch: str, num_classes: int, input_size: tuple[int, ...]) -> tuple[int, str | None]:
    """(parameter count, default Grad-CAM layer) from one build on the meta device."""
    import torch

    with torch.device("meta"):
        model = create_model(model_name=arch, num_classes=num_classes, in_channels=input_size[0])
    return sum(p.numel() for p in model.parameters()), last_feature_map(model, input_size)


def last_feature_map(model, input_size: tuple[int, ...]) -> str | None:
    """The module whose output is a timm model's last spatial feature map: the default Grad-CAM layer.

    The search starts where the last stage timm's ``feature_info`` names finishes (its output,
    when one tensor, must be (N, C, h, w) with its C channels; HRNet's stage gives a list) and
    takes the last module to finish with a 4-D output larger than 1 x 1 (EfficientNet's ``bn2``
    after its last stage, HRNet's ``final_layer``, ResNet's ``layer4``). One forward pass of
    zeros on the model's device: on the meta device, shapes only.

    Returns
    -------
    str or None
        None when the model gives no ``feature_info``, keeps features as tokens (ViT) or NHWC
        (Swin), or cannot run a forward pass on its device.

    Examples
    --------
    >>> import torch
    >>> with torch.device("meta"):
    ...     model = create_model(model_name="test_efficientnet", num_classes=10, in_channels=3)
    >>> last_feature_map(model, (3, 64, 64))
    'bn2'
    """
    import torch

    info = getattr(model, "feature_info", None)
    if not info or getattr(model, "output_fmt", "NCHW") != "NCHW":
        return None
    stage, channels = info[-1]["module"], info[-1]["num_chs"]
    finished: list[tuple[str, object]] = []  # (name, output tensor or None) in the order modules finish

    def record(name, _module, _inputs, output):
        finished.append((name, output if torch.is_tensor(output) else None))

    hooks = [module.register_forward_hook(functools.partial(record, name)) for name, module in model.named_modules() if name]
    tensor = next(model.parameters(), None)
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=tensor.device if tensor is not None else "cpu"))
    except Exception:  # an architecture whose forward cannot run here has no default layer; --layer still works
        return None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)
    names = [name for name, _ in finished]
    if stage not in names:
        return None
    start = len(names) - 1 - names[::-1].index(stage)
    output = finished[start][1]
    if output is not None and (output.ndim != 4 or output.shape[1] != channels):
        return None  # tokens (N, L, C) or channels last
    spatial = [i for i in range(start, len(finished)) if finished[i][1] is not None
               and finished[i][1].ndim == 4 and finished[i][1].shape[-1] * finished[i][1].shape[-2] > 1]
    if not spatial:
        return None
    # a pass-through placeholder (nn.Identity: ConvNeXt's norm_pre, ByobNet's final_conv) hands on the
    # tensor it got; the map is named after the module that made it
    modules = dict(model.named_modules())
    index = spatial[-1]
    while isinstance(modules[finished[index][0]], torch.nn.Identity):
        made = [i for i in range(index) if finished[i][1] is finished[index][1]
                and not isinstance(modules[finished[i][0]], torch.nn.Identity)]
        if not made:
            break
        index = made[-1]
    return finished[index][0]
