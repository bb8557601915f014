"""Inference stages: prediction (:mod:`~cnntool.infer.predict`), explanations, embeddings.

Libraries only: they take a :class:`~cnntool.models.registry.LoadedModel` and inputs and return
records; the CLI modules print them. Resolve ``--device`` with
:func:`cnntool.device.resolve_device`.
"""
