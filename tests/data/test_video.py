import os
import signal
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from cnntool.data import video
from cnntool.data.video import (VideoReader, VideoWriter, natural_key, output_fps, probe_video,
                                write_video)
from cnntool.errors import InputError

NTSC = Fraction(30000, 1001)


def distinct_frames(n, height=48, width=64, seed=0):
    """Smooth frames (chroma subsampling keeps them), each easy to tell from the others."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(0, 255, (6, 8, 3)).astype(np.float32), (width, height))
    frames = []
    for i in range(n):
        frame = np.roll(base, 3 * i, axis=1) * 0.6 + 100 * (i % 2)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def nearest(frame, sources):
    return int(np.argmin([np.abs(frame.astype(int) - s.astype(int)).mean() for s in sources]))


def write_with_keyframes(path, frames, fps, keyint=5, rotation=0):
    """A video with a key frame every ``keyint`` frames and B-frames, written with PyAV directly."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"x264-params": f"keyint={keyint}:min-keyint={keyint}:bframes=2", "crf": "18"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, 1 / Fraction(fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_round_trip_keeps_every_frame_the_fps_and_makes_sizes_even(tmp_path):
    frames = distinct_frames(12, height=49, width=65)
    written = write_video(tmp_path / "v.mp4", frames, fps=NTSC)
    assert written.frames == 12 and written.fps == NTSC and (written.width, written.height) == (66, 50)
    reader = VideoReader(tmp_path / "v.mp4")
    assert reader.fps == NTSC and reader.codec == "h264" and (reader.width, reader.height) == (66, 50)
    back = list(reader)
    assert [f.index for f in back] == list(range(12))
    assert [f.time for f in back] == pytest.approx([i * 1001 / 30000 for i in range(12)], abs=1e-6)
    assert all(f.image.shape == (50, 66, 3) and f.image.dtype == np.uint8 for f in back)
    assert [nearest(f.image[:49, :65], frames) for f in back] == list(range(12))
    assert np.abs(back[5].image[:49, :65].astype(int) - frames[5]).mean() < 8  # a channel swap gives ~40
    # the padding repeats the last row and column
    assert np.array_equal(back[0].image[49], back[0].image[48]) or np.abs(
        back[0].image[49].astype(int) - back[0].image[48]).mean() < 3
    info = probe_video(tmp_path / "v.mp4")
    assert (info.frames, info.fps, info.codec) == (12, NTSC, "h264")
    assert info.duration == pytest.approx(12 * 1001 / 30000)
    assert probe_video(tmp_path / "v.mp4", decode=True).frames == 12


def test_output_fps_is_exact_and_a_strided_copy_lasts_as_long(tmp_path):
    assert output_fps(NTSC, 2) == Fraction(15000, 1001)
    assert output_fps(25, 4) == Fraction(25, 4)
    with pytest.raises(ValueError):
        output_fps(25, 0)
    write_video(tmp_path / "src.mp4", distinct_frames(30), fps=NTSC)
    reader = VideoReader(tmp_path / "src.mp4", stride=3)
    kept = list(reader)
    assert [f.index for f in kept] == list(range(0, 30, 3))
    out = write_video(tmp_path / "out.mp4", (f.image for f in kept), fps=reader.output_fps)
    info = probe_video(out.path)
    assert info.fps == Fraction(10000, 1001) and info.frames == 10
    assert info.duration == pytest.approx(probe_video(tmp_path / "src.mp4").duration)


def test_start_end_and_max_frames_give_the_right_frames_after_a_seek(tmp_path):
    frames = distinct_frames(40)
    path = tmp_path / "k.mp4"
    write_with_keyframes(path, frames, fps=20, keyint=5)
    full = list(VideoReader(path))
    assert len(full) == 40
    part = list(VideoReader(path, start=0.62, end=1.5))   # frames 13..29 (times 0.65 .. 1.45)
    assert [f.index for f in part] == list(range(13, 30))
    for f in part:
        assert np.array_equal(f.image, full[f.index].image)
        assert f.time == pytest.approx(f.index / 20)
    strided = list(VideoReader(path, start=1.0, stride=4, max_frames=3))
    assert [f.index for f in strided] == [20, 24, 28]
    assert np.array_equal(strided[1].image, full[24].image)
    assert list(VideoReader(path, start=5.0)) == []


