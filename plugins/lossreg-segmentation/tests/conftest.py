"""The peer libraries the tests compare with, each skipped with the reason when not installed."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def monai():
    pytest.importorskip("torch", reason="MONAI needs torch")
    return pytest.importorskip("monai.losses", reason="MONAI is not installed (pip install monai)")


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # losses only: Keras' NumPy backend computes them
    return pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")


@pytest.fixture
def jax():
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    with jax.enable_x64(True):
        yield jax
