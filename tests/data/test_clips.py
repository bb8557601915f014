from pathlib import Path

import numpy as np
import pytest
import torch

from cnntool.data.clips import (FLOW_OFFSET, FLOW_SCALE, ClipDataset, clip_frame_indices, index_video_folder,
                                load_clip_data, window_starts, write_moving_squares)
from cnntool.data.synthetic import DIRECTIONS
from cnntool.data.preprocessing import Preprocessing
from cnntool.data.transforms import AugmentConfig, TrainTransform
from cnntool.data.video import VideoReader, probe_video, write_video
from cnntool.errors import DatasetError


def numbered_video(path, n, size=16):
    """Frame i is flat grey 10 * i + 5 (survives H.264 to within a couple of levels), so a
    frame's value tells its source index."""
    write_video(path, [np.full((size, size, 3), 10 * i + 5, np.uint8) for i in range(n)], fps=10, crf=0)
    return str(path)


def frame_numbers(clip):
    """(C, T, H, W) uint8 -> the source index of each frame."""
    return [int(round((float(clip[:, t].float().mean()) - 5) / 10)) for t in range(clip.shape[1])]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [numbered_video(root / "a.mp4", 20), numbered_video(root / "b.mp4", 6)]


def test_window_arithmetic():
    assert clip_frame_indices(20, 3, frames=4, frame_stride=2).tolist() == [3, 5, 7, 9]
    assert clip_frame_indices(3, 0, frames=4).tolist() == [0, 1, 2, 2]    # short video: last frame repeats
    assert window_starts(20, frames=8) == [6]
    assert window_starts(20, frames=8, windows=3) == [0, 6, 12]
    assert window_starts(20, frames=4, frame_stride=3) == [5]              # span 10


@pytest.mark.parametrize("cache", [True, False])
def test_evaluation_clips_are_centred_or_uniform_windows(videos, cache):
    ds = ClipDataset(videos, [0, 1], ["a", "b"], frames=4, frame_stride=2, windows=2, cache=cache)
    assert ds.cached is cache and ds.lengths.tolist() == [20, 6]
    assert len(ds) == 4 and ds.video_index.tolist() == [0, 0, 1, 1] and ds.targets.tolist() == [0, 0, 1, 1]
    clips, labels = ds.__getitems__([0, 1, 2, 3])
    assert clips.shape == (4, 3, 4, 16, 16) and clips.dtype == torch.uint8 and labels.tolist() == [0, 0, 1, 1]
    assert [frame_numbers(c) for c in clips] == [[0, 2, 4, 6], [13, 15, 17, 19], [0, 2, 4, 5], [0, 2, 4, 5]]
    centred = ClipDataset(videos[:1], [0], ["a"], frames=4, frame_stride=2, cache=cache)
    clip, label = centred[0]
    assert frame_numbers(clip) == [6, 8, 10, 12] and label == 0
    counted = ClipDataset(videos, [0, 1], ["a", "b"], frames=4, cache=False, verify=False)   # packets counted
    assert counted.lengths.tolist() == [20, 6] and frame_numbers(counted[1][0]) == [1, 2, 3, 4]


def test_training_clips_jitter_in_time_seeded_by_epoch(videos):
    ds = ClipDataset(videos[:1], [0], ["a"], frames=4, train=True, seed=3)
    starts = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        numbers = frame_numbers(ds[0][0])
        assert numbers == list(range(numbers[0], numbers[0] + 4))       # consecutive frames
        starts.append(numbers[0])
    assert len(set(starts)) > 3 and max(starts) <= 16
    ds.set_epoch(5)
    again = ClipDataset(videos[:1], [0], ["a"], frames=4, train=True, seed=3)
    again.set_epoch(5)
    assert torch.equal(ds[0][0], again[0][0])


def test_augmentation_moves_every_frame_of_a_clip_alike(tmp_path):
    # a bright square drifting right; a random shift must keep its motion (same offset for all frames)
    frames = []
    for t in range(6):
        image = np.zeros((32, 32, 3), np.uint8)
        image[12:20, 10 + 2 * t:18 + 2 * t] = 250
        frames.append(image)
    path = tmp_path / "move.mp4"
    write_video(path, frames, fps=10, crf=0)
    transform = TrainTransform(Preprocessing((3, 32, 32), (0.5,) * 3, (0.5,) * 3),
                               AugmentConfig(rotate=0, zoom=0, shear=0, shift=0.2))
    ds = ClipDataset([str(path)], [0], ["move"], frames=6, train=True, prepare=transform.prepare,
                     augment=transform, seed=0)
    shifts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        clip = ds[0][0].numpy()[0]                                     # channel 0, (T, H, W)
        left_edges = [int(np.argmax(clip[t].max(axis=0) > 128)) for t in range(6)]
        assert np.diff(left_edges).tolist() == [2] * 5                 # the motion is intact
        shifts.add(left_edges[0] - 10)
    assert len(shifts) > 1                                              # and the clip did move


