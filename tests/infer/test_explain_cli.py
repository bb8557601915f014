"""``cnntool explain`` through the CLI: files, records, exit codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from cnntool.cli.main import app  # noqa: E402
from cnntool.infer.visualize import grid_shape  # noqa: E402
from cnntool.models.registry import get_entry  # noqa: E402
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised simple_cnn saved as a checkpoint with class names."""
    torch.manual_seed(0)
    entry = get_entry("simple_cnn")
    model = entry.build(num_classes=len(CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "simple.pt"
    save_checkpoint(path, make_checkpoint(model, arch="simple_cnn", task="classification", classes=CLASSES,
                                          preprocessing=entry.preprocessing))
    return str(path)


@pytest.fixture()
def images(tmp_path):
    """Three small photos (one in a subfolder, one not square) and a corrupt file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for rel, (h, w) in {"a.png": (64, 64), "sub/b.png": (50, 80), "c.png": (40, 40)}.items():
        img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(root / rel), img)
    (root / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def _run(*args):
    result = CliRunner().invoke(app, ["explain", *map(str, args), "-f", "jsonl", "-q", "--device", "cpu"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, records


def test_gradcam_writes_overlays_heatmaps_and_records(checkpoint, images, tmp_path):
    out = tmp_path / "out"
    result, records = _run(images, "-m", checkpoint, "-o", out)
    assert result.exit_code == 1  # the broken file
    assert [r["path"].split("imgs/")[1] for r in records] == ["a.png", "c.png", "sub/b.png", "z_broken.png"]
    good, broken = records[:3], records[3]
    assert broken["error"] and "overlay" not in broken
    for record in good:
        assert record["error"] is None and record["method"] == "gradcam" and record["layer"] == "features"
        assert record["class"] == CLASSES[record["class_index"]] and 0 < record["score"] <= 1
        image = cv2.imread(record["path"])
        heat = np.load(record["heatmap"])
        assert heat.shape == image.shape[:2] and heat.dtype == np.float32
        assert 0 <= heat.min() and heat.max() <= 1
        x, y = record["peak"]
        assert heat[y, x] == heat.max()
        x0, y0, x1, y1 = record["box"]
        assert x0 <= x < x1 and y0 <= y < y1 and heat[y0:y1, x0:x1].max() == heat.max()
        overlay = cv2.imread(record["overlay"])
        h, w = image.shape[:2]
        if min(h, w) >= 128:
            assert overlay.shape == (h, w, 3)
        else:  # small: the photo beside its overlay, enlarged by a whole factor
            factor = -(-128 // min(h, w))
            assert overlay.shape == (h * factor, (2 * w + max(1, w // 16)) * factor, 3)
    assert (out / "sub" / "b_gradcam.png").exists() and (out / "sub" / "b_gradcam.npy").exists()
    assert "overlay" in records[0] and records[0]["overlay"].endswith("a_gradcam.png")


def test_rerun_skips_existing_outputs_unless_overwrite(checkpoint, images, tmp_path):
    out = tmp_path / "out"
    _run(images / "a.png", "-m", checkpoint, "-o", out, "--method", "gradcam++")
    png = out / "a_gradcampp.png"
    before = png.stat().st_mtime_ns
    result, records = _run(images / "a.png", "-m", checkpoint, "-o", out, "--method", "gradcam++")
    assert result.exit_code == 0 and records[0]["skipped"] is True and records[0]["overlay"] == str(png)
    assert png.stat().st_mtime_ns == before
    result, records = _run(images / "a.png", "-m", checkpoint, "-o", out, "--method", "gradcam++", "--overwrite")
    assert result.exit_code == 0 and "skipped" not in records[0] and records[0]["peak"] is not None


def test_records_only_without_out(checkpoint, images):
    result, records = _run(images / "a.png", images / "c.png", "-m", checkpoint, "--target", "dog")
    assert result.exit_code == 0
    assert [r["class"] for r in records] == ["dog", "dog"] and records[0]["class_index"] == 1
    assert records[0]["overlay"] is None and records[0]["heatmap"] is None


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam",
                                    "scorecam", "eigencam"])
def test_every_heatmap_method_through_the_cli(checkpoint, images, method):
    result, records = _run(images / "a.png", "-m", checkpoint, "--method", method, "--target", "1")
    assert result.exit_code == 0, result.stderr
    assert records[0]["method"] == method and records[0]["class"] == "dog"


def test_score_adds_faithfulness(checkpoint, images):
    result, records = _run(images / "a.png", "-m", checkpoint, "--score")
    assert result.exit_code == 0
    faith = records[0]["faithfulness"]
    assert set(faith) == {"morf", "lerf", "road"}
    assert faith["road"] == pytest.approx((faith["lerf"] - faith["morf"]) / 2, abs=1e-6)


@pytest.mark.parametrize("target, message", [("7", "out of range: the model has 3 classes"),
                                             ("cow", "unknown --target class 'cow'")])
def test_bad_target_is_exit_2_with_one_line(checkpoint, images, target, message):
    result, records = _run(images / "a.png", "-m", checkpoint, "--target", target)
    assert result.exit_code == 2 and records == []
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: ") and message in first
    assert all(line.startswith("hint: ") for line in rest) and "Traceback" not in result.stderr


def test_bad_layer_is_exit_2_listing_valid_layers(checkpoint, images):
    result, _ = _run(images / "a.png", "-m", checkpoint, "--layer", "feature")
    assert result.exit_code == 2
    assert "error: no layer 'feature'" in result.stderr
    assert "features.0" in result.stderr and "fc" in result.stderr


def test_cam_on_a_network_without_gap_is_exit_2(images):
    result, _ = _run(images / "a.png", "-m", "lenet5", "--method", "cam")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: CAM does not apply") and "gradcam" in result.stderr


def test_heatmap_methods_need_inputs(checkpoint):
    result, _ = _run("-m", checkpoint)
    assert result.exit_code == 2 and "give images to explain" in result.stderr


def test_featuremaps_grid_and_array(checkpoint, images, tmp_path):
    out = tmp_path / "maps"
    result, records = _run(images / "a.png", "-m", checkpoint, "--method", "featuremaps", "--layer",
                           "features.0", "--max-maps", "10", "-o", out)
    assert result.exit_code == 0
    record = records[0]
    assert record["channels"] == 32 and record["map_size"] == [32, 32] and record["grid"] == [3, 4]
    grid = cv2.imread(record["image"], cv2.IMREAD_UNCHANGED)
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2)
    assert np.load(record["array"]).shape == (32, 32, 32)


def test_kernels_image(checkpoint, tmp_path):
    out = tmp_path / "k"
    result, records = _run("-m", checkpoint, "--method", "kernels", "-o", out)
    assert result.exit_code == 0
    record = records[0]
    assert record["path"] == checkpoint and record["layer"] == "features.0.0"
    assert record["kernels"] == 32 and record["kernel_size"] == [3, 3] and record["in_channels"] == 3
    rows, cols = grid_shape(32)
    image = cv2.imread(record["image"])
    assert record["image"].endswith("simple_kernels.png")
    grid = (rows * (33 + 2) + 2, cols * (33 + 2) + 2)
    factor = -(-256 // min(grid))  # enlarged to a readable size
    assert image.shape == (grid[0] * factor, grid[1] * factor, 3)


def test_kernels_needs_out(checkpoint):
    result, _ = _run("-m", checkpoint, "--method", "kernels")
    assert result.exit_code == 2 and "give -o DIR" in result.stderr


def test_maximize_image(checkpoint, tmp_path):
    out = tmp_path / "max"
    result, records = _run("-m", checkpoint, "--method", "maximize", "--layer", "features.1", "--channel", "5",
                           "--steps", "10", "-o", out)
    assert result.exit_code == 0, result.stderr
    record = records[0]
    assert record["channel"] == 5 and record["activation"] > record["activation_start"]
    assert cv2.imread(record["image"]).shape == (256, 256, 3)  # 64 px enlarged 4x, crisp
    result, _ = _run("-m", checkpoint, "--method", "maximize", "--channel", "999", "--steps", "1", "-o", out)
    assert result.exit_code == 2 and "out of range" in result.stderr


def test_csv_records(checkpoint, images):
    result = CliRunner().invoke(app, ["explain", str(images / "a.png"), "-m", checkpoint, "-f", "csv", "-q"])
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split(",")
    assert header[:4] == ["path", "method", "layer", "class"] and "peak" in header and "box" in header


def _photo(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def test_inputs_mapping_to_the_same_files_are_errors_not_overwrites(checkpoint, tmp_path):
    root = tmp_path / "in"
    _photo(root / "cat.jpg", 1), _photo(root / "cat.png", 2)
    _photo(root / "a" / "x.png", 3), _photo(root / "b" / "x.png", 4)
    out = tmp_path / "out"
    for _ in range(2):  # the re-run reports the first skipped and the second still refused
        result, records = _run(root / "cat.jpg", root / "cat.png", root / "a", root / "b", "-m", checkpoint,
                               "-o", out)
        assert result.exit_code == 1
        assert [r["path"] for r in records] == [str(root / p) for p in ("cat.jpg", "cat.png", "a/x.png", "b/x.png")]
        first, clash, x_first, x_clash = records
        assert first["error"] is None and first["overlay"] == str(out / "cat_gradcam.png")
        assert x_first["error"] is None and x_first["heatmap"] == str(out / "x_gradcam.npy")
        assert clash["error"] == f"output {out / 'cat_gradcam.png'} would also be written for {root / 'cat.jpg'}"
        assert x_clash["error"] == f"output {out / 'x_gradcam.png'} would also be written for {root / 'a' / 'x.png'}"
        assert "overlay" not in clash and "\n" not in clash["error"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["cat_gradcam.npy", "cat_gradcam.png",
                                                     "x_gradcam.npy", "x_gradcam.png"]


def test_outputs_never_overwrite_another_input(checkpoint, tmp_path):
    root = tmp_path / "imgs"
    _photo(root / "cat.png", 1)
    victim = _photo(root / "cat_gradcam.png", 2)  # the overlay cat.png would get
    before = victim.read_bytes()
    result, records = _run(root, "-m", checkpoint, "-o", root, "--overwrite")
    assert result.exit_code == 1
    cat, other = records
    assert cat["path"] == str(root / "cat.png")
    assert cat["error"] == f"refusing to overwrite the input file {victim}" and "overlay" not in cat
    assert other["error"] is None and other["overlay"] == str(root / "cat_gradcam_gradcam.png")
    assert victim.read_bytes() == before
    assert not (root / "cat_gradcam.npy").exists()  # nothing of cat.png's was written either
