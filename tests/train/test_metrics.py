"""Metrics against scikit-learn, and the learning-rate schedule and config defaults."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion, precision_recall_fscore_support

from cnntool.errors import UsageError
from cnntool.train.optim import lr_factor
from cnntool.train.runner import next_run_dir
from cnntool.train.config import TrainConfig, parse_freeze
from cnntool.metrics.classification import classification_report, confusion_matrix


def test_confusion_and_report_match_scikit_learn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    y_pred[y_pred == 3] = 2  # class 3 is never predicted: precision 0/0 -> 0
    conf = confusion_matrix(y_true, y_pred, num_classes=4)
    assert np.array_equal(conf, sk_confusion(y_true, y_pred, labels=range(4)))
    report = classification_report(conf, ["a", "b", "c", "d"])
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for i, name in enumerate("abcd"):
        assert report["per_class"][name]["precision"] == pytest.approx(p[i])
        assert report["per_class"][name]["recall"] == pytest.approx(r[i])
        assert report["per_class"][name]["f1"] == pytest.approx(f[i])
        assert report["per_class"][name]["support"] == s[i]
    assert report["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert report["macro_f1"] == pytest.approx(f.mean())


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = [lr_factor(s, total_steps=100, warmup_steps=10, schedule="cosine") for s in range(101)]
    assert f[0] == pytest.approx(0.01) and f[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:10], f[1:11]))
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[100] == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(70, total_steps=100, warmup_steps=10, schedule="constant") == 1.0


def test_config_defaults_resolve_per_dataset():
    small = TrainConfig(data="d", arch="lenet5").resolve(train_size=1437)
    assert (small.epochs, small.batch_size, small.lr, small.weight_decay) == (60, 64, 0.05, 5e-4)
    tiny = TrainConfig(data="d", arch="lenet5").resolve(train_size=150)
    assert (tiny.epochs, tiny.batch_size, tiny.lr) == (60, 16, pytest.approx(0.0125))
    big = TrainConfig(data="d", arch="lenet5", batch_size=128).resolve(train_size=1_000_000)
    assert big.epochs == 10 and big.lr == pytest.approx(0.1)
    tune = TrainConfig(data="d", init_from="x.pt", optimizer="adamw").resolve(train_size=100)
    assert tune.lr == 1e-4 and tune.weight_decay == 0.05
    assert TrainConfig.from_dict(small.to_dict()) == small


def test_config_refuses_bad_values():
    with pytest.raises(UsageError, match="--optimizer"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(UsageError, match="--val-split"):
        TrainConfig(val_split=1.5).validate()
    with pytest.raises(UsageError, match="--freeze"):
        parse_freeze("half")
    assert parse_freeze("3") == 3


def test_next_run_dir_counts_up(tmp_path):
    (tmp_path / "lenet5-1").mkdir()
    assert next_run_dir("lenet5", root=str(tmp_path)).name == "lenet5-2"