def test_a_rotated_video_reads_upright_like_opencv_shows_it(tmp_path):
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:8, :16] = 255  # a bright block in the top-left corner
    write_with_keyframes(tmp_path / "r.mp4", [frame] * 3, fps=10, rotation=90)
    reader = VideoReader(tmp_path / "r.mp4")
    assert (reader.width, reader.height) == (32, 48)
    ours = next(iter(reader)).image
    cap = cv2.VideoCapture(str(tmp_path / "r.mp4"))
    ok, bgr = cap.read()
    cap.release()
    assert ok and ours.shape == bgr.shape
    assert np.abs(ours.astype(int) - bgr[:, :, ::-1]).mean() < 3


def test_a_folder_of_numbered_images_is_a_video_in_natural_order(tmp_path):
    frames = distinct_frames(3)
    for number, image in zip((1, 2, 10), frames):
        cv2.imwrite(str(tmp_path / f"img{number}.png"), image[:, :, ::-1])
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a frame")
    reader = VideoReader(tmp_path)
    assert reader.fps == video.DEFAULT_IMAGE_FPS and reader.backend == "images"
    got = list(reader)
    assert [f.index for f in got] == [0, 1, 2]
    assert all(np.array_equal(g.image, f) for g, f in zip(got, frames))  # img10 last
    assert [f.time for f in got] == pytest.approx([0, 0.04, 0.08])
    assert [f.time for f in VideoReader(tmp_path, fps=10, start=0.1)] == pytest.approx([0.1, 0.2])
    assert probe_video(tmp_path, fps=10).frames == 3
    assert sorted(["b10", "b9", "a100"], key=natural_key) == ["a100", "b9", "b10"]


def test_a_bad_image_in_a_folder_stops_the_video_after_the_good_frames(tmp_path):
    for number, image in enumerate(distinct_frames(2)):
        cv2.imwrite(str(tmp_path / f"f{number}.png"), image)
    (tmp_path / "f2.png").write_bytes(b"not a png")
    got = []
    with pytest.raises(InputError, match="frame 2"):
        for frame in VideoReader(tmp_path):
            got.append(frame.index)
    assert got == [0, 1]


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 40, None])
def test_non_videos_are_input_errors_with_one_line(tmp_path, content):
    path = tmp_path / "x.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        VideoReader(path)
    assert "\n" not in str(err.value) and str(err.value)
    with pytest.raises(InputError):
        probe_video(path)


def test_a_truncated_video_fails_to_open_or_yields_its_good_frames_then_an_error(tmp_path):
    frames = distinct_frames(60, height=96, width=128)
    write_video(tmp_path / "v.mp4", frames, fps=25, crf=10)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "head.mp4").write_bytes(data[:200])
    with pytest.raises(InputError) as err:
        VideoReader(tmp_path / "head.mp4")
    assert "\n" not in str(err.value)
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(InputError, match="broken after frame") as err:
        for frame in VideoReader(tmp_path / "half.mp4"):
            got.append(frame)
    assert 0 < len(got) < 60 and "\n" not in str(err.value)
    assert [nearest(f.image, frames) for f in got] == list(range(len(got)))


def test_opencv_reads_what_pyav_cannot_open(tmp_path, monkeypatch):
    write_video(tmp_path / "v.mp4", distinct_frames(6), fps=12)
    pyav = [(f.index, f.time, f.image) for f in VideoReader(tmp_path / "v.mp4")]

    def refuse(self):
        raise InputError("PyAV refused")

    monkeypatch.setattr(VideoReader, "_open_pyav", refuse)
    reader = VideoReader(tmp_path / "v.mp4", stride=2)
    assert reader.backend == "opencv" and reader.fps == 12
    got = list(reader)
    assert [f.index for f in got] == [0, 2, 4]
    assert [f.time for f in got] == pytest.approx([pyav[i][1] for i in (0, 2, 4)], abs=1e-3)
    assert all(np.abs(f.image.astype(int) - pyav[f.index][2]).mean() < 2 for f in got)
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    with pytest.raises(InputError, match="PyAV refused"):
        VideoReader(tmp_path / "junk.mp4")


def test_the_mp4v_fallback_writes_a_readable_video(tmp_path):
    written = write_video(tmp_path / "v.mp4", distinct_frames(5, height=33, width=47), fps=15, codec="mp4v")
    assert written.codec == "mp4v" and written.frames == 5 and (written.width, written.height) == (48, 34)
    info = probe_video(tmp_path / "v.mp4")
    assert info.codec == "mpeg4" and info.frames == 5 and info.fps == 15


