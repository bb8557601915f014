"""cnntool's own architectures: the classics the lectures teach that torchvision lacks.

LeNet-5 as published, and two small networks for fast experiments on small images:
``simple_cnn`` (plain conv-BN-ReLU-pool blocks) and ``xception_small`` (depthwise-separable
convolutions with residual connections). Every builder has the registry signature
``builder(*, num_classes, in_channels, **kwargs)``. Their registry entries are in
``entries.py``, which imports no torch; this module is imported only when a model is built.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

#: Output channels of simple_cnn's three conv-BN-ReLU-maxpool blocks.
SIMPLE_CNN_WIDTHS = (32, 64, 128)

#: xception_small: stem channels, then (out_channels, stride) of each residual separable block.
XCEPTION_STEM_WIDTHS = (32, 64)
XCEPTION_BLOCKS = ((128, 2), (256, 2), (256, 1), (256, 1))
XCEPTION_EXIT_WIDTH = 512


def lenet5(*, num_classes: int = 10, in_channels: int = 1):
    """LeNet-5 (LeCun et al., 1998) as the lectures tabulate it.

    32x32 input; C1 6@28x28 (5x5), S2 average pool 6@14x14, C3 16@10x10 (5x5), S4 average pool
    16@5x5, C5 120 (5x5, so 1x1), F6 84, output 10; tanh throughout. C3 is fully connected to S2
    (the modern form: 61,706 parameters), and the RBF output is a Linear layer.
    """
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5),      # C1: 6@28x28
        nn.Tanh(),
        nn.AvgPool2d(kernel_size=2, stride=2),         # S2: 6@14x14
        nn.Conv2d(6, 16, kernel_size=5),               # C3: 16@10x10
        nn.Tanh(),
        nn.AvgPool2d(kernel_size=2, stride=2),         # S4: 16@5x5
        nn.Conv2d(16, 120, kernel_size=5),             # C5: 120@1x1
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(120, 84),                            # F6
        nn.Tanh(),
        nn.Linear(84, num_classes),                    # output
    )




def simple_cnn(*, num_classes: int = 10, in_channels: int = 3, widths: tuple[int, ...] = SIMPLE_CNN_WIDTHS):
    """A small plain CNN for fast experiments: conv-BN-ReLU-maxpool blocks, global average pool, Linear.

    Global average pooling makes it take any input size of at least ``2 ** len(widths)``
    pixels, and makes its last feature map (``features``) a class activation map source.

    Examples
    --------
    >>> model = simple_cnn(num_classes=5, in_channels=1)
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 5])
    """
    blocks = []
    channels = in_channels
    for width in widths:
        blocks.append(_conv_bn_relu_pool(channels, width))
        channels = width
    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(*blocks),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(channels, num_classes),
    ))
    _kaiming_init(model)
    return model


def xception_small(*, num_classes: int = 10, in_channels: int = 3):
    """A small Xception-style network (Chollet, 2017) for 64x64 images.

    A strided convolutional stem, then residual blocks of depthwise-separable convolutions
    (the first two halve the resolution), an exit separable convolution, global average
    pooling and a Linear head. At 3x64x64: stem 64@32x32, blocks 128@16x16, 256@8x8, 256@8x8,
    256@8x8, exit 512@8x8.

    Examples
    --------
    >>> model = xception_small(num_classes=3)
    >>> model(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 3])
    """
    stem_in, stem_out = XCEPTION_STEM_WIDTHS
    stem = nn.Sequential(
        nn.Conv2d(in_channels, stem_in, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(stem_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(stem_in, stem_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(stem_out),
        nn.ReLU(inplace=True),
    )
    blocks = []
    channels = stem_out
    for width, stride in XCEPTION_BLOCKS:
        blocks.append(XceptionBlock(channels, width, stride=stride))
        channels = width
    exit_flow = nn.Sequential(
        separable_conv(channels, XCEPTION_EXIT_WIDTH),
        nn.BatchNorm2d(XCEPTION_EXIT_WIDTH),
        nn.ReLU(inplace=True),
    )
    model = nn.Sequential(OrderedDict(
        stem=stem,
        blocks=nn.Sequential(*blocks),
        exit_flow=exit_flow,
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(XCEPTION_EXIT_WIDTH, num_classes),
    ))
    _kaiming_init(model)
    return model


def separable_conv(in_channels: int, out_channels: int, *, kernel_size: int = 3) -> nn.Sequential:
    """Depthwise-separable convolution: a per-channel ``kernel_size`` conv, then a 1x1 conv mixing channels.

    Costs ``in * (k*k + out)`` weights instead of ``in * out * k*k``.
    """
    return nn.Sequential(OrderedDict(
        depthwise=nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                            groups=in_channels, bias=False),
        pointwise=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
    ))


class XceptionBlock(nn.Module):
    """ReLU-SepConv-BN-ReLU-SepConv-BN (then a 3x3 max pool when strided), plus a shortcut.

    The shortcut is the identity when the shape is kept, else a strided 1x1 conv with BN.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1):
        super().__init__()
        layers = [
            nn.ReLU(),  # not in place: the block's input also feeds the shortcut
            separable_conv(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            separable_conv(out_channels, out_channels),
            nn.BatchNorm2d(out_channels),
        ]
        if stride > 1:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=stride, padding=1))
        self.residual = nn.Sequential(*layers)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


def _conv_bn_relu_pool(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, stride=2),
    )


def _kaiming_init(model: nn.Module) -> None:
    """He initialisation for the ReLU convolutions; batch norm starts as the identity."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
