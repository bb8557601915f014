"""Every method on every registry family it supports (random init, small inputs), and a clear
refusal on those it does not."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnntool.errors import UsageError  # noqa: E402
from cnntool.infer.explain import ExplainConfig, Explainer  # noqa: E402
from cnntool.infer.visualize import first_conv_weight, grid_shape, kernel_grid, tile_scale  # noqa: E402
from cnntool.models.loading import load  # noqa: E402

#: One model per family, and the input side used here (small, but leaving the cam layer > 1x1).
FAMILIES = {
    "simple_cnn": 64,
    "xception_small": 64,
    "lenet5": 32,
    "resnet18": 64,
    "densenet121": 64,
    "mobilenet_v3_small": 64,
    "efficientnet_b0": 64,
    "googlenet": 64,
    "vgg16": 64,
    "alexnet": 96,
}
#: CAM needs global average pooling then one Linear layer after the cam layer.
CAM_UNSUPPORTED = {"lenet5", "vgg16", "alexnet", "mobilenet_v3_small"}
GRADIENT_AND_EIGEN = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam")


@functools.lru_cache(maxsize=None)
def _loaded(name: str):
    torch.manual_seed(0)
    loaded = load(name, num_classes=5)
    side = FAMILIES[name]
    return dataclasses.replace(loaded, preprocessing=loaded.preprocessing.with_size(side))


def _batch(loaded, n: int = 1):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, *loaded.input_size, generator=generator)


def _check_heatmaps(cams, loaded, n):
    _, h, w = loaded.input_size
    assert cams.heatmaps.shape == (n, h, w)
    assert np.isfinite(cams.heatmaps).all()
    assert cams.heatmaps.min() >= 0 and cams.heatmaps.max() <= 1 + 1e-6
    assert cams.logits.shape == (n, 5)


#: Families whose forward pass is slow on a CPU: Grad-CAM runs on them in the quick suite, the
#: other methods in the slow one.
HEAVY = {"densenet121", "efficientnet_b0", "googlenet", "vgg16"}


def _family_method_cases():
    for name in FAMILIES:
        for method in GRADIENT_AND_EIGEN:
            slow = name in HEAVY and method != "gradcam"
            yield pytest.param(name, method, marks=[pytest.mark.slow] if slow else [], id=f"{method}-{name}")


@pytest.mark.parametrize("name, method", list(_family_method_cases()))
def test_gradient_methods_and_eigencam_run_on_every_family(name, method):
    loaded = _loaded(name)
    explainer = Explainer(loaded, ExplainConfig(method=method))
    assert explainer.layer == loaded.entry.cam_layer
    _check_heatmaps(explainer.heatmaps(_batch(loaded, 2)), loaded, 2)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_cam_runs_on_gap_linear_families_and_refuses_the_others(name):
    loaded = _loaded(name)
    if name in CAM_UNSUPPORTED:
        with pytest.raises(UsageError) as info:
            Explainer(loaded, ExplainConfig(method="cam"))
        assert info.value.message.startswith("CAM does not apply")
        assert "\n" not in info.value.message and "gradcam" in info.value.hint
    else:
        explainer = Explainer(loaded, ExplainConfig(method="cam"))
        _check_heatmaps(explainer.heatmaps(_batch(loaded)), loaded, 1)


#: Score-CAM costs one forward pass per channel: where the cam layer is wide and the network slow,
#: an earlier, narrower layer keeps the test bounded.
SCORECAM_LAYER = {"densenet121": "features.transition1", "vgg16": "features.9"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_scorecam_runs_on_every_family(name):
    loaded = _loaded(name)
    config = ExplainConfig(method="scorecam", layer=SCORECAM_LAYER.get(name), score_batch_size=256)
    explainer = Explainer(loaded, config)
    _check_heatmaps(explainer.heatmaps(_batch(loaded)), loaded, 1)


@pytest.mark.parametrize("name", ["simple_cnn", "lenet5", "resnet18", "alexnet"])
def test_scorecam_runs_on_small_families(name):
    loaded = _loaded(name)
    if name in ("resnet18", "alexnet"):  # a narrower layer keeps the masked passes few
        layer = {"resnet18": "layer2", "alexnet": "features.2"}[name]
    else:
        layer = None
    explainer = Explainer(loaded, ExplainConfig(method="scorecam", layer=layer, score_batch_size=256))
    _check_heatmaps(explainer.heatmaps(_batch(loaded)), loaded, 1)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_featuremaps_of_the_cam_layer(name):
    loaded = _loaded(name)
    explainer = Explainer(loaded, ExplainConfig(method="featuremaps"))
    maps = explainer.feature_maps(_batch(loaded, 2))
    assert maps.ndim == 4 and maps.shape[0] == 2 and maps.shape[2] > 1


@pytest.mark.parametrize("name", list(FAMILIES))
def test_kernels_of_the_first_conv(name):
    loaded = _loaded(name)
    weight = first_conv_weight(loaded.model, loaded.entry.first_conv)
    assert weight.shape[1] == loaded.input_size[0]
    out, _, kh, kw = weight.shape
    rows, cols = grid_shape(out)
    s = tile_scale(kh, kw)
    image = kernel_grid(weight)
    assert image.shape[:2] == (rows * (kh * s + 2) + 2, cols * (kw * s + 2) + 2)
    assert image.ndim == (3 if weight.shape[1] == 3 else 2)


def test_lenet5_last_conv_is_refused_as_1x1():
    # C5 is 120@1x1: a heatmap of one cell is constant, so it is refused with a pointer
    loaded = _loaded("lenet5")
    with pytest.raises(UsageError, match="1x1 feature map"):
        Explainer(loaded, ExplainConfig(method="gradcam", layer="6"))
