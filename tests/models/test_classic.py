"""cnntool's own architectures on the CPU: shapes at any input size, channels, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnntool.models.classic import XceptionBlock, lenet5, separable_conv, simple_cnn, xception_small
from cnntool.models.registry import get_entry
from cnntool.models.surgery import get_layer


@pytest.mark.parametrize("size", [(8, 8), (64, 64), (37, 100)])
def test_simple_cnn_takes_any_input_size(size):
    model = simple_cnn(num_classes=4, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, *size)).shape == (2, 4)


def test_simple_cnn_feature_map_and_layers():
    model = simple_cnn().eval()
    seen = {}
    get_layer(model, "features").register_forward_hook(lambda m, a, out: seen.update(shape=tuple(out.shape)))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert seen["shape"] == (1, 128, 8, 8)  # three 2x poolings
    assert isinstance(get_layer(model, "features.0.1"), nn.BatchNorm2d)


def test_xception_small_shapes():
    model = xception_small(num_classes=3).eval()
    shapes = {}
    for name in ("stem", "blocks.0", "blocks.1", "blocks.3", "exit_flow"):
        get_layer(model, name).register_forward_hook(
            lambda m, a, out, name=name: shapes.update({name: tuple(out.shape[1:])}))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert shapes == {"stem": (64, 32, 32), "blocks.0": (128, 16, 16), "blocks.1": (256, 8, 8),
                      "blocks.3": (256, 8, 8), "exit_flow": (512, 8, 8)}
    with torch.no_grad():
        assert xception_small(in_channels=1).eval()(torch.randn(1, 1, 40, 40)).shape == (1, 10)


def test_separable_conv_costs_fewer_weights():
    separable = separable_conv(64, 128)
    assert sum(p.numel() for p in separable.parameters()) == 64 * 9 + 64 * 128
    assert separable.depthwise.groups == 64


def test_xception_block_shortcut_is_identity_when_shape_is_kept():
    kept = XceptionBlock(16, 16)
    assert isinstance(kept.shortcut, nn.Identity)
    x = torch.randn(1, 16, 8, 8)
    kept.eval()
    with torch.no_grad():
        torch.testing.assert_close(kept(x), kept.residual(x) + x)
    strided = XceptionBlock(16, 32, stride=2).eval()
    with torch.no_grad():
        assert strided(x).shape == (1, 32, 4, 4)


def test_convolutions_get_kaiming_init():
    torch.manual_seed(0)
    model = xception_small()
    conv = get_layer(model, "blocks.1.residual.1.pointwise")  # 128 -> 256, 1x1: fan_out 256
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    bn = get_layer(model, "blocks.1.residual.2")
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_lenet5_forward_on_the_cpu():
    model = lenet5().eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)
    assert get_entry("lenet5").build(in_channels=3, num_classes=2)(torch.randn(1, 3, 32, 32)).shape == (1, 2)
