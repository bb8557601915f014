"""Layer tables: each layer's output shape and parameter count, from one forward pass.

The forward pass runs on the ``meta`` device (shapes only, no memory, no arithmetic), so a
VGG-16 table costs as little as a LeNet-5 one. :func:`meta_model` builds a registry entry
there; :func:`summarize` records the table with forward hooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnntool.errors import UsageError, first_line

_SIZE = re.compile(r"^\s*\d+(\s*[xX,]\s*\d+){0,3}\s*$")


@dataclass(frozen=True)
class LayerRow:
    """One layer of the table.

    Attributes
    ----------
    layer : str
        Dotted module path (``features.0``, ``layer1.0.conv1``).
    type : str
        Module class name (``Conv2d``).
    output_shape : str
        Output shape without the batch dimension (``6x28x28``); empty if the layer never ran.
    params : int
        Parameters of the layer and its sublayers.
    kernel, stride : str or None
        ``5x5``, ``2x2`` for convolutions and pooling layers.
    """

    layer: str
    type: str
    output_shape: str
    params: int
    kernel: str | None = None
    stride: str | None = None


@dataclass(frozen=True)
class ModelSummary:
    """A layer table with its totals.

    Attributes
    ----------
    layers : list of LayerRow
        In the order the forward pass runs them (layers that never ran last).
    input_size : tuple of int
        (C, H, W) of the forward pass.
    output_shape : str
        The model's output shape without the batch dimension.
    total_params, trainable_params : int
        Counted once per parameter tensor, shared ones included once.
    model_type : str
        The model's class name.
    """

    layers: list[LayerRow]
    input_size: tuple[int, ...]
    output_shape: str
    total_params: int
    trainable_params: int
    model_type: str


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts of ``model``.

    Examples
    --------
    >>> import torch.nn as nn
    >>> count_parameters(nn.Linear(120, 84))
    (10164, 10164)
    """
    total = trainable = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return total, trainable


def meta_model(entry, *, num_classes: int | None = None, in_channels: int | None = None, **kwargs):
    """Build ``entry`` on the meta device: the real architecture, no memory and no init cost.

    Examples
    --------
    >>> from cnntool.models.registry import get_entry
    >>> count_parameters(meta_model(get_entry("lenet5")))
    (61706, 61706)
    """
    import torch

    with torch.device("meta"):
        return entry.build(num_classes=num_classes, in_channels=in_channels, **kwargs)


def parse_input_size(text: str, *, default: tuple[int, ...]) -> tuple[int, ...]:
    """An input size as the user writes it, completed from the model's ``default``.

    ``3x224x224`` is (C, H, W); ``224x224`` or ``224`` keep the default's channels (and frames,
    for clip models, whose full form is CxTxHxW: ``3x16x112x112``).

    Raises
    ------
    UsageError
        Anything else, or a zero size.

    Examples
    --------
    >>> parse_input_size("1x32x32", default=(3, 64, 64))
    (1, 32, 32)
    >>> parse_input_size("64", default=(3, 32, 32)), parse_input_size("96", default=(3, 16, 112, 112))
    ((3, 64, 64), (3, 16, 96, 96))
    """
    full = "x".join(["C", "T", "H", "W"][-len(default):] if len(default) == 4 else ["C", "H", "W"])
    hint = f"use {full} ({format_size(default)}), HxW or one side"
    if _SIZE.match(text) is None:
        raise UsageError(f"bad input size {text!r}", hint=hint)
    numbers = tuple(int(n) for n in re.split(r"\s*[xX,]\s*", text.strip()))
    if len(numbers) == len(default):
        size = numbers
    elif len(numbers) == 2:
        size = (*default[:-2], *numbers)
    elif len(numbers) == 1:
        size = (*default[:-2], numbers[0], numbers[0])
    else:
        raise UsageError(f"bad input size {text!r} for a {len(default)}-dimensional input", hint=hint)
    if min(size) < 1:
        raise UsageError(f"bad input size {text!r}: sizes must be positive", hint=hint)
    return size


def format_size(size) -> str:
    """(3, 224, 224) -> ``3x224x224``."""
    return "x".join(str(int(n)) for n in size)


