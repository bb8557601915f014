"""The Examples in every module's docstrings are tests too (scikit-image's convention)."""

import doctest
import importlib
import pkgutil

import pytest

import cnntool

MODULES = sorted(info.name for info in pkgutil.walk_packages(cnntool.__path__, "cnntool."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_documented_layers_have_examples():
    # a module that loses every example would pass the test above silently
    for name in ("cnntool.filters.convolve", "cnntool.data.decode", "cnntool.infer.cam",
                 "cnntool.audit.checks", "cnntool.train.config", "cnntool.models.summary"):
        assert doctest.testmod(importlib.import_module(name), report=False).attempted > 0, name
