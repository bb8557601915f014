"""Writing files: output paths that mirror the inputs, atomic writes, image and array encoders.

Every file cnntool writes goes through :func:`atomic_write_bytes`: the bytes go to a temporary
file in the destination folder, which is then renamed over the destination, so a killed run
never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePath
from typing import NamedTuple

import numpy as np

from cnntool.errors import InputError

def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()

#: Extensions OpenCV can encode, mapped to the name users give to ``--ext``.
IMAGE_WRITE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}


def output_path(rel: PurePath, out_dir: str | os.PathLike, *, ext: str | None = None, suffix: str = "") -> Path:
    """Where the output for an input goes: ``out_dir / rel``, with ``suffix`` added to the stem
    and the extension replaced by ``ext`` (with or without the dot) when given.

    Examples
    --------
    >>> str(output_path(PurePath("a/b.jpg"), "out", ext="png"))
    'out/a/b.png'
    >>> str(output_path(PurePath("b.jpg"), "out", suffix="_cam", ext=".npy"))
    'out/b_cam.npy'
    """
    rel = PurePath(rel)
    new_ext = rel.suffix if ext is None else (ext if ext.startswith(".") else f".{ext}")
    return Path(out_dir, *rel.parent.parts, f"{rel.stem}{suffix}{new_ext}")


class OutputPlan(NamedTuple):
    """Where one input's outputs go: ``paths`` (empty without ``-o`` or for an input that
    failed already), or ``error`` (one line) when they must not be written."""

    paths: tuple[Path, ...]
    error: str | None = None


def plan_outputs(items: Sequence, out_dir: str | os.PathLike | None,
                 outputs: Callable[[PurePath], Path | Iterable[Path]] | None = None, *,
                 ext: str | None = None, suffix: str = "") -> list[OutputPlan]:
    """Decide every input's output paths up front, before anything is written.

    Parameters
    ----------
    items : sequence of InputItem
        The batch (anything with ``path``, ``rel`` and ``ok``).
    out_dir : path or None
        ``-o``; None plans no outputs at all.
    outputs : callable, optional
        ``rel -> path or paths``: an input's output file(s) (say an overlay and a ``.npy``).
        Default: :func:`output_path` of ``rel`` under ``out_dir`` with ``ext`` and ``suffix``.

    Returns
    -------
    list of OutputPlan
        One per input, in order. An input gets an ``error`` instead of paths when one of its
        outputs would land on any input of the batch, or on an output already planned for an
        earlier input (``a.jpg`` and ``a.png``, or ``a/x.png`` and ``b/x.png`` given as two
        folders, both mapping to ``x.png``): the first input keeps the path.

    Examples
    --------
    >>> from types import SimpleNamespace as Item
    >>> items = [Item(path="in/a.jpg", rel=PurePath("a.jpg"), ok=True),
    ...          Item(path="in/a.png", rel=PurePath("a.png"), ok=True)]
    >>> [(list(map(str, p.paths)), p.error) for p in plan_outputs(items, "out", ext="png")]
    [(['out/a.png'], None), ([], 'output out/a.png would also be written for in/a.jpg')]
    """
    if out_dir is None:
        return [OutputPlan(()) for _ in items]
    if outputs is None:
        def outputs(rel):
            return output_path(rel, out_dir, ext=ext, suffix=suffix)
    inputs = {_path_key(i.path) for i in items if i.ok}
    taken: dict[str, str] = {}
    plans: list[OutputPlan] = []
    for item in items:
        if not item.ok:
            plans.append(OutputPlan(()))
            continue
        planned = outputs(item.rel)
        paths = (Path(planned),) if isinstance(planned, (str, os.PathLike)) else tuple(map(Path, planned))
        error = None
        for out in paths:
            key = _path_key(out)
            if key in inputs:
                error = f"refusing to overwrite the input file {out}"
            elif key in taken:
                error = f"output {out} would also be written for {taken[key]}"
            if error:
                break
        if error:
            plans.append(OutputPlan((), error))
            continue
        for out in paths:
            taken[_path_key(out)] = item.path
        plans.append(OutputPlan(paths))
    return plans


def _path_key(path) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def check_not_input(out: Path, source: str | os.PathLike) -> None:
    """Refuse to write over an input file."""
    try:
        if out.exists() and os.path.samefile(out, source):
            raise InputError(f"refusing to overwrite the input file {source}")
    except OSError:
        return


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename; creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def encode_image(image: np.ndarray, ext: str, *, quality: int = 95) -> bytes:
    """Encode an RGB (H, W, 3), RGBA (H, W, 4) or grayscale (H, W) array with OpenCV.

    ``uint8`` for every format; ``uint16`` too for PNG and TIFF. Other dtypes are refused:
    the caller decides how floats are scaled.
    """
    import cv2

    ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if ext not in IMAGE_WRITE_EXTENSIONS:
        raise ValueError(f"cannot write images as {ext}")
    if image.dtype == np.uint16 and ext not in (".png", ".tif", ".tiff"):
        raise ValueError(f"{ext} cannot hold 16-bit images")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_image needs uint8 or uint16, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    else:
        bgr = image
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {ext}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> None:
    """Encode ``image`` by the path's extension and write it atomically."""
    atomic_write_bytes(path, encode_image(image, Path(path).suffix, quality=quality))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as ``.npy`` atomically."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
