"""Model surgery driven by registry data: swap the head, change input channels.

Layer names are dotted module paths (``fc``, ``classifier.6``, ``features.0.0``), the names
``model.named_modules()`` gives, so a registry entry can say which layer to change.
"""

from __future__ import annotations


def get_layer(model, name: str):
    """The submodule at dotted path ``name``; ``KeyError`` listing close names if absent."""
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    import difflib

    close = difflib.get_close_matches(name, [n for n in modules if n], n=5)
    raise KeyError(f"no layer {name!r}" + (f"; close: {', '.join(close)}" if close else ""))


def set_layer(model, name: str, new) -> None:
    """Replace the submodule at dotted path ``name`` with ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = get_layer(model, parent_name) if parent_name else model
    if child.isdigit() and hasattr(parent, "__getitem__"):
        parent[int(child)] = new
    else:
        setattr(parent, child, new)


def replace_heads(model, heads, num_classes: int) -> None:
    """Replace every layer in ``heads`` (an entry's :attr:`~ModelEntry.heads`) for ``num_classes``.

    A torchvision detector (Faster/Mask R-CNN, RetinaNet, FCOS, SSD, SSDlite, cnntool's tiny FCOS)
    is adapted as a whole by :func:`cnntool.models.detectors.replace_detection_head` (its
    ``num_classes`` counts the background); other models layer by layer (:func:`replace_head`).
    """
    if not heads:
        raise TypeError("this model names no head layer to replace for other classes")
    from cnntool.models.detectors import detector_family, replace_detection_head

    try:
        detector_family(model)
    except TypeError:  # not a detector: layer by layer
        pass
    else:
        replace_detection_head(model, num_classes)
        return
    for head in heads:
        replace_head(model, head, num_classes)


def replace_head(model, head: str, num_classes: int):
    """Replace the class-sized Linear, Conv2d or Conv3d layer at ``head`` with a fresh one giving
    ``num_classes`` outputs (same inputs and kernel)."""
    import torch.nn as nn

    old = get_layer(model, head)
    device = next(old.parameters()).device
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, (nn.Conv2d, nn.Conv3d)):
        new = type(old)(old.in_channels, num_classes, kernel_size=old.kernel_size, stride=old.stride,
                        padding=old.padding, bias=old.bias is not None)
    else:
        raise TypeError(f"head {head!r} is a {type(old).__name__}, expected Linear, Conv2d or Conv3d")
    set_layer(model, head, new.to(device))
    return new


def replace_first_conv(model, first_conv: str, in_channels: int):
    """Replace the first Conv2d with one taking ``in_channels``.

    Pretrained RGB kernels are kept where they can be: summed over colour for one channel
    (a grayscale image seen as equal R, G, B gives the same response), and repeated-and-scaled
    for more channels (timm's ``adapt_input_conv`` rule).
    """
    import torch
    import torch.nn as nn

    old = get_layer(model, first_conv)
    if not isinstance(old, nn.Conv2d):
        raise TypeError(f"first conv {first_conv!r} is a {type(old).__name__}, expected Conv2d")
    if old.in_channels == in_channels:
        return old
    new = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, dilation=old.dilation, groups=old.groups,
                    bias=old.bias is not None, padding_mode=old.padding_mode)
    with torch.no_grad():
        w = old.weight
        if in_channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            reps = -(-in_channels // w.shape[1])
            new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :in_channels] * (w.shape[1] / in_channels))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    set_layer(model, first_conv, new.to(w.device))
    return new
