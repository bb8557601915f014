"""The model registry: one typed entry per architecture, and loading by spec.

>>> from cnntool.models import get_entry, list_models, load   # doctest: +SKIP
"""

from cnntool.models.registry import (
    TASKS,
    LoadedModel,
    ModelEntry,
    get_entry,
    list_models,
    load,
    register,
)

__all__ = ["TASKS", "LoadedModel", "ModelEntry", "get_entry", "list_models", "load", "register"]
