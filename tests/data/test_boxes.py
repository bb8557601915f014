"""The detection label layer: COCO and YOLO read into one form, validated, and written back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cnntool.data.boxes import (
    BACKGROUND_OFFSET, BoxDataset, ImageLabels, check_box, coco_annotations, detect_format, detection_splits,
    from_model_labels, image_size, load_boxes, read_class_names, to_model_labels, write_coco, write_yolo,
)
from cnntool.data.detection import write_shapes_detection
from cnntool.metrics.detection import coco_results, write_coco_results
from cnntool.errors import DatasetError

from .conftest import write_rgb


def make_coco(root, *, images, annotations, categories=None, sizes=None):
    """A COCO folder: ``images`` file names (written as 40x30 PNGs unless ``sizes`` says else)."""
    rng = np.random.default_rng(0)
    entries = []
    for i, name in enumerate(images, start=1):
        width, height = (sizes or {}).get(name, (40, 30))
        write_rgb(root / "images" / name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        entries.append({"id": i, "file_name": name, "width": width, "height": height})
    categories = categories or [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 12, "name": "bird"}]
    doc = {"images": entries, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def ann(id, image_id, category_id, bbox, **extra):
    return {"id": id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


def make_yolo(root, labels: dict, *, names=("cat", "dog"), sizes=None, names_file="data.yaml"):
    rng = np.random.default_rng(0)
    for stem, text in labels.items():
        width, height = (sizes or {}).get(stem, (40, 30))
        write_rgb(root / "images" / f"{stem}.png", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        if text is not None:
            (root / "labels").mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{stem}.txt").write_text(text)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    if names_file == "data.yaml":
        (root / "data.yaml").write_text(yaml.safe_dump({"names": list(names)}))
    elif names_file == "classes.txt":
        (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


def reasons(dataset):
    return [reason for _, reason in dataset.skipped]


# --- conventions -----------------------------------------------------------------------------

def test_background_offset_round_trips():
    labels = np.array([0, 1, 2])
    assert BACKGROUND_OFFSET == 1
    assert to_model_labels(labels).tolist() == [1, 2, 3]
    assert from_model_labels(to_model_labels(labels)).tolist() == [0, 1, 2]


def test_check_box_clips_within_tolerance_and_refuses_beyond():
    box, reason = check_box([-1.5, 0, 41.9, 30], 40, 30)
    assert reason is None and box.tolist() == [0, 0, 40, 30]
    box, reason = check_box([0, 0, 43, 30], 40, 30)  # 3 px out: beyond max(2 px, 1% of 40)
    assert box is None and "3 px outside the 40x30 image" in reason
    assert "degenerate" in check_box([5, 5, 5, 9], 40, 30)[1]
    assert "degenerate" in check_box([5, 9, 8, 4], 40, 30)[1]
    assert "not finite" in check_box([0, 0, float("nan"), 4], 40, 30)[1]
    # a large image tolerates 1% of its side
    assert check_box([0, 0, 1009, 100], 1000, 1000)[1] is None


# --- COCO ------------------------------------------------------------------------------------

def test_coco_reads_boxes_classes_by_id_and_negatives(tmp_path):
    root = make_coco(tmp_path, images=["a.png", "b.png"], annotations=[
        ann(1, 1, 3, [1, 2, 10, 20]),
        ann(2, 1, 12, [5, 5, 4, 4], iscrowd=1, segmentation=CROWD_RLE),
    ])
    data = load_boxes(root)
    assert data.format == "coco" and detect_format(root) == "coco"
    assert data.classes == ["dog", "cat", "bird"]  # ordered by category id 3, 7, 12
    assert data.category_ids == [3, 7, 12]
    a, b = data.images
    assert a.boxes.tolist() == [[1, 2, 11, 22], [5, 5, 9, 9]]
    assert a.labels.tolist() == [0, 2] and a.iscrowd.tolist() == [0, 1]
    assert a.segmentation == [None, CROWD_RLE]
    assert (a.width, a.height, a.image_id, a.file_name) == (40, 30, 1, "a.png")
    assert len(b.boxes) == 0 and b.boxes.shape == (0, 4)  # kept as a negative
    assert data.skipped == []


@pytest.mark.parametrize("annotation, expected", [
    (ann(5, 1, 7, [10, 10, 0, 5]), "annotation 5 in image 1 (a.png): degenerate box (width 0, height 5)"),
    (ann(6, 1, 7, [10, 10, -3, 5]), "annotation 6 in image 1 (a.png): degenerate box"),
    (ann(7, 1, 99, [1, 1, 5, 5]), "annotation 7 in image 1 (a.png): unknown category_id 99 (categories: 3, 7, 12)"),
    (ann(8, 1, 7, [1, 2, 3]), "annotation 8 in image 1 (a.png): 'bbox' must be [x, y, width, height]"),
    (ann(9, 1, 7, [30, 10, 20, 5]), "annotation 9 in image 1 (a.png): box [30, 10, 50, 15] reaches 10 px outside"),
    (ann(10, 42, 7, [1, 1, 5, 5]), "annotation 10: unknown image_id 42"),
    ({"id": 11, "category_id": 7, "bbox": [1, 1, 5, 5]}, "annotation 11: needs an integer 'image_id'"),
])
def test_coco_bad_annotations_are_skipped_with_a_reason_naming_them(tmp_path, annotation, expected):
    root = make_coco(tmp_path, images=["a.png"], annotations=[ann(1, 1, 7, [1, 1, 5, 5]), annotation])
    data = load_boxes(root)
    assert len(data.images) == 1 and data.images[0].labels.tolist() == [1]  # the good one stays
    assert len(data.skipped) == 1
    file, reason = data.skipped[0]
    assert file.endswith("annotations.json") and reason.startswith(expected), reason


#: A valid uncompressed RLE (as COCO's crowd regions have) of a 40x30 image: a 4x4 square at (5, 5).
CROWD_RLE = {"size": [30, 40], "counts": [155, 4, 26, 4, 26, 4, 26, 4, 951]}
#: A polygon of the square x 2-12, y 3-13 in a 40x30 image (its mask: rows 3-12, columns 2-11).
SQUARE_POLYGON = [[2, 3, 12, 3, 12, 13, 2, 13]]
NAN = float("nan")


@pytest.mark.parametrize("segmentation, expected", [
    ({"size": [20, 40], "counts": [800]}, "segmentation RLE size [20, 40] is not the image size [30, 40]"),
    ({"size": [40, 30], "counts": [1200]}, "segmentation RLE size [40, 30] is not the image size [30, 40]"),
    ({"size": [30, 40], "counts": "0"}, "segmentation RLE counts cover 0 pixels, not the image's 1200"),
    ({"size": [30, 40], "counts": [1000]}, "segmentation RLE counts cover 1000 pixels, not the image's 1200"),
    ({"size": [30, 40], "counts": [1300, -100]}, "segmentation RLE counts must be non-negative whole numbers"),
    ({"size": [30, 40], "counts": "zz~"}, "segmentation RLE counts are not a COCO-compressed string"),
    ({"size": [30, 40], "counts": 7}, "segmentation RLE counts must be a string or a list of run lengths"),
    ({"size": "30x40", "counts": [1200]}, "segmentation RLE size must be [height, width]"),
    ([[2, 3, 12, 3, 12, 13, 2]], "segmentation polygon 1 has 7 numbers: x, y pairs need an even count"),
    ([[2, 3, 12, 13]], "segmentation polygon 1 has 4 numbers: a polygon needs at least 3 x, y points (6 numbers)"),
    ([[2, 3, 12, 3, 12, 13], [1, 1, 2, 2]], "segmentation polygon 2 has 4 numbers"),
    ([[2, 3, 12, NAN, 12, 13]], "segmentation polygon 1 has a number that is not finite"),
    ([[2, 3, 12, "3", 12, 13]], "segmentation polygon 1 is not a list of numbers"),
    ([2, 3, 12, 3, 12, 13], "segmentation polygon 1 is not a list of numbers"),
    ("mask.png", "segmentation must be polygons [[x1, y1, x2, y2, x3, y3, ...], ...] or an RLE"),
])
def test_coco_bad_segmentations_are_skipped_with_a_reason_naming_them(tmp_path, segmentation, expected):
    """pycocotools would fail on these inside a DataLoader worker (or, for a 4-number polygon,
    read it as a box, and for short RLE counts decode uninitialised memory)."""
    root = make_coco(tmp_path, images=["a.png"], annotations=[
        ann(1, 1, 7, [2, 3, 10, 10], segmentation=SQUARE_POLYGON), ann(2, 1, 3, [5, 5, 4, 4], segmentation=CROWD_RLE),
        ann(3, 1, 7, [1, 1, 20, 20], segmentation=segmentation)])
    data = load_boxes(root)
    (file, reason), = data.skipped
    assert file.endswith("annotations.json"), file
    assert reason.startswith(f"annotation 3 in image 1 (a.png): {expected}"), reason
    image, = data.images  # the good annotations stay, with their masks
    assert image.labels.tolist() == [1, 0] and image.segmentation == [SQUARE_POLYGON, CROWD_RLE]


def test_coco_good_segmentations_are_kept_as_given(tmp_path):
    from pycocotools import mask as mask_utils

    compressed = mask_utils.encode(np.asfortranarray(np.eye(30, 40, dtype=np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    root = make_coco(tmp_path, images=["a.png"], annotations=[
        ann(1, 1, 7, [2, 3, 10, 10], segmentation=SQUARE_POLYGON),
        ann(2, 1, 7, [0, 0, 30, 30], segmentation=compressed),
        ann(3, 1, 7, [1, 1, 5, 5], segmentation=[]), ann(4, 1, 7, [1, 1, 5, 5])])
    data = load_boxes(root)
    assert data.skipped == [] and data.images[0].segmentation == [SQUARE_POLYGON, compressed, None, None]


def test_coco_box_slightly_outside_is_clipped(tmp_path):
    root = make_coco(tmp_path, images=["a.png"], annotations=[ann(1, 1, 7, [-1, 20, 41.5, 11])])
    data = load_boxes(root)
    assert data.images[0].boxes.tolist() == [[0, 20, 40, 30]] and data.skipped == []


def test_coco_missing_image_file_is_skipped_with_its_annotations(tmp_path):
    root = make_coco(tmp_path, images=["a.png", "b.png"], annotations=[ann(1, 2, 7, [1, 1, 5, 5])])
    (root / "images" / "b.png").unlink()
    data = load_boxes(root)
    assert [im.file_name for im in data.images] == ["a.png"]
    (file, reason), = data.skipped
    assert file.endswith("b.png") and "image 2 (b.png): image file not found" in reason and "1 annotation" in reason
    # ground truth for evaluation does not need the files
    assert len(load_boxes(root, check_files=False)) == 2


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"images": [], "categories": []}), "has no 'annotations' list"),
    (json.dumps({"images": [], "annotations": [], "categories": [{"id": 1}]}), "categories[0] needs an integer 'id'"),
    (json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}),
     "category id 1 appears twice"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], "annotations": [],
                 "categories": [{"id": 1, "name": "a"}]}), "image id 1 appears twice"),
    (json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}), "no usable images"),
])
def test_coco_broken_files_are_dataset_errors_naming_the_file(tmp_path, text, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations.json").write_text(text)
    with pytest.raises(DatasetError) as err:
        load_boxes(tmp_path, check_files=False)
    assert message in err.value.message and "annotations.json" in err.value.message


def test_coco_width_height_missing_are_read_from_the_image(tmp_path):
    root = make_coco(tmp_path, images=["a.png"], annotations=[], sizes={"a.png": (50, 20)})
    doc = json.loads((root / "annotations.json").read_text())
    del doc["images"][0]["width"], doc["images"][0]["height"]
    (root / "annotations.json").write_text(json.dumps(doc))
    assert (load_boxes(root).images[0].width, load_boxes(root).images[0].height) == (50, 20)


def test_coco_json_file_and_val_split_against_training_classes(tmp_path):
    write_shapes_detection(tmp_path, n_train=2, n_val=2, size=48, seed=1)
    assert detection_splits(tmp_path) == ["train", "val"]
    train = load_boxes(tmp_path, split="train")
    val = load_boxes(tmp_path / "val" / "annotations.json", classes=["triangle", "circle", "square", "star"])
    assert val.classes == ["triangle", "circle", "square", "star"]
    assert val.category_ids[:3] == [3, 1, 2] and val.category_ids[3] not in (1, 2, 3)
    with pytest.raises(DatasetError, match="categories the training data lacks: triangle"):
        load_boxes(tmp_path, split="val", classes=["circle", "square"])
    with pytest.raises(DatasetError, match="pick one"):
        load_boxes(tmp_path)
    assert train.images[0].segmentation is not None  # exact masks as RLE


# --- YOLO ------------------------------------------------------------------------------------

def test_yolo_reads_normalised_boxes_polygons_and_negatives(tmp_path):
    root = make_yolo(tmp_path, {
        "a": "1 0.5 0.5 0.5 0.2\n\n0 0.25 0.5 0.1 0.2\n",
        "b": "",
        "c": None,  # no label file: a negative, as in Ultralytics
        "d": "0 0.1 0.1 0.5 0.1 0.5 0.5\n",
    })
    data = load_boxes(root)
    assert data.format == "yolo" and data.classes == ["cat", "dog"]
    a, b, c, d = data.images
    np.testing.assert_allclose(a.boxes, [[10, 12, 30, 18], [8, 12, 12, 18]])
    assert a.labels.tolist() == [1, 0] and a.image_id == 1 and a.segmentation is None
    assert len(b.boxes) == len(c.boxes) == 0
    np.testing.assert_allclose(d.boxes, [[4, 3, 20, 15]])
    np.testing.assert_allclose(d.segmentation[0], [[4, 3, 20, 3, 20, 15]])
    assert data.skipped == []


@pytest.mark.parametrize("line, expected", [
    ("0 0.5 0.5 0.2", "line 2 (image a.png): expected 'class cx cy w h' (5 fields)"),
    ("0 0.5 x 0.2 0.2", "line 2 (image a.png): not numbers"),
    ("2 0.5 0.5 0.2 0.2", "line 2 (image a.png): unknown class index 2 (the dataset has 2 classes: 0 ... 1)"),
    ("-1 0.5 0.5 0.2 0.2", "line 2 (image a.png): unknown class index -1"),
    ("0 20 15 4 4", "line 2 (image a.png): coordinates must be normalised to [0, 1]"),
    ("0 0.5 0.5 0 0.2", "line 2 (image a.png): degenerate box (width 0"),
    ("0 0.95 0.5 0.3 0.2", "line 2 (image a.png): box [32, 12, 44, 18] reaches 4 px outside the 40x30 image"),
])
def test_yolo_bad_lines_are_skipped_with_file_and_line(tmp_path, line, expected):
    root = make_yolo(tmp_path, {"a": f"1 0.5 0.5 0.5 0.2\n{line}\n"})
    data = load_boxes(root)
    assert data.images[0].labels.tolist() == [1]
    (file, reason), = data.skipped
    assert file.endswith("a.txt") and reason.startswith(expected), reason


def test_yolo_orphan_labels_and_unreadable_images_are_listed(tmp_path):
    root = make_yolo(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n", "b": "0 0.5 0.5 0.5 0.5\n"})
    (root / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "images" / "b.png").write_bytes(b"not an image")
    data = load_boxes(root)
    assert [im.file_name for im in data.images] == ["a.png"]
    skipped = dict(data.skipped)
    assert any(k.endswith("ghost.txt") and "label file without an image" in v for k, v in skipped.items())
    assert any(k.endswith("b.png") and "unreadable image" in v and "b.txt" in v for k, v in skipped.items())


def test_yolo_class_names_from_dict_yaml_or_classes_txt(tmp_path):
    (tmp_path / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    assert read_class_names(tmp_path) == ["cat", "dog"]
    (tmp_path / "data.yaml").write_text("names:\n  0: cat\n  2: dog\n")
    with pytest.raises(DatasetError, match="without gaps"):
        read_class_names(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a, b\n")
    with pytest.raises(DatasetError, match="not valid YAML"):
        read_class_names(tmp_path)
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "classes.txt").write_text("x\n\ny\n")
    assert read_class_names(tmp_path) == ["x", "y"]
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DatasetError, match="no class names"):
        read_class_names(tmp_path)


def test_yolo_ultralytics_split_layout(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        write_rgb(tmp_path / "images" / split / "x.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        (tmp_path / "labels" / split).mkdir(parents=True)
        (tmp_path / "labels" / split / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat]\n")
    assert detection_splits(tmp_path) == ["train", "val"] and detect_format(tmp_path) == "yolo"
    val = load_boxes(tmp_path, split="val")
    assert val.classes == ["cat"] and val.images[0].boxes.tolist() == [[10, 7.5, 30, 22.5]]


def test_unknown_layout_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="neither a COCO nor a YOLO"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_boxes(tmp_path / "missing")


def test_image_size_follows_exif_orientation(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (40, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == (30, 40)
    from cnntool.data.decode import decode_image

    assert decode_image(tmp_path / "r.jpg").shape[:2] == (40, 30)  # the decoder agrees


# --- writers and round trips -----------------------------------------------------------------

def test_round_trip_coco_to_yolo_to_coco(tmp_path):
    root = make_coco(tmp_path / "coco", images=["a.png", "sub/b.png", "c.png"], sizes={"c.png": (64, 48)},
                     annotations=[ann(1, 1, 3, [1.25, 2.5, 10, 20]), ann(2, 1, 12, [0, 0, 40, 30]),
                                  ann(3, 3, 7, [10, 8, 30.5, 20.25]), ann(4, 3, 3, [2, 2, 3, 3], iscrowd=1)])
    coco = load_boxes(root)
    write_yolo(coco, tmp_path / "yolo")
    yolo = load_boxes(tmp_path / "yolo")
    assert yolo.format == "yolo" and yolo.classes == coco.classes
    assert (tmp_path / "yolo" / "labels" / "sub" / "b.txt").read_text() == ""  # the negative stays
    write_coco(yolo, tmp_path / "back")
    back = load_boxes(tmp_path / "back")
    assert back.classes == coco.classes and [im.file_name for im in back.images] == ["a.png", "c.png", "sub/b.png"]
    original = {im.file_name: im for im in coco.images}
    for im in back.images:
        keep = original[im.file_name].iscrowd == 0  # YOLO has no crowd regions
        np.testing.assert_allclose(im.boxes, original[im.file_name].boxes[keep], atol=1e-4)
        assert im.labels.tolist() == original[im.file_name].labels[keep].tolist()
        assert (im.width, im.height) == (original[im.file_name].width, original[im.file_name].height)


def test_round_trip_yolo_to_coco_to_yolo_keeps_the_text(tmp_path):
    text = "1 0.500000 0.500000 0.500000 0.200000\n0 0.250000 0.500000 0.100000 0.200000\n"
    root = make_yolo(tmp_path / "yolo", {"a": text, "b": ""}, names_file="classes.txt")
    write_coco(load_boxes(root), tmp_path / "coco")
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert doc["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert doc["annotations"][0]["bbox"] == [10.0, 12.0, 20.0, 6.0] and doc["annotations"][0]["category_id"] == 2
    write_yolo(load_boxes(tmp_path / "coco"), tmp_path / "again")
    assert (tmp_path / "again" / "labels" / "a.txt").read_text() == text
    assert yaml.safe_load((tmp_path / "again" / "data.yaml").read_text())["names"] == ["cat", "dog"]


def test_coco_results_load_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    write_shapes_detection(tmp_path, n_train=3, n_val=0, size=64, seed=2)
    data = load_boxes(tmp_path, split="train")
    gt = tmp_path / "train" / "annotations.json"
    predictions = [{"boxes": im.boxes + 1, "scores": np.linspace(0.9, 0.5, len(im.labels)), "labels": im.labels}
                   for im in data.images]
    results = coco_results(predictions, [im.image_id for im in data.images], data.category_ids)
    write_coco_results(tmp_path / "results.json", results)
    coco = COCO(str(gt))
    loaded = coco.loadRes(str(tmp_path / "results.json"))
    assert len(loaded.anns) == data.num_objects
    first = loaded.anns[1]
    x1, y1, x2, y2 = data.images[0].boxes[0] + 1
    assert first["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    assert coco.cats[first["category_id"]]["name"] == data.classes[data.images[0].labels[0]]


def test_coco_results_with_masks_are_rle(tmp_path):
    from pycocotools import mask as mask_utils

    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:5, 1:4] = True
    (res,) = coco_results([{"boxes": [[1, 2, 4, 5]], "scores": [0.5], "labels": [0], "masks": masks}], [1], [1])
    assert isinstance(res["segmentation"]["counts"], str)
    assert int(mask_utils.area({"size": [8, 8], "counts": res["segmentation"]["counts"].encode()})) == 9
    json.dumps(res)


def test_shapes_dataset_is_seeded_and_matches_its_masks(tmp_path):
    from pycocotools import mask as mask_utils

    write_shapes_detection(tmp_path / "a", n_train=4, n_val=1, size=64, seed=5, format="yolo")
    write_shapes_detection(tmp_path / "b", n_train=4, n_val=1, size=64, seed=5, format="coco", ext=".png")
    yolo, coco = load_boxes(tmp_path / "a", split="train"), load_boxes(tmp_path / "b", split="train")
    assert yolo.classes == coco.classes == ["circle", "square", "triangle"]
    for y, c in zip(yolo.images, coco.images):
        np.testing.assert_allclose(y.boxes, c.boxes, atol=1e-3)
        for box, rle in zip(c.boxes, c.segmentation):
            x, yy, w, h = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})
            np.testing.assert_allclose([x, yy, x + w, yy + h], box)
    assert len(load_boxes(tmp_path / "a", split="val")) == 1


def test_lookup_finds_an_image_by_its_trailing_path(tmp_path):
    im = ImageLabels("x/sub/b.png", "sub/b.png", 4, 4, np.zeros((0, 4)), [], image_id=3)
    data = BoxDataset(str(tmp_path), "coco", ["a"], [im])
    assert data.lookup("/elsewhere/sub/b.png") is im and data.lookup("b.png") is None
    assert coco_annotations(data)["images"] == [{"id": 3, "file_name": "sub/b.png", "width": 4, "height": 4}]
