"""The explain stage library: geometry, peak and box, overlays, targets, faithfulness, grids, maximisation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from cnntool.data.preprocessing import Preprocessing  # noqa: E402
from cnntool.errors import UsageError  # noqa: E402
from cnntool.infer.faithfulness import faithfulness_scores, fill_from_kept  # noqa: E402
from cnntool.data.draw import overlay_heatmap  # noqa: E402
from cnntool.infer.explain import (  # noqa: E402
    canonical,
    method_suffix,
    peak_and_box,
    resolve_target,
)
from cnntool.infer.visualize import (  # noqa: E402
    MaximizeConfig,
    feature_map_grid,
    grid_shape,
    kernel_grid,
    maximize_channel,
    tile_grid,
)

# --- geometry ---------------------------------------------------------------------------------


def test_straight_resize_maps_pixel_centres():
    pre = Preprocessing((3, 10, 20), (0,) * 3, (1,) * 3)  # 40 x 100 image -> 10 x 20 input
    matrix, seen = pre.input_to_image((40, 100))
    # input pixel (u, v) covers image x in [5u, 5u + 5), y in [4v, 4v + 4): centres map to centres
    assert matrix @ [0, 0, 1] == pytest.approx([2.0, 1.5])
    assert matrix @ [19, 9, 1] == pytest.approx([97.0, 37.5])
    assert seen == (0.0, 0.0, 100.0, 40.0)


def test_centre_crop_maps_into_the_middle_and_blanks_the_rest():
    # ImageNet recipe: shorter side to 8, centre crop 4 x 4, on a 16 x 32 image
    pre = Preprocessing((1, 4, 4), (0.5,), (0.5,), resize_mode="crop", resize_size=8)
    matrix, seen = pre.input_to_image((16, 32))
    # resized 8 x 16, crop starts at (left 6, top 2); scale 2
    assert seen == (12.0, 4.0, 20.0, 12.0)
    heat = np.ones((4, 4), np.float32)
    big = pre.map_to_image(heat, (16, 32))
    assert big.shape == (16, 32)
    assert big[4:12, 12:20].min() == pytest.approx(1.0)
    assert big[:, :12].max() == 0 and big[:, 20:].max() == 0 and big[:4].max() == 0 and big[12:].max() == 0


def test_heatmap_peak_lands_where_the_input_peak_is():
    pre = Preprocessing((3, 16, 16), (0,) * 3, (1,) * 3)
    heat = np.zeros((16, 16), np.float32)
    heat[12, 3] = 1.0  # input pixel (u=3, v=12)
    big = pre.map_to_image(heat, (64, 128))  # x scale 8, y scale 4
    peak, _ = peak_and_box(big)
    assert 3 * 8 <= peak[0] < 4 * 8 and 12 * 4 <= peak[1] < 13 * 4


# --- peak and box -------------------------------------------------------------------------------


def test_box_is_the_largest_hot_region():
    heat = np.zeros((20, 30), np.float32)
    heat[2:4, 2:4] = 1.0        # small, hottest
    heat[10:18, 5:25] = 0.8     # large, above half the max
    heat[0, 29] = 0.3           # below the threshold
    peak, box = peak_and_box(heat)
    assert peak == [2, 2]
    assert box == [5, 10, 25, 18]


def test_blank_heatmap_has_no_peak_or_box():
    assert peak_and_box(np.zeros((5, 5))) == (None, None)


# --- overlay --------------------------------------------------------------------------------------


def test_overlay_is_red_where_hot_and_blue_where_cold_with_a_label():
    image = np.full((200, 300, 3), 128, np.uint8)
    heat = np.zeros((200, 300), np.float32)
    heat[:, 150:] = 1.0
    out = overlay_heatmap(image, heat, text="cat 0.93")
    assert out.shape == (200, 300, 3) and out.dtype == np.uint8
    hot, cold = out[150, 250], out[150, 50]
    assert hot[0] > hot[2] + 50 and cold[2] > cold[0] + 50  # JET: red high, blue low
    label = out[:12, :40]
    assert label.max() > 200 and label.min() < 20  # white text on a black band


def test_overlay_dims_what_the_model_did_not_see_and_shows_small_images_beside_it():
    image = np.full((20, 40), 200, np.uint8)
    out = overlay_heatmap(image, np.ones((20, 40)), text="x", seen=(10, 0, 30, 20))
    factor = 128 // 20 + 1
    gap = 40 // 16
    assert out.shape == (20 * factor, (40 + gap + 40) * factor, 3)  # photo | gap | overlay, crisp pixels
    assert tuple(out[-1, 0]) == (200, 200, 200)                     # the photo itself, unchanged
    assert tuple(out[-1, (40 + gap) * factor]) == (100, 100, 100)   # overlay: half the photo, no colour


# --- targets and methods ------------------------------------------------------------------------


def test_targets_by_name_index_and_case():
    classes = ["cat", "dog", "7"]
    assert resolve_target("dog", classes) == 1
    assert resolve_target("DOG", classes) == 1
    assert resolve_target("7", classes) == 2  # a class name wins over an index
    assert resolve_target("0", classes) == 0
    assert resolve_target(None, classes) is None


@pytest.mark.parametrize("spec, message", [("3", "out of range"), ("-1", "out of range"), ("cow", "unknown")])
def test_bad_targets_are_usage_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        resolve_target(spec, ["cat", "dog", "7"])


def test_method_names():
    assert canonical("GradCAMpp") == "gradcam++" and canonical("score-cam") == "scorecam"
    assert method_suffix("gradcam++") == "gradcampp"
    with pytest.raises(UsageError, match="unknown --method"):
        canonical("gradcam+++")


# --- faithfulness ---------------------------------------------------------------------------------


class _TopLeft(nn.Module):
    """Class 0's logit is 8 x the mean of the top-left 8 x 8 quadrant; class 1's is 0."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0))

    def forward(self, x):
        s = x[:, :, :8, :8].mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_faithful_heatmap_scores_higher_than_its_inverse():
    x = -torch.ones(1, 1, 16, 16)
    x[:, :, :8, :8] = 1.0  # bright evidence in the top-left quadrant only
    good = np.zeros((1, 16, 16), np.float32)
    good[0, :8, :8] = 1.0
    good += np.linspace(0, 0.01, 256, dtype=np.float32).reshape(1, 16, 16)  # break ties
    model = _TopLeft()
    faithful = faithfulness_scores(model, x, good, [0])
    inverse = faithfulness_scores(model, x, 1.0 - good, [0])
    assert faithful["morf"][0] < -0.3            # removing the evidence first drops confidence
    assert abs(faithful["lerf"][0]) < 0.05       # removing the rest first keeps it
    assert faithful["road"][0] > inverse["road"][0] + 0.2
    assert faithful["road"][0] == pytest.approx((faithful["lerf"][0] - faithful["morf"][0]) / 2)


