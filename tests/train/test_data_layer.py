"""The shared data layer for training: ImageFolder indexing, splits, datasets, loaders, augmentation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cnntool.data.datasets import ImageDataset, find_splits, index_image_folder, stratified_split
from cnntool.data.loaders import shard_indices, ShardSampler, make_loader, usable_cores
from cnntool.data.preprocessing import Preprocessing
from cnntool.data.transforms import AugmentConfig, TrainTransform, normalize_batch
from cnntool.errors import DatasetError

PRE = Preprocessing((1, 32, 32), (0.5,), (0.5,))
NO_MOTION = AugmentConfig(rotate=0, shift=0, zoom=0, shear=0)


def test_index_image_folder_sorted_classes_and_labels(shapes, tmp_path):
    folder = index_image_folder(shapes / "train")
    assert folder.classes == ["cross", "disk", "square"]
    assert len(folder) == 48
    assert folder.labels == [0] * 16 + [1] * 16 + [2] * 16
    assert all(f"/{folder.classes[label]}/" in path for path, label in zip(folder.paths, folder.labels))
    assert set(find_splits(shapes)) == {"train", "val"}


def test_index_image_folder_reports_loose_files_and_refuses_unknown_classes(shapes_copy):
    cv2.imwrite(str(shapes_copy / "train" / "loose.png"), np.zeros((4, 4), np.uint8))
    folder = index_image_folder(shapes_copy / "train")
    assert [reason for _, reason in folder.skipped] == ["not inside a class folder"]
    with pytest.raises(DatasetError, match="class folders the training data lacks: cross"):
        index_image_folder(shapes_copy / "train", classes=["disk", "square"])


def test_index_image_folder_without_images_is_a_dataset_error(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        index_image_folder(tmp_path)


def test_stratified_split_is_seeded_and_keeps_proportions():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, val = stratified_split(labels, val_fraction=0.2, seed=3)
    assert np.bincount(np.asarray(labels)[val]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again = stratified_split(labels, val_fraction=0.2, seed=3)
    other = stratified_split(labels, val_fraction=0.2, seed=4)
    assert np.array_equal(val, again[1]) and not np.array_equal(val, other[1])


def test_dataset_skips_corrupt_images_and_caches_the_rest(shapes_copy):
    bad = shapes_copy / "train" / "disk" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    folder = index_image_folder(shapes_copy / "train")
    ds = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=PRE.resize, cache=True)
    assert len(ds) == 48 and ds.cached
    assert [p for p, _ in ds.skipped] == [str(bad)]
    assert any(word in ds.skipped[0][1] for word in ("corrupt", "truncated", "not an image"))
    images, labels = ds.__getitems__([0, 47])
    assert images.dtype == torch.uint8 and tuple(images.shape) == (2, 1, 32, 32)
    assert labels.tolist() == [0, 2]


def test_uncached_dataset_gives_the_same_pixels(shapes):
    folder = index_image_folder(shapes / "val")
    cached = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=PRE.resize, cache=True)
    lazy = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=PRE.resize, cache=False)
    assert not lazy.cached
    a, _ = cached[5]
    b, _ = lazy[5]
    assert torch.equal(a, b)


def test_augmentation_repeats_per_seed_and_epoch(shapes):
    folder = index_image_folder(shapes / "train")
    t = TrainTransform(PRE, AugmentConfig())
    ds = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=t.prepare, augment=t,
                      seed=7)
    first, _ = ds.__getitems__([3, 4, 5])
    again, _ = ds.__getitems__([3, 4, 5])
    ds.set_epoch(1)
    later, _ = ds.__getitems__([3, 4, 5])
    assert torch.equal(first, again)
    assert not torch.equal(first, later)


def test_warp_without_motion_matches_the_evaluation_resize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8), np.uint8)
    t = TrainTransform(PRE, NO_MOTION)
    warped = t.apply(t.prepare(image), t.draw(rng, 1)[0])[:, :, 0].astype(int)
    resized = PRE.resize(image)[:, :, 0].astype(int)
    # same bilinear sampling inside; only the outermost half pixel differs (border fill vs clamp)
    assert np.abs(warped[2:-2, 2:-2] - resized[2:-2, 2:-2]).max() <= 1


def test_warp_reproduces_resize_and_centre_crop_exactly():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 80, 3), np.uint8)
    pre = Preprocessing((3, 24, 24), (0.5,) * 3, (0.5,) * 3, resize_mode="crop", resize_size=28)
    t = TrainTransform(pre, NO_MOTION)
    assert np.array_equal(t.apply(t.prepare(image), t.draw(rng, 1)[0]), pre.resize(image))


def test_hflip_mirrors():
    image = np.zeros((32, 32), np.uint8)
    image[:, :8] = 255
    t = TrainTransform(PRE, AugmentConfig(rotate=0, shift=0, zoom=0, shear=0, hflip=True))
    params = t.draw(np.random.default_rng(0), 1)
    params[0, 5] = 1.0
    out = t.apply(t.prepare(image), params[0])[:, :, 0]
    assert out[:, -4:].min() == 255 and out[:, :4].max() == 0


def test_normalize_batch_equals_preprocess_normalize():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (32, 32, 3), np.uint8)
    image[0, :3] = [[0, 0, 0], [255, 255, 255], [124, 116, 104]]   # extremes and the ImageNet mean
    pre = Preprocessing((3, 32, 32), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    batch = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    np.testing.assert_allclose(normalize_batch(batch, pre.mean, pre.std)[0].numpy(), pre.normalize(image),
                               rtol=0, atol=1e-6)


def test_shards_decode_every_sample_once(shapes):
    folder = index_image_folder(shapes / "train")
    seen, decoded = [], 0
    for rank in range(2):  # each process builds (decodes) only its own shard
        shard = folder.subset(shard_indices(len(folder), rank=rank, world_size=2))
        ds = ImageDataset(shard.paths, shard.labels, folder.classes, channels=1, prepare=PRE.resize)
        decoded += len(ds)
        seen += [label for _, labels in make_loader(ds, batch_size=5) for label in labels.tolist()]
    assert sorted(seen) == sorted(folder.labels) and decoded == len(folder)
    # training shards: equal sizes (every process takes the same steps), all samples covered
    train_shards = [shard_indices(len(folder), rank=r, world_size=2, seed=3, shuffle=True) for r in range(2)]
    assert len(train_shards[0]) == len(train_shards[1]) == -(-len(folder) // 2)
    assert set(np.concatenate(train_shards)) == set(range(len(folder)))
    assert list(ShardSampler(5, rank=1, world_size=2)) == [1, 3]
    ds = ImageDataset(folder.paths, folder.labels, folder.classes, channels=1, prepare=PRE.resize)
    train = make_loader(ds, batch_size=16, train=True, seed=0)
    train.sampler.set_epoch(0)
    order0 = [labels.tolist() for _, labels in train]
    train.sampler.set_epoch(0)
    assert [labels.tolist() for _, labels in train] == order0
    assert usable_cores() >= 1
