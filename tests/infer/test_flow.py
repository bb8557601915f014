import numpy as np
import pytest
import torch

from cnntool.errors import UsageError
from cnntool.infer.flow import FlowEstimator, flow_stats, flow_to_color, optical_flow
from cnntool.metrics.flow import endpoint_error


@pytest.fixture(scope="module")
def motorcycle():
    """scikit-image's rectified stereo pair: the true flow from left to right is minus the
    disparity along x and 0 along y; pixels without a disparity (inf) are not scored."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    valid = np.isfinite(disparity)
    truth = np.zeros(disparity.shape + (2,), np.float32)
    truth[..., 0] = np.where(valid, -disparity, 0)
    return left, right, truth, valid


def test_the_default_method_recovers_the_stereo_motion_within_3_px(motorcycle):
    left, right, truth, valid = motorcycle
    flow = optical_flow(left, right)
    assert flow.shape == left.shape[:2] + (2,) and flow.dtype == np.float32
    score = endpoint_error(flow, truth, valid=valid)
    assert score.epe < 3.0                      # measured: 2.63 px
    assert score.outliers < 0.25                # measured: 0.17
    assert score.pixels == int(valid.sum())


def test_farneback_is_the_weaker_method_on_large_motion(motorcycle):
    left, right, truth, valid = motorcycle
    farneback = endpoint_error(optical_flow(left, right, method="farneback"), truth, valid=valid)
    dis = endpoint_error(optical_flow(left, right), truth, valid=valid)
    assert dis.epe < farneback.epe             # measured: 2.6 vs 21.7 px


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_a_shifted_texture_moves_by_the_shift(method):
    import cv2

    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (80, 96, 3)).astype(np.float32), (0, 0), 2)
    prev = np.clip(scene, 0, 255).astype(np.uint8)
    nxt = np.roll(prev, (-2, 3), axis=(0, 1))          # 3 px right, 2 px up
    flow = optical_flow(prev, nxt, method=method)
    inner = flow[12:-12, 12:-12].reshape(-1, 2)
    assert np.median(inner, axis=0) == pytest.approx([3, -2], abs=0.3)
    floats = optical_flow(prev / 255.0, nxt / 255.0, method=method)
    assert np.abs(floats - flow).mean() < 0.05


class EchoFlow(torch.nn.Module):
    """Stands in for RAFT: returns the first two channels of the first image as its 'flow',
    so the test sees exactly what went in (scaling, padding) and what came out (cropping)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = None

    def forward(self, image1, image2, num_flow_updates=12):
        self.seen = (tuple(image1.shape), num_flow_updates)
        return [image1[:, :2] * 0, image1[:, :2]]


@pytest.mark.parametrize("size, padded", [((130, 141), (136, 144)), ((21, 300), (128, 304))])
def test_raft_input_is_scaled_padded_to_a_multiple_of_8_and_cropped_back(size, padded):
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    model = EchoFlow()
    flow = optical_flow(prev, prev, method="raft", model=model)
    assert model.seen == ((1, 3) + padded, 12)
    assert flow.shape == size + (2,)
    np.testing.assert_allclose(flow, prev[:, :, :2] / 127.5 - 1, atol=1e-6)


@pytest.mark.slow
def test_torchvision_raft_small_runs_on_an_odd_size():
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    estimate = FlowEstimator("raft", model=raft_small(weights=None), device="cpu", num_flow_updates=2)
    rng = np.random.default_rng(0)
    flow = estimate(rng.integers(0, 256, (60, 70), dtype=np.uint8), rng.integers(0, 256, (60, 70), dtype=np.uint8))
    assert flow.shape == (60, 70, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()


def test_method_and_model_mistakes_are_usage_errors():
    with pytest.raises(UsageError, match="unknown flow --method"):
        FlowEstimator("lucas")
    with pytest.raises(UsageError, match="needs a RAFT model"):
        FlowEstimator("raft")
    with pytest.raises(UsageError, match="takes no model"):
        FlowEstimator("dis", model=EchoFlow())
    with pytest.raises(ValueError, match="differ in shape"):
        optical_flow(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_flow_colours_follow_the_middlebury_wheel():
    flow = np.zeros((1, 5, 2), np.float32)
    flow[0, 1:] = [(2, 0), (0, 2), (-2, 0), (0, -2)]          # right, down, left, up
    colours = flow_to_color(flow)[0]
    assert colours[0].tolist() == [255, 255, 255]              # still: white
    assert colours[1].tolist() == [255, 0, 0]                  # right: red
    assert colours[2, 0] == 255 and colours[2, 2] == 0         # down: yellow
    assert colours[3, 0] == 0 and colours[3, 2] == 255         # left: blue-cyan
    assert colours[4, 2] == 255 and colours[4, 1] == 0         # up: violet
    # a fixed scale keeps a speed's colour the same in every frame
    slow = flow_to_color(flow, max_magnitude=4)[0, 1]      # 2 px of 4: half saturated
    assert flow_to_color(flow * 0.5, max_magnitude=4).shape == (1, 5, 3)
    assert slow[0] == 255 and 100 < slow[1] < 160 and slow[1] == slow[2]
    assert flow_to_color(flow * 10, max_magnitude=4)[0, 1].tolist() == [255, 0, 0]   # clipped


def test_flow_stats():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[..., 0] = 2.0
    flow[0, 0] = (6, 8)
    stats = flow_stats(flow)
    assert stats.max_magnitude == 10.0
    assert stats.mean_magnitude == pytest.approx((10 + 5 * 2) / 6)
    assert (stats.mean_dx, stats.mean_dy) == pytest.approx(((6 + 10) / 6, 8 / 6))
