"""Fixtures for the registry, checkpoint and ``cnntool models`` tests."""

from __future__ import annotations

import urllib.error

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt raises, as on an offline machine; the calls are recorded."""
    import torch.hub
    import urllib.request

    attempts: list[str] = []

    def refuse(url, *args, **kwargs):
        attempts.append(str(getattr(url, "full_url", url)))
        raise urllib.error.URLError("network blocked by the test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def torch_home(tmp_path, monkeypatch, no_network):
    """An empty torch cache (``TORCH_HOME``) with the network blocked."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home

