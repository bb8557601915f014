"""A detector's working size, and how ``--imgsz`` maps onto it.

torchvision's detectors resize each image inside themselves (``model.transform``, a
``GeneralizedRCNNTransform``): the shorter side to ``min_size``, the longer at most ``max_size``,
keeping the aspect ratio; SSD models take a ``fixed_size`` instead. ``--imgsz`` sets these, the
same way when training (as builder options, so a checkpoint rebuilds at its size) and at
inference (on the loaded model).

Examples
--------
>>> from cnntool.models.detectors import tiny_fcos
>>> model = tiny_fcos(num_classes=2)
>>> working_size(model), sized_transform(model, (96, 96)), sized_transform(model, (96, 128))
((160, 320, None), (96, 192, None), (96, 128, None))
"""

from __future__ import annotations


def working_size(model) -> tuple[int | None, int | None, tuple[int, int] | None]:
    """``(min_size, max_size, fixed_size)`` of a torchvision detector's internal resize, or
    Nones for a model without one."""
    transform = getattr(model, "transform", None)
    if transform is None or not hasattr(transform, "min_size"):
        return None, None, None
    fixed = getattr(transform, "fixed_size", None)
    return (int(transform.min_size[-1]), int(transform.max_size),
            (int(fixed[0]), int(fixed[1])) if fixed is not None else None)


def sized_transform(model, size: tuple[int, int]) -> tuple[int, int, tuple[int, int] | None]:
    """``(min_size, max_size, fixed_size)`` that make ``model`` see ``size`` = (H, W) inputs.

    ``(N, N)`` makes the shorter side N and caps the longer at N times the model's own
    longer/shorter ratio (tiny_fcos, 160/320: 2N); ``(H, W)`` with H != W makes the shorter side
    ``min(H, W)`` and caps the longer at ``max(H, W)``. A fixed-size model (SSD) gets exactly
    H x W. The model is not changed; a model without a resize raises ValueError.
    """
    min_size, max_size, fixed = working_size(model)
    if min_size is None:
        raise ValueError("the model has no input size to set")
    height, width = int(size[0]), int(size[1])
    if fixed is not None:
        return min(height, width), max(height, width), (height, width)
    short, long = min(height, width), max(height, width)
    if height == width:
        long = max(short, round(short * max_size / min_size))
    return short, long, None


def resize_detector(model, size: tuple[int, int]) -> tuple[int, int, tuple[int, int] | None]:
    """Make ``model`` (in place) resize its inputs as :func:`sized_transform` says for ``size``;
    returns that ``(min_size, max_size, fixed_size)``. ValueError for a model without a resize.

    Examples
    --------
    >>> from cnntool.models.detectors import tiny_fcos
    >>> model = tiny_fcos(num_classes=2)
    >>> resize_detector(model, (96, 96)), working_size(model)
    ((96, 192, None), (96, 192, None))
    """
    short, long, fixed = sized_transform(model, size)
    if fixed is not None:
        model.transform.fixed_size = fixed
    model.transform.min_size, model.transform.max_size = (short,), long
    return short, long, fixed
