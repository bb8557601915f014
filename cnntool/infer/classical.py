"""Classical, model-free segmentation: thresholds, watershed, superpixels, colour clusters.

The lectures' unsupervised segmentation: cluster pixels by intensity, colour or texture, with
no training. Every method takes an image array (RGB uint8 (H, W, 3) or grayscale (H, W)) and
returns a :class:`ClassicalSegmentation`, the same shape of answer as the model path: an int32
label image (0 background, 1..N regions), a uint8 class mask with its class names, and one
:class:`Region` (area, box, centroid) per region.

Methods (:data:`METHODS`):

``otsu``
    Foreground by Otsu's threshold on the luminance, after removing uneven illumination: the
    background estimate is the image blurred by a Gaussian whose sigma is a fraction
    (``background_sigma``, default 0.1) of the shorter image side, so brightness changes on
    scales larger than a tenth of the image count as lighting, not as objects. Which side of
    the threshold is foreground: ``polarity`` (``auto``: the side with fewer pixels, as objects
    usually cover less than the background). Then holes are filled and objects smaller than
    ``min_size`` (a fraction of the image area, default 0.001) are removed. Regions are the
    connected components (8-connectivity).
``watershed``
    The ``otsu`` foreground split into touching objects: the watershed of the negated distance
    transform from markers at its h-maxima, ``h = split * r`` with ``r`` the median object
    radius (largest inscribed-disc radius of the foreground components) and ``split`` default
    0.2: two blobs are split when the neck between them is narrower than 80% of a typical
    object's width.
``slic``
    SLIC superpixels (``n_segments``, ``compactness``); every pixel is in a region, none is
    background.
``felzenszwalb``
    Felzenszwalb's graph segmentation (``scale``, ``sigma``, ``min_size`` as a fraction of the
    image area); every pixel is in a region.
``kmeans``
    k-means colour clustering in CIELAB (``k`` clusters, ``seed``). Cluster 0 is the largest
    (taken as background); the class mask holds cluster indices (sorted by pixel count), and
    regions are the connected components of the other clusters larger than ``min_size``.

The defaults are relative to the image (fractions of its side or area), not pixel counts, so
they carry over between resolutions; scikit-image's ``coins`` photo gives 24 regions, its 24
coins, with ``otsu`` and with ``watershed`` for ``background_sigma`` from 0.05 to 0.2 and
``min_size`` from 0.0005 to 0.002, and at half and twice its resolution
(tests/infer/test_classical.py).

Examples
--------
>>> image = np.zeros((60, 80), np.uint8)
>>> image[10:25, 10:30] = 200; image[35:55, 45:70] = 200
>>> result = segment_classical(image, method="otsu")
>>> int(result.labels.max()), [r.area for r in result.regions]
(2, [300, 500])
>>> result.regions[0].box, result.class_names
((10.0, 10.0, 30.0, 25.0), ('background', 'foreground'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnntool.errors import UsageError, unknown_choice

#: The method names, in the order ``--method`` lists them.
METHODS = ("otsu", "watershed", "slic", "felzenszwalb", "kmeans")

#: Default smallest object kept, as a fraction of the image area.
DEFAULT_MIN_SIZE = 0.001

#: Default sigma of the illumination estimate, as a fraction of the shorter side.
DEFAULT_BACKGROUND_SIGMA = 0.1

#: Default watershed marker depth, as a fraction of the median object radius.
DEFAULT_SPLIT = 0.2

POLARITIES = ("auto", "bright", "dark")


@dataclass(frozen=True)
class Region:
    """One region of a label image.

    Attributes
    ----------
    label : int
        Its value in :attr:`ClassicalSegmentation.labels` (1..N).
    class_id : int
        Its class in the class mask (1 foreground for otsu/watershed, the cluster for kmeans,
        0 for superpixels, which have no classes).
    area : int
        Pixels.
    box : (float, float, float, float)
        ``x1, y1, x2, y2`` in pixels, x2/y2 exclusive (cnntool's box convention).
    centroid : (float, float)
        ``x, y`` in pixels (pixel centres at integer + 0.5 are not used: column, row means).
    """

    label: int
    class_id: int
    area: int
    box: tuple[float, float, float, float]
    centroid: tuple[float, float]

    def to_record(self) -> dict:
        """Plain data for a record's ``instances``."""
        return {"label": self.label, "class_id": self.class_id, "area": self.area,
                "box": [round(v, 2) for v in self.box], "centroid": [round(v, 2) for v in self.centroid]}


@dataclass(frozen=True)
class ClassicalSegmentation:
    """What a classical method found.

    Attributes
    ----------
    method : str
    labels : numpy.ndarray
        int32 (H, W): 0 background, 1..N regions.
    class_mask : numpy.ndarray
        uint8 (H, W) class indices (0 background) for the index-mask PNG.
    class_names : tuple of str
        Names of the class indices of ``class_mask``.
    regions : list of Region
        One per label 1..N, in label order.
    threshold : float or None
        The threshold used (luminance in [0, 1] after illumination correction), for
        otsu/watershed.
    """

    method: str
    labels: np.ndarray
    class_mask: np.ndarray
    class_names: tuple[str, ...]
    regions: list[Region]
    threshold: float | None = None

    @property
    def count(self) -> int:
        """Number of regions."""
        return len(self.regions)

    def class_fractions(self) -> dict[str, float]:
        """Fraction of the pixels in each class, by name.

        Examples
        --------
        >>> r = segment_classical(np.pad(np.full((2, 2), 255, np.uint8), 1), method="otsu",
        ...                        background_sigma=None, min_size=0)
        >>> r.class_fractions()
        {'background': 0.75, 'foreground': 0.25}
        """
        counts = np.bincount(self.class_mask.ravel(), minlength=len(self.class_names))
        total = max(1, int(self.class_mask.size))
        return {name: float(counts[i]) / total for i, name in enumerate(self.class_names)}


def segment_classical(image: np.ndarray, *, method: str = "otsu", **options) -> ClassicalSegmentation:
    """Segment ``image`` with the classical method ``method`` (one of :data:`METHODS`).

    ``options`` are the keyword arguments of that method's function (:func:`otsu_segment`,
    :func:`watershed_segment`, :func:`slic_segment`, :func:`felzenszwalb_segment`,
    :func:`kmeans_segment`).

    Raises
    ------
    UsageError
        An unknown method, or an option the method does not take.

    Examples
    --------
    >>> segment_classical(np.zeros((8, 8), np.uint8), method="kmean")
    Traceback (most recent call last):
    ...
    cnntool.errors.UsageError: unknown --method 'kmean'
    """
    import inspect

    functions = {"otsu": otsu_segment, "watershed": watershed_segment, "slic": slic_segment,
                 "felzenszwalb": felzenszwalb_segment, "kmeans": kmeans_segment}
    if method not in functions:
        raise unknown_choice("--method", method, METHODS)
    function = functions[method]
    accepted = [name for name, p in inspect.signature(function).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(f"--method {method} takes no option {unknown[0]!r}",
                         hint=f"its options: {', '.join(accepted)}")
    return function(image, **options)


# --- foreground by threshold -------------------------------------------------------------------

def luminance(image: np.ndarray) -> np.ndarray:
    """float64 (H, W) in [0, 1]: the image itself when grayscale, else ITU-R 709 luma.

    Examples
    --------
    >>> float(luminance(np.full((2, 2, 3), 255, np.uint8))[0, 0])
    1.0
    """
    image = _check_image(image)
    if image.ndim == 2:
        return image.astype(np.float64) / 255.0
    from skimage.color import rgb2gray

    return rgb2gray(image)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an image (H, W) or (H, W, 3), got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image too small to segment: {image.shape[:2]}")
    return image


def foreground_mask(image: np.ndarray, *, polarity: str = "auto",
                    background_sigma: float | None = DEFAULT_BACKGROUND_SIGMA,
                    min_size: float = DEFAULT_MIN_SIZE, fill_holes: bool = True) -> tuple[np.ndarray, float]:
    """Otsu foreground: (bool (H, W) mask, threshold). See the module notes for each step.

    Parameters
    ----------
    image : numpy.ndarray
    polarity : {"auto", "bright", "dark"}
        Objects brighter or darker than the background; ``auto``: the side with fewer pixels.
    background_sigma : float or None
        Illumination correction: sigma of the Gaussian background estimate as a fraction of the
        shorter side; None or 0 thresholds the luminance as it is.
    min_size : float
        Objects below this fraction of the image area are removed (0 keeps all).
    fill_holes : bool

    Examples
    --------
    >>> image = np.zeros((20, 20), np.uint8); image[5:15, 5:15] = 255; image[9:11, 9:11] = 0
    >>> mask, _ = foreground_mask(image, background_sigma=None)
    >>> int(mask.sum())  # the hole is filled
    100
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    if polarity not in POLARITIES:
        raise unknown_choice("polarity", polarity, POLARITIES)
    if not 0.0 <= min_size < 1.0:
        raise UsageError(f"min_size is a fraction of the image area in [0, 1), got {min_size}")
    gray = luminance(image)
    if background_sigma:
        if background_sigma < 0:
            raise UsageError(f"background_sigma must be >= 0, got {background_sigma}")
        gray = gray - illumination(gray, sigma=background_sigma * min(gray.shape))
    if float(gray.max() - gray.min()) <= 1e-12:
        return np.zeros(gray.shape, bool), float(gray.min())
    threshold = float(threshold_otsu(gray))
    above = gray > threshold
    if polarity == "dark" or (polarity == "auto" and above.mean() > 0.5):
        above = ~above
    if fill_holes:
        above = ndi.binary_fill_holes(above)
    return remove_small(above, min_size=min_size), threshold


#: The illumination estimate is blurred at a scale where its sigma is this many pixels.
_BLUR_SIGMA_PX = 8.0


def illumination(gray: np.ndarray, *, sigma: float) -> np.ndarray:
    """The slowly varying light of ``gray``: a Gaussian blur of standard deviation ``sigma``
    pixels, computed on a copy shrunk until ``sigma`` is 8 pixels and enlarged back (the
    result is smooth at that scale anyway, and a 300-pixel sigma on a 12-megapixel photo
    would otherwise cost minutes).

    Examples
    --------
    >>> ramp = np.tile(np.linspace(0.0, 1.0, 400), (300, 1))
    >>> bool(np.abs(illumination(ramp, sigma=30)[:, 50:350] - ramp[:, 50:350]).max() < 0.01)
    True
    """
    import cv2
    from skimage.filters import gaussian

    gray = np.asarray(gray, np.float64)
    factor = max(1.0, sigma / _BLUR_SIGMA_PX)
    if factor == 1.0:
        return gaussian(gray, sigma=sigma, mode="reflect", preserve_range=True)
    h, w = gray.shape
    small_size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(gray.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    blurred = gaussian(small.astype(np.float64), sigma=sigma / factor, mode="reflect", preserve_range=True)
    return cv2.resize(blurred.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def remove_small(mask: np.ndarray, *, min_size: float = DEFAULT_MIN_SIZE) -> np.ndarray:
    """A copy of the bool ``mask`` without connected components (8-connectivity) under
    ``min_size`` times the image area.

    Examples
    --------
    >>> m = np.zeros((10, 100), bool); m[0, 0] = True; m[5:8, 5:8] = True
    >>> int(remove_small(m, min_size=0.005).sum())
    9
    """
    from skimage.measure import label

    mask = np.asarray(mask, bool)
    limit = min_size * mask.size
    if limit <= 0:
        return mask.copy()
    labels = label(mask, connectivity=2)
    areas = np.bincount(labels.ravel())
    keep = areas >= limit
    keep[0] = False
    return keep[labels]


def otsu_segment(image: np.ndarray, *, polarity: str = "auto",
                 background_sigma: float | None = DEFAULT_BACKGROUND_SIGMA,
                 min_size: float = DEFAULT_MIN_SIZE, fill_holes: bool = True) -> ClassicalSegmentation:
    """Otsu foreground (:func:`foreground_mask`), regions by connected components.

    Examples
    --------
    >>> from skimage import data
    >>> otsu_segment(data.coins()).count
    24
    """
    from skimage.measure import label

    mask, threshold = foreground_mask(image, polarity=polarity, background_sigma=background_sigma,
                                      min_size=min_size, fill_holes=fill_holes)
    labels = label(mask, connectivity=2).astype(np.int32)
    return _result("otsu", labels, mask.astype(np.uint8), ("background", "foreground"), threshold)


def watershed_segment(image: np.ndarray, *, polarity: str = "auto",
                      background_sigma: float | None = DEFAULT_BACKGROUND_SIGMA,
                      min_size: float = DEFAULT_MIN_SIZE, fill_holes: bool = True,
                      split: float = DEFAULT_SPLIT) -> ClassicalSegmentation:
    """The Otsu foreground split into touching objects by a distance-transform watershed.

    Parameters
    ----------
    split : float
        Marker depth as a fraction of the median object radius (h-maxima of the distance
        transform); larger splits less.

    Other parameters are those of :func:`foreground_mask`.

    Examples
    --------
    >>> import cv2
    >>> image = np.zeros((60, 100), np.uint8)
    >>> _ = cv2.circle(image, (35, 30), 18, 255, -1); _ = cv2.circle(image, (64, 30), 18, 255, -1)
    >>> otsu_segment(image).count, watershed_segment(image).count
    (1, 2)
    """
    import cv2
    from scipy import ndimage as ndi
    from skimage.measure import label
    from skimage.segmentation import watershed

    if split <= 0:
        raise UsageError(f"split must be > 0, got {split}")
    mask, threshold = foreground_mask(image, polarity=polarity, background_sigma=background_sigma,
                                      min_size=min_size, fill_holes=fill_holes)
    if not mask.any():
        return _result("watershed", np.zeros(mask.shape, np.int32), mask.astype(np.uint8),
                       ("background", "foreground"), threshold)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64)
    components = label(mask, connectivity=2)
    radii = [distance[box][components[box] == i + 1].max() for i, box in enumerate(ndi.find_objects(components))]
    radius = float(np.median(radii))
    markers = _markers(distance, mask, h=max(1.0, split * radius), factor=max(1.0, radius / _MARKER_RADIUS_PX))
    # a component without a marker (flatter than h) keeps its own label
    unmarked = np.setdiff1d(np.unique(components[mask]), np.unique(components[markers > 0]))
    for comp in unmarked:
        markers[components == comp] = markers.max() + 1
    labels = watershed(-distance, markers, mask=mask, connectivity=2)
    labels = _relabel(labels)
    return _result("watershed", labels, mask.astype(np.uint8), ("background", "foreground"), threshold)


#: Markers are found where the median object radius is at most this many pixels (a shrunk
#: copy of the distance map for large objects: h-maxima cost grows fast with the pixel count).
_MARKER_RADIUS_PX = 32.0


def _markers(distance: np.ndarray, mask: np.ndarray, *, h: float, factor: float) -> np.ndarray:
    """Labelled h-maxima of ``distance`` (int32, 0 elsewhere), searched ``factor`` times smaller."""
    import cv2
    from skimage.measure import label
    from skimage.morphology import h_maxima

    if factor <= 1.0:
        return label(h_maxima(distance, h).astype(bool) & mask, connectivity=2).astype(np.int32)
    height, width = distance.shape
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(distance.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) / factor
    peaks = h_maxima(small.astype(np.float64), h / factor).astype(np.uint8)
    peaks = cv2.resize(peaks, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool) & mask
    return label(peaks, connectivity=2).astype(np.int32)


# --- superpixels and clusters ------------------------------------------------------------------

def slic_segment(image: np.ndarray, *, n_segments: int = 100, compactness: float = 10.0,
                 sigma: float = 1.0) -> ClassicalSegmentation:
    """SLIC superpixels (scikit-image, in CIELAB; grayscale as lightness): labels 1..N cover the image.

    Examples
    --------
    >>> from skimage import data
    >>> 50 <= slic_segment(data.astronaut()[::4, ::4], n_segments=80).count <= 120
    True
    """
    from skimage.segmentation import slic

    image = _check_image(image)
    if n_segments < 1:
        raise UsageError(f"n_segments must be >= 1, got {n_segments}")
    if image.ndim == 2:  # in CIELAB lightness units (0..100), so compactness means the same
        labels = slic(image.astype(np.float64) * (100.0 / 255.0), n_segments=n_segments, compactness=compactness,
                      sigma=sigma, start_label=1, channel_axis=None)
    else:
        labels = slic(image, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=1)
    labels = _relabel(labels)
    return _result("slic", labels, np.zeros(labels.shape, np.uint8), ("segment",))


def felzenszwalb_segment(image: np.ndarray, *, scale: float = 100.0, sigma: float = 0.8,
                         min_size: float = DEFAULT_MIN_SIZE) -> ClassicalSegmentation:
    """Felzenszwalb-Huttenlocher graph segmentation; ``min_size`` a fraction of the image area
    (at least 1 px). Labels 1..N cover the image.

    Examples
    --------
    >>> image = np.zeros((40, 40, 3), np.uint8); image[:, 20:] = 200
    >>> labels = felzenszwalb_segment(image).labels
    >>> bool(labels[0, 0] != labels[0, 39]), bool(labels.min() >= 1)
    (True, True)
    """
    from skimage.segmentation import felzenszwalb

    image = _check_image(image)
    if not 0.0 <= min_size < 1.0:
        raise UsageError(f"min_size is a fraction of the image area in [0, 1), got {min_size}")
    min_pixels = max(1, int(round(min_size * image.shape[0] * image.shape[1])))
    labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_pixels,
                          channel_axis=None if image.ndim == 2 else -1)
    labels = _relabel(labels + 1)
    return _result("felzenszwalb", labels, np.zeros(labels.shape, np.uint8), ("segment",))


#: Pixels k-means fits its centres on (a seeded sample); all pixels are then assigned.
KMEANS_SAMPLE = 100_000


def kmeans_segment(image: np.ndarray, *, k: int = 3, seed: int = 0,
                   min_size: float = DEFAULT_MIN_SIZE) -> ClassicalSegmentation:
    """k-means colour clustering in CIELAB (luminance alone for grayscale images).

    The class mask holds the cluster of each pixel, clusters numbered by size (0 the largest,
    named ``background``; the others ``cluster1``...). Regions are the connected components
    of clusters 1..k-1 of at least ``min_size`` of the image area.

    Examples
    --------
    >>> image = np.zeros((30, 30, 3), np.uint8); image[:10] = (255, 0, 0); image[20:] = (0, 0, 255)
    >>> image[10:20] = (0, 255, 0); image[12:18, 5:25] = (0, 255, 0)
    >>> result = kmeans_segment(image, k=3)
    >>> result.class_names, result.count
    (('background', 'cluster1', 'cluster2'), 2)
    """
    from skimage.color import rgb2lab
    from skimage.measure import label
    from sklearn.cluster import KMeans

    image = _check_image(image)
    if k < 2:
        raise UsageError(f"k must be >= 2, got {k}")
    if image.ndim == 2:
        features = image.reshape(-1, 1).astype(np.float64)
    else:
        features = rgb2lab(image).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    sample = features if len(features) <= KMEANS_SAMPLE else features[rng.choice(len(features), KMEANS_SAMPLE, replace=False)]
    distinct = len(np.unique(sample, axis=0))
    model = KMeans(n_clusters=min(k, distinct), n_init=4, random_state=seed).fit(sample)
    assigned = model.predict(features)
    order = np.argsort(-np.bincount(assigned, minlength=model.n_clusters), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    clusters = rank[assigned].reshape(image.shape[:2]).astype(np.uint8)
    labels = np.zeros(clusters.shape, np.int32)
    for cluster in range(1, model.n_clusters):
        components = label(remove_small(clusters == cluster, min_size=min_size), connectivity=2)
        labels[components > 0] = components[components > 0] + labels.max()
    names = ("background",) + tuple(f"cluster{i}" for i in range(1, k))
    return _result("kmeans", labels, clusters, names)


# --- shared ----------------------------------------------------------------------------------

def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..N in their sorted order (0 stays 0), int32."""
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(np.asarray(labels).astype(np.int32))[0].astype(np.int32)


def regions_of(labels: np.ndarray, *, class_mask: np.ndarray | None = None) -> list[Region]:
    """One :class:`Region` per label 1..N of ``labels`` (in label order).

    Examples
    --------
    >>> labels = np.zeros((4, 6), np.int32); labels[1:3, 2:5] = 1
    >>> regions_of(labels)[0]
    Region(label=1, class_id=0, area=6, box=(2.0, 1.0, 5.0, 3.0), centroid=(3.0, 1.5))
    """
    from skimage.measure import regionprops

    labels = np.asarray(labels)
    regions = []
    for prop in regionprops(labels.astype(np.int32)):
        y1, x1, y2, x2 = prop.bbox
        cy, cx = prop.centroid
        class_id = 0
        if class_mask is not None:
            rr, cc = prop.coords[0]
            class_id = int(class_mask[rr, cc])
        regions.append(Region(label=int(prop.label), class_id=class_id, area=int(prop.area),
                              box=(float(x1), float(y1), float(x2), float(y2)),
                              centroid=(float(cx), float(cy))))
    return regions


def _result(method: str, labels: np.ndarray, class_mask: np.ndarray, names: tuple[str, ...],
            threshold: float | None = None) -> ClassicalSegmentation:
    return ClassicalSegmentation(method=method, labels=labels.astype(np.int32), class_mask=class_mask,
                                 class_names=tuple(names), regions=regions_of(labels, class_mask=class_mask),
                                 threshold=threshold)


__all__ = ["METHODS", "ClassicalSegmentation", "Region", "felzenszwalb_segment", "foreground_mask",
           "illumination", "kmeans_segment", "luminance", "otsu_segment", "regions_of", "remove_small", "segment_classical",
           "slic_segment", "watershed_segment"]
