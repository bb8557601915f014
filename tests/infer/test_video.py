"""The video stage library: inputs, frames as samples, windows for clip models, flow pairs."""

from __future__ import annotations

import threading
from pathlib import PurePath

import cv2
import numpy as np
import pytest
import torch

from cnntool.data.clips import ClipDataset
from cnntool.data.pixels import Sample
from cnntool.data.preprocessing import Preprocessing
from cnntool.data.sources import InputItem
from cnntool.data.video import VideoReader, write_video
from cnntool.errors import UsageError
from cnntool.infer.flow import FlowEstimator
from cnntool.infer.video import (classify_clips, default_task, frame_flows, frame_preprocessing, frame_samples,
                                 iter_windows, plan_windows, read_ahead_of, resolve_video_inputs, top_classes,
                                 window_indices)
from cnntool.models.loading import load

CLIP = Preprocessing((3, 8, 32, 32), (0.5,) * 3, (0.25,) * 3, frame_stride=2)


def numbered(path, n, *, height=24, width=40, fps=10):
    """Frame i is flat grey 6 * i + 5 (kept by H.264 within a level or two at crf 0)."""
    write_video(path, [np.full((height, width, 3), 6 * i + 5, np.uint8) for i in range(n)], fps=fps, crf=0)
    return str(path)


def index_of(frame) -> int:
    return int(round((float(np.mean(frame)) - 5) / 6))


def noisy_video(path, n=60):
    rng = np.random.default_rng(1)
    write_video(path, [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(n)], fps=25, crf=10)
    return path


def item(path) -> InputItem:
    return InputItem(str(path), PurePath(PurePath(path).name))


def test_inputs_are_video_files_folders_of_them_or_a_folder_of_numbered_images(tmp_path):
    numbered(tmp_path / "vids" / "a.mp4", 3)
    numbered(tmp_path / "vids" / "sub" / "b.mov", 3)
    (tmp_path / "vids" / "notes.txt").write_text("not a video")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (10, 2, 1):
        cv2.imwrite(str(frames / f"img{i}.png"), np.full((8, 8), i, np.uint8))
    (tmp_path / "empty").mkdir()
    found = resolve_video_inputs([str(tmp_path / "vids"), str(frames), str(tmp_path / "empty"),
                                  str(tmp_path / "vids" / "a.mp4")])
    assert [str(i.rel) for i in found] == ["a.mp4", "sub/b.mov", "frames"]   # a.mp4 once
    assert [f.index for f in VideoReader(found[2].path)] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in VideoReader(found[2].path)] == [1, 2, 10]   # natural order


def test_frames_stream_as_samples_with_index_time_and_prepared_input(tmp_path):
    path = numbered(tmp_path / "v.mp4", 9)
    samples = list(frame_samples(VideoReader(path, stride=3), item(path), prepare=lambda im: im[:4, :4]))
    assert [(s.frame, round(s.time, 3), s.path) for s in samples] == [(0, 0.0, path), (3, 0.3, path), (6, 0.6, path)]
    assert [index_of(s.image) for s in samples] == [0, 3, 6] and all(s.input.shape == (4, 4, 3) for s in samples)
    assert all(s.ok and s.size == (24, 40) for s in samples)


def test_a_video_that_breaks_gives_its_good_frames_then_one_error_sample(tmp_path):
    data = noisy_video(tmp_path / "v.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    samples = list(frame_samples(VideoReader(tmp_path / "half.mp4"), item(tmp_path / "half.mp4")))
    good, last = samples[:-1], samples[-1]
    assert 0 < len(good) < 60 and [s.frame for s in good] == list(range(len(good)))
    assert not last.ok and last.frame is None and "broken after frame" in last.error


def test_read_ahead_hands_over_errors_and_closes_its_source_when_the_reader_stops():
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    stream = read_ahead_of(source(), 2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.wait(5)

    def failing():
        yield 1
        raise ValueError("decoder exploded")

    with pytest.raises(ValueError, match="decoder exploded"):
        list(read_ahead_of(failing(), 4))


@pytest.mark.parametrize("length, window, stride", [(40, 16, None), (40, 16, 6), (40, 4, 9), (16, 16, None),
                                                    (5, 16, None), (17, 16, 16)])
def test_streamed_windows_are_the_planned_ones_and_cover_every_frame(length, window, stride):
    samples = [Sample("v", PurePath("v"), frame=100 + i, time=i / 10, input=np.full((2, 2, 1), i, np.uint8))
               for i in range(length)]
    streamed = list(iter_windows(samples, window=window, frames=4, stride=stride))
    planned = plan_windows(length, window=window, stride=stride)
    assert [w.indices for w in streamed] == [[100 + i for i in r] for r in planned]
    assert planned[-1].stop == length and planned[0].start == 0
    for w, r in zip(streamed, planned):
        assert [int(f[0, 0, 0]) for f in w.clip] == [r.start + int(i) for i in window_indices(window, frames=4,
                                                                                              length=len(r))]


def test_window_frames_are_the_training_frame_stride():
    assert window_indices(16, frames=8).tolist() == list(range(0, 16, 2))
    assert window_indices(5, frames=8, length=5).tolist() == [0, 0, 1, 1, 2, 3, 3, 4]


def test_clips_are_prepared_exactly_as_the_clip_datasets_evaluation_path(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), (0, 0), 3) for _ in range(15)]
    path = str(tmp_path / "v.mp4")
    write_video(path, frames, fps=10)
    prepare = frame_preprocessing(CLIP).resize
    dataset = ClipDataset([path], [0], ["x"], frames=8, frame_stride=2, prepare=prepare)   # evaluation: centred
    theirs = dataset[0][0].numpy().transpose(1, 2, 3, 0)                                 # (T, H, W, C)
    ours = next(iter_windows(frame_samples(VideoReader(path), item(path), prepare=prepare), window=16, frames=8))
    assert ours.clip.shape == (8, 32, 32, 3) and np.array_equal(ours.clip, theirs)


