"""The detection training dataset: targets with the background offset, boxes that move with the
pixels, seeded augmentation, list batches and aspect-ratio grouping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnntool.data.boxes import BoxDataset, ImageLabels, load_boxes
from cnntool.data.detection import (
    DetectionAugment, DetectionDataset, GroupedBatchSampler, aspect_ratio_groups, detection_collate,
    make_detection_loader, split_boxes, write_shapes_detection,
)
from cnntool.errors import DatasetError

from .conftest import write_rgb

RED = (230, 20, 20)


def square_image(tmp_path, name, *, size=(48, 64), box=(8, 10, 24, 30)):
    """A grey image with one red rectangle; returns its ImageLabels (class 0)."""
    height, width = size
    image = np.full((height, width, 3), 90, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = RED
    path = write_rgb(tmp_path / name, image)
    return ImageLabels(str(path), name, width, height, [box], [0], image_id=len(name))


def red_fraction(image: torch.Tensor, box) -> float:
    """The share of the box's pixels that are (nearly) the rectangle's red."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    patch = image[:, y1:y2, x1:x2].permute(1, 2, 0).numpy().astype(int)
    return float((np.abs(patch - RED).max(axis=2) < 40).mean())


@pytest.fixture
def shapes(tmp_path):
    return load_boxes(write_shapes_detection(tmp_path, n_train=6, n_val=0, size=64, seed=3, ext=".png"), split="train")


def test_samples_are_uint8_images_with_offset_labels(shapes):
    ds = DetectionDataset(shapes, workers=1)
    assert ds.cached and len(ds) == 6 and ds.classes == ["circle", "square", "triangle"]
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 64, 64)
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        np.testing.assert_allclose(target["boxes"].numpy(), shapes.images[i].boxes)
        assert target["labels"].tolist() == (shapes.images[i].labels + 1).tolist()
        assert target["image_id"] == shapes.images[i].image_id


def test_grayscale_and_uncached(shapes):
    ds = DetectionDataset(shapes, channels=1, cache=False, workers=1,
                          augment=DetectionAugment(color=0.3, hue=0.1, zoom_out=1.0))
    image, target = ds[0]
    assert not ds.cached and image.shape[0] == 1 and image.shape[1] >= 64 and len(target["boxes"])


def test_crowd_regions_and_negatives(tmp_path):
    im = square_image(tmp_path, "a.png")
    crowd = ImageLabels(im.path, "a.png", im.width, im.height, [[8, 10, 24, 30], [30, 5, 40, 15]], [0, 0],
                        image_id=1, iscrowd=[0, 1])
    empty = ImageLabels(im.path, "b.png", im.width, im.height, np.zeros((0, 4)), [], image_id=2)
    data = BoxDataset(str(tmp_path), "coco", ["red"], [crowd, empty])
    flipped = DetectionDataset(data, workers=1, augment=DetectionAugment(hflip=1.0))
    assert flipped[0][1]["boxes"].tolist() == [[40, 10, 56, 30]]  # flipped, crowd region left out
    cropped = DetectionDataset(data, workers=1, augment=DetectionAugment(crop=1.0, zoom_out=1.0))
    image, target = cropped[1]  # a negative is never cropped (RandomIoUCrop needs a box)
    assert tuple(target["boxes"].shape) == (0, 4) and target["labels"].shape == (0,)
    assert image.shape[1] >= 48 and image.shape[2] >= 64


def test_images_whose_size_disagrees_with_the_labels_are_skipped(tmp_path):
    good = square_image(tmp_path, "a.png")
    bad = ImageLabels(good.path, "b.png", 100, 100, [[1, 1, 5, 5]], [0], image_id=9)
    ds = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], [good, bad]), workers=1)
    assert len(ds) == 1 and ds.skipped == [(good.path, "decoded as 64x48 pixels but its labels say 100x100")]
    with pytest.raises(DatasetError, match="no usable images"):
        DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], [bad]), workers=1)


