"""One valid example of every registered loss, the plugins' included, for the torch transform tests.

Built-in losses take :func:`strategies.make_good`'s example; the losses of the two plugin
packages under ``plugins/`` take their largest valid conformance case. Both come in two batch
sizes (``size`` 0 and 1) and several draws (``seed``), so that the same call can be stacked for
``vmap`` or repeated at another batch size for ``torch.compile(dynamic=True)``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from strategies import make_good

import lossreg
from lossreg.conformance import load_cases
from lossreg import losses as catalogue

ROOT = Path(__file__).resolve().parent.parent
for _src in ("plugins/lossreg-extras/src", "plugins/lossreg-segmentation/src"):
    if str(ROOT / _src) not in sys.path:
        sys.path.insert(0, str(ROOT / _src))

import lossreg_extras  # noqa: E402
import lossreg_segmentation  # noqa: E402

PLUGINS = {"lossreg_extras": lossreg_extras, "lossreg_segmentation": lossreg_segmentation}
PLUGIN_LOSSES = {f.spec.name: module for module in PLUGINS.values() for f in module.LOSSES}
BUILTIN = [n for n in catalogue.__all__ if hasattr(getattr(catalogue, n), "spec")]  # losses, not helpers
NAMES = sorted(BUILTIN) + sorted(PLUGIN_LOSSES)


@contextlib.contextmanager
def plugins_registered() -> Iterator[None]:
    """The two plugin packages registered in-process (as their entry points would), then removed."""
    # Entry points first: where a build has left the packages' metadata under plugins/*/src (now
    # on sys.path) they register under their entry-point names, and again by hand would clash.
    lossreg.reload()
    added = []
    for name, module in PLUGINS.items():
        if all(f.spec.name not in lossreg.registry().specs for f in module.LOSSES):
            lossreg.register_plugin(module, name=name)
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            lossreg.unregister_plugin(name)


def _array(spec: dict[str, Any]) -> np.ndarray:
    return np.array(spec["data"], dtype="float64" if spec["dtype"] == "float" else spec["dtype"])


def _plugin_case(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The valid case of ``name`` whose first input is largest (a batch, not a single element)."""
    module = PLUGIN_LOSSES[name]
    cases = [c for path in module.lossreg_cases() for c in load_cases(path)
             if c.loss == name and c.raises is None and c.expected is not None]
    first = module_spec(name).inputs[0]
    best = max(cases, key=lambda c: np.size(c.inputs[first]["data"]))
    options = {k: _array(v) if isinstance(v, dict) and "data" in v else v for k, v in best.options.items()}
    return {k: _array(v) for k, v in best.inputs.items()}, options


def module_spec(name: str) -> lossreg.LossSpec:
    module = PLUGIN_LOSSES.get(name)
    if module is None:
        return lossreg.spec(name)
    return next(f.spec for f in module.LOSSES if f.spec.name == name)


def example(name: str, size: int = 0, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(inputs, options)`` of a valid call; ``size`` 1 has a larger batch than ``size`` 0."""
    if name not in PLUGIN_LOSSES:
        # Batches of 6 and 8 equal no other axis of make_good's examples (3 classes, ctc's 4 and 7,
        # linear_cross_entropy's vocabulary of 5): Dynamo would take two equal sizes for one.
        ex = make_good(name, seed=seed, n=(6, 8)[size])
        return dict(ex.inputs), dict(ex.options)
    inputs, options = _plugin_case(name)
    # Another draw: floats scaled towards 0 (probabilities, variances and labels stay valid).
    inputs = {k: v * (1 - 0.1 * seed) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    # The batch repeated 3 or 5 times, so that it never equals another axis (Dynamo would take
    # two equal sizes for one, and recompile when they part).
    inputs = {k: np.concatenate([v] * (3, 5)[size]) for k, v in inputs.items()}
    return inputs, options


def differentiable(name: str, inputs: dict[str, Any]) -> list[str]:
    """The floating inputs that the loss differentiates with respect to."""
    return [k for k in module_spec(name).differentiable if k in inputs and np.asarray(inputs[k]).dtype.kind == "f"]


def tensors(inputs: dict[str, Any], grad: tuple[str, ...] | list[str] = (), device: str = "cpu") -> dict[str, torch.Tensor]:
    out = {}
    for k, v in inputs.items():
        t = torch.as_tensor(np.asarray(v), device=device)
        out[k] = t.requires_grad_(True) if k in grad else t
    return out


def torch_options(options: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    return {k: torch.as_tensor(v, device=device) if isinstance(v, np.ndarray) else v for k, v in options.items()}


def function(name: str) -> Any:
    """The dispatching functional form (kernels included), as a user calls it."""
    return getattr(lossreg, name)
