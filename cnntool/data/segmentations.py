"""Validation of COCO ``segmentation`` values (instance masks), for the label layer
(:mod:`cnntool.data.boxes`): a bad one is found when the labels are read, not by pycocotools
inside a DataLoader worker.

A segmentation is polygons (``[[x1, y1, x2, y2, ...], ...]``: each at least 3 points, an even
count of finite numbers; pycocotools would read a 4-number polygon as a box) or an RLE
(``{"size": [height, width], "counts": ...}``: the image's size, and counts, a COCO-compressed
string or a list of run lengths, that cover exactly its ``height * width`` pixels; pycocotools
decodes short counts into uninitialised memory).

Examples
--------
>>> check_segmentation([[0, 0, 4, 0, 4, 4]], 8, 6) is None
True
>>> check_segmentation([[0, 0, 4, 0]], 8, 6)
'segmentation polygon 1 has 4 numbers: a polygon needs at least 3 x, y points (6 numbers)'
>>> check_segmentation({"size": [6, 8], "counts": [40, 8]}, 8, 6) is None
True
>>> check_segmentation({"size": [8, 6], "counts": [48]}, 8, 6)
'segmentation RLE size [8, 6] is not the image size [6, 8] (height, width)'
"""

from __future__ import annotations

import math

#: The hint every refusal ends with.
SHAPES = "polygons [[x1, y1, x2, y2, x3, y3, ...], ...] or an RLE {'size': [height, width], 'counts': ...}"


def check_segmentation(segmentation, width: int, height: int) -> str | None:
    """The reason a COCO ``segmentation`` cannot be a ``width`` x ``height`` image's mask, or
    None when it can (an empty or missing one too: the object's box stands in for it)."""
    if not segmentation:
        return None
    if isinstance(segmentation, list):
        for i, polygon in enumerate(segmentation, 1):
            if not isinstance(polygon, list) or not all(_is_number(v) for v in polygon):
                return f"segmentation polygon {i} is not a list of numbers; expected {SHAPES}"
            if len(polygon) < 6:
                return (f"segmentation polygon {i} has {len(polygon)} numbers: a polygon needs at least "
                        f"3 x, y points (6 numbers)")
            if len(polygon) % 2:
                return f"segmentation polygon {i} has {len(polygon)} numbers: x, y pairs need an even count"
            if not all(math.isfinite(v) for v in polygon):
                return f"segmentation polygon {i} has a number that is not finite"
        return None
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        return f"segmentation must be {SHAPES}, got {_short(segmentation)}"
    size = segmentation["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        return f"segmentation RLE size must be [height, width], got {_short(size)}"
    if size != [height, width]:
        return f"segmentation RLE size {size} is not the image size [{height}, {width}] (height, width)"
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(_is_int(v) and v >= 0 for v in counts):
            return "segmentation RLE counts must be non-negative whole numbers"
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        total = _compressed_total(counts.encode("ascii", "replace") if isinstance(counts, str) else counts)
        if total is None:
            return "segmentation RLE counts are not a COCO-compressed string"
    else:
        return f"segmentation RLE counts must be a string or a list of run lengths, got {_short(counts)}"
    if total != height * width:
        return f"segmentation RLE counts cover {total} pixels, not the image's {height * width} ({height}x{width})"
    return None


def _compressed_total(text: bytes) -> int | None:
    """The pixels a COCO-compressed RLE string covers (pycocotools' ``rleFrString``), or None when
    it is malformed (a truncated number, a negative run)."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                return None
            char = text[position] - 48
            if not 0 <= char < 64:
                return None
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position, shift = position + 1, shift + 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            return None
        counts.append(value)
    return sum(counts)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
