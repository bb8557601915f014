import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from cnntool.data.decode import decode_image, load_pixels, read_array
from cnntool.errors import InputError
from tests.data.conftest import write_rgb


def test_png_round_trip_is_exact(tmp_path, rgb_image):
    path = write_rgb(tmp_path / "a.png", rgb_image)
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, rgb_image)


def test_modes_gray_rgb_auto(tmp_path, rgb_image):
    gray = rgb_image[:, :, 0]
    path = tmp_path / "g.png"
    Image.fromarray(gray).save(path)
    assert decode_image(path, mode="auto").shape == (12, 16)
    rgb = decode_image(path, mode="rgb")
    assert rgb.shape == (12, 16, 3) and (rgb[:, :, 0] == gray).all() and (rgb[:, :, 2] == gray).all()
    colour = write_rgb(tmp_path / "c.png", rgb_image)
    np.testing.assert_array_equal(decode_image(colour, mode="gray"), cv2.cvtColor(rgb_image, cv2.COLOR_RGB2GRAY))
    assert decode_image(colour, mode="auto").shape == (12, 16, 3)


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200          # red channel
    rgba[:2, :, 3] = 255        # top half opaque, bottom half transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = decode_image(path)
    assert out[0, 0].tolist() == [200, 0, 0]
    assert out[3, 0].tolist() == [255, 255, 255]


def test_sixteen_bit_is_scaled_to_eight(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], np.uint16)
    path = tmp_path / "d.png"
    assert cv2.imwrite(str(path), values)
    out = decode_image(path, mode="auto")
    assert out.tolist() == [[0, 1, 255, 128]]


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = 255  # left half white
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    pil.save(path, exif=exif, quality=95)
    out = decode_image(path)
    assert out.shape == (20, 10, 3)
    assert out[:8].mean() > 200 and out[-8:].mean() < 50  # the white half is now on top


def test_palette_with_transparency(tmp_path):
    pil = Image.new("P", (4, 4), 0)
    pil.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pil.putpixel((0, 0), 1)
    pil.info["transparency"] = 0
    path = tmp_path / "p.png"
    pil.save(path, transparency=0)
    out = decode_image(path)
    assert out[0, 0].tolist() == [200, 100, 50] and out[1, 1].tolist() == [255, 255, 255]


def test_non_ascii_path(tmp_path, rgb_image):
    path = write_rgb(tmp_path / "снимок 猫.png", rgb_image)
    np.testing.assert_array_equal(decode_image(path), rgb_image)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()), "not an image"),
    ],
)
def test_bad_files_give_one_line_reasons(tmp_path, make, reason):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(InputError) as info:
        decode_image(path)
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_truncated_jpeg(tmp_path, rgb_image):
    big = cv2.resize(rgb_image, (256, 256))
    ok, buf = cv2.imencode(".jpg", big)
    path = tmp_path / "t.jpg"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(InputError, match="truncated"):
        decode_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        decode_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="directory"):
        decode_image(tmp_path)


def _png_header_only(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # declares 10 gigapixels in 100 bytes
    with pytest.raises(InputError, match=r"image too large: 100000x100000"):
        decode_image(path)


def test_max_pixels_option(tmp_path, rgb_image):
    path = write_rgb(tmp_path / "a.png", rgb_image)
    with pytest.raises(InputError, match="exceeds --max-pixels 100"):
        decode_image(path, max_pixels=100)
    assert decode_image(path, max_pixels=12 * 16).shape == (12, 16, 3)


def test_read_array_and_load_pixels(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_pixels(tmp_path / "a.npy"), a)
    np.save(tmp_path / "b.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(InputError, match="2-D or H x W x C"):
        read_array(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a valid .npy"):
        read_array(tmp_path / "c.npy")


def test_opencv_path_is_used_for_plain_files_and_agrees_with_pillow(tmp_path, rgb_image):
    from cnntool.data import decode

    big = cv2.resize(rgb_image, (64, 48))
    jpg = write_rgb(tmp_path / "a.jpg", big)
    png = write_rgb(tmp_path / "a.png", big)
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([big, np.full(big.shape[:2], 128, np.uint8)]), "RGBA").save(rgba)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(jpg.read_bytes()[:-200])
    for path, expect_fast in ((jpg, True), (png, True), (rgba, False), (truncated, False)):
        with Image.open(path) as im:
            fast = decode._decode_with_opencv(im, str(path), "rgb")
        assert (fast is not None) == expect_fast, path.name
        if fast is not None:
            with Image.open(path) as im:
                np.testing.assert_array_equal(fast, np.asarray(im.convert("RGB")))


def test_one_bit_png_decodes_with_opencv_as_pillow_does(tmp_path):
    from cnntool.data import decode

    bits = np.random.default_rng(3).random((13, 37)) > 0.5  # an odd width pads every row
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    with Image.open(path) as im:
        assert im.mode == "1"
        assert decode._decode_with_opencv(im, str(path), "auto") is not None  # no Pillow copies
    expected = np.where(bits, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(path, mode="auto"), expected)
    np.testing.assert_array_equal(decode_image(path, mode="rgb"), np.repeat(expected[:, :, None], 3, axis=2))


def _npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("data, reason", [
    (b"garbage", "not a .npy file (it does not start with the NumPy header)"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': ", "damaged .npy header"),
    (_npy_header((4, 4)) + b"\x00" * 16, "truncated .npy file: 144 of 256 bytes"),
    (_npy_header((4, 4), "<c16") + b"\x00" * 256, "complex dtype"),
])
def test_bad_npy_files_give_plain_one_line_reasons(tmp_path, data, reason):
    path = tmp_path / "x.npy"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_array(path)
    message = str(info.value)
    assert reason in message and "\n" not in message and "allow_pickle" not in message, message


def test_npy_headers_are_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((100_000, 100_000)))  # declares 80 GB in 128 bytes
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("read the data"))
    with pytest.raises(InputError, match=r"array too large: 100000x100000 exceeds --max-pixels 1,000"):
        read_array(path, max_pixels=1000)
    with pytest.raises(InputError, match="truncated .npy file"):
        read_array(path)


def test_big_endian_arrays_come_back_native(tmp_path):
    a = np.arange(6, dtype=">f8").reshape(2, 3)
    np.save(tmp_path / "be.npy", a)
    out = read_array(tmp_path / "be.npy")
    assert out.dtype == np.float64 and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_pipes_links_and_permissions_give_one_line_reasons(tmp_path, monkeypatch):
    import builtins
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes
    loop = tmp_path / "loop.npy"
    os.symlink(loop.name, loop)
    for call in (decode_image, read_array):
        with pytest.raises(InputError, match="not a regular file: a named pipe"):
            call(fifo)
        with pytest.raises(InputError, match="^symbolic link loop"):
            call(loop)
        with pytest.raises(InputError, match="is a directory, not"):
            call(tmp_path)
    locked = write_rgb(tmp_path / "locked.png", np.zeros((4, 4, 3), np.uint8))
    np.save(tmp_path / "locked.npy", np.eye(2))
    real_open = builtins.open

    def no_read(file, *args, **kwargs):  # chmod 000 does not stop root
        if "locked" in str(file):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_read)
    for path, call in ((locked, decode_image), (tmp_path / "locked.npy", read_array)):
        with pytest.raises(InputError, match="^permission denied$"):
            call(path)
