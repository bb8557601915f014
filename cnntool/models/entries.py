"""Registry entries for cnntool's own architectures (the networks are in ``classic.py``).

The builders are named as ``"module:function"`` strings, so listing or looking up the registry
imports no torch; ``classic.py`` is imported when a model is built.
"""

from __future__ import annotations

from cnntool.data.preprocessing import Preprocessing
from cnntool.models.registry import ModelEntry, register

#: Normalisation for cnntool's own models, trained from scratch: [0, 1] -> [-1, 1].
HALF = (0.5, 0.5, 0.5)


def half(input_size: tuple[int, ...]) -> Preprocessing:
    """Resize straight to ``input_size`` and map [0, 1] to [-1, 1]: cnntool's own models."""
    channels = input_size[0]
    return Preprocessing(tuple(input_size), HALF[:channels], HALF[:channels])


register(ModelEntry(
    name="lenet5", task="classification", builder="cnntool.models.classic:lenet5", family="lenet",
    preprocessing=half((1, 32, 32)), num_classes=10,
    head="11", cam_layer="4", first_conv="0", reference_params=61_706,
    description="LeNet-5 (1998): tanh, average pooling, 32x32 grayscale",
))

register(ModelEntry(
    name="simple_cnn", task="classification", builder="cnntool.models.classic:simple_cnn", family="simple",
    preprocessing=half((3, 64, 64)), num_classes=10,
    head="fc", cam_layer="features", first_conv="features.0.0", reference_params=94_762,
    description="Small plain CNN: three conv-BN-ReLU-maxpool blocks, global average pooling",
))

register(ModelEntry(
    name="xception_small", task="classification", builder="cnntool.models.classic:xception_small", family="xception",
    preprocessing=half((3, 64, 64)), num_classes=10,
    head="fc", cam_layer="exit_flow", first_conv="stem.0", reference_params=603_754,
    description="Small Xception-style net: residual depthwise-separable conv blocks, 64x64",
))


# --- video: clips (C, T, H, W); the lectures' 3D convolutions, CNN + RNN and two streams -------

def _clip(frames: int = 8, size: int = 64, frame_stride: int = 2) -> Preprocessing:
    """Clips of ``frames`` frames (every ``frame_stride``-th), ``size`` px, (x/255 - 0.5)/0.25."""
    return Preprocessing((3, frames, size, size), (0.5,) * 3, (0.25,) * 3, frame_stride=frame_stride)


register(ModelEntry(
    name="c3d_small", task="video", builder="cnntool.models.video_nets:c3d_small", family="c3d",
    preprocessing=_clip(), num_classes=10, head="fc", cam_layer="features", first_conv="features.0.0",
    reference_params=293_370,
    description="Small C3D-style 3D CNN over 8-frame clips: trains from scratch on a CPU in minutes",
))
register(ModelEntry(
    name="cnn_rnn", task="video", builder="cnntool.models.video_nets:cnn_rnn", family="cnn_rnn",
    preprocessing=_clip(), num_classes=10, head="fc", first_conv="encoder.features.0.0",
    reference_params=435_610,
    description="A 2D CNN on every frame, then a GRU (or LSTM: --arch-arg rnn=lstm) over the features",
))
register(ModelEntry(
    name="two_stream", task="video", builder="cnntool.models.video_nets:two_stream", family="two_stream",
    preprocessing=_clip(), num_classes=10, head="fc", first_conv="spatial.features.0.0",
    reference_params=579_914, builder_kwargs={"frames": 8}, min_frames=2, frames_kwarg="frames",
    flow_kwarg=("motion", "flow"),
    description="Two streams: the middle frame, and the motion (stacked frame differences, or DIS optical "
                "flow with --arch-arg motion=flow), fused",
))
register(ModelEntry(
    name="single_frame", task="video", builder="cnntool.models.video_nets:single_frame", family="single_frame",
    preprocessing=_clip(), num_classes=10, head="fc", cam_layer="encoder.features",
    first_conv="encoder.features.0.0", reference_params=288_666,
    description="Baseline: a 2D CNN on the middle frame only (cannot see motion)",
))


# --- detection and segmentation: small nets that train from scratch on a CPU ------------------

register(ModelEntry(
    name="tiny_fcos", task="detection", builder="cnntool.models.detectors:tiny_fcos", family="fcos",
    preprocessing=Preprocessing((3, 160, 160), HALF, HALF, resize_mode="none", normalize_in_model=True),
    num_classes=91, head="head.classification_head", cam_layer="backbone.body.layer4",
    first_conv="backbone.body.stem.0.0", reference_params=1_511_408,
    description="Tiny FCOS (1.5M parameters, BatchNorm): anchor-free detector that trains from scratch on a CPU",
))

register(ModelEntry(
    name="unet", task="segmentation", builder="cnntool.models.unet:unet", family="unet",
    preprocessing=half((3, 128, 128)), num_classes=4, head="head", cam_layer="decoders.2",
    first_conv="encoders.0.0", reference_params=482_788,
    description="U-Net (2015) as the lectures draw it: conv blocks down, transposed convolutions up, skips "
                "(--arch-arg depth=4 width=32 for a bigger one)",
))
