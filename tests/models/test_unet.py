"""The U-Net: shapes for any input size, the lectures' structure, parameter counts, and a short
training run that learns to segment synthetic shapes."""

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.models.unet import UNet, unet


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (33, 17), (1, 1), (129, 8)])
def test_output_has_the_input_size(size):
    model = unet(num_classes=5, depth=3, width=4).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_padding_does_not_change_the_scores_of_a_fitting_input():
    # a 24x24 input needs no padding at depth 3; cropping a 20x20 one back must give the
    # scores of the same pixels computed on the padded input
    torch.manual_seed(0)
    model = unet(num_classes=2, depth=3, width=4).eval()
    x = torch.rand(1, 3, 20, 20)
    padded = nn.functional.pad(x, (0, 4, 0, 4), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :20, :20])


def test_structure_is_the_lectures_unet():
    model = unet(num_classes=3, in_channels=1, depth=4, width=8)
    assert [e[0].out_channels for e in model.encoders] == [8, 16, 32, 64]
    assert model.bottleneck[0].out_channels == 128
    ups = list(model.ups)
    assert all(isinstance(u, nn.ConvTranspose2d) and u.stride == (2, 2) and u.kernel_size == (2, 2) for u in ups)
    assert [u.out_channels for u in ups] == [64, 32, 16, 8]
    # each decoder block sees the skip and the upsampled map concatenated: twice the channels
    assert [d[0].in_channels for d in model.decoders] == [128, 64, 32, 16]
    assert isinstance(model.head, nn.Conv2d) and model.head.kernel_size == (1, 1)
    assert model.encoders[0][0].in_channels == 1
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4  # one per level


def test_parameter_counts_and_default_size():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    default = unet(num_classes=4)
    assert (default.depth, default.width) == (3, 16)
    assert count(default) == 482_788
    # the paper's network (padded convolutions, BN instead of none): about 31M parameters
    assert 31_000_000 < count(unet(num_classes=2, in_channels=1, depth=4, width=64)) < 31_100_000


def test_runs_on_the_meta_device_for_layer_tables():
    with torch.device("meta"):
        model = unet(num_classes=4)
        out = model(torch.empty(1, 3, 100, 90))
    assert out.shape == (1, 4, 100, 90) and out.device.type == "meta"


def test_bad_arguments():
    for kwargs in ({"depth": 0}, {"width": 0}, {"num_classes": 0}):
        with pytest.raises(ValueError):
            UNet(**{"num_classes": 2, **kwargs})


@pytest.mark.slow
def test_a_small_unet_learns_synthetic_shapes():
    from cnntool.data.synthetic import shapes_scene
    from cnntool.metrics.segmentation import SegmentationMetrics

    def make(n, seed):
        rng = np.random.default_rng(seed)
        scenes = [shapes_scene(rng, size=48, min_side=0.25, max_side=0.45) for _ in range(n)]
        x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x, torch.from_numpy(np.stack([s.class_mask for s in scenes])).long()

    torch.manual_seed(0)
    x_train, y_train = make(64, 1)
    x_val, y_val = make(16, 2)
    model = unet(num_classes=4, depth=2, width=8)
    epochs = 40
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=epochs * 8, pct_start=0.2)
    for _epoch in range(epochs):
        model.train()
        for i in range(0, 64, 8):
            loss = nn.functional.cross_entropy(model(x_train[i:i + 8]), y_train[i:i + 8], ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    metrics = SegmentationMetrics(4)
    with torch.no_grad():
        metrics.update(y_val, model(x_val))
    # untrained: about 0.1; objects found but shapes not told apart: about 0.4 (measured 0.81 with
    # two threads, 0.89 with one: CPU kernels sum in a thread-dependent order)
    assert metrics.compute()["miou"] > 0.7
