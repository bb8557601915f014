"""Every registry entry against the schema: builds, parameter counts, layer names, weights.

Models are built on the meta device (shapes only), so VGG-16 costs nothing.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnntool.data.preprocessing import Preprocessing
from cnntool.errors import MissingWeightsError, UnknownModelError
from cnntool.models.registry import TASKS, ModelEntry, get_entry, list_models, register
from cnntool.models.summary import count_parameters, meta_model
from cnntool.models.surgery import get_layer

NAMES = [entry.name for entry in list_models()]
CLASSIFIERS = [entry.name for entry in list_models("classification")]
TORCHVISION = [entry.name for entry in list_models("classification") if entry.torchvision_name]
OTHER_TASKS = [entry.name for entry in list_models() if entry.task != "classification"]

#: What the issue asks the registry to carry.
REQUIRED = {
    "lenet5", "alexnet", "vgg16", "googlenet", "resnet18", "resnet34", "resnet50", "densenet121",
    "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "xception_small", "simple_cnn",
}


def meta_forward(model, input_size):
    model.eval()
    with torch.no_grad():
        return model(torch.zeros((1, *input_size), device="meta"))


def test_registry_has_the_lecture_classics():
    assert REQUIRED <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_fields_are_well_formed(name):
    entry = get_entry(name)
    assert entry.task in TASKS
    assert entry.name == name == name.lower()
    from cnntool.models.tasks import TASK_INFO

    assert len(entry.input_size) == TASK_INFO[entry.task].input_dims
    assert all(isinstance(n, int) and n > 0 for n in entry.input_size)
    assert len(entry.preprocessing.mean) == len(entry.preprocessing.std) == entry.input_size[0]
    assert all(s > 0 for s in entry.preprocessing.std)
    assert entry.num_classes > 0
    assert entry.description and entry.family
    assert entry.preprocessing.interpolation in ("bilinear", "bicubic", "nearest")
    if entry.weights:
        assert entry.default_weights in entry.weights
    else:
        assert entry.default_weights is None


@pytest.mark.parametrize("name", NAMES)
def test_entry_builds_with_published_parameter_count(name):
    entry = get_entry(name)
    model = meta_model(entry)
    total, trainable = count_parameters(model)
    assert entry.reference_params is not None, "every entry pins its parameter count"
    assert total == trainable == entry.reference_params


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_entry_layer_names_resolve(name):
    entry = get_entry(name)
    model = meta_model(entry)
    first = get_layer(model, entry.first_conv)
    assert isinstance(first, (nn.Conv2d, nn.Conv3d))
    assert first.in_channels == entry.input_size[0]
    assert isinstance(get_layer(model, entry.cam_layer), nn.Module)
    head = get_layer(model, entry.head)
    assert isinstance(head, (nn.Linear, nn.Conv2d))
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == entry.num_classes


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_cam_layer_gives_the_last_spatial_feature_map(name):
    """The CAM layer's output is spatial, and no convolution after it makes a spatial map."""
    entry = get_entry(name)
    model = meta_model(entry)
    cam = get_layer(model, entry.cam_layer)
    finished = []  # (module, output shape) in the order modules finish

    def record(module, args, output):
        if isinstance(output, torch.Tensor):
            finished.append((module, tuple(output.shape)))

    for module in model.modules():
        module.register_forward_hook(record)
    meta_forward(model, entry.input_size)
    position = next(i for i, (module, _) in enumerate(finished) if module is cam)
    _, _, height, width = finished[position][1]
    assert height > 1 and width > 1, "a CAM layer must keep spatial extent"
    later_maps = [shape for module, shape in finished[position + 1:]
                  if isinstance(module, nn.Conv2d) and shape[2] * shape[3] > 1]
    assert later_maps == []


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_forward_and_adaptation(name):
    entry = get_entry(name)
    assert tuple(meta_forward(meta_model(entry), entry.input_size).shape) == (1, entry.num_classes)
    assert tuple(meta_forward(meta_model(entry, num_classes=7), entry.input_size).shape) == (1, 7)
    gray = meta_model(entry, in_channels=1)
    assert get_layer(gray, entry.first_conv).in_channels == 1
    assert tuple(meta_forward(gray, (1, *entry.input_size[1:])).shape) == (1, entry.num_classes)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_entry_matches_its_weights(name):
    from torchvision.models import get_model_weights

    entry = get_entry(name)
    enum = get_model_weights(entry.torchvision_name)
    members = {member.name for member in enum}
    assert set(entry.weights) <= members
    default = enum[entry.default_weights]
    assert default.meta["num_params"] == entry.reference_params
    assert len(default.meta["categories"]) == entry.num_classes
    transform = default.transforms()
    assert entry.input_size[1:] == (transform.crop_size[0], transform.crop_size[0])
    assert entry.preprocessing.resize_size == transform.resize_size[0]
    assert entry.preprocessing.interpolation == transform.interpolation.value
    if name != "googlenet":  # built without transform_input: normalised to 0.5/0.5 instead
        assert entry.preprocessing.mean == pytest.approx(tuple(transform.mean))
        assert entry.preprocessing.std == pytest.approx(tuple(transform.std))


@pytest.mark.parametrize("name", [n for n in OTHER_TASKS if get_entry(n).heads])
def test_heads_of_every_task_resize_for_new_classes(name):
    """Every class-sized layer an entry names exists and is resized by replace_heads."""
    from cnntool.models.surgery import replace_heads

    entry = get_entry(name)
    model = meta_model(entry)
    for head in entry.heads:
        get_layer(model, head)
    replace_heads(model, entry.heads, 4)
    for head in entry.heads:
        assert class_outputs(get_layer(model, head)) == 4, (name, head)


