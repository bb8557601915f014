"""Detectors: a tiny FCOS that trains from scratch on a CPU, torchvision's detectors without
surprise downloads, and the one head swap for fine-tuning to new classes.

Every detector here is a torchvision detection model: in training mode
``model(images, targets)`` returns a dict of losses; in eval mode ``model(images)`` returns one
dict per image with ``boxes`` (float (N, 4), x1, y1, x2, y2 in the input image's pixels),
``scores`` and ``labels``. ``images`` is a list of float (C, H, W) tensors in [0, 1] of any
sizes: the model resizes (``min_size``/``max_size``) and normalises them itself, and maps the
boxes back to each input's pixels.

Labels follow torchvision: ``num_classes`` counts the background, and model label ``L`` means
``classes[L - 1]`` of a dataset's 0-based class list (:data:`cnntool.data.boxes.BACKGROUND_OFFSET`
is where that offset is defined, with the functions that apply it).

- :func:`tiny_fcos`: about 1.4M parameters, BatchNorm in a small plain backbone, an FPN over
  strides 8, 16 and 32, torchvision's FCOS head and losses. The registry's builder signature.
- :func:`torchvision_detector`: torchvision's builders by name, always with
  ``weights_backbone=None`` (torchvision downloads an ImageNet backbone by default), pretrained
  COCO ``weights`` only when asked for.
- :func:`replace_detection_head`: new classification layers for ``num_classes`` in every family
  (Faster/Mask R-CNN predictors; RetinaNet, FCOS, SSD, SSDlite classification convs sized
  anchors x classes), everything else kept.

Examples
--------
>>> import torch
>>> model = tiny_fcos(num_classes=4).eval()
>>> 1_300_000 < sum(p.numel() for p in model.parameters()) < 1_500_000
True
>>> with torch.no_grad():
...     out = model([torch.rand(3, 96, 128)])
>>> sorted(out[0]), out[0]["boxes"].shape[1]
(['boxes', 'labels', 'scores'], 4)
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Dict

import torch
from torch import nn

from cnntool.errors import MissingWeightsError, UsageError, first_line, unknown_choice

#: torchvision's detection builders that :func:`torchvision_detector` builds, by family.
TORCHVISION_DETECTORS = {
    "fasterrcnn_resnet50_fpn": "faster_rcnn",
    "fasterrcnn_resnet50_fpn_v2": "faster_rcnn",
    "fasterrcnn_mobilenet_v3_large_fpn": "faster_rcnn",
    "fasterrcnn_mobilenet_v3_large_320_fpn": "faster_rcnn",
    "retinanet_resnet50_fpn": "retinanet",
    "retinanet_resnet50_fpn_v2": "retinanet",
    "fcos_resnet50_fpn": "fcos",
    "ssd300_vgg16": "ssd",
    "ssdlite320_mobilenet_v3_large": "ssdlite",
    "maskrcnn_resnet50_fpn": "mask_rcnn",
    "maskrcnn_resnet50_fpn_v2": "mask_rcnn",
}

#: tiny_fcos backbone: five stages at strides 2, 4, 8, 16, 32; their output channels, and their
#: conv-BN-ReLU layers (the first of each with stride 2). Most parameters sit in the cheap
#: stride-32 stage; most computation at strides 4-8 and in the head.
TINY_FCOS_WIDTHS = (16, 32, 64, 128, 256)
TINY_FCOS_DEPTHS = (1, 1, 2, 2, 2)
#: tiny_fcos: FPN channels, and the conv layers in each of the head's two towers.
TINY_FCOS_FPN_CHANNELS = 64
TINY_FCOS_HEAD_CONVS = 2
#: tiny_fcos defaults: images are resized so that the shorter side is ``min_size`` (up or down),
#: the longer side at most ``max_size``; made for the 160-320 px images it trains on quickly.
TINY_FCOS_MIN_SIZE = 160
TINY_FCOS_MAX_SIZE = 320
#: Normalisation of cnntool's from-scratch models: [0, 1] -> [-1, 1].
TINY_FCOS_MEAN = (0.5, 0.5, 0.5)
TINY_FCOS_STD = (0.5, 0.5, 0.5)
#: Score below which tiny_fcos drops a detection. Low, so mAP sees the whole ranking; the user's
#: confidence threshold (``detect --conf``) is applied afterwards.
TINY_FCOS_SCORE_THRESH = 0.05


def _conv_bn_relu(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """Plain conv-BN-ReLU stages, each halving the resolution; returns strides 8, 16 and 32.

    ``stem``, ``layer1`` ... ``layer4`` (strides 2 ... 32) have ``depths[i]`` 3x3 convs, the first
    with stride 2. ``forward`` returns ``{"0": C3, "1": C4, "2": C5}``.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = TINY_FCOS_WIDTHS,
                 depths: tuple[int, ...] = TINY_FCOS_DEPTHS):
        super().__init__()
        if len(widths) != 5 or len(depths) != 5 or min(depths) < 1:
            raise ValueError("widths, depths: five values each, for strides 2, 4, 8, 16 and 32")
        channels = [in_channels, *widths]
        for i, name in enumerate(("stem", "layer1", "layer2", "layer3", "layer4")):
            layers = [_conv_bn_relu(channels[i], widths[i], stride=2)]
            layers += [_conv_bn_relu(widths[i], widths[i]) for _ in range(depths[i] - 1)]
            self.add_module(name, nn.Sequential(*layers))
        self.out_channels_list = list(widths[2:])
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))
        c4 = self.layer3(x)
        c5 = self.layer4(c4)
        return OrderedDict([("0", x), ("1", c4), ("2", c5)])