def summarize(model, input_size, *, depth: int | None = None, model_name: str = "the model",
              hint: str = "give another input size (CxHxW)") -> ModelSummary:
    """Run one forward pass of a batch of one and record each layer's output shape.

    Parameters
    ----------
    model : torch.nn.Module
        Best built with :func:`meta_model`; the pass runs on the device of its parameters,
        in eval mode (the model's mode is restored afterwards).
    input_size : tuple of int
        (C, H, W).
    depth : int, optional
        Show modules down to this nesting depth (1: the model's children), each with the
        parameters of everything below it; default: every leaf module.
    model_name, hint : str
        The model's name and the hint in the error for an input it cannot take.

    Returns
    -------
    ModelSummary

    Raises
    ------
    UsageError
        The model cannot take an input of this size.

    Examples
    --------
    >>> from cnntool.models.registry import get_entry
    >>> table = summarize(meta_model(get_entry("lenet5")), (1, 32, 32))
    >>> [row.output_shape for row in table.layers][:3], table.total_params
    (['6x28x28', '6x28x28', '6x14x14'], 61706)
    """
    import torch

    shown = [(name, module) for name, module in model.named_modules() if name and _is_shown(name, module, depth)]
    order: dict[str, int] = {}
    shapes: dict[str, str] = {}
    handles = []
    for name, module in shown:
        handles.append(module.register_forward_pre_hook(_pre_hook(name, order)))
        handles.append(module.register_forward_hook(_post_hook(name, shapes)))
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.zeros((1, *input_size), device=device))
    except NotImplementedError:
        raise  # an operator without a meta kernel: the caller may retry on the CPU
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UsageError(f"{model_name} cannot take a {format_size(input_size)} input: {first_line(exc, 200)}",
                         hint=hint) from None
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    never_ran = len(order)
    rows = sorted(shown, key=lambda item: order.get(item[0], never_ran))
    total, trainable = count_parameters(model)
    return ModelSummary(
        layers=[_row(name, module, shapes.get(name, "")) for name, module in rows],
        input_size=tuple(input_size), output_shape=_shape_text(output),
        total_params=total, trainable_params=trainable, model_type=type(model).__name__,
    )


def summarize_entry(entry, input_size, *, num_classes: int | None = None, depth: int | None = None,
                    arch_kwargs: dict | None = None) -> ModelSummary:
    """:func:`summarize` the registry ``entry`` built for ``input_size`` (its channels) and ``num_classes``.

    Built on the meta device; on the CPU (random init) if an operator has no meta kernel.

    Examples
    --------
    >>> from cnntool.models.registry import get_entry
    >>> summarize_entry(get_entry("lenet5"), (1, 32, 32)).output_shape
    '10'
    """
    kwargs = dict(arch_kwargs or {})  # the builder's options (a U-Net's own depth is not the table's)
    wording = dict(depth=depth, model_name=entry.name,
                   hint=f"its default input is {format_size(entry.input_size)}; give another --input")
    try:
        model = meta_model(entry, num_classes=num_classes, in_channels=input_size[0], **kwargs)
        return summarize(model, input_size, **wording)
    except NotImplementedError:
        model = entry.build(num_classes=num_classes, in_channels=input_size[0], **kwargs)
        return summarize(model, input_size, **wording)


def _is_shown(name: str, module, depth: int | None) -> bool:
    """Leaves, or with ``depth`` the modules at that depth and the leaves above it."""
    is_leaf = next(module.children(), None) is None
    level = name.count(".") + 1
    if depth is None:
        return is_leaf
    return level == depth or (level < depth and is_leaf)


def _pre_hook(name: str, order: dict):
    def hook(module, args):
        order.setdefault(name, len(order))

    return hook


def _post_hook(name: str, shapes: dict):
    def hook(module, args, output):
        shapes.setdefault(name, _shape_text(output))

    return hook


def _shape_text(output) -> str:
    """``6x28x28`` for a tensor (batch dimension dropped); tuples and dicts element-wise."""
    if hasattr(output, "shape"):
        return format_size(output.shape[1:]) if output.dim() > 1 else format_size(output.shape)
    if isinstance(output, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in output.items()) + "}"
    if isinstance(output, (list, tuple)):
        return "(" + ", ".join(_shape_text(v) for v in output) + ")"
    return type(output).__name__


def _row(name: str, module, output_shape: str) -> LayerRow:
    params = sum(p.numel() for p in module.parameters())
    kernel = stride = None
    if hasattr(module, "kernel_size"):
        dims = _spatial_dims(module)
        kernel = _tuple_text(module.kernel_size, dims)
        stride = _tuple_text(module.stride, dims)
    return LayerRow(layer=name, type=type(module).__name__, output_shape=output_shape, params=params,
                    kernel=kernel, stride=stride)


def _spatial_dims(module) -> int:
    """2 for Conv2d/MaxPool2d..., from the class name's ``1d``/``2d``/``3d`` suffix."""
    match = re.search(r"([123])d$", type(module).__name__)
    return int(match.group(1)) if match else 2


def _tuple_text(value, dims: int) -> str:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    return "x".join(str(v) for v in values)


def summarize_spec(spec: str, *, input_text: str | None = None, depth: int | None = None) -> ModelSummary:
    """The layer table of a spec: ``name``, ``name:WEIGHTS`` or a checkpoint path.

    A checkpoint is summarised as it was trained (its classes, channels and builder options);
    the weights themselves are not needed. ``input_text`` (``3x224x224``) overrides the input.

    Examples
    --------
    >>> summarize_spec("lenet5", input_text="1x32x32").total_params
    61706
    """
    from cnntool.models.registry import is_checkpoint_spec

    if is_checkpoint_spec(spec):
        entry, num_classes, input_size, kwargs = _checkpoint_architecture(spec)
    else:
        entry, input_size = _registry_architecture(spec)
        num_classes, kwargs = None, {}
    if input_text is not None:
        input_size = parse_input_size(input_text, default=input_size)
    return summarize_entry(entry, input_size, num_classes=num_classes, depth=depth, arch_kwargs=kwargs)


