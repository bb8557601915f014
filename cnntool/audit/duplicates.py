"""Exact and near duplicates: perceptual hashes, Hamming search without an N x N matrix,
embedding search in bounded memory, groups with a suggested keeper.

Hashes follow imagededup's definitions (``imagededup/methods/hashing.py``) bit for bit, so
``--dedup phash --max-distance 10`` finds what ``PHash().find_duplicates(max_distance_threshold=10)``
finds (the tests compare): the image is resized with Pillow's LANCZOS filter to 32x32 (phash),
9x8 (dhash), 8x8 (ahash) or 256x256 (whash), converted to gray, and

- phash: 2-D DCT, top-left 8x8 coefficients, bit = coefficient >= median of the 63 AC ones;
- dhash: bit = pixel > its left neighbour;
- ahash: bit = pixel >= mean;
- whash: Haar wavelet to level 5, bit = LL coefficient >= median.

A hash is a Python ``int`` (64 bits, imagededup's hex string read as a big-endian number).

Search: :func:`hamming_pairs` uses multi-index hashing (a pair within distance d agrees exactly
on at least one of d + 1 disjoint bit ranges, so only bucket-mates are compared) for small
distances, and chunked brute force otherwise; memory stays proportional to the number of
candidate pairs, never N x N. :func:`similar_pairs` does the same for embeddings with a chunked
matrix product.

Groups are the connected components of the pairs; each group is reported once, with a suggested
keeper: the largest image, then the sharpest, then the first path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Hash methods and the size (width, height) imagededup resizes to before hashing.
HASH_SIZES = {"phash": (32, 32), "dhash": (9, 8), "ahash": (8, 8), "whash": (256, 256)}
HASH_METHODS = tuple(HASH_SIZES)
HASH_BITS = 64

#: Bump when a hash changes meaning: cached hashes of other versions are ignored.
HASH_VERSION = 1

#: Multi-index hashing needs parts of at least this many bits to prune well; wider searches
#: (or small sets) use chunked brute force.
MIH_MIN_PART_BITS = 8
#: Brute force compares this many hash pairs per chunk (bounded memory: 8 bytes each).
PAIR_CHUNK = 1 << 22


def image_hash(image: np.ndarray, *, method: str = "phash") -> int:
    """The 64-bit perceptual hash of a uint8 image, as imagededup computes it.

    Parameters
    ----------
    image : numpy.ndarray
        uint8, (H, W) or (H, W, 3).
    method : {"phash", "dhash", "ahash", "whash"}

    Returns
    -------
    int
        ``int(imagededup_hex_string, 16)``.

    Examples
    --------
    >>> ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    >>> f"{image_hash(ramp, method='dhash'):016x}"
    'ffffffffffffffff'
    """
    from PIL import Image

    return pil_image_hash(Image.fromarray(np.ascontiguousarray(image)), method=method)


def pil_image_hash(pil_image, *, method: str = "phash") -> int:
    """:func:`image_hash` of a Pillow image (mode ``L`` or ``RGB``), for callers that hold one."""
    from PIL import Image

    if method not in HASH_SIZES:
        raise ValueError(f"unknown hash method {method!r}; use one of {', '.join(HASH_METHODS)}")
    small = pil_image.resize(HASH_SIZES[method], Image.LANCZOS).convert("L")
    bits = _HASH_BITS[method](np.asarray(small, dtype=np.uint8))
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _phash_bits(pixels: np.ndarray) -> np.ndarray:
    from scipy.fftpack import dct

    coef = dct(dct(pixels.astype(np.float64), axis=0), axis=1)[:8, :8]
    return coef >= np.median(coef.ravel()[1:])


def _dhash_bits(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, 1:] > pixels[:, :-1]


def _ahash_bits(pixels: np.ndarray) -> np.ndarray:
    return pixels >= np.mean(pixels)


def _whash_bits(pixels: np.ndarray) -> np.ndarray:
    import pywt

    low = pywt.wavedec2(data=pixels / 255, wavelet="haar", level=5)[0]
    return low >= np.median(low.ravel())


_HASH_BITS = {"phash": _phash_bits, "dhash": _dhash_bits, "ahash": _ahash_bits, "whash": _whash_bits}


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes.

    Examples
    --------
    >>> hamming(0b1011, 0b0010)
    2
    """
    return (int(a) ^ int(b)).bit_count()


