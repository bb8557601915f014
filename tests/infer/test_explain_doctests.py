"""The Examples in the explain modules' docstrings are tests too."""

import doctest
import importlib

import pytest

pytest.importorskip("torch")

MODULES = ["cam", "explain", "visualize"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"cnntool.infer.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
