"""timm as a registry source: entries from timm's configs; pretrained weights from the local
Hugging Face cache only; checkpoints, Grad-CAM, fine-tuning and the CLI as for torchvision entries.

The "pretrained weights" are random tensors of the right shapes, written in the Hugging Face
cache layout under a temporary ``HF_HUB_CACHE``; every way out to the network is blocked and
recorded. Models are timm's test architectures (``test_resnet``: 0.47 M parameters) and
``resnet10t`` (5.4 M, which a checkpoint rebuilds on the meta device).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnntool.cli.main import app
from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import MissingWeightsError, UnknownModelError
from cnntool.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from cnntool.models.loading import load
from cnntool.models.registry import get_entry
from cnntool.models.summary import count_parameters, meta_model
from cnntool.models.surgery import get_layer, replace_heads
from cnntool.models.timm_source import TimmEntry, timm_entry

REPO = "timm/test_resnet.r160_in1k"
COMMIT = "4f2c5e0d9b8a7c6e5f4d3c2b1a0f9e8d7c6b5a49"
PHOTO = Path(__file__).resolve().parents[2] / "samples" / "photos" / "coffee.jpg"


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def hf_cache(tmp_path, monkeypatch, no_network):
    """An empty Hugging Face hub cache (``HF_HUB_CACHE``); downloads and sockets refused and recorded."""
    import huggingface_hub
    import huggingface_hub.file_download
    import timm.models._hub

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    def refuse(*args, **kwargs):
        no_network.append(f"hub:{args[:2]}")
        raise OSError("network blocked by the test")

    def refuse_connect(sock, address, *args):
        no_network.append(f"socket:{address}")
        raise OSError("network blocked by the test")

    for module in (huggingface_hub, huggingface_hub.file_download, timm.models._hub):
        monkeypatch.setattr(module, "hf_hub_download", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return cache


def random_state(arch: str, seed: int = 0) -> dict:
    """A timm architecture's state dict with seeded random weights (contiguous, unshared: safetensors-ready)."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def resnet_state():
    return random_state("test_resnet")


def put_in_cache(cache, repo: str, state: dict, *, filename: str = "model.safetensors", commit: str = COMMIT):
    """The HF cache layout huggingface_hub writes: blobs/<sha>, snapshots/<commit>/<file> -> blob, refs/main."""
    import hashlib

    from safetensors.torch import save_file

    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    staging = folder / "blobs" / "staging"
    if filename.endswith(".safetensors"):
        save_file(state, str(staging))
    else:
        torch.save(state, staging)
    blob = folder / "blobs" / hashlib.sha256(staging.read_bytes()).hexdigest()
    staging.rename(blob)
    snapshot = folder / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(f"../../blobs/{blob.name}")
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def cached_resnet(hf_cache, resnet_state):
    put_in_cache(hf_cache, REPO, resnet_state)
    return resnet_state


# --- entries -------------------------------------------------------------------------------------

def test_entry_comes_from_timms_pretrained_config():
    entry = get_entry("timm/test_resnet")
    assert isinstance(entry, TimmEntry) and get_entry("timm/Test_ResNet") is entry
    assert (entry.name, entry.task, entry.family) == ("timm/test_resnet", "classification", "resnet")
    assert (entry.head, entry.extra_heads, entry.cam_layer, entry.first_conv) == ("fc", (), "layer4", "conv1.0")
    assert entry.weights == ("r160_in1k",) and entry.default_weights == "r160_in1k"
    assert entry.num_classes == 1000
    # crop_pct 0.95 at 160 px: the shorter side to floor(160 / 0.95) = 168, then the centre 160
    assert entry.preprocessing == Preprocessing((3, 160, 160), (0.5,) * 3, (0.5,) * 3, resize_mode="crop",
                                                resize_size=168, interpolation="bilinear")


def test_preprocessing_matches_timms_own_eval_transform():
    import timm
    from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize

    model = timm.create_model("test_resnet", pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    steps = {type(t): t for t in timm.data.create_transform(**config, is_training=False).transforms}
    p = get_entry("timm/test_resnet").preprocessing
    assert steps[Resize].size == p.resize_size and steps[Resize].interpolation == InterpolationMode(p.interpolation)
    assert tuple(steps[CenterCrop].size) == p.size
    assert tuple(steps[Normalize].mean.tolist()) == pytest.approx(p.mean)
    assert tuple(steps[Normalize].std.tolist()) == pytest.approx(p.std)


def test_reference_params_and_layers_match_a_real_build():
    entry = get_entry("timm/test_resnet")
    model = entry.build().eval()
    assert count_parameters(model) == (entry.reference_params, entry.reference_params) == (469_688, 469_688)
    first = get_layer(model, entry.first_conv)
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    head = get_layer(model, entry.head)
    assert isinstance(head, nn.Linear) and head.out_features == entry.num_classes


@pytest.mark.parametrize("arch", ["test_resnet", "test_efficientnet", "test_convnext", "resnet10t",
                                  "mobilenetv3_small_050", "bat_resnext26ts", "hrnet_w18_small"])
def test_cam_layer_is_the_last_spatial_feature_map(arch):
    """Its output is (1, C, h, w) with h * w > 1, and no module finishing after it makes a spatial map."""
    entry = get_entry(f"timm/{arch}")
    model = meta_model(entry).eval()
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: order.append((name, tuple(o.shape)))
                                     if torch.is_tensor(o) else None)
             for name, m in model.named_modules() if name and not isinstance(m, nn.Identity)]
    with torch.no_grad():
        model(torch.zeros((1, *entry.input_size), device="meta"))
    for hook in hooks:
        hook.remove()
    names = [name for name, _ in order]
    position = len(names) - 1 - names[::-1].index(entry.cam_layer)
    shape = order[position][1]
    assert len(shape) == 4 and shape[2] * shape[3] > 1
    later = [name for name, s in order[position + 1:] if len(s) == 4 and s[2] * s[3] > 1]
    assert later == []


def test_cam_layers_after_the_last_stage():
    # timm's feature_info ends at blocks.6 (320 channels); conv_head + bn2 (1280) still make a 7x7 map
    assert get_entry("timm/efficientnet_b0").cam_layer == "bn2"
    # HRNet's last stage returns a list of maps; its head merges them into one
    assert get_entry("timm/hrnet_w18_small").cam_layer == "final_layer"
    # ByobNet's final_conv is an Identity: the map is named after the stages that made it
    assert get_entry("timm/bat_resnext26ts").cam_layer == "stages"


@pytest.mark.parametrize("arch", ["test_vit", "swin_tiny_patch4_window7_224"])
def test_token_and_nhwc_models_have_no_default_cam_layer(arch):
    entry = get_entry(f"timm/{arch}")
    assert entry.cam_layer is None and entry.head is not None


def test_two_classifiers_become_head_and_extra_head():
    entry = get_entry("timm/deit_tiny_distilled_patch16_224")
    assert entry.heads == ("head", "head_dist")
    model = meta_model(entry)
    replace_heads(model, entry.heads, 4)
    assert model.head.out_features == model.head_dist.out_features == 4


def test_weights_carry_their_own_preprocessing():
    entry = get_entry("timm/efficientnet_b0")
    assert entry.weights[:2] == ("ra_in1k", "ra4_e3600_r224_in1k") and entry.default_weights == "ra_in1k"
    assert entry.torchvision_weights("default").name == "ra_in1k"
    other = entry.torchvision_weights("RA4_E3600_R224_IN1K")  # tags in any case
    assert other.name == "ra4_e3600_r224_in1k"
    assert other.preprocessing.mean == (0.5, 0.5, 0.5) != entry.preprocessing.mean
    assert other.preprocessing.resize_size == 248  # floor(224 / 0.9)
    from cnntool.models.loading import pretrained_preprocessing

    assert pretrained_preprocessing(entry, other) == other.preprocessing


