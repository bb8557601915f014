"""One decode function for every stage: files in, uint8 arrays out.

:func:`decode_image` applies the EXIF orientation, turns palette, 1-bit, CMYK, 16-bit and
alpha images into plain RGB (or grayscale) uint8, refuses images over a pixel budget before
decoding them (decompression bombs), and reports every failure as an
:class:`~cnntool.errors.InputError` with a one-line reason. :func:`read_array` reads ``.npy``
arrays for exact numeric work, and :func:`load_pixels` picks between the two by extension.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np

from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.data.sources import describe_os_error, file_kind_problem
from cnntool.errors import InputError, one_line

#: Colour that transparent pixels are composited over: white, as a viewer shows them on a page.
DEFAULT_BACKGROUND = (255, 255, 255)

MODES = ("rgb", "gray", "auto")


def decode_image(
    path: str | os.PathLike,
    *,
    mode: str = "rgb",
    max_pixels: int | None = None,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """Decode an image file into a new uint8 array.

    Parameters
    ----------
    path : path-like
        The file. Non-ASCII names work.
    mode : {"rgb", "gray", "auto"}
        ``rgb`` gives (H, W, 3); ``gray`` gives (H, W) luma (ITU-R 601); ``auto`` keeps
        single-channel images (H, W) and makes everything else RGB.
    max_pixels : int, optional
        Refuse (with :class:`InputError`) an image whose header declares more pixels than this,
        before decoding it. None (or 0) means :data:`DEFAULT_MAX_PIXELS`.
    background : tuple of int
        RGB colour that transparent pixels are composited over.

    Returns
    -------
    numpy.ndarray
        uint8, (H, W, 3) or (H, W), C-contiguous, upright per the EXIF orientation.

    Raises
    ------
    InputError
        Missing, empty, non-image, corrupt, truncated or too-large files, symbolic link loops,
        folders, named pipes and devices, unreadable files, with a one-line reason.

    Notes
    -----
    16-bit images are scaled to 8 bits (value / 257, rounded). Multi-frame files (GIF, TIFF)
    give their first frame.

    Examples
    --------
    >>> from skimage import data
    >>> import cv2, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cat.png")
    >>> _ = cv2.imwrite(path, data.chelsea()[:, :, ::-1])
    >>> decode_image(path).shape
    (300, 451, 3)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    size = _regular_file_size(path, what="an image")
    if size == 0:
        raise InputError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise InputError(
                    f"image too large: {width}x{height} = {width * height:,} pixels "
                    f"exceeds --max-pixels {max_pixels:,}"
                )
            fast = _decode_with_opencv(im, path, mode)
            if fast is not None:
                return fast
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # no copy when there is nothing to turn
            return _to_array(im, mode, background)
    except InputError:
        raise
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:  # opening, not decoding
        raise InputError(describe_os_error(exc, path)) from None
    except UnidentifiedImageError:
        raise InputError("not an image (unrecognised or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"image too large: {one_line(exc)}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        reason = one_line(exc)
        if "truncated" in reason.lower():
            raise InputError(f"truncated image: {reason}") from None
        raise InputError(f"corrupt image: {reason}") from None
    except MemoryError:
        raise InputError("image too large to decode in memory") from None


def _regular_file_size(path: str, *, what: str) -> int:
    """The size of a regular file, or an InputError saying why ``path`` is not one (missing, a
    symbolic link loop, a folder, a named pipe that would block a read...)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(describe_os_error(exc, path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, not {what}")
    problem = file_kind_problem(st.st_mode)
    if problem:
        raise InputError(problem)
    return st.st_size


def _decode_with_opencv(im, path: str, mode: str) -> np.ndarray | None:
    """Decode plain, complete 8-bit JPEG/PNG and 1-bit PNG with OpenCV (faster than Pillow, and
    with no intermediate copies); None otherwise.

    Pillow has already read the header (size, mode, EXIF). Anything unusual (alpha, palette,
    16-bit, an EXIF rotation, a file that does not end where its format says it must) returns
    None, and Pillow decodes it with a precise error message if it is broken: OpenCV would
    silently decode a truncated JPEG. 1-bit PNGs come out as 0 and 255, as Pillow makes them.
    """
    if im.format not in ("JPEG", "PNG") or im.mode not in ("RGB", "L", "1"):
        return None
    if im.mode == "1" and im.format != "PNG":
        return None
    if im.format == "PNG" and ("transparency" in im.info or im.info.get("bits", 8) != 8):
        return None
    # For PNG, Pillow's getexif() decodes the whole image to look past IDAT; an eXIf chunk
    # before the pixels (where writers put it) is already in im.info.
    if (im.format == "JPEG" or "exif" in im.info) and im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        return None
    with open(path, "rb") as f:
        data = f.read()
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if not tail.endswith(_JPEG_END if im.format == "JPEG" else _PNG_END):
        return None
    gray_source = im.mode in ("L", "1")
    flags = cv2.IMREAD_GRAYSCALE if gray_source else _IMREAD_RGB
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None or array.shape[:2] != (im.size[1], im.size[0]):
        return None
    if gray_source:
        return _from_gray(array, mode)
    if _IMREAD_RGB == cv2.IMREAD_COLOR:  # OpenCV before 4.10 decodes to BGR only
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if mode == "gray":
        return np.ascontiguousarray(cv2.cvtColor(array, cv2.COLOR_RGB2GRAY))
    return np.ascontiguousarray(array)


_EXIF_ORIENTATION = 0x0112
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"


def _to_array(im, mode: str, background: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im)
        gray = _scale_to_uint8(arr, 65535)
        return _from_gray(gray, mode)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        peak = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0
        gray = np.clip(np.nan_to_num(arr) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return _from_gray(gray, mode)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(canvas, rgba).convert("RGB")
        if mode == "auto" and _is_gray_mode_source(rgba):
            im = im.convert("L")
    if im.mode in ("1", "L"):
        gray = np.asarray(im.convert("L"), dtype=np.uint8)
        return _from_gray(gray, mode)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode == "gray":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    return np.ascontiguousarray(rgb)


def _is_gray_mode_source(im) -> bool:
    return im.mode in ("LA", "La")


def _from_gray(gray: np.ndarray, mode: str) -> np.ndarray:
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    if mode == "rgb":
        return np.repeat(gray[:, :, None], 3, axis=2)
    return gray


def _scale_to_uint8(arr: np.ndarray, peak: int) -> np.ndarray:
    arr = arr.astype(np.float64)
    return np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)


def read_array(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a ``.npy`` array (2-D, or H x W x C with C in 1..4, real numbers or bool) without
    unpickling anything; with ``max_pixels``, refuse one with more than that many pixels (H x W).

    The header is checked before any data is read, so a bad or oversized array costs nothing:
    every refusal is an :class:`InputError` with a plain one-line reason. Big-endian arrays come
    back in native byte order.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npy"); np.save(p, np.eye(3))
    >>> read_array(p).shape
    (3, 3)
    """
    path = os.fspath(path)
    size = _regular_file_size(path, what="a .npy file")
    if size == 0:
        raise InputError("empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            shape, dtype, offset = _npy_header(f)
            if dtype.hasobject:
                raise InputError("not a valid .npy array: it holds Python objects, which cnntool never unpickles")
            _check_array_header(shape, dtype, max_pixels)
            needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if size < needed:
                raise InputError(f"truncated .npy file: {size:,} of {needed:,} bytes")
            f.seek(0)
            arr = np.lib.format.read_array(f, allow_pickle=False)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(describe_os_error(exc, path)) from None
    except (ValueError, EOFError) as exc:
        raise InputError(f"not a valid .npy array: {one_line(exc)}") from None
    except MemoryError:
        raise InputError("array too large to read into memory") from None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


_NPY_MAGIC = b"\x93NUMPY"


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a ``.npy`` header; InputError when it is not one."""
    if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise InputError("not a .npy file (it does not start with the NumPy header)")
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:  # 3.0 (UTF-8 field names) has no public reader; structured dtypes are refused anyway
            raise InputError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except InputError:
        raise
    except (ValueError, EOFError, SyntaxError) as exc:
        raise InputError(f"damaged .npy header: {one_line(exc)}") from None
    return tuple(shape), dtype, f.tell()


def _check_array_header(shape: tuple[int, ...], dtype: np.dtype, max_pixels: int | None) -> None:
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
        raise InputError(f"array must be 2-D or H x W x C (C = 1, 3 or 4), got shape {shape}")
    if dtype.fields is not None or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise InputError(f"array must be numeric, got dtype {dtype}")
    if np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"array must hold real numbers, got complex dtype {dtype}")
    if max_pixels is not None and shape[0] * shape[1] > max_pixels:
        raise InputError(f"array too large: {shape[1]}x{shape[0]} exceeds --max-pixels {max_pixels:,}")


def load_pixels(path: str | os.PathLike, *, mode: str = "auto", max_pixels: int | None = None) -> np.ndarray:
    """``.npy`` files through :func:`read_array`, everything else through :func:`decode_image`."""
    if Path(path).suffix.lower() == ".npy":
        return read_array(path, max_pixels=max_pixels)
    return decode_image(path, mode=mode, max_pixels=max_pixels)


def _configure_pillow() -> None:
    # cnntool checks --max-pixels itself, before decoding, with a clearer message;
    # Pillow's own bomb check would warn or raise at a different, fixed limit.
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None


_configure_pillow()