def test_without_h264_the_automatic_codec_falls_back_to_mp4v_and_keeps_every_frame(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "h264_available", lambda: False)
    frames = distinct_frames(7)
    written = write_video(tmp_path / "auto.mp4", frames, fps=12)            # codec="auto"
    assert written.codec == "mp4v" and written.frames == 7
    info = probe_video(tmp_path / "auto.mp4", decode=True)
    assert info.codec == "mpeg4" and info.frames == 7 and info.fps == 12
    back = [frame.image for frame in VideoReader(tmp_path / "auto.mp4")]
    assert [nearest(image, frames) for image in back] == list(range(7))
    with pytest.raises(ValueError, match="libx264"):
        VideoWriter(tmp_path / "h.mp4", fps=12, codec="h264")


def test_writer_input_checks(tmp_path):
    with pytest.raises(ValueError, match="cannot write"):
        VideoWriter(tmp_path / "v.avi", fps=10)
    with VideoWriter(tmp_path / "g.mp4", fps=10) as writer:
        writer.write(np.full((16, 16), 77, np.uint8))  # grayscale becomes RGB
        with pytest.raises(ValueError, match="not 16x16"):
            writer.write(np.zeros((8, 16, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((16, 16, 3), np.float32))
    assert writer.result.frames == 1
    assert abs(int(next(iter(VideoReader(tmp_path / "g.mp4"))).image.mean()) - 77) <= 2


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_an_exception_while_writing_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "v.mp4", fps=10) as writer:
            for frame in distinct_frames(4):
                writer.write(frame)
            assert any(name.startswith(".v.mp4.") and name.endswith(".tmp") for name in leftovers(tmp_path))
            raise RuntimeError("stage failed")
    assert leftovers(tmp_path) == []
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=10)
    assert leftovers(tmp_path) == []


def test_a_frame_count_mismatch_is_an_error_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "_count_packets", lambda path: 2)
    with pytest.raises(InputError, match="wrote 4 frames"):
        write_video(tmp_path / "v.mp4", distinct_frames(4), fps=10)
    assert leftovers(tmp_path) == []


def test_a_killed_writer_leaves_nothing_under_the_final_name(tmp_path):
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from cnntool.data.video import VideoWriter
        writer = VideoWriter({str(tmp_path / 'v.mp4')!r}, fps=25)
        for i in range(100000):
            writer.write(np.full((64, 64, 3), i % 256, np.uint8))
            if i == 20:
                print("writing", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "v.mp4").exists()
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".v.mp4.") and stale[0].endswith(".tmp")
    # the next run that writes there removes what the killed one left
    write_video(tmp_path / "w.mp4", distinct_frames(2), fps=10)
    assert leftovers(tmp_path) == ["w.mp4"]


MEMORY_SCRIPT = """
import resource, sys
import numpy as np
from cnntool.data.video import VideoReader, VideoWriter, write_video

def source(n):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, 5 * i, axis=1)

def run(n, folder):
    write_video(f"{folder}/src{n}.mp4", source(n), fps=30, preset="ultrafast")
    reader = VideoReader(f"{folder}/src{n}.mp4")
    with VideoWriter(f"{folder}/out{n}.mp4", fps=reader.output_fps) as writer:
        for frame in reader:
            writer.write(255 - frame.image)    # the per-frame stage
    return writer.result

short = run(300, sys.argv[1])
peak_short = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
long = run(1500, sys.argv[1])
peak_long = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(short.frames, long.frames, long.fps, peak_short, peak_long)
"""


@pytest.mark.slow
def test_a_long_video_streams_in_the_memory_of_a_short_one(tmp_path):
    # ru_maxrss is a high-water mark: if memory grew with the number of frames, the 1,500-frame
    # run after the 300-frame one would raise it well above the first peak (~0.7 MB per frame)
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    short, long, fps, peak_short, peak_long = out.stdout.split()
    assert (int(short), int(long), fps) == (300, 1500, "30")
    assert int(peak_long) <= int(peak_short) * 1.05 + 20_000  # KiB: within 5 % + 20 MB of noise
    assert probe_video(tmp_path / "out1500.mp4").frames == 1500
