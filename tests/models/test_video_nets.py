import numpy as np
import pytest
import torch

from cnntool.data.synthetic import DIRECTIONS, moving_square_clip
from cnntool.models.video_nets import c3d_small, cnn_rnn, single_frame, two_stream

BUILDERS = {
    "c3d_small": c3d_small,
    "cnn_rnn": cnn_rnn,
    "cnn_lstm": lambda **kw: cnn_rnn(rnn="lstm", readout="mean", **kw),
    "two_stream": lambda **kw: two_stream(frames=8, **kw),
    "two_stream_flow": lambda **kw: two_stream(frames=8, motion="flow", **kw),   # in_channels: the image's
    "single_frame": single_frame,
}

#: Parameter counts for 4 classes and RGB input: a change of architecture shows up here.
PARAMS = {"c3d_small": 292_596, "cnn_rnn": 434_836, "cnn_lstm": 484_244, "two_stream": 576_836,
          "two_stream_flow": 575_828, "single_frame": 287_124}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_shapes_and_parameter_counts(name):
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=4, in_channels=3).eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    channels = 5 if name == "two_stream_flow" else 3
    for size in (64, 48):
        assert model(torch.randn(2, channels, 8, size, size)).shape == (2, 4)
    assert isinstance(model.fc, torch.nn.Linear) and model.fc.out_features == 4


def test_gray_input_and_any_clip_length():
    assert c3d_small(num_classes=3, in_channels=1)(torch.zeros(1, 1, 16, 64, 64)).shape == (1, 3)
    assert cnn_rnn(num_classes=3, in_channels=1)(torch.zeros(1, 1, 5, 32, 32)).shape == (1, 3)


def test_input_mistakes_are_refused():
    with pytest.raises(ValueError, match="N, C, T, H, W"):
        cnn_rnn(num_classes=2)(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="8 frames"):
        two_stream(num_classes=2, frames=8)(torch.zeros(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match="rnn"):
        cnn_rnn(num_classes=2, rnn="transformer")
    with pytest.raises(ValueError, match="motion"):
        two_stream(num_classes=2, motion="optical")
    with pytest.raises(ValueError, match=r"5 input channels \(the image's, then the flow's dx and dy\), not 3"):
        two_stream(num_classes=2, frames=4, motion="flow")(torch.zeros(1, 3, 4, 32, 32))


def test_the_single_frame_model_sees_only_the_middle_frame():
    torch.manual_seed(0)
    model = single_frame(num_classes=4).eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    changed = clip.clone()
    changed[:, :, [0, 1, 2, 3, 5, 6, 7]] = torch.randn(1, 3, 7, 32, 32)
    assert torch.equal(model(clip), model(changed))
    changed[:, :, 4] += 1
    assert not torch.allclose(model(clip), model(changed))


def test_the_two_stream_motion_stream_gets_the_stacked_frame_differences():
    torch.manual_seed(0)
    model = two_stream(num_classes=4, frames=4).eval()
    seen = {}
    model.temporal.register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    clip = torch.randn(1, 3, 1, 16, 16).repeat(1, 1, 4, 1, 1)       # a still clip
    model(clip)
    assert seen["x"].shape == (1, 9, 16, 16) and not seen["x"].any()
    clip[:, :, 2] += 1.0                                             # frame 2 brightens
    model(clip)
    changed = [int(c) for c in torch.nonzero(seen["x"].abs().amax(dim=(0, 2, 3))).flatten()]
    assert changed == [3, 4, 5, 6, 7, 8]                             # diffs 1->2 (+1) and 2->3 (-1)
    assert torch.allclose(seen["x"][0, 3:6], torch.ones(3, 16, 16)) and torch.allclose(seen["x"][0, 6:], -torch.ones(3, 16, 16))


def moving_squares(n_per_class, seed=0):
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for label, direction in enumerate(DIRECTIONS):
        for _ in range(n_per_class):
            clips.append(moving_square_clip(rng, direction=direction, frames=8, size=32).frames)
            labels.append(label)
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float().div(255).sub(0.5).div(0.25)
    return x, torch.tensor(labels)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["c3d_small", "cnn_rnn", "two_stream", "single_frame"])
def test_a_few_training_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    x, y = moving_squares(3)
    model = BUILDERS[name](num_classes=4, in_channels=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
