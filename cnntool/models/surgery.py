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
    """Replace every layer in ``heads`` (an entry's :attr:`~ModelEntry.heads`) for ``num_classes``."""
    if not heads:
        raise TypeError("this model names no head layer to replace for other classes")
    for head in heads:
        replace_head(model, head, num_classes)


def replace_head(model, head: str, num_classes: int):
    """Replace the class-sized layer at ``head`` with a fresh one giving ``num_classes`` outputs.

    The layer's type says how: a Linear or Conv2d keeps its inputs and kernel; torchvision's
    detection predictors and heads (Faster/Mask R-CNN box and mask predictors, RetinaNet, FCOS,
    SSD and SSDlite classification heads) are rebuilt for ``num_classes`` (which then counts the
    background), keeping their input channels and anchors.
    """
    import torch.nn as nn

    old = get_layer(model, head)
    device = next(old.parameters()).device
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size, stride=old.stride,
                        padding=old.padding, bias=old.bias is not None)
    else:
        new = _detection_head(old, num_classes)
        if new is None:
            raise TypeError(f"head {head!r} is a {type(old).__name__}, which cnntool cannot resize")
    set_layer(model, head, new.to(device))
    return new


def _detection_head(old, num_classes: int):
    """A fresh torchvision detection predictor/head like ``old`` for ``num_classes``; None if ``old``
    is not one."""
    from torchvision.models.detection import fcos, retinanet, ssd, ssdlite
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    if isinstance(old, FastRCNNPredictor):
        return FastRCNNPredictor(old.cls_score.in_features, num_classes)
    if isinstance(old, MaskRCNNPredictor):
        return MaskRCNNPredictor(old.conv5_mask.in_channels, old.conv5_mask.out_channels, num_classes)
    if isinstance(old, (retinanet.RetinaNetClassificationHead, fcos.FCOSClassificationHead)):
        anchors = old.num_anchors
        conv = old.cls_logits
        kind = type(old)
        kwargs = {}
        if isinstance(old, retinanet.RetinaNetClassificationHead):
            kwargs["norm_layer"] = _norm_layer(old.conv)
        elif isinstance(old, fcos.FCOSClassificationHead):
            kwargs["num_convs"] = len(old.conv) // 3
            kwargs["norm_layer"] = _norm_layer(old.conv)
        new = kind(conv.in_channels, anchors, num_classes, **kwargs)
        new.conv.load_state_dict(old.conv.state_dict())  # keep the trained tower, new logits
        return new
    if isinstance(old, ssdlite.SSDLiteClassificationHead):
        import torch.nn as nn
        from functools import partial

        in_channels = [m[0][0].in_channels for m in old.module_list]
        anchors = [m[1].out_channels // old.num_columns for m in old.module_list]
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        return ssdlite.SSDLiteClassificationHead(in_channels, anchors, num_classes, norm)
    if isinstance(old, ssd.SSDClassificationHead):
        in_channels = [m.in_channels for m in old.module_list]
        anchors = [m.out_channels // old.num_columns for m in old.module_list]
        return ssd.SSDClassificationHead(in_channels, anchors, num_classes)
    return None


def _norm_layer(tower):
    """The normalisation layer type a torchvision head tower uses (GroupNorm or BatchNorm)."""
    import functools

    import torch.nn as nn

    for module in tower.modules():
        if isinstance(module, nn.GroupNorm):
            return functools.partial(nn.GroupNorm, module.num_groups)
        if isinstance(module, nn.BatchNorm2d):
            return nn.BatchNorm2d
    return None


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