def hamming_pairs(hashes: Sequence[int] | np.ndarray, max_distance: int, *,
                  others: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of hashes within ``max_distance`` bits, without an N x N matrix.

    Parameters
    ----------
    hashes : sequence of int
        64-bit hashes.
    max_distance : int
        Largest Hamming distance that counts (0..64).
    others : sequence of int, optional
        A second set: pairs are then (index in ``hashes``, index in ``others``). Without it, pairs
        are within ``hashes`` with ``i < j``.

    Returns
    -------
    (i, j, distance) : three int64 arrays
        Sorted by ``i`` then ``j``.

    Examples
    --------
    >>> i, j, d = hamming_pairs([0b0000, 0b0001, 0b1111_0000], 1)
    >>> i.tolist(), j.tolist(), d.tolist()
    ([0], [1], [1])
    """
    if not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance must be in 0..{HASH_BITS}")
    a = _as_uint64(hashes)
    b = a if others is None else _as_uint64(others)
    same = others is None
    if a.size == 0 or b.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    parts = max_distance + 1
    use_mih = HASH_BITS // parts >= MIH_MIN_PART_BITS and a.size * b.size > PAIR_CHUNK
    finder = _mih_pairs if use_mih else _brute_pairs
    i, j, d = finder(a, b, max_distance, same)
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def _as_uint64(hashes) -> np.ndarray:
    if isinstance(hashes, np.ndarray) and hashes.dtype == np.uint64:
        return hashes
    return np.array([int(h) for h in hashes], dtype=np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int64)


def _brute_pairs(a: np.ndarray, b: np.ndarray, max_distance: int, same: bool):
    rows = max(1, PAIR_CHUNK // b.size)
    found_i, found_j, found_d = [], [], []
    for start in range(0, a.size, rows):
        block = a[start:start + rows]
        dist = _popcount(block[:, None] ^ b[None, :])
        keep = dist <= max_distance
        if same:
            keep &= np.arange(start, start + block.size)[:, None] < np.arange(b.size)[None, :]
        r, c = np.nonzero(keep)
        found_i.append(r + start)
        found_j.append(c)
        found_d.append(dist[r, c])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _mih_pairs(a: np.ndarray, b: np.ndarray, max_distance: int, same: bool):
    """Multi-index hashing: candidates agree exactly on one of max_distance + 1 bit ranges."""
    parts = max_distance + 1
    widths = [HASH_BITS // parts + (1 if k < HASH_BITS % parts else 0) for k in range(parts)]
    found_i, found_j, found_d = [], [], []
    shift = 0
    for width in widths:
        mask = np.uint64((1 << width) - 1)
        sub_a = (a >> np.uint64(shift)) & mask
        sub_b = (b >> np.uint64(shift)) & mask
        shift += width
        order = np.argsort(sub_b, kind="stable")
        sorted_b = sub_b[order]
        left = np.searchsorted(sorted_b, sub_a, side="left")
        right = np.searchsorted(sorted_b, sub_a, side="right")
        for i, j in _expand_ranges(left, right, order):
            if same:
                keep = i < j
                i, j = i[keep], j[keep]
            dist = _popcount(a[i] ^ b[j])
            keep = dist <= max_distance
            found_i.append(i[keep])
            found_j.append(j[keep])
            found_d.append(dist[keep])
    if not found_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    i, j, dist = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    # a pair that agrees on several bit ranges was found once per range
    _, first = np.unique(i * b.size + j, return_index=True)
    return i[first], j[first], dist[first]


def _expand_ranges(left: np.ndarray, right: np.ndarray, order: np.ndarray):
    """Yield (i, j) index arrays for every i and every j in order[left[i]:right[i]], in chunks."""
    counts = right - left
    start = 0
    n = counts.size
    while start < n:
        # as many queries as fit in one chunk of candidate pairs (at least one)
        cum = np.cumsum(counts[start:])
        stop = start + max(1, int(np.searchsorted(cum, PAIR_CHUNK, side="right")))
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            i = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            j = order[np.repeat(left[start:stop], c) + offsets]
            yield i.astype(np.int64), j.astype(np.int64)
        start = stop


def similar_pairs(features: np.ndarray, min_similarity: float, *, others: np.ndarray | None = None,
                  chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows with cosine similarity >= ``min_similarity``, chunk by chunk.

    Memory is ``chunk x N`` floats, never N x N.

    Returns
    -------
    (i, j, similarity) : int64, int64, float64 arrays (``i < j`` within one set)

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    >>> i, j, s = similar_pairs(x, 0.9)
    >>> i.tolist(), j.tolist()
    ([0], [1])
    """
    a = _unit_rows(features)
    b = a if others is None else _unit_rows(others)
    found_i, found_j, found_s = [], [], []
    for start in range(0, a.shape[0], chunk):
        sims = a[start:start + chunk] @ b.T
        keep = sims >= min_similarity
        if others is None:
            keep &= np.arange(start, start + sims.shape[0])[:, None] < np.arange(b.shape[0])[None, :]
        r, c = np.nonzero(keep)
        found_i.append(r + start)
        found_j.append(c)
        found_s.append(sims[r, c].astype(np.float64))
    if not found_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return (np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64),
            np.concatenate(found_s))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def connected_groups(n: int, i: np.ndarray, j: np.ndarray) -> list[list[int]]:
    """Connected components (of two or more members) of the graph with edges (i, j).

    Returns groups sorted by their first member, each sorted.

    Examples
    --------
    >>> connected_groups(5, np.array([0, 3, 1]), np.array([1, 4, 2]))
    [[0, 1, 2], [3, 4]]
    """
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in range(n):
        members.setdefault(root(x), []).append(x)
    return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def exact_groups(digests: Sequence[str]) -> list[list[int]]:
    """Indices that share a pixel digest, groups of two or more, sorted by first member.

    Examples
    --------
    >>> exact_groups(["a", "b", "a", "c", "b"])
    [[0, 2], [1, 4]]
    """
    members: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        members.setdefault(digest, []).append(index)
    return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def choose_keeper(group: Sequence[int], measurements: Sequence[dict], problems: Sequence[int] | None = None) -> int:
    """The member to keep: the fewest other problems, then the most pixels, then the sharpest,
    then the first.

    Examples
    --------
    >>> ms = [{"width": 10, "height": 10, "sharpness": 1.0}, {"width": 20, "height": 10, "sharpness": 0.5}]
    >>> choose_keeper([0, 1], ms)
    1
    >>> choose_keeper([0, 1], ms, problems=[0, 1])
    0
    """
    def rank(k: int):
        m = measurements[k]
        return (problems[k] if problems is not None else 0, -m["width"] * m["height"], -m.get("sharpness", 0.0), k)

    return min(group, key=rank)