def test_unknown_tag_lists_the_available_ones():
    with pytest.raises(MissingWeightsError, match="no weights named 'fb_in1k'") as info:
        get_entry("timm/test_resnet").torchvision_weights("fb_in1k")
    assert info.value.hint == "available: DEFAULT, r160_in1k"


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UnknownModelError) as info:
        get_entry("timm/test_resnt")
    assert "timm/test_resnet" in info.value.hint
    with pytest.raises(UnknownModelError) as info:
        load("timm/test_resnet.r160_in1k")
    assert info.value.hint == "weights follow a colon: timm/test_resnet:r160_in1k"


def test_architecture_without_weights():
    entry = timm_entry("ghostnet_050")  # timm lists only an 'untrained' config for it
    assert entry.weights == () and entry.default_weights is None
    with pytest.raises(MissingWeightsError, match="no pretrained weights"):
        load("timm/ghostnet_050:DEFAULT")


# --- random and pretrained weights ------------------------------------------------------------------

def test_random_weights_need_no_cache(hf_cache, no_network):
    loaded = load("timm/test_resnet", num_classes=3)
    assert loaded.random_weights and loaded.classes == ["class_0", "class_1", "class_2"]
    assert loaded.model.fc.out_features == 3 and loaded.preprocessing == loaded.entry.preprocessing
    assert no_network == []


def test_pretrained_loads_offline_from_the_hf_cache(cached_resnet, no_network):
    loaded = load("timm/test_resnet:DEFAULT")
    assert no_network == []
    assert loaded.source == "pretrained" and loaded.weights == "r160_in1k"
    assert len(loaded.classes) == 1000 and loaded.classes[:2] == ["tench", "goldfish"]
    assert loaded.preprocessing == get_entry("timm/test_resnet").preprocessing
    assert not loaded.model.training
    torch.testing.assert_close(loaded.model.fc.weight, cached_resnet["fc.weight"])
    torch.testing.assert_close(loaded.model.layer3[0].conv1.weight, cached_resnet["layer3.0.conv1.weight"])


