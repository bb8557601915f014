"""Fixtures for the registry, checkpoint and ``cnntool models`` tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def torch_home(tmp_path, monkeypatch, no_network):
    """An empty torch cache (``TORCH_HOME``) with the network blocked."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home

