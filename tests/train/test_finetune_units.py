"""Which layers fine-tuning trains, at which rates; weight initialisation; mixup/cutmix."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnntool.models.registry import get_entry
from cnntool.train.augment import Mixer, cutmix_images
from cnntool.train.finetune import apply_freeze, block_names, frozen_norm_layers, parameter_groups
from cnntool.train.initialize import choose_init, init_weights


def test_resnet18_blocks_are_its_residual_blocks():
    entry = get_entry("resnet18")
    blocks = block_names(entry.build(), entry.head)
    assert blocks == ["conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
                      "layer4.0", "layer4.1"]


def test_freeze_backbone_leaves_only_the_head_trainable():
    entry = get_entry("simple_cnn")
    model = entry.build(num_classes=4)
    frozen = apply_freeze(model, entry.head, "backbone")
    assert frozen == block_names(model, entry.head)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    assert len(frozen_norm_layers(model)) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_freeze_n_and_the_backbone_learning_rate():
    entry = get_entry("resnet18")
    model = entry.build(num_classes=3)
    apply_freeze(model, entry.head, 2)
    trainable_blocks = {n.split(".")[0] + "." + n.split(".")[1] if n.startswith("layer") else n.split(".")[0]
                        for n, p in model.named_parameters() if p.requires_grad}
    assert trainable_blocks == {"layer4.0", "layer4.1", "fc"}
    groups = parameter_groups(model, heads=entry.head, lr=0.01, weight_decay=1e-4, backbone_lr_scale=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == 0.01 and by_name["backbone"]["lr"] == pytest.approx(0.001)
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0       # BN weights and biases
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_init_picks_kaiming_for_relu_and_xavier_for_tanh():
    assert choose_init(get_entry("simple_cnn").build()) == "kaiming"
    lenet = get_entry("lenet5").build()
    assert choose_init(lenet) == "xavier"
    torch.manual_seed(0)
    init_weights(lenet)
    fan_in, fan_out = 25, 6 * 25
    bound = 5 / 3 * (6 / (fan_in + fan_out)) ** 0.5   # Glorot uniform with the tanh gain
    assert lenet[0].weight.abs().max() <= bound and lenet[0].weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(lenet[0].bias) == 0


def test_mixup_mixes_images_and_cutmix_pastes_a_box():
    torch.manual_seed(0)
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    y = torch.tensor([0, 1])
    mixed, y_a, y_b, lam = Mixer(mixup=1.0)(x, y)
    assert torch.allclose(mixed.mean(), torch.tensor(0.5))           # lam*a + (1-lam)*b per pair
    assert y_a.tolist() == [0, 1] and sorted(y_b.tolist()) == [0, 1]
    pasted, lam = cutmix_images(x, torch.tensor([1, 0]), 0.75)
    assert pasted[0].sum().item() == pytest.approx((1 - lam) * 64)  # lam is the area actually kept
