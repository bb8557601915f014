"""Segmentation data: index masks (palette, 16-bit, refused kinds), folder pairing, splits, class
names, every bad-pair message, the training dataset with joint augmentation, the synthetic writer."""

import hashlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cnntool.data.masks import (
    SegmentAugment, SegmentationDataset, check_mask, index_segmentation_folder, load_segmentation_folder,
    read_classes, read_mask, write_index_mask, write_shapes_segmentation,
)
from cnntool.errors import DatasetError, InputError


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_gray(path, gray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path)
    return path


def pair_folder(root, n=4, size=(12, 16), classes=3, ext=".jpg"):
    rng = np.random.default_rng(0)
    for i in range(n):
        write_rgb(root / "images" / f"im{i}{ext}", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        write_gray(root / "masks" / f"im{i}.png", rng.integers(0, classes, size, dtype=np.uint8))
    return root


# --- single masks ------------------------------------------------------------------------------

def test_write_and_read_back(tmp_path):
    mask = np.array([[0, 1, 2], [254, 255, 0]], np.uint8)
    write_index_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    assert Image.open(tmp_path / "m.png").mode == "L"
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # atomic: no temporary left
    with pytest.raises(ValueError, match="lossless"):
        write_index_mask(tmp_path / "m.jpg", mask)
    with pytest.raises(ValueError, match="0..255"):
        write_index_mask(tmp_path / "m.png", np.array([[0, 300]]))


def test_palette_png_is_read_as_its_indices(tmp_path):
    mask = np.array([[0, 1], [2, 255]], np.uint8)
    image = Image.frombytes("P", (2, 2), mask.tobytes())
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)  # VOC-like colours
    image.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "voc.png"), mask)
    # and the writer's palette option keeps indices too, while a viewer shows colours
    write_index_mask(tmp_path / "p.png", mask, palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), mask)
    assert np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))[0, 1].tolist() == [255, 0, 0]


def test_sixteen_bit_masks(tmp_path):
    ok = np.array([[0, 3], [255, 1]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "ok.png"), ok)
    np.testing.assert_array_equal(read_mask(tmp_path / "ok.png"), ok.astype(np.uint8))
    assert cv2.imwrite(str(tmp_path / "big.png"), np.array([[0, 300]], np.uint16))
    with pytest.raises(InputError, match="big.png: mask values reach 300"):
        read_mask(tmp_path / "big.png")


def test_refused_masks_name_the_file(tmp_path):
    write_rgb(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match=r"rgb.png: mask has 3 channels \(RGB\).*palette PNG is fine"):
        read_mask(tmp_path / "rgb.png")
    write_rgb(tmp_path / "lossy.jpg", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="lossy.jpg: JPG masks are lossy"):
        read_mask(tmp_path / "lossy.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="broken.png: cannot read mask"):
        read_mask(tmp_path / "broken.png")
    with pytest.raises(InputError, match="absent.png: mask not found"):
        read_mask(tmp_path / "absent.png")


def test_check_mask_size_and_range():
    mask = np.array([[0, 1, 255]], np.uint8)
    check_mask(mask, image_size=(1, 3), num_classes=2, path="m.png")  # 255 is allowed
    with pytest.raises(InputError, match="m.png: mask is 3x1 but a.jpg is 4x1"):
        check_mask(mask, image_size=(1, 4), num_classes=2, path="m.png", image_path="a.jpg")
    with pytest.raises(InputError, match="m.png: class id 1 out of range: 1 classes"):
        check_mask(mask, image_size=None, num_classes=1, path="m.png")


def test_read_classes(tmp_path):
    (tmp_path / "c.txt").write_text("background\ncat\ndog\n\n", encoding="utf-8")
    assert read_classes(tmp_path / "c.txt") == ["background", "cat", "dog"]
    (tmp_path / "blank.txt").write_text("a\n\nb\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2 is blank"):
        read_classes(tmp_path / "blank.txt")
    (tmp_path / "dup.txt").write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="'a' is listed twice"):
        read_classes(tmp_path / "dup.txt")


# --- folders -----------------------------------------------------------------------------------