def describe_entry(spec: str) -> dict:
    """A registry entry as a plain record: every field, the parameter count, the weights in the cache.

    With ``name:WEIGHTS``, also those weights' file, cache state, evaluation transform and
    published metrics (the input size and resize are then the weights' own).

    Examples
    --------
    >>> record = describe_entry("lenet5")
    >>> record["params"], record["input_size"], record["head"]
    (61706, '1x32x32', '11')
    """
    from cnntool.models.loading import pretrained_preprocessing
    from cnntool.models.registry import cached_weights_path, get_entry

    name, _, weights = spec.partition(":")
    entry = get_entry(name)
    total, trainable = count_parameters(meta_model(entry))
    builder = entry.builder if isinstance(entry.builder, str) else f"{entry.builder.__module__}:{entry.builder.__qualname__}"
    record = {
        "name": entry.name, "task": entry.task, "family": entry.family, "description": entry.description,
        "params": total, "trainable_params": trainable, "reference_params": entry.reference_params,
        **preprocessing_fields(entry.preprocessing),
        "num_classes": entry.num_classes, "head": entry.head, "extra_heads": list(entry.extra_heads),
        "cam_layer": entry.cam_layer,
        "first_conv": entry.first_conv, "weights": list(entry.weights), "default_weights": entry.default_weights,
        "weights_cached": [w for w in entry.weights if cached_weights_path(entry, w).is_file()],
        "torchvision_name": entry.torchvision_name, "builder": builder, "builder_kwargs": dict(entry.builder_kwargs),
    }
    if weights:
        member = entry.torchvision_weights(weights)
        cached = cached_weights_path(entry, weights)
        record.update({
            "weights_name": member.name, "url": member.url, "cache_path": str(cached), "cached": cached.is_file(),
            "categories": len(member.meta.get("categories") or []),
            **preprocessing_fields(pretrained_preprocessing(entry, member)),
            "metrics": dict(member.meta.get("_metrics") or {}),
        })
    return record


def preprocessing_fields(preprocessing) -> dict:
    """A :class:`~cnntool.data.preprocessing.Preprocessing` as record fields (sizes as ``3x224x224``)."""
    fields = preprocessing.to_dict()
    fields["input_size"] = format_size(preprocessing.input_size)
    return fields


def describe_checkpoint(path: str) -> dict:
    """A checkpoint's metadata as a plain record (no weights): arch, classes, metrics, config...

    The parameter count comes from rebuilding the architecture on the meta device.
    """
    from cnntool.models.checkpoint import checkpoint_preprocessing, load_checkpoint
    from cnntool.models.loading import resolve_checkpoint_path

    ckpt = load_checkpoint(resolve_checkpoint_path(path))
    entry, num_classes, input_size, kwargs = _checkpoint_architecture(path, ckpt)
    total, trainable = count_parameters(meta_model(entry, num_classes=num_classes, in_channels=input_size[0], **kwargs))
    return {
        "path": str(path), "arch": ckpt["arch"], "task": ckpt["task"], "params": total,
        "num_classes": num_classes, "classes": list(ckpt["classes"]),
        **preprocessing_fields(checkpoint_preprocessing(ckpt, entry)),
        "epoch": ckpt.get("epoch"), "metrics": ckpt.get("metrics") or {}, "config": ckpt.get("config") or {},
        "arch_kwargs": kwargs, "created": ckpt.get("created"), "cnntool_version": ckpt.get("cnntool_version"),
        "format_version": ckpt.get("format_version"),
    }


def _registry_architecture(spec: str):
    """(entry, input size) of ``name`` or ``name:WEIGHTS`` (the weights name is checked)."""
    from cnntool.models.loading import pretrained_preprocessing
    from cnntool.models.registry import get_entry

    name, _, weights = spec.partition(":")
    entry = get_entry(name)
    if weights:
        return entry, pretrained_preprocessing(entry, entry.torchvision_weights(weights)).input_size
    return entry, tuple(entry.input_size)


def _checkpoint_architecture(path: str, ckpt: dict | None = None):
    """(entry, num_classes, input size, builder kwargs) a checkpoint was trained with."""
    from cnntool.models.checkpoint import checkpoint_entry, checkpoint_preprocessing, load_checkpoint
    from cnntool.models.loading import resolve_checkpoint_path

    ckpt = ckpt if ckpt is not None else load_checkpoint(resolve_checkpoint_path(path))
    entry = checkpoint_entry(path, ckpt)
    size = checkpoint_preprocessing(ckpt, entry).input_size
    return entry, len(ckpt["classes"]), size, dict(ckpt.get("arch_kwargs") or {})
