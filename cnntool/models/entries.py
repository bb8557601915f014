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
