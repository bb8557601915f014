"""Checkpoints: a faithful round trip, and clear refusals of anything else, never running its code."""

from __future__ import annotations

import os

import pytest
import torch

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import CheckpointError
from cnntool.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from cnntool.models.loading import load
from cnntool.models.registry import get_entry

CLASSES = ["cat", "dog", "fox"]
CONFIG = {"epochs": 3, "lr": 0.01, "augment": ["flip"]}
METRICS = {"val_acc": 0.75, "val_loss": 0.61}


def trained_like(name: str, num_classes: int = len(CLASSES), in_channels: int | None = None):
    """A model whose weights and batch-norm statistics differ from a fresh build."""
    torch.manual_seed(1)
    entry = get_entry(name)
    model = entry.build(num_classes=num_classes, in_channels=in_channels)
    channels = in_channels or entry.input_size[0]
    model.train()
    with torch.no_grad():
        size = [min(n, 32) for n in entry.input_size[1:]]
        model(torch.randn(2, channels, *size) * 2 + 1)  # moves running stats
    return model.eval()


def write_checkpoint(path, name="simple_cnn", *, task="classification", in_channels=None, **fields):
    entry = get_entry(name)
    model = trained_like(name, in_channels=in_channels)
    channels = in_channels or entry.input_size[0]
    ckpt = make_checkpoint(
        model, arch=name, task=task, classes=CLASSES, preprocessing=Preprocessing((channels, *entry.input_size[1:]), (0.5,) * channels, (0.25,) * channels),
        config=CONFIG,
        metrics=METRICS, epoch=3, **fields,
    )
    save_checkpoint(path, ckpt)
    return model


@pytest.mark.parametrize("name", ["simple_cnn", "xception_small", "lenet5"])
def test_round_trip_gives_the_same_model(tmp_path, name):
    path = tmp_path / "best.pt"
    model = write_checkpoint(path, name)
    loaded = load(str(path))
    size = get_entry(name).input_size
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    assert loaded.source == "checkpoint" and loaded.weights == str(path)
    assert loaded.task == "classification" and loaded.entry.name == name
    assert loaded.classes == CLASSES
    assert loaded.input_size == size
    assert loaded.mean == (0.5,) * size[0] and loaded.std == (0.25,) * size[0]
    assert loaded.checkpoint["config"] == CONFIG and loaded.checkpoint["metrics"] == METRICS
    assert loaded.checkpoint["epoch"] == 3 and "state_dict" not in loaded.checkpoint
    assert not loaded.model.training
    assert all(p.requires_grad for p in loaded.model.parameters())  # ready to fine-tune
    assert not any(t.is_meta for t in loaded.model.state_dict().values())


def test_round_trip_keeps_changed_input_channels(tmp_path):
    path = tmp_path / "gray.pt"
    model = write_checkpoint(path, "simple_cnn", in_channels=1)
    loaded = load(str(path))
    assert loaded.input_size == (1, 64, 64)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


def test_checkpoint_with_new_head_on_load(tmp_path):
    path = tmp_path / "best.pt"
    model = write_checkpoint(path)
    loaded = load(str(path), num_classes=5)
    assert loaded.model.fc.out_features == 5
    assert loaded.classes == [f"class_{i}" for i in range(5)]
    torch.testing.assert_close(loaded.model.features[0][0].weight, model.features[0][0].weight)


def test_torchvision_checkpoint_round_trip(tmp_path):
    path = tmp_path / "r18.pt"
    model = write_checkpoint(path, "resnet18")
    loaded = load(str(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


def write_marker(path):
    """What unpickling the payload below would do: leave a file behind."""
    with open(path, "w") as f:
        f.write("code ran")


class Payload:
    """An object whose unpickling calls :func:`write_marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (write_marker, (self.marker,))


def test_file_that_needs_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    # a well-formed cnntool checkpoint, except for one object that needs code to load
    ckpt = make_checkpoint(torch.nn.Linear(2, 2), arch="lenet5", task="classification", classes=CLASSES,
                           preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,)))
    ckpt["config"] = {"callback": Payload(marker)}
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="would run code") as info:
        load_checkpoint(path)
    assert "write_marker" in info.value.message
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load(str(path))
    assert not marker.exists()
    # the payload is live: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="would run code"):
        load_checkpoint(path)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "best.pt"
    write_checkpoint(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"hello\n", b"\x80\x02}q\x00."])
def test_foreign_bytes_are_refused(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a cnntool checkpoint"):
        load_checkpoint(path)


def test_plain_state_dict_is_refused(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(get_entry("lenet5").build().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a cnntool checkpoint .a plain state_dict."):
        load_checkpoint(path)


def test_other_task_is_refused(tmp_path):
    path = tmp_path / "best.pt"
    write_checkpoint(path)
    with pytest.raises(CheckpointError, match="is a classification model; this command needs a detection model"):
        load(str(path), task="detection")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load(str(tmp_path / "nope.pt"))


def test_unknown_architecture_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "best.pt"
    model = trained_like("lenet5")
    save_checkpoint(path, make_checkpoint(model, arch="lenet7", task="classification", classes=CLASSES,
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    with pytest.raises(CheckpointError, match="lenet7") as info:
        load(str(path))
    assert "lenet5" in info.value.hint


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "best.pt"
    model = trained_like("lenet5", num_classes=10)
    # the classes say 3, the head has 10 outputs
    save_checkpoint(path, make_checkpoint(model, arch="lenet5", task="classification", classes=CLASSES,
                                          preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,))))
    with pytest.raises(CheckpointError, match="weights do not fit lenet5"):
        load(str(path))


def test_malformed_fields_are_refused(tmp_path):
    path = tmp_path / "best.pt"
    ckpt = make_checkpoint(trained_like("lenet5"), arch="lenet5", task="classification", classes=CLASSES,
                           preprocessing=Preprocessing((1, 32, 32), (0.5, 0.5, 0.5), (0.5,)))
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="mean must be a list of numbers, one per input channel"):
        load_checkpoint(path)
    del ckpt["classes"]
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="lacks classes"):
        load_checkpoint(path)


def test_save_is_atomic_and_plain(tmp_path):
    path = tmp_path / "best.pt"
    write_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "cnntool.checkpoint" and ckpt["arch"] == "simple_cnn"
    assert ckpt["preprocessing"]["input_size"] == [3, 64, 64] and ckpt["classes"] == CLASSES