def test_pretrained_with_new_head_and_one_channel_keeps_the_backbone(cached_resnet):
    model = get_entry("timm/test_resnet").build(weights="r160_in1k", num_classes=5, in_channels=1)
    assert model.fc.out_features == 5 and model.conv1[0].in_channels == 1
    # timm's rule for one channel: the RGB kernels summed, as a gray image seen as equal R, G, B
    torch.testing.assert_close(model.conv1[0].weight, cached_resnet["conv1.0.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[0].conv2.weight, cached_resnet["layer4.0.conv2.weight"])
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 5)


def test_a_pickled_state_dict_is_read_when_there_is_no_safetensors(hf_cache, resnet_state, no_network):
    put_in_cache(hf_cache, REPO, resnet_state, filename="pytorch_model.bin")
    loaded = load("timm/test_resnet:r160_in1k")
    torch.testing.assert_close(loaded.model.fc.bias, resnet_state["fc.bias"])
    assert no_network == []


def test_missing_weights_say_what_to_put_where_and_never_download(hf_cache, resnet_state, no_network):
    expected = hf_cache / "models--timm--test_resnet.r160_in1k" / "snapshots" / "main" / "model.safetensors"
    with pytest.raises(MissingWeightsError) as info:
        load("timm/test_resnet:DEFAULT")
    assert "timm/test_resnet:r160_in1k" in info.value.message and str(hf_cache) in info.value.message
    hint = info.value.hint
    assert str(expected) in hint
    assert "https://huggingface.co/timm/test_resnet.r160_in1k/resolve/main/model.safetensors" in hint
    assert "hf download timm/test_resnet.r160_in1k model.safetensors" in hint
    assert no_network == []  # nothing was even tried
    # the file put where the message says is found
    from safetensors.torch import save_file

    expected.parent.mkdir(parents=True)
    save_file(resnet_state, str(expected))
    loaded = load("timm/test_resnet:DEFAULT")
    torch.testing.assert_close(loaded.model.fc.weight, resnet_state["fc.weight"])
    assert no_network == []


def test_damaged_file_is_reported(hf_cache, no_network):
    path = put_in_cache(hf_cache, REPO, {"x": torch.zeros(1)})
    path.resolve().write_bytes(b"not a safetensors file")
    with pytest.raises(MissingWeightsError, match="damaged or does not fit") as info:
        load("timm/test_resnet:DEFAULT")
    assert REPO in info.value.hint and no_network == []


def test_weights_of_another_architecture_do_not_fit(hf_cache):
    put_in_cache(hf_cache, REPO, random_state("test_efficientnet"))
    with pytest.raises(MissingWeightsError, match="does not fit timm/test_resnet"):
        load("timm/test_resnet:DEFAULT")


def test_weights_only_at_a_url_come_from_torchs_cache(torch_home, hf_cache, no_network):
    """gcvit's weights are not on the hub: timm keeps them where torch's hub does."""
    entry = get_entry("timm/gcvit_xxtiny")
    path = torch_home / "hub" / "checkpoints" / "gcvit_xxtiny_224_nvidia-d1d86009.pth"
    with pytest.raises(MissingWeightsError) as info:
        load("timm/gcvit_xxtiny:in1k")
    assert str(path) in info.value.hint and entry.torchvision_weights("in1k").url in info.value.hint
    state = random_state("gcvit_xxtiny")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = load("timm/gcvit_xxtiny:in1k")
    torch.testing.assert_close(loaded.model.head.fc.weight, state["head.fc.weight"])
    assert no_network == []


@pytest.mark.slow
def test_weights_for_another_label_set_keep_their_backbone_and_get_the_entrys_head(hf_cache):
    """ImageNet-21k weights (21,843 classes) load strictly, then get a fresh head of the entry's 1,000."""
    state = random_state("vit_tiny_patch16_224.augreg_in21k")
    assert state["head.weight"].shape[0] == 21_843
    put_in_cache(hf_cache, "timm/vit_tiny_patch16_224.augreg_in21k", state)
    loaded = load("timm/vit_tiny_patch16_224:augreg_in21k")
    assert loaded.model.head.out_features == 1000 and loaded.classes[:2] == ["class_0", "class_1"]
    torch.testing.assert_close(loaded.model.blocks[5].attn.qkv.weight, state["blocks.5.attn.qkv.weight"])


# --- checkpoints, Grad-CAM, fine-tuning ------------------------------------------------------------

@pytest.mark.parametrize(("arch", "channels"), [("test_resnet", 1), ("resnet10t", 3)])
def test_checkpoint_round_trip(arch, channels, tmp_path):
    """resnet10t (5.4 M parameters) is rebuilt on the meta device and adopts the file's tensors."""
    entry = get_entry(f"timm/{arch}")
    torch.manual_seed(1)
    model = entry.build(num_classes=3, in_channels=channels).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint(model, arch=entry.name, task="classification", classes=["a", "b", "c"],
                                          preprocessing=entry.preprocessing.with_channels(channels)))
    loaded = load(str(path))
    assert loaded.source == "checkpoint" and loaded.entry is entry and loaded.classes == ["a", "b", "c"]
    assert loaded.preprocessing.channels == channels
    x = torch.randn(2, channels, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))


@pytest.mark.parametrize("arch", ["test_resnet", "test_efficientnet"])
def test_gradcam_at_the_cam_layer_equals_cam(arch):
    """The CAM layer feeds global average pooling and the Linear head: Grad-CAM's channel weights
    are then CAM's divided by h * w, so both give the same normalised heatmap."""
    from cnntool.infer.cam import compute_cams

    entry = get_entry(f"timm/{arch}")
    torch.manual_seed(0)
    model = entry.build(num_classes=4).eval()
    x = torch.randn(2, 3, 96, 96)
    grad = compute_cams(model, x, layer=entry.cam_layer, method="gradcam", targets=1)
    cam = compute_cams(model, x, layer=entry.cam_layer, method="cam", head=entry.head, targets=1)
    assert grad.heatmaps.shape == (2, 96, 96) and float(grad.heatmaps.max()) == pytest.approx(1.0)
    np.testing.assert_allclose(grad.heatmaps, cam.heatmaps, atol=1e-4)