@pytest.mark.parametrize("augment", [
    DetectionAugment(hflip=1.0),
    DetectionAugment(hflip=0.0, zoom_out=1.0, zoom_out_max=2.0),
    DetectionAugment(hflip=0.5, crop=1.0),
    DetectionAugment(hflip=0.5, zoom_out=0.5, crop=0.5, color=0.3, hue=0.02),
])
def test_boxes_move_with_the_pixels(tmp_path, augment):
    ds = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], [square_image(tmp_path, "a.png")]),
                          augment=augment, workers=1)
    seen_shapes = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        image, target = ds[0]
        seen_shapes.add(tuple(image.shape))
        assert image.dtype == torch.uint8 and target["labels"].tolist() == [1]
        (box,) = target["boxes"]
        assert 0 <= box[0] < box[2] <= image.shape[2] and 0 <= box[1] < box[3] <= image.shape[1]
        if augment.color == 0:
            assert red_fraction(image, box) > 0.85, (epoch, box)
    if augment.zoom_out or augment.crop:
        assert len(seen_shapes) > 1  # the geometry really changed


def test_hflip_mirrors_box_coordinates(tmp_path):
    ds = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], [square_image(tmp_path, "a.png")]),
                          augment=DetectionAugment(hflip=1.0), workers=1)
    image, target = ds[0]
    assert target["boxes"].tolist() == [[64 - 24, 10, 64 - 8, 30]]
    assert red_fraction(image, target["boxes"][0]) == 1.0


def test_augmentation_is_seeded_by_seed_epoch_and_index(shapes):
    augment = DetectionAugment(zoom_out=0.5, crop=0.5, color=0.2)
    a = DetectionDataset(shapes, augment=augment, seed=1, workers=1)
    b = DetectionDataset(shapes, augment=augment, seed=1, workers=1)
    torch.manual_seed(123)  # the global RNG does not matter
    for i in range(len(a)):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"])
    b.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))


def test_no_augmentation_returns_the_decoded_pixels(shapes):
    from cnntool.data.decode import decode_image

    ds = DetectionDataset(shapes, augment=DetectionAugment(hflip=0.0), workers=1)
    assert ds.augment is None
    assert np.array_equal(ds[2][0].permute(1, 2, 0).numpy(), decode_image(shapes.images[2].path))


def test_collate_keeps_lists():
    images, targets = detection_collate([(torch.zeros(3, 4, 5), {"a": 1}), (torch.zeros(3, 6, 2), {"a": 2})])
    assert [tuple(i.shape) for i in images] == [(3, 4, 5), (3, 6, 2)] and targets == [{"a": 1}, {"a": 2}]
    assert detection_collate([]) == ([], [])


def test_aspect_ratio_groups_follow_torchvision_bins():
    # k=3: bin edges 2 ** linspace(-1, 1, 7) = 0.5, 0.63, 0.79, 1, 1.26, 1.59, 2
    groups = aspect_ratio_groups([0.4, 0.6, 0.75, 0.9, 1.0, 1.2, 1.5, 1.9, 2.5], k=3)
    assert groups.tolist() == [0, 1, 2, 3, 4, 4, 5, 6, 7]


def test_grouped_batches_share_a_group_and_cover_every_sample_once():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 3, 50)
    order = rng.permutation(50).tolist()
    sampler = GroupedBatchSampler(order, groups, batch_size=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13
    assert sorted(i for b in batches for i in b) == list(range(50))
    full_groups = [b for b in batches if len({int(groups[i]) for i in b}) == 1]
    assert len(full_groups) >= 13 - 2  # only the leftovers at the end may mix groups
    assert len(list(GroupedBatchSampler(order, groups, batch_size=4, drop_last=True))) == 12


def test_loader_groups_mixed_aspect_ratios(tmp_path):
    images = [square_image(tmp_path, f"w{i}.png", size=(48, 64)) for i in range(4)]
    images += [square_image(tmp_path, f"t{i}.png", size=(64, 40), box=(4, 4, 20, 20)) for i in range(4)]
    ds = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], images), workers=1)
    loader = make_detection_loader(ds, batch_size=4, train=True, seed=0)
    loader.batch_sampler.set_epoch(0)
    shapes = [{tuple(im.shape) for im in batch_images} for batch_images, _ in loader]
    assert len(shapes) == 2 and all(len(s) == 1 for s in shapes)
    evaluation = list(make_detection_loader(ds, batch_size=3))
    assert [len(b[0]) for b in evaluation] == [3, 3, 2]
    assert [t["image_id"] for _, ts in evaluation for t in ts] == [im.image_id for im in images]


