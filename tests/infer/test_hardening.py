"""Issue 12 on the model commands: no input crashes a batch, no file is lost or silently
replaced, nothing passes silently in CI. Each test failed on the code before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
from cnntool.models.classic import lenet5

runner = CliRunner()
CLASSES = ["cross", "disk", "square"]


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def checkpoint(path: Path, *, fill: float | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = lenet5(num_classes=3)
    if fill is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(fill)
    save_checkpoint(path, make_checkpoint(model, arch="lenet5", task="classification", classes=CLASSES,
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    return path


def png(path: Path, shape, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    return path


def invoke(*args):
    return runner.invoke(app, [*map(str, args), "--format", "jsonl"])


def test_a_one_by_8000_strip_is_explained_with_its_neighbours(tmp_path):
    png(tmp_path / "in" / "strip.png", (1, 8000))
    png(tmp_path / "in" / "square.png", (40, 40, 3), seed=1)
    result = invoke("explain", tmp_path / "in", "-m", "simple_cnn", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    recs = {Path(r["path"]).name: r for r in records(result)}
    assert set(recs) == {"strip.png", "square.png"} and all(r["error"] is None for r in recs.values())
    overlay = cv2.imread(recs["strip.png"]["overlay"])
    assert max(overlay.shape[:2]) <= 4096 and overlay.size < 20_000_000   # never 128 x 1,024,000
    assert 0 <= recs["strip.png"]["peak"][0] < 8000 and recs["strip.png"]["box"][2] <= 8000


def test_sort_into_never_loses_a_file_when_two_inputs_share_a_name(tmp_path):
    model = checkpoint(tmp_path / "m.pt", fill=0.0)  # constant: every image gets the same label
    png(tmp_path / "A" / "x.png", (12, 12), seed=1)
    png(tmp_path / "B" / "x.png", (12, 12), seed=2)
    for extra in ([], ["--overwrite"]):
        result = invoke("predict", tmp_path / "A", tmp_path / "B", "-m", model, "--sort-into", tmp_path / "S", *extra)
        assert result.exit_code == 1, result.output
        first, second = records(result)
        assert first["error"] is None and first["sorted_to"].endswith("x.png")
        assert second["sorted_to"] is None and "would also be written for" in second["error"]
        assert Path(first["sorted_to"]).read_bytes() == (tmp_path / "A" / "x.png").read_bytes()


def test_outputs_inside_an_input_folder_are_never_taken_as_inputs(tmp_path):
    png(tmp_path / "d" / "a.png", (40, 40, 3))
    for _ in range(2):
        result = invoke("explain", tmp_path / "d", "-m", "simple_cnn", "-o", tmp_path / "d")
        assert result.exit_code == 0, result.output
        assert [Path(r["path"]).name for r in records(result)] == ["a.png"]
    assert not list((tmp_path / "d").glob("*gradcam_gradcam*"))
    assert "1 output" in result.stderr and "skipped" in result.stderr  # said, not silent


def test_explain_outputs_made_by_another_model_are_not_kept_silently(tmp_path):
    png(tmp_path / "in" / "a.png", (40, 40, 3))
    first = invoke("explain", tmp_path / "in", "-m", "simple_cnn", "-o", tmp_path / "out", "--seed", "1")
    assert first.exit_code == 0, first.output
    other = invoke("explain", tmp_path / "in", "-m", "simple_cnn", "-o", tmp_path / "out", "--seed", "2")
    assert other.exit_code == 1 and "made with other options" in records(other)[0]["error"]


def test_kernels_of_two_runs_do_not_collide(tmp_path):
    a = checkpoint(tmp_path / "runs" / "a" / "best.pt", seed=1)
    b = checkpoint(tmp_path / "runs" / "b" / "best.pt", seed=2)
    images = []
    for spec in (a, b):
        result = invoke("explain", "-m", spec, "--method", "kernels", "-o", tmp_path / "figs")
        assert result.exit_code == 0, result.output
        images.append(records(result)[0]["image"])
    assert len(set(images)) == 2 and all(Path(p).is_file() for p in images)


@pytest.mark.parametrize("command", [["predict"], ["explain"]])
def test_an_empty_folder_is_a_usage_error(tmp_path, command):
    (tmp_path / "empty").mkdir()
    model = checkpoint(tmp_path / "m.pt")
    result = invoke(*command, tmp_path / "empty", "-m", model)
    assert result.exit_code == 2 and "no images found" in result.stderr


def test_options_a_method_does_not_use_are_refused(tmp_path):
    png(tmp_path / "a.png", (40, 40, 3))
    result = invoke("explain", tmp_path / "a.png", "-m", "simple_cnn", "--method", "featuremaps", "--target", "3")
    assert result.exit_code == 2 and "--target does nothing for --method featuremaps" in result.stderr


def test_a_run_folder_is_a_model_spec(tmp_path):
    checkpoint(tmp_path / "runs" / "lenet5-1" / "best.pt")
    png(tmp_path / "img" / "a.png", (12, 12))
    result = invoke("predict", tmp_path / "img", "-m", tmp_path / "runs" / "lenet5-1")
    assert result.exit_code == 0, result.output
    assert records(result)[0]["label"] in CLASSES


def test_nan_outputs_are_errors_not_answers(tmp_path):
    model = checkpoint(tmp_path / "nan.pt", fill=float("nan"))
    png(tmp_path / "img" / "a.png", (12, 12))
    result = invoke("predict", tmp_path / "img", "-m", model)
    assert result.exit_code == 1
    [record] = records(result)
    assert record["label"] is None and "not a number" in record["error"]


def test_random_weights_are_said_where_the_user_looks(tmp_path):
    png(tmp_path / "img" / "a.png", (12, 12))
    result = invoke("predict", tmp_path / "img", "-m", "lenet5")
    assert result.exit_code == 0 and "random weights" in result.stderr


def test_imgsz_at_inference(tmp_path):
    png(tmp_path / "img" / "a.png", (40, 40, 3))
    result = invoke("explain", tmp_path / "img", "-m", "simple_cnn", "--imgsz", "96")
    assert result.exit_code == 0, result.output
    bad = invoke("predict", tmp_path / "img", "-m", checkpoint(tmp_path / "m.pt"), "--imgsz", "24")
    assert bad.exit_code == 2 and "lenet5 cannot take a 1x24x24 input" in bad.stderr



def test_score_says_which_way_is_better_and_summarises_the_method(tmp_path):
    for i in range(2):
        png(tmp_path / "img" / f"{i}.png", (40, 40, 3), seed=i)
    result = invoke("explain", tmp_path / "img", "-m", "simple_cnn", "--score")
    assert result.exit_code == 0, result.output
    *images, summary = records(result)
    assert summary["path"] == "<summary>" and summary["images"] == 2 and "higher road" in summary["better"]
    assert summary["road"] == pytest.approx(np.mean([r["faithfulness"]["road"] for r in images]))
    assert "mean road" in result.stderr
