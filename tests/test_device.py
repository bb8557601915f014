"""Device defaults: NHWC (channels-last) layout on the CPU and CUDA, and that it changes no result."""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
import pytest
import torch

from cnntool.device import to_channels_last, use_channels_last


@pytest.mark.parametrize("device, given, expected", [
    ("cpu", None, True), ("cuda", None, True), ("mps", None, False), ("cpu", False, False), ("mps", True, True)])
def test_channels_last_is_on_by_default_where_it_is_faster(device, given, expected):
    assert use_channels_last(torch.device(device), given) is expected


def test_to_channels_last_converts_2d_weights_only_and_keeps_the_outputs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 3, stride=2)).eval()
    clip_net = torch.nn.Conv3d(3, 4, 3)
    x = torch.rand(2, 3, 17, 23)
    with torch.inference_mode():
        before = net(x)
        assert to_channels_last(net) is net
        after = net(x)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    to_channels_last(clip_net)  # 5-D weights: left as they are, no error
    assert clip_net.weight.is_contiguous()


def test_the_detector_runs_channels_last_on_the_cpu_and_finds_the_same_boxes(monkeypatch):
    import copy

    import cnntool.device
    from cnntool.data.pixels import Sample
    from cnntool.infer.detect import detect_samples
    from cnntool.models.loading import load

    torch.manual_seed(0)
    plain = load("tiny_fcos", task="detection")
    converted = copy.deepcopy(plain)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(3)]

    def detections(loaded):
        samples = [Sample(str(i), PurePath(f"{i}.png"), image) for i, image in enumerate(images)]
        return [d for _, d in detect_samples(loaded, samples, device=torch.device("cpu"), conf=0.0)]

    found = detections(converted)
    assert any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in converted.model.parameters())
    monkeypatch.setattr(cnntool.device, "use_channels_last", lambda device, given: False)
    expected = detections(plain)
    assert all(p.is_contiguous() for p in plain.model.parameters())
    assert sum(len(d.boxes) for d in expected) > 0
    for got, want in zip(found, expected):
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
