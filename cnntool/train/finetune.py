"""Transfer learning: which layers train, at which learning rate.

The registry entry names the head layers (``fc``, ``classifier.6``, ``roi_heads.box_predictor``
and any extra class-sized layers); everything else is the backbone. ``--freeze`` picks what trains:

- ``none``: everything (full fine-tuning), the backbone at ``lr x backbone_lr_scale``;
- ``backbone``: the head only (feature extraction);
- ``N``: the head and the last N *blocks* of the backbone.

A block is one unit of the backbone in forward order: the model's children, with plain
containers (``nn.Sequential``, ``nn.ModuleList``) opened up unless they are a single
convolution with its norm and activation, keeping only units that hold parameters. ResNet-18
gives ``conv1, bn1, layer1.0, layer1.1, ..., layer4.1``; MobileNet and EfficientNet their
stages' blocks; VGG and LeNet-5 their convolution and linear layers. Frozen batch-norm layers stay in evaluation mode, so their
running statistics stay those of the source data.
"""

from __future__ import annotations


def _as_heads(heads) -> tuple[str, ...]:
    if heads is None:
        return ()
    return (heads,) if isinstance(heads, str) else tuple(heads)


def block_names(model, heads) -> list[str]:
    """Dotted names of the backbone's blocks, in forward order (the heads and their parents excluded).

    Examples
    --------
    >>> import torch.nn as nn
    >>> conv_bn = lambda: nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    >>> m = nn.Sequential(nn.Sequential(conv_bn(), conv_bn()), nn.Flatten(), nn.Linear(2, 3))
    >>> block_names(m, heads="2")
    ['0.0', '0.1']
    """
    heads = _as_heads(heads)
    names: list[str] = []

    def visit(module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if full in heads or not any(True for _ in child.parameters()):
                continue
            if _opens_up(child) or any(h.startswith(full + ".") for h in heads):
                visit(child, full + ".")
            else:
                names.append(full)

    visit(model, "")
    return names


def _opens_up(module) -> bool:
    """A plain container is opened up unless it is one unit (a single conv/linear layer with its
    norm and activation, like torchvision's Conv2dNormActivation)."""
    import torch.nn as nn

    if not isinstance(module, (nn.Sequential, nn.ModuleList)):
        return False
    children = list(module.children())
    weight_layers = sum(isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) for c in children)
    composite = any(True for c in children for _ in c.children())
    return composite or weight_layers > 1


def apply_freeze(model, heads, freeze: str | int) -> list[str]:
    """Set ``requires_grad`` per ``freeze``; returns the names of the frozen blocks.

    Examples
    --------
    >>> import torch.nn as nn
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 3))
    >>> apply_freeze(m, "2", 1)
    ['0']
    >>> [p.requires_grad for p in m.parameters()]
    [False, False, True, True, True, True]
    """
    from cnntool.models.surgery import get_layer

    heads = _as_heads(heads)
    blocks = block_names(model, heads)
    if freeze == "none":
        frozen: list[str] = []
    elif freeze == "backbone":
        frozen = blocks
    else:
        frozen = blocks[: max(0, len(blocks) - int(freeze))]
    for param in model.parameters():
        param.requires_grad_(True)
    for name in frozen:
        for param in get_layer(model, name).parameters():
            param.requires_grad_(False)
    if freeze == "backbone":  # parameters outside any block (rare) freeze too; the head never does
        head_params = {id(p) for h in heads for p in get_layer(model, h).parameters()}
        for param in model.parameters():
            if id(param) not in head_params:
                param.requires_grad_(False)
    return frozen


def frozen_norm_layers(model) -> list:
    """Batch-norm layers whose parameters are all frozen: keep them in eval mode while training."""
    import torch.nn as nn

    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not any(p.requires_grad for p in m.parameters())]


def parameter_groups(model, *, heads, lr: float, weight_decay: float,
                     backbone_lr_scale: float = 1.0) -> list[dict]:
    """Optimiser parameter groups: weight decay on weights only (not biases or norm layers),
    and the backbone at ``lr * backbone_lr_scale`` when ``heads`` are given.

    Frozen parameters are left out. Empty groups are dropped.
    """
    from cnntool.models.surgery import get_layer

    heads = _as_heads(heads)
    head = bool(heads)
    head_ids = {id(p) for h in heads for p in get_layer(model, h).parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        is_head = not head or id(param) in head_ids
        decay = param.ndim > 1
        groups.setdefault((is_head, decay), []).append(param)
    result = []
    for (is_head, decay), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], not kv[0][1])):
        result.append({"params": params, "lr": lr if is_head else lr * backbone_lr_scale,
                       "weight_decay": weight_decay if decay else 0.0,
                       "name": (("head" if is_head else "backbone") if head else "all")
                               + ("" if decay else "_no_decay")})
    return result
