"""Running work over many inputs: an ordered thread map, DataLoaders, and inference batches.

OpenCV, Pillow's decoders and NumPy's heavy kernels release the GIL, so threads use every core
for per-image work without the start-up and pickling costs of processes.

- :func:`thread_map`: ordered, bounded thread map for decode/compute/encode pipelines.
- :func:`make_loader`: the PyTorch DataLoader over a process's dataset (seeded shuffling, batches
  as uint8 tensors); :func:`shard_indices`: which samples each ``torchrun`` process decodes.
- :func:`iter_image_batches`: decoded, prepared uint8 batches of user inputs for inference,
  with a per-input error instead of an exception.
- :func:`default_loader_workers`, :func:`usable_cores`: worker and core counts that do not
  oversubscribe the machine.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def thread_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> Iterator[R]:
    """Apply ``fn`` to every item on ``workers`` threads, yielding results in input order.

    At most ``2 * workers`` items are in flight, so memory stays bounded on long inputs.
    ``workers=1`` runs inline, with no thread at all. ``fn`` should catch its own per-item
    errors (and return them as results); an exception it raises propagates here.

    Examples
    --------
    >>> list(thread_map(lambda x: x * x, range(5), workers=2))
    [0, 1, 4, 9, 16]
    """
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnntool") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --- PyTorch DataLoaders -----------------------------------------------------------------------

def make_loader(dataset, *, batch_size: int, train: bool = False, seed: int = 0, workers: int = 0,
                drop_last: bool | None = None, pin_memory: bool = False, collate_fn=None, batch_sampler=None,
                sampler=None):
    """A DataLoader over this process's dataset (its shard under DDP: see :func:`shard_indices`).

    Parameters
    ----------
    dataset : ImageDataset
        Or any map-style dataset (detection, segmentation and clip datasets alike).
    batch_size : int
        Per process.
    train : bool
        Shuffle with a permutation seeded by ``seed`` and the epoch (call
        ``loader.sampler.set_epoch`` each epoch; the runner does); drop the last incomplete
        batch when it is smaller than half a batch (a tiny last batch makes a noisy step and a bad
        batch-norm estimate). Otherwise the order is kept.
    workers : int
        DataLoader worker processes; 0 loads in the main process (the fastest for cached data).
    pin_memory : bool
        Page-locked batches for faster copies to a GPU.
    collate_fn : callable, optional
        The task's collate (default :func:`collate_batch`: stacked batches pass through).
    batch_sampler : optional
        Batches chosen by the task (aspect-ratio groups); replaces ``batch_size`` and shuffling.
    sampler : optional
        The training order chosen by the task (:class:`BalancedSampler`); replaces shuffling.

    Returns
    -------
    torch.utils.data.DataLoader

    Examples
    --------
    >>> loader = make_loader(dataset, batch_size=64, train=True, seed=0)  # doctest: +SKIP
    >>> loader.sampler.set_epoch(3)  # doctest: +SKIP
    """
    from torch.utils.data import DataLoader, DistributedSampler

    common = dict(num_workers=workers, collate_fn=collate_fn or collate_batch, pin_memory=pin_memory,
                  worker_init_fn=_seed_worker if workers else None, persistent_workers=False)
    # no private generator: worker seeds come from torch's global RNG, which a resumed run restores
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    if train:
        if sampler is None:
            sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
        if drop_last is None:
            n = len(dataset)
            drop_last = n > batch_size and 0 < n % batch_size < batch_size // 2
    else:
        sampler = ShardSampler(len(dataset))
        drop_last = bool(drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **common)


def shard_indices(n: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = False):
    """The samples of ``n`` that process ``rank`` of ``world_size`` decodes and uses: every index
    once over all processes, so each process decodes only its own share (DDP).

    Training shards (``shuffle``) take every ``world_size``-th index of a permutation seeded by
    ``seed`` and are padded by wrapping around to equal sizes, so every process takes the same
    number of steps; evaluation shards are ``rank, rank + world_size, ...`` in order, unpadded,
    so sums over processes count each sample once. One process gets ``range(n)``.

    Examples
    --------
    >>> shard_indices(5, rank=1, world_size=2).tolist()
    [1, 3]
    >>> len(shard_indices(5, rank=1, world_size=2, shuffle=True)), shard_indices(3).tolist()
    (3, [0, 1, 2])
    """
    import numpy as np

    if world_size <= 1:
        return np.arange(n)
    if not shuffle:
        return np.arange(rank, n, world_size)
    order = np.random.default_rng(seed).permutation(n)
    per_process = -(-n // world_size)
    padded = np.resize(order, per_process * world_size) if n else order
    return np.sort(padded[rank::world_size])


class BalancedSampler:
    """Class-balanced training order: ``len(labels)`` draws per epoch, with replacement, each class
    equally likely (each sample with probability 1 / (classes x its class's size)), seeded by
    (``seed``, epoch) like the shuffled order it replaces.

    Examples
    --------
    >>> s = BalancedSampler([0] * 90 + [1] * 10, seed=0)
    >>> picks = [i for _ in range(20) for i in (s.set_epoch(_) or s)]
    >>> 0.4 < sum(i >= 90 for i in picks) / len(picks) < 0.6
    True
    """

    def __init__(self, labels, *, seed: int = 0):
        import numpy as np

        labels = np.asarray(labels)
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        self.p = weights / weights.sum()
        self.seed, self.epoch = seed, 0

    def __iter__(self):
        import numpy as np

        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.choice(len(self.p), size=len(self.p), replace=True, p=self.p).tolist())

    def __len__(self) -> int:
        return len(self.p)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class ShardSampler:
    """Indices ``rank, rank + world_size, ...`` of ``n`` samples, in order, without padding.

    Examples
    --------
    >>> list(ShardSampler(5, rank=1, world_size=2))
    [1, 3]
    """

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

    def set_epoch(self, epoch: int) -> None:
        """Order does not change between epochs."""


def collate_batch(batch):
    """Batches that :meth:`ImageDataset.__getitems__` already stacked pass through; lists of
    samples are stacked by PyTorch's ``default_collate``."""
    if isinstance(batch, tuple) and len(batch) == 2 and hasattr(batch[0], "dtype"):
        return batch
    from torch.utils.data import default_collate

    return default_collate(batch)


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch per worker; NumPy and random follow it so user transforms repeat too
    import random

    import numpy as np
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def default_loader_workers(*, cached: bool, device_type: str, processes: int = 1) -> int:
    """DataLoader workers that do not oversubscribe the cores.

    Cached data needs none (indexing an array in the main process beats any worker's
    inter-process copy). Otherwise on a GPU: up to 8 per process from the cores available;
    on the CPU: a quarter of each process's cores (at least one), leaving the rest to PyTorch's
    compute threads.

    Examples
    --------
    >>> default_loader_workers(cached=True, device_type="cpu")
    0
    """
    if cached:
        return 0
    cores = max(1, usable_cores() // max(1, processes))
    if device_type == "cuda":
        return max(1, min(8, cores - 1))
    return max(1, cores // 4)


def usable_cores() -> int:
    """Physical cores this process may run on (hyper-threads are not counted twice).

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    physical = _physical_cores()
    threads_per_core = max(1, (os.cpu_count() or logical) // physical) if physical else 1
    return max(1, logical // threads_per_core)


def _physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where that is unavailable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            cores.add((physical, value.strip()))
    return len(cores) or None


# --- inference batches -------------------------------------------------------------------------

def iter_image_batches(items, *, prepare, channels: int, batch_size: int, workers: int | None = None,
                       max_pixels: int | None = None, with_sizes: bool = False):
    """Decode and prepare images on threads, yielding batches in input order.

    Parameters
    ----------
    items : sequence of :class:`~cnntool.data.sources.InputItem`
    prepare : callable
        uint8 image -> uint8 (H, W, C) at the model's size (:meth:`Preprocess.resize`).
    channels : int
        1 decodes grayscale, 3 RGB.
    batch_size : int
    workers : int, optional
        Decode threads (default: all cores). The next batches decode while the consumer works
        on this one.
    max_pixels : int, optional
    with_sizes : bool
        Also yield each good image's original ``(h, w)`` (only the two numbers are kept).

    Yields
    ------
    (list of InputItem, list of str or None, numpy.ndarray or None)
        The batch's items, an error per item (None when it decoded), and the good images
        stacked as uint8 (N_ok, C, H, W) (None when no image in the batch decoded). With
        ``with_sizes``, a fourth item: the list of the good images' original ``(h, w)``.

    Examples
    --------
    >>> from cnntool.data.sources import resolve_inputs  # doctest: +SKIP
    >>> for items, errors, images in iter_image_batches(resolve_inputs(["samples/digits/val"]),
    ...         prepare=pre.resize, channels=1, batch_size=256):  # doctest: +SKIP
    ...     logits = model(normalize_batch(torch.from_numpy(images), pre.mean, pre.std))
    """
    import numpy as np

    from cnntool.data.decode import decode_image
    from cnntool.data.preprocessing import decode_mode
    from cnntool.errors import InputError

    mode = decode_mode(channels)

    def load(item):
        if not item.ok:
            return item.error
        try:
            image = decode_image(item.path, mode=mode, max_pixels=max_pixels)
            return prepare(image), image.shape[:2]
        except InputError as exc:
            return str(exc)

    # Threads decode chunks, not single images: for small files the per-task cost of a thread
    # pool would outweigh the decoding. A batch is split over the workers, and thread_map keeps
    # two batches in flight, so the next batches decode while the model runs on this one.
    items = list(items)
    workers = workers or os.cpu_count() or 1
    size = max(1, -(-batch_size // workers))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    batch_items, results = [], []
    for chunk, loaded in zip(chunks, thread_map(lambda chunk: [load(item) for item in chunk], chunks,
                                                workers=workers)):
        for item, result in zip(chunk, loaded):
            batch_items.append(item)
            results.append(result)
            if len(batch_items) == batch_size:
                yield _image_batch(batch_items, results, np, with_sizes)
                batch_items, results = [], []
    if batch_items:
        yield _image_batch(batch_items, results, np, with_sizes)


def _image_batch(items, results, np, with_sizes=False):
    errors = [r if isinstance(r, str) else None for r in results]
    good = [r for r in results if not isinstance(r, str)]
    images = np.ascontiguousarray(np.stack([g[0] for g in good]).transpose(0, 3, 1, 2)) if good else None
    if with_sizes:
        return list(items), errors, images, [(int(h), int(w)) for _, (h, w) in good]
    return list(items), errors, images
