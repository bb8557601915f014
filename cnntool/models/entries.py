"""Registry entries for cnntool's own architectures (the networks are in ``classic.py``).

The builders are named as ``"module:function"`` strings, so listing or looking up the registry
imports no torch; ``classic.py`` is imported when a model is built.
"""

from __future__ import annotations

from cnntool.models.registry import ModelEntry, register

#: Normalisation for cnntool's own models, trained from scratch: [0, 1] -> [-1, 1].
HALF = (0.5, 0.5, 0.5)


register(ModelEntry(
    name="lenet5", task="classification", builder="cnntool.models.classic:lenet5", family="lenet",
    input_size=(1, 32, 32), mean=HALF[:1], std=HALF[:1], num_classes=10,
    head="11", cam_layer="4", first_conv="0", reference_params=61_706,
    description="LeNet-5 (1998): tanh, average pooling, 32x32 grayscale",
))

register(ModelEntry(
    name="simple_cnn", task="classification", builder="cnntool.models.classic:simple_cnn", family="simple",
    input_size=(3, 64, 64), mean=HALF, std=HALF, num_classes=10,
    head="fc", cam_layer="features", first_conv="features.0.0", reference_params=94_762,
    description="Small plain CNN: three conv-BN-ReLU-maxpool blocks, global average pooling",
))

register(ModelEntry(
    name="xception_small", task="classification", builder="cnntool.models.classic:xception_small", family="xception",
    input_size=(3, 64, 64), mean=HALF, std=HALF, num_classes=10,
    head="fc", cam_layer="exit_flow", first_conv="stem.0", reference_params=603_754,
    description="Small Xception-style net: residual depthwise-separable conv blocks, 64x64",
))
