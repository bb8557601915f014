"""Pretrained weights come from torchvision's hub cache, offline; a missing file names itself.

The "weights" are a randomly initialised ResNet-18 state dict saved under the real file name
in a temporary ``TORCH_HOME``; the network is blocked throughout.
"""

from __future__ import annotations

import os

import pytest
import torch

from cnntool.errors import MissingWeightsError
from cnntool.models.loading import load
from cnntool.models.registry import cached_weights_path, get_entry

URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


@pytest.fixture(scope="module")
def resnet18_state():
    """A randomly initialised resnet18 state dict, made once."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(weights=None).state_dict()


@pytest.fixture
def cached_resnet18(torch_home, resnet18_state):
    """The state dict at ``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``."""
    state = resnet18_state
    path = torch_home / "hub" / "checkpoints" / os.path.basename(URL)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_cache_path_follows_torch_home(torch_home):
    from torchvision.models import ResNet18_Weights

    assert ResNet18_Weights.IMAGENET1K_V1.url == URL
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert cached_weights_path(get_entry("resnet18"), "DEFAULT") == expected


def test_pretrained_loads_offline_from_the_cache(cached_resnet18, no_network):
    from torchvision.models import ResNet18_Weights

    loaded = load("resnet18:IMAGENET1K_V1")
    assert no_network == []  # never tried the network
    assert loaded.source == "pretrained" and loaded.weights == "IMAGENET1K_V1"
    assert loaded.classes == list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(loaded.classes) == 1000 and loaded.classes[0] == "tench"
    assert loaded.input_size == (3, 224, 224) and loaded.preprocessing.resize_size == 256
    assert loaded.mean == pytest.approx((0.485, 0.456, 0.406))
    assert not loaded.model.training
    torch.testing.assert_close(loaded.model.fc.weight, cached_resnet18["fc.weight"])
    torch.testing.assert_close(loaded.model.conv1.weight, cached_resnet18["conv1.weight"])


def test_default_weights_resolve_to_the_same_file(cached_resnet18):
    loaded = load("resnet18:DEFAULT")
    assert loaded.weights == "IMAGENET1K_V1"
    torch.testing.assert_close(loaded.model.layer4[1].conv2.weight, cached_resnet18["layer4.1.conv2.weight"])


def test_pretrained_with_new_head_keeps_the_backbone(cached_resnet18):
    loaded = load("resnet18:IMAGENET1K_V1", num_classes=5)
    assert loaded.model.fc.out_features == 5
    assert loaded.classes == [f"class_{i}" for i in range(5)]
    torch.testing.assert_close(loaded.model.conv1.weight, cached_resnet18["conv1.weight"])
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_missing_weights_name_the_url_and_cache_path(torch_home, no_network):
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(MissingWeightsError) as info:
        load("resnet18:IMAGENET1K_V1")
    text = f"{info.value.message}\n{info.value.hint}"
    assert URL in text
    assert str(expected) in text
    assert no_network == [URL]  # it tried the download, which the test refused
    assert not expected.exists()


def test_corrupted_cache_file_is_reported(torch_home, no_network):
    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a state dict")
    with pytest.raises(MissingWeightsError, match="corrupted or incomplete") as info:
        load("resnet18:IMAGENET1K_V1")
    assert URL in info.value.hint
