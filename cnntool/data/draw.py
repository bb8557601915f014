"""Drawing over images for people to read: class palettes, mask overlays, legends, boxes, text.

The shared floor of every stage that draws (detect, segment, explain, video). All functions
take an RGB uint8 image (H, W, 3) or a grayscale one (H, W), never modify it, and return a new
RGB uint8 array. Drawing is OpenCV's (anti-aliased lines, Hershey fonts).

Sizes follow the image (:func:`text_style`): line width and font scale grow with the shorter
image side, with floors that keep a label readable on a 32-pixel thumbnail and ceilings that
keep it modest on a 4000-pixel photo. Text always sits on a filled background in a colour that
contrasts with it, so it reads over any picture. Hershey fonts have ASCII glyphs only: other
characters are transliterated (``é`` -> ``e``) or shown as ``?``.

Examples
--------
>>> image = np.zeros((64, 96, 3), np.uint8)
>>> mask = np.zeros((64, 96), np.uint8); mask[10:30, 20:50] = 1
>>> colours = palette(2)
>>> colours[0].tolist()
[0, 0, 0]
>>> shown = overlay_mask(image, mask, palette=colours, alpha=0.5)
>>> shown.shape, bool((shown[20, 30] > 0).any()), int(image.max())
((64, 96, 3), True, 0)
>>> boxed = draw_boxes(image, [[10, 10, 40, 40]], texts=["cat 0.93"])
>>> boxed.shape, int(boxed.max()) > 0
((64, 96, 3), True)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Colour of class 0 (background) in :func:`palette`: black, and not painted by overlays.
BACKGROUND_COLOUR = (0, 0, 0)

#: The golden-ratio conjugate: successive hues this far apart on the colour wheel never cluster.
_GOLDEN = 0.618033988749895

# OpenCV's FONT_HERSHEY_SIMPLEX cap height is about 22 px at scale 1.0 (thickness 1)
_FONT_PX = 22.0


def palette(n: int, *, background: bool = True) -> np.ndarray:
    """``n`` distinct RGB colours (uint8 (n, 3)), the same for the same ``n`` on every run.

    Hues step round the colour wheel by the golden ratio (neighbouring class indices get far
    apart hues, and any number of classes stays distinguishable as long as that is possible),
    with saturation and brightness alternating in three tiers so that classes 1 and 1 + k
    rarely look alike even for many classes.

    Parameters
    ----------
    n : int
        Number of classes.
    background : bool
        Class 0 is background: black (:data:`BACKGROUND_COLOUR`), which overlays leave
        unpainted. False gives every index a colour (detection class lists, instance ids).

    Examples
    --------
    >>> p = palette(4)
    >>> p.shape, p.dtype, p[0].tolist()
    ((4, 3), dtype('uint8'), [0, 0, 0])
    >>> len({tuple(c) for c in palette(80, background=False).tolist()})
    80
    """
    import cv2

    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    start = 1 if background else 0
    count = n - start
    out = np.zeros((max(n, 0), 3), np.uint8)
    if count <= 0:
        return out
    k = np.arange(count)
    hue = (0.02 + k * _GOLDEN) % 1.0
    saturation = np.array([0.90, 0.65, 1.00])[k % 3]
    value = np.array([1.00, 0.90, 0.75])[(k // 3) % 3]
    hsv = np.stack([hue * 180, saturation * 255, value * 255], axis=1)
    hsv = np.clip(np.round(hsv), 0, 255).astype(np.uint8)[None]
    out[start:] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    return out


_default_palette = palette  # overlay_mask's keyword argument has the same name


@dataclass(frozen=True)
class TextStyle:
    """Sizes for drawing on one image (pixels, and OpenCV font units).

    Attributes
    ----------
    font_scale : float
    thickness : int
        Stroke of the glyphs.
    line_width : int
        Stroke of boxes and outlines.
    pad : int
        Margin between text and its filled background.
    """

    font_scale: float
    thickness: int
    line_width: int
    pad: int

    @property
    def text_height(self) -> int:
        """Cap height of one line of text in pixels."""
        return max(1, int(round(_FONT_PX * self.font_scale)))


def text_style(shape: tuple[int, ...]) -> TextStyle:
    """Line width and font size for an image of ``shape`` (H, W[, C]).

    Text is about 2.5% of the shorter side tall, never under 8 px (readable on a 32-px
    thumbnail) nor over 60 px; lines are about 0.3% of the shorter side wide, at least 1 px
    and at most 12 px.

    Examples
    --------
    >>> text_style((32, 32)).text_height, text_style((32, 32)).line_width
    (8, 1)
    >>> s = text_style((3000, 4000))
    >>> s.text_height, s.line_width, s.thickness
    (60, 9, 5)
    """
    short = max(1, min(int(shape[0]), int(shape[1])))
    height_px = float(np.clip(0.025 * short, 8.0, 60.0))
    font_scale = height_px / _FONT_PX
    thickness = max(1, int(round(height_px / 12)))
    line_width = int(np.clip(round(0.003 * short), 1, 12))
    pad = max(1, int(round(height_px * 0.3)))
    return TextStyle(font_scale=font_scale, thickness=thickness, line_width=line_width, pad=pad)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """A new, C-contiguous RGB uint8 copy of ``image``."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"drawing needs a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 3:
        return np.array(image, copy=True, order="C")
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected an image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")


def _ascii(text: str) -> str:
    """``text`` in the glyphs Hershey fonts have: accents dropped, other characters as ``?``."""
    return "".join(ch if ord(ch) < 128 else (_fold(ch) or "?") for ch in str(text))


def _fold(ch: str) -> str:
    return unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")


def contrast_colour(colour: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``colour`` (by its luma).

    Examples
    --------
    >>> contrast_colour((255, 255, 0)), contrast_colour((0, 0, 128))
    ((0, 0, 0), (255, 255, 255))
    """
    r, g, b = (float(c) for c in colour[:3])
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _text_block(canvas: np.ndarray, lines: list[str], x: int, y: int, style: TextStyle,
                colour, background) -> None:
    """Draw ``lines`` with their filled background, top-left at (x, y), in place on ``canvas``."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, style.font_scale, style.thickness) for line in lines]
    line_h = max(style.text_height, max(s[0][1] for s in sizes)) + style.pad
    width = max(s[0][0] for s in sizes) + 2 * style.pad
    height = line_h * len(lines) + style.pad
    if background is not None:
        cv2.rectangle(canvas, (x, y), (x + width - 1, y + height - 1), tuple(int(c) for c in background), -1)
    for i, line in enumerate(lines):
        baseline_y = y + style.pad + (i + 1) * line_h - style.pad
        cv2.putText(canvas, line, (x + style.pad, baseline_y), font, style.font_scale,
                    tuple(int(c) for c in colour), style.thickness, cv2.LINE_AA)


def text_size(text: str, style: TextStyle) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` (lines split on ``\\n``) with its background.

    Examples
    --------
    >>> w, h = text_size("ab", text_style((100, 100)))
    >>> w > 0 and h > 0
    True
    """
    import cv2

    lines = _ascii(text).split("\n")
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, style.thickness) for line in lines]
    line_h = max(style.text_height, max(s[0][1] for s in sizes)) + style.pad
    return max(s[0][0] for s in sizes) + 2 * style.pad, line_h * len(lines) + style.pad


def draw_text(image: np.ndarray, text: str, *, origin: tuple[int, int] = (0, 0),
              colour: Sequence[int] = (255, 255, 255), background: Sequence[int] | None = (0, 0, 0),
              style: TextStyle | None = None) -> np.ndarray:
    """``text`` on a filled background, its top-left corner at ``origin`` (x, y).

    The block is moved inside the image when it would stick out (as far as the image is large
    enough). Lines are split on ``\\n``.

    Parameters
    ----------
    image : numpy.ndarray
    text : str
    origin : (int, int)
        Top-left corner (x, y) in pixels.
    colour : RGB
    background : RGB or None
        None draws the text alone.
    style : TextStyle, optional
        Default :func:`text_style` of the image.

    Examples
    --------
    >>> out = draw_text(np.zeros((40, 120), np.uint8), "frame 12\\n0.5 s", origin=(2, 2))
    >>> out.shape, int(out.max())
    ((40, 120, 3), 255)
    """
    canvas = _as_rgb(image)
    style = style or text_style(canvas.shape)
    lines = _ascii(text).split("\n")
    width, height = text_size(text, style)
    x = int(np.clip(origin[0], 0, max(0, canvas.shape[1] - width)))
    y = int(np.clip(origin[1], 0, max(0, canvas.shape[0] - height)))
    _text_block(canvas, lines, x, y, style, colour, background)
    return canvas


def overlay_mask(image: np.ndarray, mask: np.ndarray, *, palette: np.ndarray | None = None,
                 alpha: float = 0.5, ignore: int | None = 255, background: int | None = 0,
                 outline: bool = True) -> np.ndarray:
    """Class colours blended over ``image`` where ``mask`` holds a class.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (H, W, 3) or (H, W).
    mask : numpy.ndarray
        Integer (H, W) class indices, the image's size.
    palette : numpy.ndarray, optional
        uint8 (K, 3) colours by class index; default :func:`palette` of ``mask.max() + 1``.
    alpha : float
        Opacity of the colour in [0, 1].
    ignore : int or None
        Index left unpainted (the "not labelled" value, 255).
    background : int or None
        Class left unpainted (0); None paints every class.
    outline : bool
        Also draw each region's border at full opacity (:func:`text_style` line width), so
        regions stay visible when ``alpha`` is low or the colours are close to the image's.

    Examples
    --------
    >>> image = np.full((4, 4, 3), 100, np.uint8)
    >>> mask = np.array([[0, 1, 1, 255]] * 4)
    >>> out = overlay_mask(image, mask, palette=np.array([[0, 0, 0], [255, 0, 0]], np.uint8),
    ...                    alpha=0.5, outline=False)
    >>> out[0].tolist()
    [[100, 100, 100], [178, 50, 50], [178, 50, 50], [100, 100, 100]]
    """
    import cv2

    canvas = _as_rgb(image)
    mask = np.asarray(mask)
    if mask.shape != canvas.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image's {canvas.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    paint = np.ones(mask.shape, bool)
    if ignore is not None:
        paint &= mask != ignore
    if background is not None:
        paint &= mask != background
    if not paint.any():
        return canvas
    if palette is None:
        palette = _default_palette(int(mask[paint].max()) + 1)
    colours = np.asarray(palette, np.uint8)
    if int(mask[paint].max()) >= len(colours) or int(mask[paint].min()) < 0:
        raise ValueError(f"mask holds class {int(mask[paint].max())} but the palette has {len(colours)} colours")
    layer = colours[mask[paint].astype(np.int64)].astype(np.float32)
    blended = canvas[paint].astype(np.float32) * (1.0 - alpha) + layer * alpha
    canvas[paint] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    if outline:
        width = text_style(canvas.shape).line_width
        for cls in np.unique(mask[paint]):
            region = (mask == cls).astype(np.uint8)
            contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in colours[int(cls)]), width, cv2.LINE_8)
    return canvas


def draw_legend(image: np.ndarray, names: Sequence[str], colours, *, placement: str = "auto") -> np.ndarray:
    """A legend (a colour swatch and a name per row) on a dark panel.

    Parameters
    ----------
    image : numpy.ndarray
    names : sequence of str
    colours : array-like of uint8 (len(names), 3)
    placement : {"auto", "inside", "right"}
        ``inside``: over the image's top-right corner. ``right``: on a panel added to the right
        of the image (the result is wider; nothing is hidden). ``auto``: inside when the legend
        covers at most a third of the image's width and half its height, else right, so that a
        legend is readable on a thumbnail too.

    Examples
    --------
    >>> small = draw_legend(np.zeros((32, 32, 3), np.uint8), ["background", "cat"], palette(2))
    >>> small.shape[0] == 32 and small.shape[1] > 32
    True
    >>> draw_legend(np.zeros((600, 800, 3), np.uint8), ["a", "b"], palette(2)).shape
    (600, 800, 3)
    """
    import cv2

    canvas = _as_rgb(image)
    names = [_ascii(n) for n in names]
    colours = np.asarray(colours, np.uint8).reshape(-1, 3)
    if len(names) != len(colours):
        raise ValueError(f"{len(names)} names but {len(colours)} colours")
    if placement not in ("auto", "inside", "right"):
        raise ValueError("placement must be auto, inside or right")
    if not names:
        return canvas
    h, w = canvas.shape[:2]
    style = text_style(canvas.shape)
    font = cv2.FONT_HERSHEY_SIMPLEX
    swatch = style.text_height
    row_h = style.text_height + 2 * style.pad
    text_w = max(cv2.getTextSize(n, font, style.font_scale, style.thickness)[0][0] for n in names)
    panel_w = style.pad * 3 + swatch + text_w + style.pad
    panel_h = row_h * len(names) + style.pad
    if placement == "auto":
        placement = "inside" if panel_w <= w / 3 and panel_h <= h / 2 else "right"
    if placement == "right":
        out = np.zeros((max(h, panel_h), w + panel_w, 3), np.uint8)
        out[:h, :w] = canvas
        canvas, x0, y0 = out, w, 0
    else:
        x0, y0 = max(0, w - panel_w), 0
        region = canvas[y0:y0 + panel_h, x0:x0 + panel_w]
        region[:] = (region.astype(np.float32) * 0.25).astype(np.uint8)  # darkened, still visible
    for i, (name, colour) in enumerate(zip(names, colours)):
        top = y0 + style.pad + i * row_h
        sx = x0 + 2 * style.pad
        cv2.rectangle(canvas, (sx, top + style.pad), (sx + swatch - 1, top + style.pad + swatch - 1),
                      tuple(int(c) for c in colour), -1)
        cv2.rectangle(canvas, (sx, top + style.pad), (sx + swatch - 1, top + style.pad + swatch - 1),
                      (255, 255, 255), 1)
        cv2.putText(canvas, name, (sx + swatch + style.pad, top + style.pad + style.text_height),
                    font, style.font_scale, (255, 255, 255), style.thickness, cv2.LINE_AA)
    return canvas


def draw_boxes(image: np.ndarray, boxes_xyxy, *, labels: Sequence[int] | None = None,
               names: Sequence[str] | None = None, texts: Sequence[str] | None = None,
               scores: Sequence[float] | None = None, colours=None) -> np.ndarray:
    """Boxes with a caption each (class name and score on a filled tab in the box's colour).

    Parameters
    ----------
    image : numpy.ndarray
    boxes_xyxy : array-like (N, 4)
        ``x1, y1, x2, y2`` in pixels (x2, y2 exclusive, as cnntool's boxes are).
    labels : sequence of int, optional
        Class index of each box: picks its colour (:func:`palette` without background) and,
        with ``names``, its caption.
    names : sequence of str, optional
        Class names by index.
    texts : sequence of str, optional
        Captions given outright (override the names; scores are still appended).
    scores : sequence of float, optional
        Appended to the caption with two decimals.
    colours : array-like (N, 3) or (3,), optional
        Per-box (or one) RGB colour; default by label, else one colour for all.

    Examples
    --------
    >>> out = draw_boxes(np.zeros((50, 50, 3), np.uint8), [[5, 5, 30, 30], [20, 20, 45, 48]],
    ...                  labels=[0, 1], names=["cat", "dog"], scores=[0.9, 0.55])
    >>> out.shape, int((out.sum(axis=2) > 0).sum()) > 100
    ((50, 50, 3), True)
    """
    import cv2

    canvas = _as_rgb(image)
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    n = len(boxes)
    for what, seq in (("labels", labels), ("texts", texts), ("scores", scores)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{n} boxes but {len(seq)} {what}")
    if colours is not None:
        box_colours = np.broadcast_to(np.asarray(colours, np.uint8).reshape(-1, 3), (n, 3))
    elif labels is not None and n:
        table = palette(int(max(labels)) + 1, background=False)
        box_colours = table[np.asarray(labels, np.int64)]
    else:
        box_colours = np.broadcast_to(palette(1, background=False), (n, 3))
    style = text_style(canvas.shape)
    h, w = canvas.shape[:2]
    captions: list[tuple[str, np.ndarray, int, int]] = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        colour = tuple(int(c) for c in box_colours[i])
        p1 = (int(round(x1)), int(round(y1)))
        p2 = (max(p1[0], int(round(x2)) - 1), max(p1[1], int(round(y2)) - 1))
        cv2.rectangle(canvas, p1, p2, colour, style.line_width, cv2.LINE_8)  # crisp, exact colour
        caption = _caption(i, labels, names, texts, scores)
        if caption:
            captions.append((caption, box_colours[i], p1[0], p1[1]))
    for caption, colour, x, y in captions:  # after every box, so no box line crosses a caption
        tw, th = text_size(caption, style)
        top = y - th if y - th >= 0 else y  # above the box, or inside it at the top edge
        left = int(np.clip(x, 0, max(0, w - tw)))
        top = int(np.clip(top, 0, max(0, h - th)))
        _text_block(canvas, [_ascii(caption)], left, top, style, contrast_colour(colour), colour)
    return canvas


def _caption(i: int, labels, names, texts, scores) -> str:
    if texts is not None:
        text = str(texts[i])
    elif labels is not None:
        label = int(labels[i])
        text = str(names[label]) if names is not None and 0 <= label < len(names) else str(label)
    else:
        text = ""
    if scores is not None:
        text = f"{text} {float(scores[i]):.2f}".strip()
    return text


__all__ = ["BACKGROUND_COLOUR", "TextStyle", "contrast_colour", "draw_boxes", "draw_legend", "draw_text",
           "overlay_mask", "palette", "text_size", "text_style"]


# --- heatmaps and small images -----------------------------------------------------------------

#: Weight of the photo in a heatmap overlay (the heatmap gets the rest), as pytorch-grad-cam's default.
OVERLAY_IMAGE_WEIGHT = 0.5
#: Overlays of images smaller than this (shorter side) show the photo beside the overlay, enlarged.
MIN_OVERLAY_SIDE = 128
#: Pictures for people (kernel grids, maximised inputs) are enlarged until their shorter side is this.
READABLE_SIDE = 256
#: The longest side a drawing is enlarged to (``cnntool.data.pixels.MAX_DRAW_SIDE``).
_MAX_SIDE = 4096


def readable(image: np.ndarray, *, min_side: int = READABLE_SIDE, max_side: int = _MAX_SIDE) -> np.ndarray:
    """``image`` enlarged by the whole factor (nearest neighbour: pixels stay crisp) that brings its
    shorter side to at least ``min_side``, without its longer side passing ``max_side``.

    Examples
    --------
    >>> readable(np.zeros((32, 32, 3), np.uint8)).shape, readable(np.zeros((1, 8000), np.uint8)).shape
    ((256, 256, 3), (1, 8000))
    """
    h, w = image.shape[:2]
    factor = max(1, -(-min_side // max(1, min(h, w))))
    factor = min(factor, max(1, max_side // max(h, w)))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, text: str = "", seen=None,
                    image_weight: float = OVERLAY_IMAGE_WEIGHT) -> np.ndarray:
    """A heatmap (JET colour map) blended over the photo, ``text`` in the top-left corner.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (h, w, 3) RGB or (h, w) grayscale; not modified.
    heatmap : numpy.ndarray
        float (h, w) in [0, 1].
    text : str
        Written on a dark band (class and score).
    seen : tuple of float, optional
        (x0, y0, x1, y1): the region the model saw; outside it the photo is only dimmed.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3) RGB; when the image's shorter side is under :data:`MIN_OVERLAY_SIDE`
        (an 8 x 8 digit), the photo and its overlay side by side, enlarged by a whole factor, so
        the heatmap does not hide what it explains (a 1 x 8000 strip stays a strip).

    Examples
    --------
    >>> overlay_heatmap(np.zeros((200, 300, 3), np.uint8), np.ones((200, 300)), text="cat 0.93").shape
    (200, 300, 3)
    """
    import cv2

    rgb = _as_rgb(image)
    heat_u8 = np.uint8(255 * np.clip(heatmap, 0, 1))
    colour = cv2.cvtColor(cv2.applyColorMap(heat_u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blend = image_weight * rgb.astype(np.float32) + (1 - image_weight) * colour.astype(np.float32)
    if seen is not None:
        from cnntool.data.preprocessing import seen_mask

        outside = ~seen_mask(rgb.shape[:2], seen)
        blend[outside] = image_weight * rgb[outside].astype(np.float32)
    out = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    if min(out.shape[:2]) < MIN_OVERLAY_SIDE:
        gap = np.full((out.shape[0], max(1, out.shape[1] // 16), 3), 255, np.uint8)
        if 2 * out.shape[1] + gap.shape[1] <= _MAX_SIDE:
            out = np.concatenate([rgb, gap, out], axis=1)
        out = np.ascontiguousarray(readable(out, min_side=MIN_OVERLAY_SIDE))
    return draw_text(out, text) if text else out