class TinyFPNBackbone(nn.Module):
    """:class:`TinyBackbone` followed by torchvision's FeaturePyramidNetwork (P3, P4, P5)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = TINY_FCOS_WIDTHS,
                 out_channels: int = TINY_FCOS_FPN_CHANNELS, depths: tuple[int, ...] = TINY_FCOS_DEPTHS):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.body = TinyBackbone(in_channels, widths, depths)
        self.fpn = FeaturePyramidNetwork(self.body.out_channels_list, out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def tiny_fcos(*, num_classes: int, in_channels: int = 3, min_size: int = TINY_FCOS_MIN_SIZE,
              max_size: int = TINY_FCOS_MAX_SIZE, widths: tuple[int, ...] = TINY_FCOS_WIDTHS,
              depths: tuple[int, ...] = TINY_FCOS_DEPTHS, fpn_channels: int = TINY_FCOS_FPN_CHANNELS,
              head_convs: int = TINY_FCOS_HEAD_CONVS,
              score_thresh: float = TINY_FCOS_SCORE_THRESH, **kwargs):
    """A small FCOS for training from scratch: about 1.4M parameters at the defaults.

    Parameters
    ----------
    num_classes : int
        Classes including the background (a dataset's ``len(classes) + 1``).
    in_channels : int
        Image channels (1 for grayscale).
    min_size, max_size : int
        The model's resize: shorter side to ``min_size``, longer side at most ``max_size``.
    widths, depths : tuple of int
        Backbone channels and conv layers at strides 2, 4, 8, 16, 32.
    fpn_channels : int
        FPN and head channels (a multiple of 32: the head uses GroupNorm with 32 groups).
    head_convs : int
        Conv layers in each head tower (classification, regression).
    score_thresh : float
        Detections scoring below this are dropped at inference.
    **kwargs
        Passed to ``torchvision.models.detection.FCOS`` (``nms_thresh``,
        ``detections_per_img``, ``center_sampling_radius``...).

    Returns
    -------
    torchvision.models.detection.FCOS

    Notes
    -----
    The backbone uses trainable BatchNorm (torchvision's FrozenBatchNorm2d suits pretrained
    backbones and does not train from scratch). Anchor sizes 8, 16, 32 equal the strides, so FCOS
    gives objects whose farthest box side is under 64 px (after the resize) to P3, 64-128 px to
    P4, and larger ones to P5. Images are normalised with :data:`TINY_FCOS_MEAN`/``STD``.

    Examples
    --------
    >>> model = tiny_fcos(num_classes=2, in_channels=1)
    >>> model.transform.min_size, model.head.classification_head.num_classes
    ((160,), 2)
    """
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    if num_classes < 2:
        raise UsageError(f"num_classes counts the background and at least one class, got {num_classes}")
    backbone = TinyFPNBackbone(in_channels, tuple(widths), fpn_channels, tuple(depths))
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((1.0,),) * 3)
    head = FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs)
    _mute_background(head.classification_head.cls_logits, num_classes)
    mean = (sum(TINY_FCOS_MEAN) / 3,) * in_channels if in_channels != 3 else TINY_FCOS_MEAN
    std = (sum(TINY_FCOS_STD) / 3,) * in_channels if in_channels != 3 else TINY_FCOS_STD
    return FCOS(backbone, num_classes, min_size=min_size, max_size=max_size, image_mean=list(mean),
                image_std=list(std), anchor_generator=anchors, head=head, score_thresh=score_thresh, **kwargs)


#: Initial logit of the background column of sigmoid (RetinaNet, FCOS) classifiers.
MUTED_LOGIT = -20.0


def _mute_background(cls_logits: nn.Conv2d, num_classes: int) -> None:
    """Make label 0 (the background) practically impossible in a sigmoid classifier.

    RetinaNet and FCOS score each class with its own sigmoid, and torchvision gives them a column
    for label 0 that no target ever trains; from its initial prior it can still pass the score
    threshold and come out as a "background" detection. A -20 bias keeps its score under 1e-8,
    and the focal loss barely moves a logit that low.
    """
    with torch.no_grad():
        cls_logits.bias.view(-1, num_classes)[:, 0] = MUTED_LOGIT


def detector_family(model) -> str:
    """The family of a torchvision detection model: ``faster_rcnn``, ``mask_rcnn``, ``retinanet``,
    ``fcos``, ``ssd`` or ``ssdlite`` (what :func:`replace_detection_head` needs to know).

    Examples
    --------
    >>> detector_family(tiny_fcos(num_classes=2))
    'fcos'
    """
    from torchvision.models.detection.faster_rcnn import FasterRCNN
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.mask_rcnn import MaskRCNN
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

    if isinstance(model, MaskRCNN):
        return "mask_rcnn"
    if isinstance(model, FasterRCNN):
        return "faster_rcnn"
    if isinstance(model, RetinaNet):
        return "retinanet"
    if isinstance(model, FCOS):
        return "fcos"
    if isinstance(model, SSD):
        return "ssdlite" if isinstance(model.head.classification_head, SSDLiteClassificationHead) else "ssd"
    raise TypeError(f"not a torchvision detection model: {type(model).__name__}")


def detector_num_classes(model) -> int:
    """The classes (background included) a torchvision detection model predicts.

    Examples
    --------
    >>> detector_num_classes(tiny_fcos(num_classes=5))
    5
    """
    family = detector_family(model)
    if family in ("faster_rcnn", "mask_rcnn"):
        return int(model.roi_heads.box_predictor.cls_score.out_features)
    if family in ("retinanet", "fcos"):
        return int(model.head.classification_head.num_classes)
    return int(model.head.classification_head.num_columns)


def replace_detection_head(model, num_classes: int):
    """Give a torchvision detector fresh classification layers for ``num_classes`` (background
    included), in place; the backbone, FPN, box regression and the heads' conv towers are kept.

    - Faster R-CNN: ``roi_heads.box_predictor`` becomes a new ``FastRCNNPredictor`` (class
      scores and per-class box deltas).
    - Mask R-CNN: that, and ``roi_heads.mask_predictor`` a new ``MaskRCNNPredictor``.
    - RetinaNet, FCOS: the classification head's last conv (``cls_logits``) becomes
      anchors x ``num_classes`` outputs, initialised with the focal-loss prior (p = 0.01), the
      background column muted (never predicted; see :data:`MUTED_LOGIT`).
    - SSD: each feature map's classification conv; SSDlite: the last (1x1) conv of each
      prediction block; anchors x ``num_classes`` outputs, initialised as torchvision does.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Examples
    --------
    >>> model = replace_detection_head(tiny_fcos(num_classes=91), 4)
    >>> detector_num_classes(model), model.head.classification_head.cls_logits.out_channels
    (4, 4)
    """
    if num_classes < 2:
        raise UsageError(f"num_classes counts the background and at least one class, got {num_classes}")
    family = detector_family(model)
    if family in ("faster_rcnn", "mask_rcnn"):
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        old = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(old.cls_score.in_features, num_classes).to(
            old.cls_score.weight.device)
        if family == "mask_rcnn":
            from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

            mask = model.roi_heads.mask_predictor
            model.roi_heads.mask_predictor = MaskRCNNPredictor(
                mask.conv5_mask.in_channels, mask.conv5_mask.out_channels, num_classes).to(
                mask.conv5_mask.weight.device)
    elif family in ("retinanet", "fcos"):
        head = model.head.classification_head
        old = head.cls_logits
        anchors = old.out_channels // head.num_classes
        new = nn.Conv2d(old.in_channels, anchors * num_classes, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(new.weight, std=0.01)
        nn.init.constant_(new.bias, -math.log((1 - 0.01) / 0.01))
        _mute_background(new, num_classes)
        head.cls_logits = new.to(old.weight.device)
        head.num_classes = num_classes
    else:
        head = model.head.classification_head
        for i, block in enumerate(head.module_list):
            old = block if family == "ssd" else block[-1]
            anchors = old.out_channels // head.num_columns
            new = nn.Conv2d(old.in_channels, anchors * num_classes, kernel_size=old.kernel_size,
                            padding=old.padding).to(old.weight.device)
            if family == "ssd":
                nn.init.xavier_uniform_(new.weight)
                head.module_list[i] = new
            else:
                nn.init.normal_(new.weight, mean=0.0, std=0.03)
                block[-1] = new
            nn.init.zeros_(new.bias)
        head.num_columns = num_classes
    return model


def _weights_enum(name: str, weights):
    """torchvision's Weights member for ``name`` (an enum member, or its name; ``DEFAULT`` allowed)."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    if not isinstance(weights, str):
        return enum.verify(weights)
    key = weights.upper()
    if key == "DEFAULT":
        return enum.DEFAULT
    members = [m.name for m in enum]
    if key not in members:
        raise MissingWeightsError(f"{name} has no weights named {weights!r}",
                                  hint="available: " + ", ".join(["DEFAULT", *members]))
    return enum[key]


def weights_cache_path(name: str, weights) -> str:
    """Where torchvision's hub cache keeps the file of ``name``'s ``weights``.

    Examples
    --------
    >>> weights_cache_path("fcos_resnet50_fpn", "COCO_V1").endswith("fcos_resnet50_fpn_coco-99b0c9b7.pth")
    True
    """
    from torch.hub import get_dir

    return os.path.join(get_dir(), "checkpoints", os.path.basename(_weights_enum(name, weights).url))


def pretrained_classes(name: str, weights) -> list[str]:
    """The class list (background excluded) that ``name``'s pretrained ``weights`` predict, so
    that model label ``L`` is ``classes[L - 1]``; COCO weights give 90 names, with ``N/A`` for
    the ids COCO left unused.

    Examples
    --------
    >>> classes = pretrained_classes("fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1")
    >>> len(classes), classes[0], classes[11]
    (90, 'person', 'N/A')
    """
    return list(_weights_enum(name, weights).meta["categories"])[1:]


def torchvision_detector(name: str, *, num_classes: int | None = None, weights=None, in_channels: int = 3,
                         **kwargs):
    """One of torchvision's detectors (:data:`TORCHVISION_DETECTORS`), built without downloads
    unless pretrained ``weights`` are asked for.

    Parameters
    ----------
    name : str
        torchvision's builder name (``fasterrcnn_mobilenet_v3_large_320_fpn``...).
    num_classes : int, optional
        Classes including the background. Random init: the model's size (default 91, COCO's).
        With ``weights``: the pretrained head is replaced (:func:`replace_detection_head`) when
        this differs from the weights' classes.
    weights : str or torchvision Weights, optional
        ``COCO_V1``, ``DEFAULT``...: loaded from torchvision's cache (``$TORCH_HOME``), downloaded
        only if missing there. None: random init.
    in_channels : int
        3: torchvision's detectors take RGB (accepted for the registry's builder signature).
    **kwargs
        Passed to the builder (``min_size``, ``max_size``, ``box_score_thresh``...).

    Raises
    ------
    UsageError
        Unknown name.
    MissingWeightsError
        Unknown weights, or weights neither cached nor downloadable (the message names the file
        to place in the cache).

    Notes
    -----
    ``weights_backbone`` is always None: torchvision's default would download ImageNet weights
    for the backbone, which nobody asked for here; a pretrained model brings its own backbone.

    Examples
    --------
    >>> model = torchvision_detector("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3)
    >>> detector_family(model), detector_num_classes(model)
    ('faster_rcnn', 3)
    """
    import pickle

    from torchvision.models import detection

    if name not in TORCHVISION_DETECTORS:
        raise unknown_choice("detector", name, list(TORCHVISION_DETECTORS))
    if in_channels != 3:
        raise UsageError(f"{name} takes RGB images (3 channels), not {in_channels}")
    if "weights_backbone" in kwargs:
        raise UsageError("weights_backbone is not an option here: torchvision_detector never "
                         "downloads a backbone; pass weights for a pretrained detector")
    builder = getattr(detection, name)
    if weights is None:
        return builder(weights=None, weights_backbone=None, num_classes=num_classes or 91, **kwargs)
    member = _weights_enum(name, weights)
    cached = weights_cache_path(name, member)
    try:
        model = builder(weights=member, weights_backbone=None, **kwargs)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = first_line(exc)
        if os.path.exists(cached):
            raise MissingWeightsError(f"the cached weights file {cached} is corrupted or incomplete: {reason}",
                                      hint=f"delete it and download again from {member.url}") from None
        raise MissingWeightsError(
            f"weights {name}:{member.name} are not in the cache ({cached}) and cannot be downloaded: {reason}",
            hint=f"download {member.url} and place it at {cached} (set TORCH_HOME to move the cache)",
        ) from None
    if num_classes is not None and num_classes != detector_num_classes(model):
        replace_detection_head(model, num_classes)
    return model
