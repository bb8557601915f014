"""Weight initialisation for training from scratch.

He (Kaiming) initialisation keeps the activation variance constant through ReLU layers;
Glorot (Xavier) does so for tanh and sigmoid, the activations of LeNet-5's era. ``auto``
picks by the activations the model actually uses.
"""

from __future__ import annotations

#: Activation module names that call for Kaiming initialisation.
RELU_LIKE = ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "SiLU", "Hardswish", "Mish")
#: ... and those that call for Xavier initialisation.
SATURATING = ("Tanh", "Sigmoid", "Hardtanh", "Softsign", "Hardsigmoid")


def choose_init(model) -> str:
    """``kaiming`` when the model has ReLU-like activations, else ``xavier`` when it has tanh or
    sigmoid ones, else ``torch`` (leave PyTorch's defaults)."""
    names = {type(m).__name__ for m in model.modules()}
    if names & set(RELU_LIKE):
        return "kaiming"
    if names & set(SATURATING):
        return "xavier"
    return "torch"


def init_weights(model, scheme: str = "auto") -> str:
    """Re-initialise convolutions, linear layers and norm layers in place; returns the scheme used.

    ``kaiming``: He normal, fan-out, ReLU gain for convolutions, N(0, 0.01) for linear layers
    (torchvision's ResNet and VGG rules); ``xavier``: Glorot uniform with the tanh gain; biases 0;
    batch/group norm weight 1, bias 0. ``torch`` leaves everything as built.

    Examples
    --------
    >>> import torch.nn as nn
    >>> init_weights(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()))
    'kaiming'
    """
    import torch.nn as nn

    if scheme == "auto":
        scheme = choose_init(model)
    if scheme == "torch":
        return scheme
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if scheme == "kaiming":
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain("tanh"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    return scheme
