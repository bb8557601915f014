"""Running work over many inputs: an ordered thread map for decode/compute/encode pipelines.

OpenCV, Pillow's decoders and NumPy's heavy kernels release the GIL, so threads use every core
for per-image work without the start-up and pickling costs of processes. PyTorch DataLoaders
for training and inference are built here too (added with the stages that need them).
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
