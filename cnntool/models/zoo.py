"""torchvision's classifiers as registry entries: builders, weights and the layers stages need.

The figures come from torchvision's own weights metadata: ``reference_params`` is the
published ``num_params``; the preprocessing's ``resize_size`` and ``interpolation`` are those of
the default weights' evaluation transform (a 224 centre crop everywhere). ``head`` is the layer a new
head replaces, ``cam_layer`` the module whose output is the last spatial feature map, and
``first_conv`` the stem convolution. Importing this module imports no torch.
"""

from __future__ import annotations

from cnntool.data.preprocessing import Preprocessing
from cnntool.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, register

#: The evaluation crop of every torchvision ImageNet classifier here.
IMAGENET_INPUT = (3, 224, 224)
IMAGENET_CLASSES = 1000

#: Torchvision folds GoogLeNet's own normalisation, (x - 0.5) / 0.5, into pretrained models
#: with ``transform_input``; cnntool builds it without and normalises this way instead.
GOOGLENET_MEAN = (0.5, 0.5, 0.5)
GOOGLENET_STD = (0.5, 0.5, 0.5)


def googlenet(*, weights=None, **kwargs):
    """torchvision's GoogLeNet with one input convention and no auxiliary heads.

    Pretrained or not, ``transform_input`` is off, so a checkpoint rebuilt without weights
    behaves exactly like the pretrained model it was fine-tuned from; inputs are normalised
    with :data:`GOOGLENET_MEAN`/:data:`GOOGLENET_STD`, which is what ``transform_input``
    computes from ImageNet-normalised inputs. The auxiliary classifiers are left out, as
    torchvision does for pretrained weights (they complicate training and are not pretrained).
    """
    from torchvision.models import googlenet as torchvision_googlenet

    kwargs.setdefault("transform_input", False)
    if weights is None:
        # torchvision refuses these with weights (it sets them itself, then drops the aux heads)
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    return torchvision_googlenet(weights=weights, **kwargs)


def _torchvision_entry(name: str, *, resize_size: int = 256, interpolation: str = "bilinear",
                       mean=IMAGENET_MEAN, std=IMAGENET_STD, **fields) -> ModelEntry:
    """An ImageNet classifier from ``torchvision.models``: resize the shorter side to
    ``resize_size``, centre-crop 224; ``fields`` override the other defaults."""
    defaults = dict(
        name=name, task="classification", builder=f"torchvision.models:{name}",
        preprocessing=Preprocessing(IMAGENET_INPUT, mean, std, resize_mode="crop", resize_size=resize_size,
                                    interpolation=interpolation),
        num_classes=IMAGENET_CLASSES, weights=("IMAGENET1K_V1",), default_weights="IMAGENET1K_V1",
        torchvision_name=name,
    )
    return register(ModelEntry(**{**defaults, **fields}))


_torchvision_entry(
    "alexnet", family="alexnet", head="classifier.6", cam_layer="features", first_conv="features.0",
    reference_params=61_100_840,
    description="AlexNet (2012): ReLU, dropout, overlapping max pooling (torchvision's one-GPU form)",
)
_torchvision_entry(
    "vgg11", family="vgg", head="classifier.6", cam_layer="features", first_conv="features.0",
    reference_params=132_863_336,
    description="VGG-11 (2014): eight 3x3 convolutions in five blocks, three FC layers",
)
# IMAGENET1K_FEATURES is left out: its classifier is untrained and it wants 0-255 inputs.
_torchvision_entry(
    "vgg16", family="vgg", head="classifier.6", cam_layer="features", first_conv="features.0",
    reference_params=138_357_544,
    description="VGG-16 (2014): thirteen 3x3 convolutions in five blocks, three FC layers",
)
_torchvision_entry(
    "vgg16_bn", family="vgg", head="classifier.6", cam_layer="features", first_conv="features.0",
    reference_params=138_365_992,
    description="VGG-16 with batch normalisation after every convolution",
)
_torchvision_entry(
    "googlenet", builder="cnntool.models.zoo:googlenet", family="googlenet", head="fc",
    cam_layer="inception5b", first_conv="conv1.conv", mean=GOOGLENET_MEAN, std=GOOGLENET_STD,
    reference_params=6_624_904,
    description="GoogLeNet / Inception v1 (2014): inception modules, 1x1 bottlenecks, no aux heads",
)
_torchvision_entry(
    "resnet18", family="resnet", head="fc", cam_layer="layer4", first_conv="conv1",
    reference_params=11_689_512,
    description="ResNet-18 (2015): residual basic blocks, batch norm, global average pooling",
)
_torchvision_entry(
    "resnet34", family="resnet", head="fc", cam_layer="layer4", first_conv="conv1",
    reference_params=21_797_672,
    description="ResNet-34 (2015): residual basic blocks, deeper",
)
_torchvision_entry(
    "resnet50", family="resnet", head="fc", cam_layer="layer4", first_conv="conv1",
    resize_size=232, weights=("IMAGENET1K_V1", "IMAGENET1K_V2"), default_weights="IMAGENET1K_V2",
    reference_params=25_557_032,
    description="ResNet-50 (2015): residual bottleneck blocks (1x1-3x3-1x1)",
)
_torchvision_entry(
    "resnet101", family="resnet", head="fc", cam_layer="layer4", first_conv="conv1",
    resize_size=232, weights=("IMAGENET1K_V1", "IMAGENET1K_V2"), default_weights="IMAGENET1K_V2",
    reference_params=44_549_160,
    description="ResNet-101 (2015): residual bottleneck blocks, deeper",
)
_torchvision_entry(
    "densenet121", family="densenet", head="classifier", cam_layer="features",
    first_conv="features.conv0", reference_params=7_978_856,
    description="DenseNet-121 (2017): dense blocks, each layer sees every earlier feature map",
)
_torchvision_entry(
    "mobilenet_v3_small", family="mobilenet", head="classifier.3", cam_layer="features",
    first_conv="features.0.0", reference_params=2_542_856,
    description="MobileNet-V3 Small (2019): depthwise-separable inverted residuals, squeeze-excite",
)
_torchvision_entry(
    "mobilenet_v3_large", family="mobilenet", head="classifier.3", cam_layer="features",
    first_conv="features.0.0", resize_size=232, weights=("IMAGENET1K_V1", "IMAGENET1K_V2"),
    default_weights="IMAGENET1K_V2", reference_params=5_483_032,
    description="MobileNet-V3 Large (2019): depthwise-separable inverted residuals, squeeze-excite",
)
_torchvision_entry(
    "efficientnet_b0", family="efficientnet", head="classifier.1", cam_layer="features",
    first_conv="features.0.0", interpolation="bicubic", reference_params=5_288_548,
    description="EfficientNet-B0 (2019): MBConv blocks, compound scaling baseline",
)
