"""The CAM core against pytorch-grad-cam (the oracle): same model, layer, target, image -> same heatmap."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pgc = pytest.importorskip("pytorch_grad_cam")

from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from cnntool.errors import UsageError  # noqa: E402
from cnntool.infer.cam import compute_cams  # noqa: E402
from cnntool.models.loading import load  # noqa: E402

TOLERANCE = 1e-4

#: cnntool method -> pytorch-grad-cam class name.
ORACLE = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
}


def _model(name: str, size: int, seed: int = 0):
    torch.manual_seed(seed)
    loaded = load(name, num_classes=6)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, loaded.input_size[0], size, size, generator=generator)
    return loaded.model, x


@pytest.fixture(scope="module")
def simple():
    return _model("simple_cnn", 64)


@pytest.fixture(scope="module")
def resnet():
    return _model("resnet18", 64)


def _oracle(method, model, layer, x, targets, **kwargs):
    cls = getattr(pgc, ORACLE[method])
    module = dict(model.named_modules())[layer]
    with cls(model, [module]) as cam:
        wrapped = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
        out = cam(x, wrapped, **kwargs)
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("method", list(ORACLE))
@pytest.mark.parametrize("layer", ["features", "features.1"])
def test_simple_cnn_matches_pytorch_grad_cam(simple, method, layer):
    model, x = simple
    targets = [1, 4]
    ours = compute_cams(model, x, layer=layer, method=method, targets=targets)
    ref = _oracle(method, model, layer, x, targets)
    assert ours.heatmaps.shape == ref.shape == (2, 64, 64)
    assert ref.max() > 0.9  # not a degenerate (all-zero) comparison
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)
    assert ours.targets.tolist() == targets


@pytest.mark.parametrize("method", [m for m in ORACLE if m != "scorecam"])
@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_resnet18_matches_pytorch_grad_cam(resnet, method, layer):
    model, x = resnet
    ours = compute_cams(model, x, layer=layer, method=method, targets=[0, 5])
    ref = _oracle(method, model, layer, x, [0, 5])
    assert ref.max() > 0.9
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)


@pytest.mark.slow
def test_resnet18_scorecam_matches_pytorch_grad_cam():
    model, x = _model("resnet18", 64, seed=3)
    ours = compute_cams(model, x[:1], layer="layer3", method="scorecam", targets=[2])
    ref = _oracle("scorecam", model, "layer3", x[:1], [2])
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)


@pytest.mark.parametrize("method", ["gradcam", "layercam", "hirescam"])
def test_eigen_smooth_matches(simple, method):
    model, x = simple
    ours = compute_cams(model, x, layer="features", method=method, targets=[2, 3], eigen_smooth=True)
    ref = _oracle(method, model, "features", x, [2, 3], eigen_smooth=True)
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_aug_smooth_matches(simple, method):
    model, x = simple
    ours = compute_cams(model, x, layer="features", method=method, targets=[1, 2], aug_smooth=True)
    ref = _oracle(method, model, "features", x, [1, 2], aug_smooth=True)
    plain = compute_cams(model, x, layer="features", method=method, targets=[1, 2]).heatmaps
    assert np.abs(ref - plain).max() > 1e-2  # smoothing changed the map: the comparison means something
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)


def test_default_target_is_the_predicted_class(simple):
    model, x = simple
    ours = compute_cams(model, x, layer="features", method="gradcam")
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    assert ours.targets.tolist() == predicted
    np.testing.assert_allclose(ours.heatmaps, _oracle("gradcam", model, "features", x, None), atol=TOLERANCE)


@pytest.mark.parametrize("name, size, layer, head", [("simple_cnn", 64, "features", "fc"),
                                                      ("resnet18", 64, "layer4", "fc")])
def test_cam_equals_gradcam_on_gap_linear_networks(name, size, layer, head):
    # With GAP then Linear, d y_c / d A_k(i, j) = w_ck / (h w): Grad-CAM's weights are CAM's
    # up to a positive factor, which the min-max normalisation removes.
    model, x = _model(name, size, seed=7)
    cam = compute_cams(model, x, layer=layer, method="cam", head=head, targets=[3, 1]).heatmaps
    grad = compute_cams(model, x, layer=layer, method="gradcam", targets=[3, 1]).heatmaps
    assert cam.max() > 0.9
    np.testing.assert_allclose(cam, grad, atol=TOLERANCE)


def test_no_parameter_gradients_and_flags_restored(resnet):
    model, x = resnet
    model.zero_grad(set_to_none=True)
    model.layer1.requires_grad_(False)  # a user's partial freeze must survive
    before = [p.requires_grad for p in model.parameters()]
    compute_cams(model, x, layer="layer4", method="gradcam++")
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == before
    assert not model.training
    model.requires_grad_(True)


def test_bad_target_raises_usage_error(simple):
    model, x = simple
    with pytest.raises(UsageError, match="out of range: the model has 6 classes"):
        compute_cams(model, x, layer="features", method="gradcam", targets=[1, 6])


def test_bad_layer_lists_valid_names(simple):
    model, x = simple
    with pytest.raises(UsageError) as info:
        compute_cams(model, x, layer="featurez", method="gradcam")
    assert "features" in info.value.hint and "fc" in info.value.hint


def test_layer_after_the_head_is_refused(simple):
    model, x = simple
    with pytest.raises(UsageError, match="not a feature map"):
        compute_cams(model, x, layer="fc", method="gradcam")


def test_heatmaps_batch_independent(resnet):
    # batching must not mix images: one image alone gives the same map as in a batch
    model, x = resnet
    both = compute_cams(model, x, layer="layer4", method="xgradcam", targets=[4, 4]).heatmaps
    alone = compute_cams(model, x[1:], layer="layer4", method="xgradcam", targets=[4]).heatmaps
    np.testing.assert_allclose(both[1], alone[0], atol=TOLERANCE)


class _GatedSkip(torch.nn.Module):
    """The target layer's output is multiplied by a tensor computed before it (as in squeeze-excite
    or attention gates): the backward pass needs that earlier tensor."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.body = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        b = torch.relu(self.body(a))
        return self.fc((a * b).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_skip_connection_across_the_target_layer(method):
    torch.manual_seed(0)
    model = _GatedSkip().eval()
    x = torch.randn(2, 3, 12, 12)
    ours = compute_cams(model, x, layer="body", method=method, targets=[0, 2])
    ref = _oracle(method, model, "body", x, [0, 2])
    assert ref.max() > 0.9
    np.testing.assert_allclose(ours.heatmaps, ref, atol=TOLERANCE)
