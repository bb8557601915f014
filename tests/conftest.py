"""Shared test set-up: keep each pytest-xdist worker to one CPU thread so two workers share the
two cores instead of oversubscribing them; ``no_network`` for tests of pretrained weights."""

import os
import urllib.error

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt raises, as on an offline machine; the calls are recorded."""
    import urllib.request

    import torch.hub

    attempts: list[str] = []

    def refuse(url, *args, **kwargs):
        attempts.append(str(getattr(url, "full_url", url)))
        raise urllib.error.URLError(f"network blocked by the test: {attempts[-1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts
