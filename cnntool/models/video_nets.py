"""Small video classifiers that train from scratch on a CPU: the lectures' ways to see motion.

Every model takes a float clip (N, C, T, H, W) (channels, time, height, width) and returns class
scores (N, num_classes); every builder has the registry signature
``builder(*, num_classes, in_channels=3, **kwargs)``. The head is the Linear layer ``fc``.

- :func:`c3d_small`: 3D convolutions over space and time (C3D, Tran et al., 2015, made small),
  which see motion in every layer. The default for ``train --task video``.
- :func:`cnn_rnn`: a 2D CNN on each frame, then an LSTM or GRU over the per-frame features
  (Donahue et al., 2015). The features keep a coarse 4 x 4 map, so where things are (and so how
  they move) reaches the RNN.
- :func:`two_stream`: a frame stream (2D CNN on the middle frame) and a motion stream (2D CNN
  over the stacked motion of the clip), fused by concatenating their features (Simonyan and
  Zisserman, 2014). The motion is the frame differences computed inside the model
  (``motion="diff"``, the "RGB difference" input of Wang et al., 2016), or optical flow
  given with the clip (``motion="flow"``: two more input channels after the image's, which the
  clip datasets and ``cnntool video`` compute, see :func:`two_stream`).
- :func:`single_frame`: a 2D CNN on the middle frame only, the baseline that shows what motion
  adds (on clips where no single frame tells the class it stays near chance).

Examples
--------
>>> model = c3d_small(num_classes=4)
>>> model(torch.zeros(2, 3, 16, 64, 64)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

#: c3d_small: output channels of its conv blocks.
C3D_WIDTHS = (16, 32, 64, 128)

#: The per-frame 2D CNN of cnn_rnn, two_stream and single_frame: conv block widths.
FRAME_WIDTHS = (16, 32, 64)

#: Per-frame features are the last conv map average-pooled to this grid (so positions survive).
FEATURE_GRID = 4

#: Size of the per-frame (and per-stream) feature vector.
FEATURE_SIZE = 256

RNN_KINDS = ("gru", "lstm")
READOUTS = ("last", "mean")
MOTIONS = ("diff", "flow")


def c3d_small(*, num_classes: int, in_channels: int = 3, widths: tuple[int, ...] = C3D_WIDTHS,
              dropout: float = 0.2) -> nn.Sequential:
    """A small C3D: conv3d-BN-ReLU blocks with max pooling, global average pooling, Linear.

    3x3x3 convolutions throughout; the first one strides 2 in height and width (not in time),
    and the first pool halves only height and width too, so early layers keep every frame's
    motion; the later pools halve time as well. At 3 x 8 x 64 x 64 the maps are 16@8x32x32,
    32@8x16x16, 64@4x8x8, 128@2x4x4 (about 60 million multiply-adds per clip); global average
    pooling makes any clip of at least 4 frames and 32 x 32 pixels work.

    Parameters
    ----------
    num_classes, in_channels : int
    widths : tuple of int
        Output channels of each block.
    dropout : float
        Before the Linear head.

    Examples
    --------
    >>> sum(p.numel() for p in c3d_small(num_classes=4).parameters())
    292596
    """
    blocks = []
    channels = in_channels
    for i, width in enumerate(widths):
        layers = [nn.Conv3d(channels, width, kernel_size=3, stride=(1, 2, 2) if i == 0 else 1, padding=1, bias=False),
                  nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
        if i < len(widths) - 1:
            layers.append(nn.MaxPool3d((1, 2, 2) if i == 0 else 2, ceil_mode=True))
        blocks.append(nn.Sequential(*layers))
        channels = width
    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(*blocks),
        pool=nn.AdaptiveAvgPool3d(1),
        flatten=nn.Flatten(),
        dropout=nn.Dropout(dropout),
        fc=nn.Linear(channels, num_classes),
    ))
    _init(model)
    return model


class FrameEncoder(nn.Module):
    """2D CNN for single frames (or stacked channels): (N, C, H, W) -> (N, feature_size).

    Conv-BN-ReLU-maxpool blocks (the first conv strides 2), then the map average-pooled to a
    ``FEATURE_GRID`` square grid, flattened and projected to ``feature_size`` with ReLU. At
    64 x 64 the maps are 16@16x16, 32@8x8, 64@4x4 (about 3 million multiply-adds a frame).
    """

    def __init__(self, in_channels: int, *, widths: tuple[int, ...] = FRAME_WIDTHS,
                 feature_size: int = FEATURE_SIZE):
        super().__init__()
        blocks = []
        channels = in_channels
        for i, width in enumerate(widths):
            blocks.append(nn.Sequential(
                nn.Conv2d(channels, width, kernel_size=3, stride=2 if i == 0 else 1, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.grid = nn.AdaptiveAvgPool2d(FEATURE_GRID)
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(channels * FEATURE_GRID ** 2, feature_size),
                                     nn.ReLU(inplace=True))
        self.feature_size = feature_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.grid(self.features(x)))


class CNNRNN(nn.Module):
    """Per-frame :class:`FrameEncoder`, then a GRU or LSTM over time, then ``fc``.

    See :func:`cnn_rnn`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, rnn: str, hidden: int,
                 readout: str, widths: tuple[int, ...], dropout: float):
        super().__init__()
        if rnn not in RNN_KINDS:
            raise ValueError(f"rnn must be one of {RNN_KINDS}, not {rnn!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        self.readout = readout
        self.encoder = FrameEncoder(in_channels, widths=widths)
        recurrent = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = recurrent(self.encoder.feature_size, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = _check_clip(x)
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)           # every frame through one CNN
        features = self.encoder(frames).reshape(n, t, -1)
        outputs, _ = self.rnn(features)                               # (N, T, hidden)
        state = outputs[:, -1] if self.readout == "last" else outputs.mean(dim=1)
        return self.fc(self.dropout(state))


def cnn_rnn(*, num_classes: int, in_channels: int = 3, rnn: str = "gru", hidden: int = 128,
            readout: str = "last", widths: tuple[int, ...] = FRAME_WIDTHS, dropout: float = 0.2) -> CNNRNN:
    """A 2D CNN on every frame, then a recurrent network over the sequence of frame features.

    Parameters
    ----------
    num_classes, in_channels : int
    rnn : {"gru", "lstm"}
    hidden : int
        The RNN's state size.
    readout : {"last", "mean"}
        Classify from the last output, or from the mean of the outputs over time.
    widths : tuple of int
        The frame CNN's conv block widths.
    dropout : float
        Before the Linear head.

    Examples
    --------
    >>> model = cnn_rnn(num_classes=4, rnn="lstm")
    >>> model(torch.zeros(2, 3, 8, 32, 32)).shape
    torch.Size([2, 4])
    """
    model = CNNRNN(num_classes=num_classes, in_channels=in_channels, rnn=rnn, hidden=hidden,
                   readout=readout, widths=tuple(widths), dropout=dropout)
    _init(model)
    return model


class TwoStream(nn.Module):
    """Frame stream on the middle frame, motion stream on stacked motion; see :func:`two_stream`."""

    def __init__(self, *, num_classes: int, in_channels: int, frames: int, motion: str,
                 widths: tuple[int, ...], dropout: float):
        super().__init__()
        if motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, not {motion!r}")
        if frames < 2:
            raise ValueError("a two-stream model needs clips of at least 2 frames")
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, not {in_channels}")
        self.motion, self.frames = motion, frames
        self.image_channels = in_channels
        self.input_channels = in_channels + (2 if motion == "flow" else 0)
        motion_channels = 2 * (frames - 1) if motion == "flow" else self.image_channels * (frames - 1)
        self.spatial = FrameEncoder(self.image_channels, widths=widths)
        self.temporal = FrameEncoder(motion_channels, widths=widths)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.spatial.feature_size + self.temporal.feature_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = _check_clip(x)
        if t != self.frames:
            raise ValueError(f"this two-stream model takes clips of {self.frames} frames, not {t}")
        if c != self.input_channels:
            extra = " (the image's, then the flow's dx and dy)" if self.motion == "flow" else ""
            raise ValueError(f"this two-stream model takes {self.input_channels} input channels{extra}, not {c}")
        images = x[:, : self.image_channels]
        if self.motion == "diff":
            motion = images[:, :, 1:] - images[:, :, :-1]             # (N, C, T-1, H, W)
        else:
            motion = x[:, self.image_channels:, :-1]                   # flow t -> t+1 sits at t
        stacked = motion.transpose(1, 2).reshape(n, -1, h, w)          # time-major channel stack
        fused = torch.cat([self.spatial(images[:, :, t // 2]), self.temporal(stacked)], dim=1)
        return self.fc(self.dropout(fused))


def two_stream(*, num_classes: int, in_channels: int = 3, frames: int = 16, motion: str = "diff",
               widths: tuple[int, ...] = FRAME_WIDTHS, dropout: float = 0.2) -> TwoStream:
    """Two-stream network: appearance from the middle frame, motion from the whole clip.

    Both streams are :class:`FrameEncoder` 2D CNNs; their features are concatenated and
    classified by ``fc`` (feature fusion, trained end to end).

    Parameters
    ----------
    num_classes : int
    in_channels : int
        Image channels of the clip (the preprocessing's C). With ``motion="flow"`` the input
        has two more: the optical flow ``(dx, dy)`` from each frame to the next (at frame t: the
        flow t -> t+1; the last frame's is ignored), so an RGB clip with flow has 5.
    frames : int
        Clip length T: the motion stream's first layer takes its (T - 1) stacked motion maps.
    motion : {"diff", "flow"}
        ``diff``: differences of consecutive frames, computed inside (nothing to precompute,
        runs on any device, exports). ``flow``: optical flow given in the input channels;
        trained and run through cnntool, its preprocessing names the flow method and the clip
        datasets (:mod:`cnntool.data.clips`) and ``cnntool video`` append it.
    widths : tuple of int
    dropout : float

    Examples
    --------
    >>> model = two_stream(num_classes=4, frames=8)
    >>> model(torch.zeros(2, 3, 8, 32, 32)).shape
    torch.Size([2, 4])
    >>> two_stream(num_classes=4, frames=8, motion="flow")(torch.zeros(1, 5, 8, 32, 32)).shape
    torch.Size([1, 4])
    """
    model = TwoStream(num_classes=num_classes, in_channels=in_channels, frames=int(frames), motion=motion,
                      widths=tuple(widths), dropout=dropout)
    _init(model)
    return model


class SingleFrame(nn.Module):
    """A 2D CNN that sees only the middle frame of the clip; see :func:`single_frame`."""

    def __init__(self, *, num_classes: int, in_channels: int, widths: tuple[int, ...], dropout: float):
        super().__init__()
        self.encoder = FrameEncoder(in_channels, widths=widths)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.encoder.feature_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, t, _, _ = _check_clip(x)
        return self.fc(self.dropout(self.encoder(x[:, :, t // 2])))


def single_frame(*, num_classes: int, in_channels: int = 3, widths: tuple[int, ...] = FRAME_WIDTHS,
                 dropout: float = 0.2) -> SingleFrame:
    """The no-motion baseline: a 2D CNN on the middle frame (index T // 2) of each clip.

    Examples
    --------
    >>> single_frame(num_classes=4)(torch.zeros(2, 3, 16, 64, 64)).shape
    torch.Size([2, 4])
    """
    model = SingleFrame(num_classes=num_classes, in_channels=in_channels, widths=tuple(widths), dropout=dropout)
    _init(model)
    return model


def _check_clip(x: torch.Tensor) -> tuple[int, int, int, int, int]:
    if x.ndim != 5:
        raise ValueError(f"video models take clips (N, C, T, H, W), not a tensor of shape {tuple(x.shape)}")
    return tuple(x.shape)


def _init(model: nn.Module) -> None:
    """He initialisation for the ReLU convolutions and projections; batch norm starts as the identity."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
