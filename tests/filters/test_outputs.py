"""`cnntool filter` and its outputs on disk: the skip rule, outputs never read back as inputs,
names for files named directly, empty input sets (issues 12 and 13)."""

import os

import numpy as np
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.writers import LEDGER_NAME

from .conftest import read_rgb, records, write_rgb

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["filter", *map(str, args)])


def test_same_options_skip_and_say_so_other_options_are_an_error(image_dir, tmp_path):
    out = tmp_path / "out"
    assert run(image_dir, "-k", "sobel", "-o", out).exit_code == 0
    sobel = (out / "a.png").read_bytes()
    again = run(image_dir, "-k", "sobel", "-o", out)
    assert again.exit_code == 0
    assert all(r["skipped"] and r["error"] is None for r in records(again.stdout))
    assert "4 outputs skipped: already made with the same options (--overwrite to redo)" in again.stderr
    # a Gaussian run must not keep the Sobel results as if they were its own
    other = run(image_dir, "-k", "gaussian", "-o", out)
    assert other.exit_code == 1
    recs = records(other.stdout)
    assert all(not r["skipped"] for r in recs)
    error = recs[0]["error"]
    assert "exists, made with other options (sobel; --color channels --scale minmax)" in error
    assert error.endswith("--overwrite replaces it") and "\n" not in error
    assert (out / "a.png").read_bytes() == sobel
    redo = run(image_dir, "-k", "gaussian", "-o", out, "--overwrite")
    assert redo.exit_code == 0 and "skipped" not in redo.stderr
    assert (out / "a.png").read_bytes() != sobel
    assert run(image_dir, "-k", "gaussian", "-o", out).exit_code == 0  # now made with these options


def test_an_output_made_from_another_input_or_not_by_cnntool_is_not_skipped(tmp_path, rng):
    a = write_rgb(tmp_path / "A" / "x.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    b = write_rgb(tmp_path / "B" / "x.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert run(a, "-k", "mean", "-o", out).exit_code == 0
    result = run(b, "-k", "mean", "-o", out)
    assert result.exit_code == 1
    assert f"made from another input ({a})" in records(result.stdout)[0]["error"]
    (out / "y.png").write_bytes(b"someone else's file")
    c = write_rgb(tmp_path / "C" / "y.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    result = run(c, "-k", "mean", "-o", out)
    assert "cnntool has no record of making it" in records(result.stdout)[0]["error"]
    assert (out / "y.png").read_bytes() == b"someone else's file"


def test_out_equal_to_the_input_folder_never_reads_its_own_outputs(image_dir):
    inputs = ["a.png", "b.png", "c.jpg", "g.png"]
    first = run(image_dir, "-k", "gaussian", "-o", image_dir, "--ext", "npy")
    assert first.exit_code == 0, first.output
    assert (image_dir / "a.npy").is_file() and (image_dir / "sub" / "b.npy").is_file()
    second = run(image_dir, "-k", "gaussian", "-o", image_dir, "--ext", "npy")
    assert second.exit_code == 0, second.output
    recs = records(second.stdout)
    assert sorted(os.path.basename(r["path"]) for r in recs) == inputs  # no .npy among the inputs
    assert all(r["skipped"] for r in recs)


def test_out_inside_the_input_folder_never_reads_its_own_outputs(image_dir):
    out = image_dir / "edges"
    for _ in range(2):
        result = run(image_dir, "-k", "sobel", "-o", out)
        assert result.exit_code == 0, result.output
        assert len(records(result.stdout)) == 4
    assert not (out / "edges").exists()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        ["a.png", "b.png", "c.jpg", "g.png", LEDGER_NAME, LEDGER_NAME])
    # outputs are still ordinary inputs of a run that writes elsewhere (pipelines chain folders)
    chained = run(out, "-k", "gaussian", "-o", image_dir.parent / "blurred")
    assert chained.exit_code == 0 and len(records(chained.stdout)) == 4


def test_a_file_named_directly_is_written_under_its_name(tmp_path, rng, monkeypatch):
    write_rgb(tmp_path / "samples" / "photos" / "coins.png", rng.integers(0, 256, (9, 9), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    result = run("samples/photos/coins.png", "-k", "mean", "-o", "out/")
    assert result.exit_code == 0, result.output
    assert records(result.stdout)[0]["output"] == os.path.join("out", "coins.png")
    assert read_rgb(tmp_path / "out" / "coins.png").shape == (9, 9)
    # found under a folder input, relative paths are mirrored
    assert run("samples", "-k", "mean", "-o", "mirror").exit_code == 0
    assert (tmp_path / "mirror" / "photos" / "coins.png").is_file()


def test_an_empty_input_set_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("no pictures here")
    for folder in ("empty", "texts"):
        result = run(tmp_path / folder, "-k", "gaussian")
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert lines[0] == f"error: no images or .npy arrays found in {tmp_path / folder}"
        assert lines[1].startswith("hint: folders and globs take files ending in") and ".npy" in lines[1]
        assert result.stdout == ""
