"""Shared test set-up: keep each pytest-xdist worker to one CPU thread so two workers share the
two cores instead of oversubscribing them."""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

os.environ.setdefault("MPLBACKEND", "Agg")
