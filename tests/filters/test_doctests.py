"""The Examples in the filter modules' docstrings are tests too."""

import doctest
import importlib

import pytest

MODULES = ["kernels", "convolve", "pooling", "edges", "nonlinear", "color", "scale", "ops"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"cnntool.filters.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