def class_outputs(layer) -> int:
    """How many classes a class-sized layer (a Linear/Conv layer or a torchvision head) gives."""
    for attr in ("out_features", "out_channels", "num_classes", "num_columns"):
        if isinstance(getattr(layer, attr, None), int):
            return getattr(layer, attr)
    if hasattr(layer, "cls_score"):        # Faster R-CNN's box predictor
        return layer.cls_score.out_features
    return layer.mask_fcn_logits.out_channels  # Mask R-CNN's mask predictor


@pytest.mark.parametrize("name", [n for n in OTHER_TASKS if get_entry(n).torchvision_name])
def test_task_entries_match_their_torchvision_weights(name):
    from torchvision.models import get_model_weights

    from cnntool.models.loading import pretrained_preprocessing

    entry = get_entry(name)
    member = get_model_weights(entry.torchvision_name)[entry.default_weights]
    # built without weights, a detector's backbone has trainable batch norm where the published
    # model's statistics are frozen (buffers): the published count lacks those affine parameters
    model = meta_model(entry)
    body = getattr(getattr(model, "backbone", None), "body", None)
    frozen = sum(p.numel() for m in (body.modules() if body is not None else ())
                 if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert member.meta["num_params"] in (entry.reference_params, entry.reference_params - frozen)
    categories = member.meta.get("categories")
    if categories:
        assert len(categories) == entry.num_classes
    transform = member.transforms()
    p = pretrained_preprocessing(entry, member)
    if getattr(transform, "crop_size", None):
        assert p.size == tuple(transform.crop_size)
    if getattr(transform, "resize_size", None):
        resize = transform.resize_size
        assert p.resize_size == (resize[0] if len(resize) == 1 else tuple(resize))
    if getattr(transform, "mean", None) and entry.task != "detection":
        assert p.mean == pytest.approx(tuple(transform.mean)) and p.std == pytest.approx(tuple(transform.std))


def test_expected_layer_names_for_known_families():
    assert (get_entry("resnet50").head, get_entry("resnet50").cam_layer) == ("fc", "layer4")
    assert (get_entry("vgg16").head, get_entry("vgg16").cam_layer) == ("classifier.6", "features")
    assert get_entry("mobilenet_v3_small").head == "classifier.3"
    assert get_entry("efficientnet_b0").head == "classifier.1"
    assert get_entry("efficientnet_b0").preprocessing.interpolation == "bicubic"
    assert get_entry("resnet50").default_weights == "IMAGENET1K_V2"


def test_googlenet_has_no_aux_heads_and_gives_a_tensor_in_training():
    model = meta_model(get_entry("googlenet"))
    assert model.aux1 is None and model.aux2 is None
    model.train()
    out = model(torch.zeros((2, 3, 224, 224), device="meta"))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 1000)


def test_googlenet_without_transform_input_equals_torchvision_pretrained_convention():
    """cnntool's 0.5/0.5 normalisation = torchvision's ImageNet normalisation + transform_input."""
    from torchvision.models import googlenet

    torch.manual_seed(0)
    # PyTorch's default init: torchvision's truncated-normal one takes seconds
    reference = googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True).eval()
    ours = get_entry("googlenet").build(init_weights=False).eval()
    ours.load_state_dict(reference.state_dict())
    pixels = torch.rand(1, 3, 96, 96)
    imagenet = (pixels - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    half = (pixels - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(ours(half), reference(imagenet), rtol=1e-4, atol=1e-4)


def test_weights_names_are_checked():
    entry = get_entry("resnet50")
    assert entry.torchvision_weights("default").name == "IMAGENET1K_V2"
    assert entry.torchvision_weights("imagenet1k_v1").name == "IMAGENET1K_V1"
    with pytest.raises(MissingWeightsError, match="no weights named"):
        entry.torchvision_weights("IMAGENET1K_V9")
    with pytest.raises(MissingWeightsError, match="no weights named"):
        get_entry("vgg16").torchvision_weights("IMAGENET1K_FEATURES")  # untrained classifier: not offered
    with pytest.raises(MissingWeightsError, match="no pretrained weights"):
        get_entry("lenet5").build(weights="DEFAULT")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as info:
        get_entry("resnet5")
    assert "resnet50" in info.value.hint
    assert get_entry("ResNet18").name == "resnet18"


def test_register_refuses_bad_entries():
    fields = dict(task="classification", builder="cnntool.models.classic:lenet5", family="lenet",
                  preprocessing=Preprocessing((1, 32, 32), (0.5,), (0.5,)), num_classes=10, head="11",
                  cam_layer="4", first_conv="0", reference_params=61_706)
    with pytest.raises(ValueError, match="already registered"):
        register(ModelEntry(name="lenet5", **fields))
    with pytest.raises(ValueError, match="lower case"):
        register(ModelEntry(name="LeNet", **fields))
    with pytest.raises(ValueError, match="task"):
        register(ModelEntry(name="lenet_bad_task", **{**fields, "task": "regression"}))


def test_normalization_follows_the_channel_count():
    p = get_entry("resnet18").preprocessing
    assert p.with_channels(3) is p
    gray = p.with_channels(1)
    assert gray.mean == pytest.approx((sum(p.mean) / 3,)) and gray.std == pytest.approx((sum(p.std) / 3,))
    assert gray.input_size == (1, 224, 224)
    rgb = get_entry("lenet5").preprocessing.with_channels(3)
    assert rgb.mean == (0.5, 0.5, 0.5) and rgb.std == (0.5, 0.5, 0.5)