def test_fill_keeps_kept_pixels_and_fills_smoothly():
    x = torch.linspace(0, 1, 32).repeat(32, 1)[None, None]  # a horizontal ramp
    keep = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    keep[..., 8:24, 8:24] = False
    out = fill_from_kept(x, keep)
    assert torch.equal(out[keep], x[keep])
    assert (out - x)[~keep].abs().max() < 0.05  # a ramp is filled back nearly exactly


# --- grids and maximisation --------------------------------------------------------------------------


@pytest.mark.parametrize("n, shape", [(1, (1, 1)), (3, (2, 2)), (10, (3, 4)), (64, (8, 8)), (96, (10, 10))])
def test_grid_shape(n, shape):
    assert grid_shape(n) == shape


def test_feature_map_grid_size_and_per_map_scaling():
    maps = np.zeros((5, 16, 16), np.float32)
    maps[0, 4, 4] = 1e-3   # tiny but still scaled to full brightness
    maps[1] = 7.0          # constant: black
    grid = feature_map_grid(maps)
    # 2 x 3 tiles of 16 px doubled to 32, 2 px gaps
    assert grid.shape == (2 * 34 + 2, 3 * 34 + 2)
    assert grid[2 + 8:2 + 10, 2 + 8:2 + 10].min() == 255
    assert grid[2:34, 36:68].max() == 0
    assert grid[0].min() == 255  # background border


def test_feature_map_grid_caps_channels():
    assert feature_map_grid(np.random.default_rng(0).random((100, 4, 4)), max_maps=9).shape == (3 * 34 + 2,) * 2


def test_kernel_grid_rgb_like_the_alexnet_figure():
    weight = np.random.default_rng(0).normal(size=(96, 3, 11, 11)).astype(np.float32)
    weight[0] = 0.0
    weight[0, 0] = 1.0  # a pure red kernel
    grid = kernel_grid(weight)
    assert grid.shape == (10 * 35 + 2, 10 * 35 + 2, 3)
    assert tuple(grid[10, 10]) == (255, 0, 0)


def test_tile_grid_gray_values():
    tiles = np.stack([np.zeros((2, 2)), np.ones((2, 2))])
    grid = tile_grid(tiles, pad=1, min_tile=2)
    assert grid.shape == (4, 7)
    assert grid[1:3, 1:3].max() == 0 and grid[1:3, 4:6].min() == 255


def test_maximize_raises_the_channel_activation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.ReLU())
    image, start, final = maximize_channel(net, "3", 2, input_size=(3, 24, 24), mean=(0.5,) * 3, std=(0.25,) * 3,
                                           config=MaximizeConfig(steps=30))
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    assert final > start + 0.1
    assert all(p.requires_grad for p in net.parameters()) and all(p.grad is None for p in net.parameters())


def test_maximize_bad_channel():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(UsageError, match="out of range"):
        maximize_channel(net, "0", 4, input_size=(3, 8, 8), mean=(0,) * 3, std=(1,) * 3,
                         config=MaximizeConfig(steps=1))
