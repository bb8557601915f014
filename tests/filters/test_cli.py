"""`cnntool filter` through Typer's CliRunner: records, outputs on disk, errors and exit codes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.filters.kernels import EMBOSS
from cnntool.filters.ops import OP_NAMES, parse_ops, run_ops
from cnntool.filters.scale import to_uint8

from .conftest import LECTURE_5X5, POOL_4X4, read_rgb, records, write_rgb

runner = CliRunner()
FIELDS = ["path", "output", "ops", "input_shape", "output_shape", "min", "max", "skipped", "error"]


def run(*args):
    return runner.invoke(app, ["filter", *map(str, args)])


def test_records_have_the_documented_fields_without_writing_anything(image_dir):
    result = run(image_dir, "-k", "gaussian:sigma=1", "-k", "maxpool:size=2")
    assert result.exit_code == 0, result.output
    recs = records(result.stdout)
    assert [list(r) for r in recs] == [FIELDS] * 4
    by_name = {os.path.basename(r["path"]): r for r in recs}
    assert set(by_name) == {"a.png", "b.png", "c.jpg", "g.png"}
    a = by_name["a.png"]
    assert a["ops"] == "gaussian:sigma=1 | maxpool:size=2"
    assert (a["input_shape"], a["output_shape"]) == ([16, 20, 3], [8, 10, 3])
    assert by_name["g.png"]["input_shape"] == [8, 8]  # grayscale stays 2-D
    assert 0 <= a["min"] < a["max"] <= 255
    assert all(r["output"] is None and r["skipped"] is False and r["error"] is None for r in recs)
    assert not (image_dir.parent / "out").exists()


def test_out_dir_mirrors_paths_and_keeps_each_input_format(image_dir, tmp_path):
    out = tmp_path / "out"
    result = run(image_dir, "-k", "mean:size=3", "-o", out)
    assert result.exit_code == 0, result.output
    for rel in ("a.png", "sub/b.png", "c.jpg", "g.png"):
        assert (out / rel).is_file(), rel
    recs = {os.path.basename(r["path"]): r for r in records(result.stdout)}
    assert recs["b.png"]["output"] == str(out / "sub" / "b.png")
    assert read_rgb(out / "sub" / "b.png").shape == (12, 10, 3)
    assert read_rgb(out / "g.png").shape == (8, 8)


def test_npy_outputs_are_the_exact_float64_results(tmp_path, rng):
    arr = rng.normal(size=(9, 11, 3))
    np.save(tmp_path / "x.npy", arr)
    img = write_rgb(tmp_path / "p.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    specs = ["unsharp:sigma=1.5:amount=2", "sobel:axis=direction:border=reflect"]
    args = [a for s in specs for a in ("-k", s)]
    result = run(tmp_path / "x.npy", img, *args, "--ext", "npy", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    expected = run_ops(arr, parse_ops(specs))
    got = np.load(tmp_path / "out" / "x.npy")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "p.npy"), run_ops(read_rgb(img), parse_ops(specs)))
    rec = records(result.stdout)[0]
    assert (rec["min"], rec["max"]) == (expected.min(), expected.max())


def test_lecture_examples_through_the_command(tmp_path):
    np.save(tmp_path / "lap.npy", LECTURE_5X5)
    np.save(tmp_path / "pool.npy", POOL_4X4)
    np.save(tmp_path / "seven.npy", np.arange(49.0).reshape(7, 7))
    out = tmp_path / "out"
    result = run(tmp_path / "lap.npy", "-k", "kernel:values=0,1,0;1,-4,1;0,1,0", "--pad", "valid", "-o", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out / "lap.npy"), [[6, 15, 9], [14, -36, -4], [-4, 10, 7]])
    assert run(tmp_path / "pool.npy", "-k", "maxpool:size=2:stride=2", "-o", out).exit_code == 0
    np.testing.assert_array_equal(np.load(out / "pool.npy"), [[3, 5], [2, 4]])
    shapes = {}
    for flags in (("--pad", "valid"), ("--pad", "valid", "--stride", "2"), ("--pad", "1"), ("--pad", "full")):
        result = run(tmp_path / "seven.npy", "-k", "mean", *flags)
        shapes[flags] = records(result.stdout)[0]["output_shape"]
    assert list(shapes.values()) == [[5, 5], [3, 3], [7, 7], [9, 9]]  # floor((7 + 2p - 3)/s) + 1


def test_conv_and_corr_differ_on_an_asymmetric_kernel(tmp_path):
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1.0
    np.save(tmp_path / "d.npy", impulse)
    for mode in ("conv", "corr"):
        assert run(tmp_path / "d.npy", "-k", "emboss", "--mode", mode, "-o", tmp_path / mode).exit_code == 0
    conv, corr = np.load(tmp_path / "conv" / "d.npy"), np.load(tmp_path / "corr" / "d.npy")
    np.testing.assert_array_equal(conv[1:4, 1:4], EMBOSS)  # impulse response = the kernel
    np.testing.assert_array_equal(corr[1:4, 1:4], EMBOSS[::-1, ::-1])


def test_signed_results_are_scaled_deliberately(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (8, 1))
    img = write_rgb(tmp_path / "ramp.png", ramp)
    outs = {}
    for scale in ("auto", "abs", "clip", "minmax"):
        result = run(img, "-k", "sobel:axis=x", "--pad", "valid", "--scale", scale, "-o", tmp_path / scale)
        assert result.exit_code == 0, result.output
        outs[scale] = read_rgb(tmp_path / scale / "ramp.png").astype(int)
    # true convolution of the rising ramp gives about -136 everywhere (negative x gradient)
    rec = records(result.stdout)[0]
    assert rec["max"] < 0
    # offset: zero is 128, negatives below; -max|x| maps to 1, so (unlike clip) never to 0
    assert outs["auto"].max() < 128 and outs["auto"].min() >= 1
    assert outs["abs"].min() > 100  # |x|
    assert outs["clip"].max() == 0  # negatives clip to black
    assert outs["minmax"].min() == 0


def test_existing_outputs_are_skipped_unless_overwrite(image_dir, tmp_path):
    out = tmp_path / "out"
    assert run(image_dir / "a.png", "-k", "gaussian", "-o", out).exit_code == 0
    (out / "a.png").write_bytes(b"marker")
    result = run(image_dir / "a.png", "-k", "gaussian", "-o", out)
    assert result.exit_code == 0
    rec = records(result.stdout)[0]
    assert rec["skipped"] is True and rec["output"] == str(out / "a.png")
    assert (out / "a.png").read_bytes() == b"marker"
    result = run(image_dir / "a.png", "-k", "gaussian", "-o", out, "--overwrite")
    assert records(result.stdout)[0]["skipped"] is False
    assert read_rgb(out / "a.png").shape == (16, 20, 3)


def test_inputs_are_never_overwritten(image_dir):
    before = (image_dir / "a.png").read_bytes()
    result = run(image_dir, "-k", "gaussian", "-o", image_dir, "--overwrite")
    assert result.exit_code == 1
    errors = [r["error"] for r in records(result.stdout)]
    assert all("refusing to overwrite the input" in e for e in errors)
    assert (image_dir / "a.png").read_bytes() == before


def test_two_inputs_writing_one_output_is_an_error(tmp_path, rng):
    write_rgb(tmp_path / "in" / "a.jpg", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_rgb(tmp_path / "in" / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    result = run(tmp_path / "in", "-k", "mean", "-o", tmp_path / "out", "--ext", "png")
    assert result.exit_code == 1
    recs = records(result.stdout)
    assert [r["error"] is None for r in recs] == [True, False]
    assert "would also be written" in recs[1]["error"]


def test_bad_inputs_are_error_records_and_good_files_are_still_written(tmp_path, rng):
    folder = tmp_path / "in"
    write_rgb(folder / "good.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    good_jpg = write_rgb(tmp_path / "big.jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    (folder / "truncated.jpg").write_bytes(good_jpg.read_bytes()[:200])
    corrupt = bytearray((folder / "good.png").read_bytes())
    corrupt[60:-20] = bytes(b ^ 0x5A for b in corrupt[60:-20])  # a real header, scrambled pixel data
    (folder / "corrupt.png").write_bytes(bytes(corrupt))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image at all\n")
    np.save(folder / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(folder / "cube.npy", np.zeros((4, 4, 7)))
    result = run(folder, tmp_path / "missing.png", good_jpg, "-k", "gaussian", "-o", tmp_path / "out",
                 "--max-pixels", "1000")
    assert result.exit_code == 1
    recs = {os.path.basename(r["path"]): r for r in records(result.stdout)}
    assert recs["good.png"]["error"] is None and (tmp_path / "out" / "good.png").is_file()
    expected = {"truncated.jpg": "truncated", "corrupt.png": "corrupt", "empty.png": "empty",
                "text.jpg": "not an image", "nan.npy": "NaN", "cube.npy": "C = 1, 3 or 4",
                "missing.png": "no such file", "big.jpg": "exceeds --max-pixels"}
    for name, why in expected.items():
        error = recs[name]["error"]
        assert error and why in error and "\n" not in error, (name, error)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message, hint", [
    (["-k", "gausian"], "unknown filter op 'gausian'", "did you mean gaussian"),
    (["-k", "gaussian:sigma=-1"], "sigma must be > 0", "gaussian keys"),
    (["-k", "kernel:values=1,2;3"], "different lengths", "kernel keys"),
    (["-k", "sobel", "--border", "mirror"], "unknown --border 'mirror'", "did you mean reflect"),
    (["-k", "sobel", "--pad", "half"], "bad --pad 'half'", "same, valid, full"),
    (["-k", "sobel", "--ext", "gif"], "unknown --ext 'gif'", "png"),
    (["-k", "sobel", "--scale", "log"], "unknown --scale 'log'", "minmax"),
    (["-k", "maxpool", "--color", "luminance"], "luminance needs ops that keep the image size", "stride"),
    ([], "no filter op given", "--list"),
])
def test_bad_specs_exit_2_with_one_line_and_a_hint(image_dir, args, message, hint):
    result = run(image_dir, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert lines[1].startswith("hint: ") and hint in lines[1]


def test_no_inputs_is_a_usage_error():
    result = run("-k", "gaussian")
    assert result.exit_code == 2 and "no inputs" in result.stderr


def test_list_prints_every_op_with_its_matrix():
    result = run("--list")
    assert result.exit_code == 0
    for name in OP_NAMES:
        assert f"{name}" in result.stdout
    assert "    -1  0  1\n    -2  0  2\n    -1  0  1" in result.stdout
    result = run("--list", "--format", "jsonl")
    recs = records(result.stdout)
    assert [r["name"] for r in recs] == list(OP_NAMES)
    assert next(r for r in recs if r["name"] == "laplace")["matrix"] == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]


def test_help_shows_examples_and_ops():
    result = run("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "cnntool filter photo.jpg -k gaussian:sigma=2 -o out/" in result.stdout
    for flag in ("--pad", "--border", "--mode", "--stride", "--dilation", "--color", "--scale", "--ext", "--list"):
        assert flag in result.stdout


def test_fast_path_equals_the_float64_result_within_rounding(photo, tmp_path):
    img = write_rgb(tmp_path / "cat.png", photo)
    for flag, out in ((), "fast"), (("--exact",), "exact"):
        result = run(img, "-k", "gaussian:sigma=2", "-o", tmp_path / out, *flag)
        assert result.exit_code == 0, result.output
    fast = read_rgb(tmp_path / "fast" / "cat.png").astype(int)
    exact = read_rgb(tmp_path / "exact" / "cat.png").astype(int)
    reference = to_uint8(run_ops(photo, parse_ops(["gaussian:sigma=2"])), "clip")
    np.testing.assert_array_equal(exact, reference)
    assert np.abs(fast - exact).max() <= 1
    assert np.count_nonzero(fast - exact) <= 1e-4 * fast.size


def test_color_modes(photo, tmp_path):
    img = write_rgb(tmp_path / "cat.png", photo[:40, :50])
    assert run(img, "-k", "gaussian", "--color", "gray", "-o", tmp_path / "g").exit_code == 0
    assert read_rgb(tmp_path / "g" / "cat.png").shape == (40, 50)
    assert run(img, "-k", "gaussian", "--color", "luminance", "-o", tmp_path / "l").exit_code == 0
    lum = read_rgb(tmp_path / "l" / "cat.png")
    assert lum.shape == (40, 50, 3)
    assert not np.array_equal(lum[..., 0], lum[..., 2])  # still in colour


def test_filter_imports_no_torch(tmp_path, rng):
    img = write_rgb(tmp_path / "x.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    # ops that pull in SciPy's FFT, scikit-image's Canny and the CIELAB conversion
    args = ["filter", str(img), "-k", "gaussian:sigma=2", "-k", "mean:method=fft", "-k", "canny",
            "--color", "luminance", "-o", str(tmp_path / "out")]
    code = (
        "import sys\n"
        "from cnntool.cli.main import app\n"
        f"try:\n    app({args!r}, prog_name='cnntool')\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('exit', code, 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "exit 0 NO-TORCH", result.stderr
    assert (tmp_path / "out" / "x.png").is_file()
