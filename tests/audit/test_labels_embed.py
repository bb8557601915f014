"""Label checks (cleanlab on cross-validated probes) and CNN embeddings from the registry."""

import os
from pathlib import PurePath

import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.audit.labels import class_counts, class_labels, find_label_issues, out_of_sample_probabilities
from cnntool.cli.main import app
from cnntool.errors import DatasetError

from .conftest import findings, records

runner = CliRunner()


def test_class_labels_from_parent_folders():
    labels, classes = class_labels([PurePath("train/b/1.png"), PurePath("train/a/2.png"), PurePath("val/b/3.png")])
    assert classes == ["a", "b"] and labels.tolist() == [1, 0, 1]
    with pytest.raises(DatasetError):
        class_labels([PurePath("x.png"), PurePath("a/y.png")])
    with pytest.raises(DatasetError):
        class_labels([PurePath("a/x.png"), PurePath("a/y.png")])


def test_flipped_labels_are_found_out_of_sample():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = np.repeat([0, 1, 2], 30)
    features = centres[labels] + rng.normal(0, 0.3, (90, 2))
    noisy = labels.copy()
    flipped = [3, 40, 75]
    noisy[flipped] = [1, 2, 0]
    probs = out_of_sample_probabilities(features, noisy, folds=5, seed=0)
    assert probs.shape == (90, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    issues = find_label_issues(noisy, probs)
    assert set(flipped) <= {i.index for i in issues}
    assert len(issues) <= 6
    by_index = {i.index: i for i in issues}
    assert [by_index[k].suggested for k in flipped] == [0, 1, 2]
    assert class_counts(noisy, ["a", "b", "c"]) == {"a": 30, "b": 30, "c": 30}


def test_audit_labels_finds_the_mislabelled_image_and_the_small_class(labelled, tmp_path):
    result = runner.invoke(app, ["audit", str(labelled), "--labels", "-m", "lenet5", "--format", "jsonl",
                                 "--cache", str(tmp_path / "cache"), "--fail-on", "label_issues"])
    assert result.exit_code == 1, result.output
    found = findings(result.stdout)
    assert "label_issues" in found["mislabelled_night.png"]
    wrong = [n for n, c in found.items() if "label_issues" in c and n.startswith(("sky_", "night_"))]
    assert len(wrong) <= 2
    recs = records(result.stdout)
    issue = next(r for r in recs if r["check"] == "label_issues" and r["path"].endswith("mislabelled_night.png"))
    assert (issue["label"], issue["suggested_label"]) == ("sky", "night") and 0 <= issue["score"] < 0.5
    imbalance = [r for r in recs if r["check"] == "class_imbalance"]
    assert [os.path.basename(r["path"]) for r in imbalance] == ["rare"] and imbalance[0]["count"] == 2
    summary = recs[-1]
    assert summary["classes"] == {"night": 22, "rare": 2, "sky": 23}
    assert summary["thresholds"]["class_imbalance"] == 0.1
    # the embeddings are cached: a second run measures nothing and finds the same
    again = runner.invoke(app, ["audit", str(labelled), "--labels", "-m", "lenet5", "--format", "jsonl",
                                "--cache", str(tmp_path / "cache")])
    assert records(again.stdout)[-1]["measured"] == 0
    assert [r for r in records(again.stdout) if r["check"] == "label_issues"] == \
        [r for r in recs if r["check"] == "label_issues"]


def test_cnn_near_duplicates_from_a_registry_model(planted):
    result = runner.invoke(app, ["audit", str(planted), "--dedup", "cnn", "-m", "lenet5", "--min-similarity", "0.999",
                                 "--checks", "near_duplicates", "--format", "jsonl", "--no-cache"])
    recs = [r for r in records(result.stdout) if r["check"] == "near_duplicates"]
    names = {os.path.basename(r["path"]) for r in recs}
    assert {"clean_c.png", "near_of_c.jpg"} <= names
    assert not names & {"uniform_black.png", "uniform_white.png", "lowinfo.png"}
    assert all(0 <= r["score"] <= r["threshold"] == pytest.approx(0.001) for r in recs)
    assert records(result.stdout)[-1]["thresholds"]["min_similarity"] == 0.999


def test_embeddings_are_what_the_head_receives():
    import torch

    from cnntool.models.embed import Embedder, embed_images, load_embedding_model

    loaded = load_embedding_model("lenet5", seed=0)
    images = [np.full((40, 40), v, np.uint8) for v in (0, 128, 255)]
    features = embed_images(images, loaded, batch_size=2)
    assert features.shape == (3, 84) and features.dtype == np.float32
    embedder = Embedder(loaded)
    x = np.stack([embedder.prepare(im) for im in images])
    with torch.no_grad():
        expected = loaded.model[:11](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-6)
    embedder.close()
    again = embed_images(images, load_embedding_model("lenet5", seed=0))
    np.testing.assert_allclose(features, again, atol=1e-6)  # seeded random init: reproducible
    assert not np.array_equal(features, embed_images(images, load_embedding_model("lenet5", seed=1)))


def test_embeddings_pool_a_convolutional_head():
    import torch.nn as nn

    from cnntool.data.preprocessing import Preprocessing
    from cnntool.models.embed import embed_images
    from cnntool.models.registry import ModelEntry

    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 2, 1))
    preprocessing = Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3)
    entry = ModelEntry(name="tiny", task="classification", builder=lambda **k: model, family="t",
                       preprocessing=preprocessing, num_classes=2, head="2", cam_layer="0", first_conv="0",
                       reference_params=0)

    class Loaded:
        pass

    loaded = Loaded()
    loaded.model, loaded.entry, loaded.preprocessing = model, entry, preprocessing
    features = embed_images([np.zeros((20, 20, 3), np.uint8)], loaded)
    assert features.shape == (1, 5)


def test_unknown_models_are_usage_errors_before_any_work(labelled, tmp_path):
    for model, message in (("lenet6", "unknown model"), (str(tmp_path / "nope.pt"), "not found")):
        result = runner.invoke(app, ["audit", str(labelled), "--labels", "-m", model, "--no-cache"])
        assert result.exit_code == 2 and message in result.output, result.output


def test_model_identity_names_the_weights(tmp_path):
    from cnntool.models.loading import model_identity

    assert model_identity("lenet5", seed=1) != model_identity("lenet5", seed=2)
    assert model_identity("resnet18:IMAGENET1K_V1") == "resnet18:IMAGENET1K_V1"
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert model_identity(str(a)).startswith("ckpt-") and model_identity(str(a)) != model_identity(str(b))


def test_embeddings_from_a_checkpoint(labelled, tmp_path):
    from cnntool.data.preprocessing import Preprocessing
    from cnntool.models.checkpoint import make_checkpoint, save_checkpoint
    from cnntool.models.classic import lenet5

    path = tmp_path / "digits.pt"
    save_checkpoint(path, make_checkpoint(lenet5(num_classes=3, in_channels=1), arch="lenet5", task="classification",
                                          classes=["night", "rare", "sky"],
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    args = ["audit", str(labelled), "--labels", "-m", str(path), "--format", "jsonl", "--cache", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "label_issues" in findings(result.stdout)["mislabelled_night.png"]
    assert records(result.stdout)[-1]["measured"] == 47
    path.write_bytes(path.read_bytes())  # same weights, same identity: the cache still serves
    assert records(runner.invoke(app, args).stdout)[-1]["measured"] == 0
