"""`cnntool predict`: records, top-k, threshold, --eval against hand-computed numbers, --sort-into,
bad inputs and models for another task."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnntool.data.preprocessing import Preprocessing
from cnntool.cli.main import app
from cnntool.infer.predict import Evaluation
from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
from cnntool.models.classic import lenet5

runner = CliRunner()
CLASSES = ["cross", "disk", "square"]
#: Output biases of the constant model: it answers "square" for every image.
BIASES = (1.0, 0.0, 5.0)


def constant_checkpoint(path: Path, *, task: str = "classification") -> Path:
    """LeNet-5 with zero weights: its logits are the output biases whatever the image."""
    model = lenet5(num_classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model[11].bias.copy_(torch.tensor(BIASES))
    save_checkpoint(path, make_checkpoint(model, arch="lenet5", task=task, classes=CLASSES, preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """val/<class>/ with 2 cross, 3 disk, 4 square images (random noise: the model ignores them)."""
    root = tmp_path_factory.mktemp("predict") / "val"
    rng = np.random.default_rng(0)
    for name, count in zip(CLASSES, (2, 3, 4)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 256, (12, 12), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return constant_checkpoint(tmp_path_factory.mktemp("model") / "constant.pt")


def run(*args):
    return runner.invoke(app, ["predict", *map(str, args), "--format", "jsonl"])


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def softmax(values):
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


def test_records_carry_topk_labels_and_probabilities(folder, model):
    result = run(folder, "-m", model, "--topk", "2")
    assert result.exit_code == 0, result.output
    recs = records(result)
    assert len(recs) == 9 and recs[0]["path"] == str(folder / "cross" / "0.png")
    probs = softmax(BIASES)
    for rec in recs:
        assert rec["label"] == "square" and rec["error"] is None
        assert rec["score"] == pytest.approx(probs[2], rel=1e-6)
        assert [t["label"] for t in rec["topk"]] == ["square", "cross"]
        assert rec["topk"][1]["score"] == pytest.approx(probs[0], rel=1e-6)


def test_threshold_answers_unknown(folder, model):
    result = run(folder / "disk", "-m", model, "--threshold", "0.99")
    assert result.exit_code == 0
    assert {r["label"] for r in records(result)} == {"unknown"}


def test_eval_matches_the_hand_computed_confusion_matrix(folder, model, tmp_path):
    result = run(folder, "-m", model, "--eval", "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    *per_image, summary = records(result)
    assert [r["true"] for r in per_image] == ["cross"] * 2 + ["disk"] * 3 + ["square"] * 4
    assert [r["correct"] for r in per_image] == [False] * 5 + [True] * 4
    # every image is predicted "square": one column holds everything
    assert summary["path"] == "<summary>"
    assert summary["confusion"] == [[0, 0, 2], [0, 0, 3], [0, 0, 4]]
    assert summary["accuracy"] == pytest.approx(4 / 9)
    square = summary["per_class"]["square"]
    assert (square["precision"], square["recall"], square["support"]) == (pytest.approx(4 / 9), 1.0, 4)
    assert square["f1"] == pytest.approx(2 * (4 / 9) / (4 / 9 + 1))
    assert summary["per_class"]["cross"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert summary["macro_f1"] == pytest.approx(square["f1"] / 3)
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["confusion"] == summary["confusion"]
    assert (tmp_path / "eval" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    # a re-run never replaces the evaluation silently
    again = run(folder, "-m", model, "--eval", "-o", tmp_path / "eval")
    assert again.exit_code == 2 and "evaluation.json exists" in again.stderr and again.stdout == ""
    assert run(folder, "-m", model, "--eval", "-o", tmp_path / "eval", "--overwrite").exit_code == 0


def test_eval_with_threshold_counts_unknown_as_wrong(folder, model):
    *_, summary = records(run(folder, "-m", model, "--eval", "--threshold", "0.99"))
    assert summary["predicted_classes"] == CLASSES + ["unknown"]
    assert summary["confusion"] == [[0, 0, 0, 2], [0, 0, 0, 3], [0, 0, 0, 4]]
    assert summary["accuracy"] == 0.0


def test_evaluation_of_mixed_answers_by_hand():
    ev = Evaluation(["a", "b", "c"])
    answers = [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("b", "c"), ("c", "c"), ("c", "a"), ("x", "a")]
    for truth, label in answers:
        ev.add({"path": f"data/{truth}/img.png", "label": label, "error": None})
    ev.add({"path": "data/a/bad.png", "label": None, "error": "corrupt image"})
    s = ev.summary()
    assert s["confusion"] == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert (s["evaluated"], s["excluded"], s["errors"], s["images"]) == (7, 1, 1, 9)
    assert s["accuracy"] == pytest.approx(4 / 7)
    assert s["per_class"]["b"]["precision"] == pytest.approx(2 / 3)   # column b: 1 + 2
    assert s["per_class"]["b"]["recall"] == pytest.approx(2 / 3)      # row b: 2 + 1
    assert s["per_class"]["a"]["precision"] == pytest.approx(1 / 2)
    assert s["per_class"]["c"]["recall"] == pytest.approx(1 / 2)


def test_fail_under_gates_on_accuracy(folder, model):
    failed = run(folder, "-m", model, "--eval", "--fail-under", "0.95")
    assert failed.exit_code == 1
    assert "accuracy 0.4444 is under --fail-under 0.95" in failed.stderr
    assert run(folder, "-m", model, "--eval", "--fail-under", "0.4").exit_code == 0


def test_corrupt_inputs_give_error_records_and_exit_1(folder, model, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    result = run(folder / "cross", bad, tmp_path / "missing.png", "-m", model)
    assert result.exit_code == 1
    recs = records(result)
    assert [r["label"] for r in recs[:2]] == ["square", "square"]
    assert recs[2]["path"] == str(bad) and recs[2]["error"] and recs[2]["label"] is None
    assert recs[3]["error"] == "no such file or directory"


def test_sort_into_copies_or_links_by_predicted_label(folder, model, tmp_path):
    result = run(folder / "disk", "-m", model, "--sort-into", tmp_path / "sorted")
    assert result.exit_code == 0, result.output
    copies = sorted(p.relative_to(tmp_path / "sorted") for p in (tmp_path / "sorted").rglob("*.png"))
    assert [str(p) for p in copies] == ["square/0.png", "square/1.png", "square/2.png"]
    assert (tmp_path / "sorted/square/0.png").read_bytes() == (folder / "disk/0.png").read_bytes()
    assert records(result)[0]["sorted_to"] == str(tmp_path / "sorted/square/0.png")
    linked = run(folder / "disk", "-m", model, "--sort-into", tmp_path / "links", "--link")
    assert linked.exit_code == 0
    link = tmp_path / "links/square/0.png"
    assert link.is_symlink() and link.resolve() == (folder / "disk/0.png").resolve()


def test_a_checkpoint_for_another_task_is_refused(folder, tmp_path):
    detector = constant_checkpoint(tmp_path / "detector.pt", task="detection")
    result = run(folder, "-m", detector)
    assert result.exit_code == 2
    assert "is a detection model" in result.stderr and result.stdout == ""


def test_missing_model_file_exits_2(folder, tmp_path):
    result = run(folder, "-m", tmp_path / "nope.pt")
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr


def test_predict_agrees_with_the_model_called_directly(tmp_path):
    """A trained-from-random LeNet-5: the CLI's batched path equals model(preprocess(image))."""
    from cnntool.data.decode import decode_image

    torch.manual_seed(0)
    net = lenet5(num_classes=3)
    path = tmp_path / "random.pt"
    save_checkpoint(path, make_checkpoint(net, arch="lenet5", task="classification", classes=CLASSES,
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    rng = np.random.default_rng(1)
    images = []
    for i in range(5):
        p = tmp_path / "imgs" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 256, (20, 14), dtype=np.uint8))
        images.append(p)
    result = run(tmp_path / "imgs", "-m", path, "--topk", "3", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    recs = records(result)
    assert len(recs) == len(images) == 5
    pre = Preprocessing((1, 32, 32), (0.5,), (0.5,))
    net.eval()
    with torch.no_grad():
        expected = torch.softmax(net(torch.stack([torch.from_numpy(pre(decode_image(p, mode="gray")))
                                                  for p in images])), dim=1)
    for rec, probs in zip(recs, expected):
        assert rec["label"] == CLASSES[int(probs.argmax())]
        assert rec["score"] == pytest.approx(float(probs.max()), rel=1e-5)
