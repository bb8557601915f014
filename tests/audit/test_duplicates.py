"""Duplicates: imagededup's hashes bit for bit, Hamming search without N x N, groups and keepers."""

import logging

import cv2
import numpy as np
import pytest

from cnntool.audit import duplicates as dup
from cnntool.data.decode import decode_image


@pytest.mark.parametrize("method", dup.HASH_METHODS)
def test_hashes_equal_imagededup(planted, method):
    logging.disable(logging.WARNING)  # imagededup logs every call
    try:
        from imagededup import methods

        hasher = getattr(methods, method[0].upper() + "Hash")(verbose=False)
        for name in ("clean_a.png", "clean_b.jpg", "gray_l.png", "odd_aspect.jpg", "copy_of_b.bmp", "UPPER.JPG"):
            path = planted / name
            expected = hasher.encode_image(image_file=str(path))
            ours = dup.image_hash(decode_image(path, mode="auto"), method=method)
            assert f"{ours:016x}" == expected, name
    finally:
        logging.disable(logging.NOTSET)


def test_unknown_hash_method():
    with pytest.raises(ValueError, match="unknown hash method"):
        dup.image_hash(np.zeros((8, 8), np.uint8), method="md5")


def naive_pairs(a, b, d, same):
    out = set()
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if (not same or i < j) and dup.hamming(int(x), int(y)) <= d:
                out.add((i, j, dup.hamming(int(x), int(y))))
    return out


@pytest.mark.parametrize("max_distance", [0, 1, 3, 7, 12])
def test_hamming_pairs_match_the_naive_search(max_distance, monkeypatch):
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2**63, 60, dtype=np.uint64)
    flips = [np.uint64(1 << int(k)) for k in rng.integers(0, 64, 60)]
    hashes = np.concatenate([base, base ^ np.array(flips, dtype=np.uint64), base[:10] ^ np.uint64(0b111_0000_0101)])
    expected = naive_pairs(hashes, hashes, max_distance, True)
    for chunk in (dup.PAIR_CHUNK, 64):  # 64 forces multi-index hashing (small distances) and many chunks
        monkeypatch.setattr(dup, "PAIR_CHUNK", chunk)
        i, j, d = dup.hamming_pairs(hashes, max_distance)
        assert set(zip(i.tolist(), j.tolist(), d.tolist())) == expected
        assert (np.diff(i) >= 0).all()


def test_hamming_pairs_between_two_sets(monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**63, 40, dtype=np.uint64)
    b = np.concatenate([a[::4] ^ np.uint64(0b11), rng.integers(0, 2**63, 30, dtype=np.uint64)])
    expected = naive_pairs(a, b, 2, False)
    for chunk in (dup.PAIR_CHUNK, 16):
        monkeypatch.setattr(dup, "PAIR_CHUNK", chunk)
        i, j, d = dup.hamming_pairs(a, 2, others=b)
        assert set(zip(i.tolist(), j.tolist(), d.tolist())) == expected
    assert len(expected) == 10


def test_hamming_pairs_never_builds_an_n_by_n_matrix(monkeypatch):
    seen = []
    original = dup._popcount

    def spy(x):
        seen.append(x.size)
        return original(x)

    monkeypatch.setattr(dup, "_popcount", spy)
    monkeypatch.setattr(dup, "PAIR_CHUNK", 1000)
    hashes = np.random.default_rng(0).integers(0, 2**63, 500, dtype=np.uint64)
    dup.hamming_pairs(hashes, 10)  # brute force, chunked
    dup.hamming_pairs(hashes, 3)   # multi-index hashing
    assert max(seen) <= 1000 + 500  # one chunk (at least one full row), far under 500 x 500


def test_hamming_pairs_empty_and_bounds():
    i, j, d = dup.hamming_pairs([], 3)
    assert i.size == j.size == d.size == 0
    with pytest.raises(ValueError):
        dup.hamming_pairs([1, 2], 65)


def test_similar_pairs_match_dense_cosine():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    x[25:] = x[:25] + rng.normal(0, 0.05, (25, 8))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dense = unit @ unit.T
    expected = {(a, b) for a in range(50) for b in range(a + 1, 50) if dense[a, b] >= 0.95}
    i, j, s = dup.similar_pairs(x, 0.95, chunk=7)
    assert set(zip(i.tolist(), j.tolist())) == expected
    np.testing.assert_allclose(s, dense[i, j], atol=1e-5)
    i2, j2, _ = dup.similar_pairs(x[:25], 0.95, others=x[25:], chunk=4)
    assert {(a, b) for a, b in zip(i2.tolist(), j2.tolist()) if a == b} == {(k, k) for k in range(25)}


def test_groups_exact_and_connected():
    assert dup.connected_groups(6, np.array([0, 1, 4]), np.array([1, 2, 5])) == [[0, 1, 2], [4, 5]]
    assert dup.connected_groups(3, np.zeros(0, int), np.zeros(0, int)) == []
    assert dup.exact_groups(["x", "y", "x", "x"]) == [[0, 2, 3]]


def test_keeper_prefers_clean_then_large_then_sharp_then_first():
    ms = [{"width": 10, "height": 10, "sharpness": 0.9},
          {"width": 20, "height": 20, "sharpness": 0.5},
          {"width": 20, "height": 20, "sharpness": 0.8},
          {"width": 20, "height": 20, "sharpness": 0.8}]
    assert dup.choose_keeper([0, 1, 2, 3], ms) == 2
    assert dup.choose_keeper([0, 1, 2, 3], ms, problems=[0, 1, 1, 1]) == 0


def test_resized_reencoded_copy_is_near_and_distinct_photos_are_not(photos):
    a = photos["a"]
    copy = cv2.imdecode(cv2.imencode(".jpg", cv2.resize(a, (100, 100)), [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 1)
    ha, hc, hb = (dup.image_hash(x) for x in (a, copy[:, :, ::-1], photos["b"]))
    assert dup.hamming(ha, hc) <= 4 < dup.hamming(ha, hb)