def test_flow_channels_are_quantised_pixels(videos):
    def constant_flow(prev, nxt):
        flow = np.zeros(prev.shape[:2] + (2,), np.float32)
        flow[..., 0], flow[..., 1] = 1.5, -40.0                       # -40 px clips at -32
        return flow

    ds = ClipDataset(videos[:1], [0], ["a"], frames=3, flow=constant_flow)
    clip = ds[0][0]
    assert clip.shape == (5, 3, 16, 16)
    assert clip[3, :2].unique().tolist() == [FLOW_OFFSET + 6] and clip[4, :2].unique().tolist() == [0]
    assert clip[3:, 2].unique().tolist() == [FLOW_OFFSET]              # the last frame has no successor
    assert (FLOW_OFFSET + 6 - FLOW_OFFSET) / FLOW_SCALE == 1.5


def test_unreadable_videos_are_skipped_and_listed(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 20)
    for cache in (True, False):
        ds = ClipDataset([videos[0], str(bad)], [0, 1], ["a", "b"], frames=2, cache=cache)
        assert ds.paths == [videos[0]] and [p for p, _ in ds.skipped] == [str(bad)]


def test_option_mistakes_are_refused(videos):
    with pytest.raises(ValueError, match="windows"):
        ClipDataset(videos, [0, 1], ["a", "b"], train=True, windows=2)
    with pytest.raises(ValueError, match="augment"):
        ClipDataset(videos, [0, 1], ["a", "b"], augment=object())


def test_moving_squares_dataset_and_its_splits(tmp_path):
    root = write_moving_squares(tmp_path / "squares", per_class=3, frames=6, size=32, seed=1)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(DIRECTIONS)
    assert len(list((root / "train").rglob("*.mp4"))) == 12 and len(list((root / "val").rglob("*.mp4"))) == 4
    info = probe_video(root / "train" / "left" / "clip_0000.mp4")
    assert (info.frames, info.width, info.codec) == (6, 32, "h264")
    again = write_moving_squares(tmp_path / "again", per_class=3, frames=6, size=32, seed=1, workers=1)
    # the same seed draws the same clips: compare pixels, not bytes (libx264's threads may encode
    # the same frames a few bytes differently on a busy machine)
    first = np.stack([f.image for f in VideoReader(root / "val/up/clip_0000.mp4")]).astype(np.int16)
    second = np.stack([f.image for f in VideoReader(again / "val/up/clip_0000.mp4")]).astype(np.int16)
    assert first.shape == second.shape == (6, 32, 32, 3) and np.abs(first - second).mean() < 1.0

    data = load_clip_data(root, preprocessing=Preprocessing((3, 4, 24, 24), (0.5,) * 3, (0.25,) * 3),
                          augment=AugmentConfig())
    assert data.classes == sorted(DIRECTIONS) and data.split == "folders"
    assert (len(data.train), len(data.val)) == (12, 4) and data.skipped == []
    clips, labels = data.train.__getitems__([0, 5])
    assert clips.shape == (2, 3, 4, 24, 24) and labels.tolist() == [0, 1]

    flat = tmp_path / "flat"
    for path in (root / "train").rglob("*.mp4"):
        target = flat / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    split = load_clip_data(flat, frames=4, preprocessing=Preprocessing((3, 32, 32), (0.5,) * 3, (0.25,) * 3),
                           val_split=0.34, seed=0)
    assert split.split == "val_split=0.34" and (len(split.train), len(split.val)) == (8, 4)
    assert sorted(split.val.labels) == [0, 1, 2, 3]


def test_index_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        index_video_folder(tmp_path / "missing")
    (tmp_path / "cls").mkdir()
    with pytest.raises(DatasetError, match="no videos"):
        index_video_folder(tmp_path)
    numbered_video(tmp_path / "cls" / "x.mp4", 2)
    numbered_video(tmp_path / "loose.mp4", 2)
    index = index_video_folder(tmp_path)
    assert index.classes == ["cls"] and len(index) == 1 and Path(index.skipped[0][0]).name == "loose.mp4"
    with pytest.raises(DatasetError, match="lacks"):
        index_video_folder(tmp_path, classes=["other"])


def test_the_flow_estimator_survives_pickling_for_spawned_loader_workers():
    import pickle

    from cnntool.data.clips import OpenCVFlow

    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    flow = OpenCVFlow("dis")
    expected = flow(a, b)  # its per-thread OpenCV object exists now, and is not pickled
    copy = pickle.loads(pickle.dumps(flow))
    assert (copy.method, copy.preset) == ("dis", "medium")
    np.testing.assert_allclose(copy(a, b), expected)
