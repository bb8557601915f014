"""U-Net (Ronneberger et al., 2015) as the lectures draw it, configurable in depth and width.

An encoder of double conv-BN-ReLU blocks, each followed by a 2x2 max pooling that halves the
resolution and (in the next block) doubles the channels; a bottleneck block; and a decoder that
upsamples with 2x2 transposed convolutions (stride 2), concatenates the encoder's feature map of
the same resolution (the skip connection) and applies a double conv-BN-ReLU block. A 1x1
convolution gives one score map per class: the output is (N, num_classes, H, W), the size of
the input.

``depth`` is the number of poolings (the bottleneck sees ``H / 2**depth``) and ``width`` the
channels of the first level (level ``i`` has ``width * 2**i``). Any input size works: the input
is padded (edge replication) up to a multiple of ``2**depth`` inside :meth:`UNet.forward` and
the scores are cropped back, so there is no resizing of masks.

The defaults (``depth=3, width=16``: 16-32-64 channels, a 128-channel bottleneck, 482,788
parameters for 3 inputs and 4 classes) train on a CPU in minutes; ``width=64, depth=4`` is the
paper's 31M-parameter network (with padded convolutions, so no border cropping).

Layer names (for the registry entry): the first convolution is ``encoders.0.0``, the class
head ``head`` (a 1x1 Conv2d), the bottleneck ``bottleneck``, a good Grad-CAM layer the last
decoder block ``decoders.{depth-1}``.

Examples
--------
>>> import torch
>>> model = unet(num_classes=4)
>>> model(torch.zeros(1, 3, 50, 70)).shape
torch.Size([1, 4, 50, 70])
>>> sum(p.numel() for p in model.parameters())
482788
>>> unet(num_classes=2, in_channels=1, depth=2, width=8)(torch.zeros(2, 1, 9, 9)).shape
torch.Size([2, 2, 9, 9])
"""

from __future__ import annotations

import torch
from torch import nn

#: Default number of poolings (resolution levels below the input's).
DEFAULT_DEPTH = 3

#: Default channels of the first level; level i has ``width * 2**i``.
DEFAULT_WIDTH = 16


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers (padding 1, so the size is kept): U-Net's block.

    Examples
    --------
    >>> double_conv(3, 16)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net: contracting path, bottleneck, expanding path with skip concatenation, 1x1 head.

    Parameters
    ----------
    num_classes : int
        Output channels (one score map per class, background included).
    in_channels : int
    depth : int
        Poolings; at least 1.
    width : int
        Channels of the first level; at least 1.

    Attributes
    ----------
    encoders : nn.ModuleList
        ``depth`` double-conv blocks (``width * 2**i`` channels).
    pools : nn.ModuleList
        The 2x2 max pooling after each encoder block.
    bottleneck : nn.Sequential
        Double conv at ``H / 2**depth`` with ``width * 2**depth`` channels.
    ups : nn.ModuleList
        Transposed convolutions (kernel 2, stride 2), deepest first, halving the channels.
    decoders : nn.ModuleList
        Double-conv blocks over ``concat(skip, upsampled)``, deepest first.
    head : nn.Conv2d
        1x1 convolution to ``num_classes`` score maps.
    """

    def __init__(self, *, num_classes: int, in_channels: int = 3, depth: int = DEFAULT_DEPTH,
                 width: int = DEFAULT_WIDTH):
        super().__init__()
        if depth < 1 or width < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError("depth, width, num_classes and in_channels must be positive")
        self.depth = int(depth)
        self.width = int(width)
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for w in widths[:-1]:
            self.encoders.append(double_conv(channels, w))
            channels = w
        # one pooling module per level, so that a layer table shows every level's shape
        self.pools = nn.ModuleList(nn.MaxPool2d(kernel_size=2, stride=2) for _ in range(depth))
        self.bottleneck = double_conv(widths[-2], widths[-1])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(2 * w, w, kernel_size=2, stride=2))
            self.decoders.append(double_conv(2 * w, w))
        self.head = nn.Conv2d(width, num_classes, kernel_size=1)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        height, width = x.shape[-2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            # replicate needs at least one pixel; it keeps borders free of a dark frame
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for encoder, pool in zip(self.encoders, self.pools):
            x = encoder(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([skip, up(x)], dim=1))
        x = self.head(x)
        if pad_h or pad_w:
            x = x[..., :height, :width]
        return x


def unet(*, num_classes: int, in_channels: int = 3, depth: int = DEFAULT_DEPTH,
         width: int = DEFAULT_WIDTH) -> UNet:
    """The registry builder: a randomly initialised :class:`UNet`.

    Examples
    --------
    >>> model = unet(num_classes=3, depth=4, width=8)
    >>> [type(m).__name__ for m in model.ups], model.head.out_channels
    (['ConvTranspose2d', 'ConvTranspose2d', 'ConvTranspose2d', 'ConvTranspose2d'], 3)
    """
    return UNet(num_classes=num_classes, in_channels=in_channels, depth=depth, width=width)


def _init_weights(model: nn.Module) -> None:
    """He initialisation for the ReLU convolutions; batch norm starts as the identity."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


__all__ = ["DEFAULT_DEPTH", "DEFAULT_WIDTH", "UNet", "double_conv", "unet"]
