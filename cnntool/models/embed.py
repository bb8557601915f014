"""CNN embeddings: the features a registry model or checkpoint computes just before its head.

Any classification model in the registry (``resnet18``, ``resnet18:DEFAULT``, ``lenet5``) or a
cnntool checkpoint gives embeddings: images go through the model's own evaluation transform
(its :class:`~cnntool.data.preprocessing.Preprocessing`), in batches, and a forward pre-hook on the registry entry's
``head`` layer keeps what the head receives (flattened; a 4-D input is global-average-pooled).
The head still runs, so no model surgery is needed and the model is left as it was.

Random-init registry models are seeded (``seed``) so that their embeddings are reproducible,
which is what lets ``cnntool audit`` cache them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Images per forward pass unless told otherwise.
DEFAULT_BATCH_SIZE = 32

#: Bump when embeddings change meaning (hook point, pooling): cached ones are then ignored.
EMBED_VERSION = 1


def load_embedding_model(spec: str, *, device: str = "cpu", seed: int = 0):
    """:func:`cnntool.models.registry.load` with the random init seeded (reproducible embeddings)."""
    import torch

    from cnntool.models.loading import load

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(spec, task="classification", device=device)


def default_embedding_spec() -> str:
    """The model ``cnntool audit`` embeds with when none is named.

    ``resnet18`` with ImageNet weights when they are already in torch's cache (never a
    download), else ``resnet18`` with seeded random weights, else the first classification model
    in the registry.
    """
    from cnntool.models.registry import list_models

    names = [e.name for e in list_models(task="classification")]
    if "resnet18" in names:
        if _cached_weights("resnet18"):
            return "resnet18:DEFAULT"
        return "resnet18"
    return names[0] if names else "lenet5"


def _cached_weights(name: str) -> bool:
    try:
        from cnntool.models.registry import cached_weights_path, get_entry

        return cached_weights_path(get_entry(name), "DEFAULT").is_file()
    except Exception:  # no weights known, or no torch hub dir: not cached
        return False


class Embedder:
    """Batched embeddings from a :class:`~cnntool.models.registry.LoadedModel`.

    Parameters
    ----------
    loaded : LoadedModel
    device : str
        Already resolved (``cpu``, ``cuda``...).

    Examples
    --------
    >>> from cnntool.models.loading import load  # doctest: +SKIP
    >>> embed = Embedder(load("lenet5"))  # doctest: +SKIP
    >>> embed(np.stack([embed.prepare(np.zeros((32, 32), np.uint8))])).shape  # doctest: +SKIP
    (1, 84)
    """

    def __init__(self, loaded, *, device: str = "cpu"):
        from cnntool.models.surgery import get_layer

        self.loaded = loaded
        self.device = device
        self.preprocess = loaded.preprocessing
        self._captured = None
        head = get_layer(loaded.model, loaded.entry.head)
        self._hook = head.register_forward_pre_hook(self._capture)

    def _capture(self, module, inputs) -> None:
        self._captured = inputs[0]

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 image -> float32 (C, H, W) model input; safe to call from worker threads."""
        return self.preprocess(image)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) prepared inputs -> (N, D) float32 features."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            self.loaded.model(x)
            features = self._captured
            self._captured = None
            if features.ndim == 4:
                features = features.mean(dim=(2, 3))
            return features.flatten(1).float().cpu().numpy()

    def close(self) -> None:
        """Remove the hook (the model is as it was)."""
        self._hook.remove()


def embed_images(images: Iterable[np.ndarray], loaded, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str = "cpu") -> np.ndarray:
    """Embeddings of uint8 images, one row each, in order.

    Parameters
    ----------
    images : iterable of numpy.ndarray
        uint8 (H, W) or (H, W, 3), any size (each is resized by the model's transform).
    loaded : LoadedModel
    batch_size : int
    device : str

    Returns
    -------
    numpy.ndarray
        float32 (N, D).

    Examples
    --------
    >>> from cnntool.models.loading import load  # doctest: +SKIP
    >>> embed_images([np.zeros((8, 8), np.uint8)] * 3, load("lenet5")).shape  # doctest: +SKIP
    (3, 84)
    """
    embedder = Embedder(loaded, device=device)
    try:
        rows: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        for image in images:
            batch.append(embedder.prepare(image))
            if len(batch) == batch_size:
                rows.append(embedder(np.stack(batch)))
                batch = []
        if batch:
            rows.append(embedder(np.stack(batch)))
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    finally:
        embedder.close()