@pytest.fixture(scope="module")
def clip_model():
    torch.manual_seed(0)
    loaded = load("c3d_small", num_classes=4)
    loaded.classes = ["down", "left", "right", "up"]
    import dataclasses

    return dataclasses.replace(loaded, preprocessing=CLIP)


def test_clip_records_per_window_and_a_verdict_from_their_mean_probabilities(tmp_path, clip_model):
    path = numbered(tmp_path / "v.mp4", 40)
    samples = frame_samples(VideoReader(path), item(path), prepare=frame_preprocessing(CLIP).resize)
    records = list(classify_clips(clip_model, samples, device=torch.device("cpu"), window_stride=12, batch_size=2,
                                  topk=4))
    windows, verdict = records[:-1], records[-1]
    assert [(r["start_frame"], r["end_frame"]) for r in windows] == [(0, 15), (12, 27), (24, 39)]
    assert [r["start_time"] for r in windows] == pytest.approx([0.0, 1.2, 2.4])
    assert all(r["verdict"] is False and r["error"] is None and len(r["topk"]) == 4 for r in windows)
    probs = np.mean([[{t["label"]: t["score"] for t in r["topk"]}[c] for c in clip_model.classes] for r in windows],
                    axis=0)
    assert verdict["verdict"] is True and verdict["windows"] == 3 and verdict["path"] == path
    assert (verdict["start_frame"], verdict["end_frame"]) == (0, 39)
    assert verdict["label"] == clip_model.classes[int(np.argmax(probs))]
    assert verdict["score"] == pytest.approx(probs.max())


def test_a_broken_video_classifies_the_windows_it_read_then_ends_with_an_error(tmp_path, clip_model):
    data = noisy_video(tmp_path / "v.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    samples = frame_samples(VideoReader(tmp_path / "half.mp4"), item(tmp_path / "half.mp4"),
                            prepare=frame_preprocessing(CLIP).resize)
    records = list(classify_clips(clip_model, samples, device=torch.device("cpu"), batch_size=8))
    assert records and all(r["error"] is None for r in records[:-1]) and len(records) >= 2
    assert "broken after frame" in records[-1]["error"] and not any(r["verdict"] for r in records)


def test_flow_pairs_measure_a_known_motion():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (64, 96)).astype(np.float32), (0, 0), 2).astype(np.uint8)
    frames = [Sample("v", PurePath("v"), image=np.roll(texture, 3 * i, axis=1), frame=2 * i, time=i / 5)
              for i in range(4)]
    frames.insert(2, Sample("v", PurePath("v"), error="cannot prepare the frame: no", frame=99))
    results = list(frame_flows(frames, FlowEstimator("dis")))
    assert [(r["frame"], r.get("next_frame"), r["error"] is None) for _, _, r in results] == [
        (0, 2, True), (99, None, False), (4, 6, True)]
    sample, flow, record = results[0]
    assert sample.frame == 0 and flow.shape == (64, 96, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8]
    assert np.median(inner[..., 0]) == pytest.approx(3, abs=0.2) and abs(np.median(inner[..., 1])) < 0.2
    assert record["mean_motion"] == pytest.approx(float(np.hypot(flow[..., 0], flow[..., 1]).mean()))


def test_top_classes_and_the_task_a_model_does_by_default():
    assert top_classes(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"], topk=2)["topk"] == [
        {"label": "b", "score": 0.5}, {"label": "c", "score": 0.3}]
    assert [default_task(t) for t in ("video", "classification", "detection", "segmentation", "flow", None)] == [
        "clip", "classify", "detect", "segment", "flow", "flow"]
    with pytest.raises(UsageError, match="does not run toy models"):
        default_task("toy")
