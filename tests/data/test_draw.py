"""Drawing: palettes, overlays, legends, boxes and text; inputs never modified; sizes that stay
legible from thumbnails to large photos."""

import numpy as np
import pytest

from cnntool.data.draw import (
    contrast_colour, draw_boxes, draw_legend, draw_text, overlay_mask, palette, text_style,
)


def test_palette_is_distinct_deterministic_with_a_black_background():
    p = palette(81)
    assert p.dtype == np.uint8 and p.shape == (81, 3)
    assert p[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in p.tolist()}) == 81
    np.testing.assert_array_equal(p, palette(81))
    # boxes use palette(..., background=False), so box label k has the colour of mask class k + 1
    np.testing.assert_array_equal(palette(10)[1:], palette(9, background=False))
    # the first classes are far apart (sum of absolute RGB differences)
    first = palette(9, background=False).astype(int)
    gaps = [np.abs(first[i] - first[j]).sum() for i in range(9) for j in range(i)]
    assert min(gaps) > 60
    # not too dark to see over a dark image
    assert (palette(30)[1:].max(axis=1) >= 150).all()


def test_overlay_blends_exactly_and_leaves_input_alone():
    image = np.full((6, 6, 3), 100, np.uint8)
    before = image.copy()
    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 1:3] = 1
    mask[4, 4] = 255
    colours = np.array([[0, 0, 0], [200, 0, 50]], np.uint8)
    out = overlay_mask(image, mask, palette=colours, alpha=0.25, outline=False)
    np.testing.assert_array_equal(image, before)
    assert out[1, 1].tolist() == [125, 75, 88]           # 0.75 * 100 + 0.25 * (200, 0, 50)
    assert out[0, 0].tolist() == [100, 100, 100]          # background unpainted
    assert out[4, 4].tolist() == [100, 100, 100]          # ignore unpainted
    with_bg = overlay_mask(image, mask, palette=colours, alpha=1.0, background=None, outline=False)
    assert with_bg[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="does not match"):
        overlay_mask(image, mask[:5], palette=colours)
    with pytest.raises(ValueError, match="palette has 2 colours"):
        overlay_mask(image, mask * 3, palette=colours)


def test_overlay_outlines_regions_and_accepts_grayscale():
    gray = np.full((40, 40), 50, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 2
    out = overlay_mask(gray, mask, alpha=0.1)
    colour = palette(3)[2]
    assert out.shape == (40, 40, 3)
    assert out[10, 20].tolist() == colour.tolist()  # border drawn at full opacity
    assert out[20, 20].tolist() != colour.tolist()  # inside blended


def test_text_style_scales_with_the_image():
    small, medium, large = text_style((32, 32)), text_style((480, 640)), text_style((3000, 4000))
    assert small.text_height >= 8 and small.line_width == 1
    assert small.text_height < medium.text_height < large.text_height <= 60
    assert large.line_width > medium.line_width >= 1 and large.thickness >= 3


@pytest.mark.parametrize("shape", [(32, 32), (300, 400), (3000, 4000)])
def test_boxes_and_captions_stay_in_the_image(shape):
    image = np.zeros((*shape, 3), np.uint8)
    h, w = shape
    boxes = [[0, 0, w // 2, h // 2], [w // 3, h // 2, w, h]]  # one at the top edge: caption goes inside
    out = draw_boxes(image, boxes, labels=[0, 1], names=["cat", "dog"], scores=[0.91, 0.5])
    assert out.shape == (*shape, 3) and image.max() == 0
    colours = palette(2, background=False)
    style = text_style(shape)
    # the second box's left edge is drawn in its colour, with the image's line width
    column = out[h // 2 + 1:h, w // 3]
    assert (column == colours[1]).all(axis=1).all()
    # the first box's caption tab (filled in the box colour) sits inside the image at the top
    tab = out[:style.text_height, style.pad:style.pad + style.text_height]
    assert (tab == colours[0]).all(axis=2).any()


def test_box_caption_text_contrasts_with_its_tab():
    assert contrast_colour((255, 255, 255)) == (0, 0, 0)
    assert contrast_colour((20, 20, 20)) == (255, 255, 255)
    out = draw_boxes(np.zeros((200, 200, 3), np.uint8), [[50, 80, 150, 150]], texts=["label"],
                     colours=[(255, 255, 0)])
    tab = out[40:80, 50:150]
    assert ((tab == 0).all(axis=2) & ~(tab == 255).all(axis=2)).any()  # dark glyphs on the yellow tab


def test_boxes_argument_checks():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        draw_boxes(image, [[0, 0, 5, 5], [1, 1, 4, 4]], labels=[0])
    assert draw_boxes(image, np.zeros((0, 4))).shape == (10, 10, 3)


def test_legend_inside_on_large_and_beside_on_small_images():
    names, colours = ["background", "circle", "square"], palette(3)
    large = np.full((800, 1000, 3), 255, np.uint8)
    out = draw_legend(large, names, colours)
    assert out.shape == large.shape and large.min() == 255
    assert (out == colours[1]).all(axis=2).any() and (out == colours[2]).all(axis=2).any()
    thumb = np.full((32, 32, 3), 255, np.uint8)
    beside = draw_legend(thumb, names, colours)
    assert beside.shape[1] > 32 and (beside[:32, :32] == 255).all()  # the image is not covered
    inside = draw_legend(thumb, names, colours, placement="inside")
    assert inside.shape == thumb.shape
    with pytest.raises(ValueError, match="2 names but 3 colours"):
        draw_legend(large, names[:2], colours)


def test_draw_text_lines_clamping_and_non_ascii():
    image = np.zeros((60, 200), np.uint8)
    out = draw_text(image, "Größe 1\nzweite", origin=(190, 55), colour=(255, 0, 0), background=(0, 0, 255))
    assert out.shape == (60, 200, 3) and image.max() == 0
    blue = (out == [0, 0, 255]).all(axis=2)
    rows, cols = np.nonzero(blue)
    assert rows.max() == 59 and cols.max() == 199 and cols.min() < 190  # pulled back inside
    assert (out == [255, 0, 0]).all(axis=2).any() or (out[..., 0] > 200).any()


def test_inputs_of_other_kinds():
    with pytest.raises(ValueError, match="uint8"):
        draw_text(np.zeros((5, 5), np.float32), "x")
    rgba = np.zeros((20, 20, 4), np.uint8)
    assert draw_boxes(rgba, [[2, 2, 10, 10]]).shape == (20, 20, 3)
