"""The model registry: one typed entry per architecture, and loading by spec.

>>> from cnntool.models.registry import get_entry, list_models   # doctest: +SKIP
>>> from cnntool.models.loading import load                        # doctest: +SKIP
"""