def test_finetuning_replaces_the_head_and_keeps_the_backbone(cached_resnet):
    loaded = load("timm/test_resnet:DEFAULT")
    replace_heads(loaded.model, loaded.entry.heads, 2)
    assert loaded.model.fc.out_features == 2
    torch.testing.assert_close(loaded.model.conv1[0].weight, cached_resnet["conv1.0.weight"])
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


# --- the command line -----------------------------------------------------------------------------

def records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_models_info_describes_a_timm_entry_and_its_cache(runner, hf_cache, resnet_state):
    result = runner.invoke(app, ["models", "info", "timm/test_resnet", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    [record] = records(result.stdout)
    assert (record["name"], record["params"], record["head"], record["cam_layer"]) == \
        ("timm/test_resnet", 469_688, "fc", "layer4")
    assert record["weights"] == ["r160_in1k"] and record["weights_cached"] == []
    assert record["input_size"] == "3x160x160" and record["builder_kwargs"] == {"model_name": "test_resnet"}
    snapshot = put_in_cache(hf_cache, REPO, resnet_state)
    result = runner.invoke(app, ["models", "info", "timm/test_resnet:DEFAULT", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    [record] = records(result.stdout)
    assert record["weights_cached"] == ["r160_in1k"] and record["weights_name"] == "r160_in1k"
    assert record["cached"] is True and record["cache_path"] == str(snapshot)
    assert record["categories"] == 1000 and record["resize_size"] == 168 and record["mean"] == [0.5, 0.5, 0.5]


def test_models_info_of_an_unknown_timm_name_is_a_usage_error(runner):
    result = runner.invoke(app, ["models", "info", "timm/test_resnt"])
    assert result.exit_code == 2 and "timm/test_resnet" in result.stderr and "Traceback" not in result.output


def test_predict_and_explain_with_timm_weights(runner, cached_resnet, tmp_path, no_network):
    image = str(PHOTO)
    result = runner.invoke(app, ["predict", image, "-m", "timm/test_resnet:DEFAULT", "--topk", "2",
                                 "--format", "jsonl", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    [record] = records(result.stdout)
    from cnntool.models.timm_source import timm_weights

    names = timm_weights("test_resnet", "r160_in1k").meta["categories"]
    assert len(record["topk"]) == 2 and all(item["label"] in names for item in record["topk"])
    out = tmp_path / "cams"
    result = runner.invoke(app, ["explain", image, "-m", "timm/test_resnet:DEFAULT", "--method", "gradcam",
                                 "-o", str(out), "--format", "jsonl", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert {p.suffix for p in out.rglob("*") if p.is_file()} >= {".png", ".npy"}
    assert no_network == []


@pytest.mark.slow
def test_finetune_from_timm_weights(runner, cached_resnet, tmp_path):
    from cnntool.data.writers import write_image

    rng = np.random.default_rng(0)
    for label, value in (("dark", 40), ("light", 210)):
        for i in range(6):
            write_image(tmp_path / "data" / label / f"{i}.png",
                        np.clip(rng.normal(value, 20, (48, 48, 3)), 0, 255).astype(np.uint8))
    out = tmp_path / "run"
    result = runner.invoke(app, ["finetune", str(tmp_path / "data"), "--from", "timm/test_resnet:DEFAULT",
                                 "--freeze", "backbone", "--imgsz", "64", "--epochs", "1", "--batch-size", "4",
                                 "--val-split", "0.34", "-o", str(out), "--format", "jsonl", "--device", "cpu",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["arch"] == "timm/test_resnet" and ckpt["classes"] == ["dark", "light"]
    assert ckpt["preprocessing"]["input_size"] == [3, 64, 64] and ckpt["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    torch.testing.assert_close(ckpt["state_dict"]["layer2.0.conv1.weight"], cached_resnet["layer2.0.conv1.weight"])
    assert tuple(ckpt["state_dict"]["fc.weight"].shape) == (2, cached_resnet["fc.weight"].shape[1])
    loaded = load(str(out / "best.pt"))
    assert loaded.classes == ["dark", "light"] and loaded.model.fc.out_features == 2