def test_pairs_by_relative_path_and_stem(tmp_path):
    write_rgb(tmp_path / "images" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    write_rgb(tmp_path / "images" / "sub" / "b.png", np.zeros((4, 4, 3), np.uint8))
    write_rgb(tmp_path / "images" / "c.png", np.zeros((4, 4, 3), np.uint8))
    write_rgb(tmp_path / "images" / "d.png", np.zeros((4, 4, 3), np.uint8))
    write_gray(tmp_path / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    write_gray(tmp_path / "masks" / "sub" / "b.png", np.zeros((4, 4), np.uint8))
    write_rgb(tmp_path / "masks" / "d.jpg", np.zeros((4, 4, 3), np.uint8))
    write_gray(tmp_path / "masks" / "orphan.png", np.zeros((4, 4), np.uint8))
    index = index_segmentation_folder(tmp_path)
    assert [p.split("images/")[1] for p in index.images] == ["a.jpg", "sub/b.png"]
    assert [p.split("masks/")[1] for p in index.masks] == ["a.png", "sub/b.png"]
    reasons = dict(index.problems)
    assert reasons[str(tmp_path / "images" / "c.png")].endswith(f"no mask (expected {tmp_path / 'masks' / 'c.png'})")
    assert "d.jpg: JPG masks are lossy" in reasons[str(tmp_path / "images" / "d.png")]
    assert index.orphans == [str(tmp_path / "masks" / "orphan.png")]


def test_missing_folders_are_dataset_errors(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no masks/ folder"):
        index_segmentation_folder(tmp_path)
    with pytest.raises(DatasetError, match="dataset folder not found"):
        load_segmentation_folder(tmp_path / "nope")


def test_train_val_layout_and_classes_file(tmp_path):
    root = write_shapes_segmentation(tmp_path / "ds", n_train=5, n_val=3, size=24, seed=1)
    split = load_segmentation_folder(root)
    assert (len(split.train), len(split.val), split.test) == (5, 3, None)
    assert split.classes == ["background", "circle", "square", "triangle"] and split.classes_from == "classes.txt"
    given = load_segmentation_folder(root, classes=["bg", "a", "b", "c", "d"])
    assert given.classes_from == "given" and len(given.classes) == 5


def test_single_folder_split_is_seeded_and_disjoint(tmp_path):
    root = write_shapes_segmentation(tmp_path / "ds", n_train=20, n_val=0, size=16, seed=0)
    assert (root / "images").is_dir() and not (root / "train").exists()
    a = load_segmentation_folder(root, val_fraction=0.25, seed=3)
    b = load_segmentation_folder(root, val_fraction=0.25, seed=3)
    c = load_segmentation_folder(root, val_fraction=0.25, seed=4)
    assert (len(a.train), len(a.val)) == (15, 5)
    assert a.val.images == b.val.images and a.val.images != c.val.images
    assert not set(a.train.images) & set(a.val.images)
    assert load_segmentation_folder(root).val is None


def test_class_names_inferred_from_masks_without_classes_file(tmp_path):
    root = pair_folder(tmp_path, classes=3)
    write_gray(root / "masks" / "im0.png", np.full((12, 16), 5, np.uint8))
    split = load_segmentation_folder(root)
    assert split.classes == ["background", "class1", "class2", "class3", "class4", "class5"]
    assert split.classes_from == "masks"


# --- the dataset -------------------------------------------------------------------------------

def test_every_bad_pair_is_named(tmp_path):
    root = pair_folder(tmp_path, n=5, classes=3)
    write_gray(root / "masks" / "im1.png", np.zeros((10, 16), np.uint8))              # wrong size
    write_gray(root / "masks" / "im2.png", np.full((12, 16), 9, np.uint8))            # id out of range
    write_rgb(root / "masks" / "im3.png", np.zeros((12, 16, 3), np.uint8))            # RGB
    (root / "masks" / "im4.png").unlink()                                              # missing
    index = index_segmentation_folder(root)
    with pytest.raises(DatasetError) as info:
        SegmentationDataset(index.images, index.masks, ["a", "b", "c"], size=8, problems=index.problems)
    message = str(info.value)
    assert message.startswith("segmentation dataset: 4 bad image/mask pairs")
    assert f"{root / 'images' / 'im4.jpg'}: no mask (expected {root / 'masks' / 'im4.png'})" in message
    assert f"{root / 'masks' / 'im1.png'}: mask is 16x10 but {root / 'images' / 'im1.jpg'} is 16x12" in message
    assert f"{root / 'masks' / 'im2.png'}: class id 9 out of range: 3 classes" in message
    assert f"{root / 'masks' / 'im3.png'}: mask has 3 channels" in message
    skipping = SegmentationDataset(index.images, index.masks, ["a", "b", "c"], size=8, on_error="skip")
    assert len(skipping) == 1 and len(skipping.skipped) == 3
    assert "fix or remove these files" in info.value.hint


def test_unreadable_image_is_named(tmp_path):
    root = pair_folder(tmp_path, n=2)
    (root / "images" / "im1.jpg").write_bytes(b"\xff\xd8\xff garbage")
    index = index_segmentation_folder(root)
    with pytest.raises(DatasetError, match="im1.jpg"):
        SegmentationDataset(index.images, index.masks, ["a", "b", "c"], size=8)


@pytest.mark.parametrize("cache", [True, False])
def test_batches_resize_masks_with_nearest_neighbour(tmp_path, cache):
    root = pair_folder(tmp_path, n=3, size=(30, 40), classes=4, ext=".png")
    index = index_segmentation_folder(root)
    ds = SegmentationDataset(index.images, index.masks, ["a", "b", "c", "d"], size=(15, 25), cache=cache)
    assert ds.cached is cache
    images, masks = ds.__getitems__([2, 0])
    assert images.shape == (2, 3, 15, 25) and images.dtype == torch.uint8
    assert masks.shape == (2, 15, 25) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= {0, 1, 2, 3}  # no blended ids
    original = read_mask(index.masks[2])
    expected = cv2.resize(original, (25, 15), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(masks[0].numpy(), expected)
    image, mask = ds[1]
    assert image.shape == (3, 15, 25) and mask.shape == (15, 25)


def test_native_size_and_grayscale(tmp_path):
    root = pair_folder(tmp_path, n=2, size=(9, 11), ext=".png")
    index = index_segmentation_folder(root)
    ds = SegmentationDataset(index.images, index.masks, ["a", "b", "c"], size=None, channels=1)
    images, masks = ds.__getitems__([0, 1])
    assert images.shape == (2, 1, 9, 11) and masks.shape == (2, 9, 11)


def _coded_pairs(tmp_path, n=4, size=48):
    """Images whose first channel encodes the mask (class * 60), so that after augmentation an
    image pixel and a mask pixel agree when the geometry was shared."""
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(3):
            x, y, s = rng.integers(0, size - 12, 3)
            mask[y:y + 12 + s % 8, x:x + 12 + s % 5] = rng.integers(1, 4)
        image = np.zeros((size, size, 3), np.uint8)
        image[..., 0] = mask * 60 + 20
        image[..., 1] = 255  # marks pixels that come from the image (fill is 0)
        write_rgb(tmp_path / "images" / f"{i}.png", image)
        write_gray(tmp_path / "masks" / f"{i}.png", mask)
    return index_segmentation_folder(tmp_path)


def test_joint_augmentation_keeps_image_and_mask_aligned(tmp_path):
    index = _coded_pairs(tmp_path)
    augment = SegmentAugment(hflip=0.5, vflip=0.5, rotate=20, zoom=(0.6, 1.4), shift=0.2,
                             brightness=0, contrast=0, saturation=0)
    ds = SegmentationDataset(index.images, index.masks, ["bg", "a", "b", "c"], size=48, augment=augment, seed=5)
    agree = total = 0
    filled = False
    for epoch in range(3):
        ds.set_epoch(epoch)
        images, masks = ds.__getitems__(list(range(4)))
        for image, mask in zip(images.numpy(), masks.numpy()):
            inside = image[1] == 255            # away from the fill and the blended border
            decoded = np.round((image[0].astype(int) - 20) / 60)
            labelled = inside & (mask != 255)
            agree += int((decoded[labelled] == mask[labelled]).sum())
            total += int(labelled.sum())
            assert set(np.unique(mask).tolist()) <= {0, 1, 2, 3, 255}
            # what came from outside the image is not labelled
            assert (mask[image[1] == 0] == 255).all()
            filled |= bool((mask == 255).any())
    assert filled and agree / total > 0.97  # disagreements only where bilinear meets nearest


def test_augmentation_is_seeded_by_seed_and_epoch(tmp_path):
    index = _coded_pairs(tmp_path, n=3)
    make = lambda seed: SegmentationDataset(index.images, index.masks, ["bg", "a", "b", "c"], size=32,  # noqa: E731
                                            augment=SegmentAugment(rotate=20, zoom=(0.7, 1.3), shift=0.2,
                                                                   brightness=0.3), seed=seed)
    a, b = make(0), make(0)
    batch_a = a.__getitems__([0, 1, 2])
    torch.rand(5)  # the global generator does not matter
    batch_b = b.__getitems__([0, 1, 2])
    assert all(torch.equal(x, y) for x, y in zip(batch_a, batch_b))
    a.set_epoch(1)
    assert not torch.equal(a.__getitems__([0, 1, 2])[1], batch_b[1])
    assert not torch.equal(make(1).__getitems__([0, 1, 2])[0], batch_b[0])


def test_colour_jitter_changes_the_image_only():
    image = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    mask = torch.full((8, 8), 2, dtype=torch.uint8)
    torch.manual_seed(0)
    out_image, out_mask = SegmentAugment(hflip=0, brightness=0.5)(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.equal(out_image, image)


def test_dataloader_uses_whole_batches(tmp_path):
    from torch.utils.data import DataLoader

    root = pair_folder(tmp_path, n=5, ext=".png")
    index = index_segmentation_folder(root)
    ds = SegmentationDataset(index.images, index.masks, ["a", "b", "c"], size=8)
    loader = DataLoader(ds, batch_size=2, collate_fn=lambda batch: batch)
    shapes = [(tuple(x.shape), tuple(y.shape)) for x, y in loader]
    assert shapes == [((2, 3, 8, 8), (2, 8, 8))] * 2 + [((1, 3, 8, 8), (1, 8, 8))]


# --- synthetic writer --------------------------------------------------------------------------

def test_shapes_writer_is_reproducible_and_valid(tmp_path):
    a = write_shapes_segmentation(tmp_path / "a", n_train=4, n_val=2, size=(20, 28), seed=7)
    b = write_shapes_segmentation(tmp_path / "b", n_train=4, n_val=2, size=(20, 28), seed=7)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 4 * 2 + 2 * 2 + 1
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert all(digest(a / f) == digest(b / f) for f in files)
    masks = [read_mask(p) for p in (a / "train" / "masks").iterdir()]
    assert all(m.shape == (20, 28) for m in masks)
    assert set(np.unique(np.concatenate([m.ravel() for m in masks])).tolist()) <= {0, 1, 2, 3}
    assert any(m.max() > 0 for m in masks)
