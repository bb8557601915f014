"""Large images are filtered in bands of rows with halos: same results, bounded memory (issue 12)."""

import tracemalloc

import numpy as np
import pytest

from cnntool.data.sources import InputItem
from cnntool.filters import tiles
from cnntool.filters.batch import FilterJob, filter_file
from cnntool.filters.ops import chain_scale, parse_ops

from .conftest import read_rgb, write_rgb

CHAINS = [
    ["gaussian:sigma=2", "sobel:axis=magnitude"],
    ["gaussian:sigma=1.5"],  # the float32 fast path, in bands
    ["sobel:axis=x:border=reflect"],
    ["scharr:axis=direction:mode=corr:border=replicate"],
    ["kernel:values=1,2;3,4:border=symmetric", "laplace:neighbours=8"],  # even kernel: uneven halo
    ["mean:size=3:dilation=4", "emboss"],
    ["median:size=4:border=reflect", "bilateral:diameter=5:sigma_color=30:sigma_space=3"],
    ["mean:size=33", "kernel:values=1,0,2;0,1,0;3,0,1:method=fft"],
]


def _job(specs, **kw):
    ops = tuple(parse_ops(specs))
    return FilterJob(ops=ops, scale=kw.pop("scale", chain_scale(ops)), **kw)


@pytest.mark.filterwarnings("ignore:Conversion from CIE-LAB")
@pytest.mark.parametrize("specs", CHAINS, ids=lambda s: "|".join(s))
@pytest.mark.parametrize("color", ["channels", "gray", "luminance"])
def test_banded_results_equal_the_whole_image(specs, color, tmp_path, rng, monkeypatch):
    image = rng.integers(0, 256, (97, 60, 3), dtype=np.uint8)
    image[30:60, 10:40] = 255  # an edge so that the gradients have something to find
    src = write_rgb(tmp_path / "in.png", image)
    job = _job(specs, color=color)
    assert tiles.chain_halo(job.ops) is not None
    whole = {}
    for ext in ("png", "npy"):
        whole[ext] = filter_file(InputItem(str(src), src.name), job, tmp_path / "whole" / f"x.{ext}")
    monkeypatch.setattr(tiles, "BAND_BYTES", 8 * 60 * 3 * 12)  # 12-row bands, whatever the halo
    monkeypatch.setattr(tiles, "TILE_MIN_BYTES", 1)
    assert tiles.should_tile(image.shape, job.halo)
    for ext in ("png", "npy"):
        banded = filter_file(InputItem(str(src), src.name), job, tmp_path / "bands" / f"x.{ext}")
        assert banded["error"] is None
        fft = any("fft" in s for s in specs)
        for key in ("output_shape", "min", "max"):
            if fft and key in ("min", "max"):
                assert banded[key] == pytest.approx(whole[ext][key], rel=1e-12, abs=1e-9)
            else:
                assert banded[key] == whole[ext][key], key
    a, b = np.load(tmp_path / "whole" / "x.npy"), np.load(tmp_path / "bands" / "x.npy")
    if any("fft" in s for s in specs):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-9)
    else:
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(read_rgb(tmp_path / "bands" / "x.png"), read_rgb(tmp_path / "whole" / "x.png"))


def test_chains_that_cannot_work_in_bands_are_filtered_whole():
    for specs in (["maxpool:size=2"], ["gaussian", "sobel:stride=2"], ["mean:pad=valid"], ["canny"],
                  ["gaussian:border=wrap"], ["median:border=wrap"]):
        assert tiles.chain_halo(parse_ops(specs)) is None, specs
    assert tiles.chain_halo(parse_ops(["gaussian:sigma=2", "sobel"])) == 6 + 1
    assert tiles.chain_halo(parse_ops(["kernel:values=1,2;3,4"])) == 1  # 'same' puts the odd row below


def _peak_bytes(fn) -> int:
    tracemalloc.start()  # NumPy and OpenCV's NumPy arrays report their buffers to tracemalloc
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("ext", ["png", "npy"])
def test_memory_stays_near_the_8_bit_image_whatever_its_size(ext, tmp_path, monkeypatch):
    # a smooth 1-bit-like image (compresses well, like the 27 KB 15000 x 15000 PNG of the issue)
    h, w = 1200, 1000
    image = np.zeros((h, w), np.uint8)
    image[200:900, 300:700] = 255
    src = write_rgb(tmp_path / "big.png", image)
    job = _job(["gaussian:sigma=2", "sobel:axis=magnitude"])
    monkeypatch.setattr(tiles, "BAND_BYTES", 8 * w * 40)  # 40-row bands: 320 KB of float64
    monkeypatch.setattr(tiles, "TILE_MIN_BYTES", 8 * w * 100)
    out = tmp_path / "out" / f"big.{ext}"
    peak = _peak_bytes(lambda: filter_file(InputItem(str(src), src.name), job, out))
    assert out.is_file()
    print(f"peak {peak / 1e6:.1f} MB")
    # the whole-image way holds four float64 copies (32 bytes a pixel); in bands: the uint8 input,
    # the uint8 output (or nothing, for a streamed .npy) and a few bands
    assert peak < 6 * h * w, f"peak {peak / 1e6:.1f} MB for a {h * w / 1e6:.1f} MP image"