def test_split_boxes_is_seeded_and_disjoint(shapes):
    train, val = split_boxes(shapes, val_fraction=0.34, seed=7)
    again, _ = split_boxes(shapes, val_fraction=0.34, seed=7)
    ids = lambda d: [im.image_id for im in d.images]  # noqa: E731
    assert len(val) == 2 and len(train) == 4 and ids(train) == ids(again)
    assert sorted(ids(train) + ids(val)) == ids(shapes) and train.classes == shapes.classes
    assert len({tuple(ids(split_boxes(shapes, val_fraction=0.34, seed=s)[1])) for s in range(5)}) > 1
    with pytest.raises(DatasetError, match="too few"):
        split_boxes(shapes.subset([0]), val_fraction=0.5)


def test_crop_scale_and_ratio_reach_the_iou_crop(tmp_path):
    """``crop_scale`` is a fraction of the area (each side between its square roots) and
    ``crop_ratio`` the crop's width / height: RandomIoUCrop's parameters, and the crops made."""
    _, crop = DetectionAugment(crop=1.0, crop_scale=(0.25, 0.64), crop_ratio=(0.8, 1.25)).transforms()
    (iou,) = crop.transforms
    assert (iou.min_scale, iou.max_scale) == pytest.approx((0.5, 0.8))
    assert (iou.min_aspect_ratio, iou.max_aspect_ratio) == (0.8, 1.25)
    (default,) = DetectionAugment(crop=1.0).transforms()[1].transforms  # torchvision's own defaults
    assert (default.min_scale, default.max_scale, default.min_aspect_ratio, default.max_aspect_ratio) == \
        pytest.approx((0.3, 1.0, 0.5, 2.0))
    augment = DetectionAugment(hflip=0.0, crop=1.0, crop_scale=(0.25, 0.64), crop_ratio=(0.8, 1.25))
    square = square_image(tmp_path, "a.png", size=(60, 60))
    ds = DetectionDataset(BoxDataset(str(tmp_path), "coco", ["red"], [square]), augment=augment, workers=1)
    cropped = 0
    for epoch in range(16):
        ds.set_epoch(epoch)
        height, width = ds[0][0].shape[1:]
        if (height, width) != (60, 60):  # RandomIoUCrop may also keep the image whole
            cropped += 1
            assert 0.5 * 60 - 1 <= min(height, width) and max(height, width) <= 0.8 * 60
            assert 0.8 - 0.05 <= width / height <= 1.25 + 0.05
    assert cropped >= 4
    for bad in ({"crop_scale": (0.5, 0.2)}, {"crop_scale": (0.0, 1.0)}, {"crop_ratio": (2.0, 1.0)}):
        with pytest.raises(ValueError, match="crop_"):
            DetectionAugment(**bad)


def test_polygon_masks_load_as_the_pixels_they_enclose(tmp_path):
    """COCO polygons, validated by the label layer, are the training targets' masks (and move
    with the pixels); an object without a segmentation gets its box."""
    from cnntool.data.boxes import write_coco

    image = square_image(tmp_path / "images", "a.png", box=(2, 3, 12, 13))
    square, triangle = [[2, 3, 12, 3, 12, 13, 2, 13]], [[30, 5, 50, 5, 30, 25]]
    labelled = ImageLabels(image.path, "a.png", 64, 48, [[2, 3, 12, 13], [30, 5, 50, 25], [40, 30, 44, 40]], [0, 0, 0],
                           image_id=1, segmentation=[square, triangle, None])
    write_coco(BoxDataset(str(tmp_path), "coco", ["red"], [labelled]), tmp_path, copy_images=False)
    data = load_boxes(tmp_path)
    assert data.skipped == [] and data.images[0].segmentation == [square, triangle, None]
    _, target = DetectionDataset(data, masks=True, workers=1)[0]
    masks = target["masks"].numpy()
    assert masks.shape == (3, 48, 64) and masks.dtype == np.uint8
    expected = np.zeros((48, 64), np.uint8)
    expected[3:13, 2:12] = 1  # rows 3-12, columns 2-11
    np.testing.assert_array_equal(masks[0], expected)
    ys, xs = np.nonzero(masks[1])  # the right triangle: below its diagonal, inside its box
    assert 180 <= masks[1].sum() <= 220 and xs.min() >= 30 and xs.max() < 50 and ys.min() >= 5 and ys.max() < 25
    assert ((xs - 30) + (ys - 5) <= 21).all()
    assert masks[2].sum() == 40 and masks[2, 30:40, 40:44].all()  # no segmentation: the box
    _, flipped = DetectionDataset(data, masks=True, workers=1, augment=DetectionAugment(hflip=1.0))[0]
    np.testing.assert_array_equal(flipped["masks"].numpy(), masks[:, :, ::-1])
