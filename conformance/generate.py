"""Generate the golden conformance cases with torch, in float64.

    python conformance/generate.py            # every family
    python conformance/generate.py regression # one family

Each module of ``conformance/golden/`` is a family: its ``cases()`` yields calls of
:func:`golden`, which runs the torch reference on float64 inputs and records the value and the
gradient of ``sum(loss)`` for every floating input. The JSON lands in ``conformance/cases/``,
which is installed as the package data ``lossreg.cases``, so running the suite needs no torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossreg.testing import encode_array, error_case, write_cases

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
sys.path.insert(0, str(HERE))


def _torch(x: np.ndarray, grad: bool) -> torch.Tensor:
    t = torch.from_numpy(np.array(x, dtype="float64" if x.dtype.kind == "f" else x.dtype))
    return t.requires_grad_(True) if grad and t.is_floating_point() else t


def golden(
    loss: str,
    reference: Callable[..., torch.Tensor],
    id: str,
    inputs: dict[str, Any],
    options: dict[str, Any] | None = None,
    *,
    grads: bool | Iterable[str] = True,
    dtypes: list[str] | None = None,
    source: str = "",
    torch_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One case: ``reference(*inputs, **options)`` in float64, its value and input gradients.

    ``inputs`` and array ``options`` are NumPy arrays (floating ones become the run's dtype).
    ``grads`` names the inputs to differentiate (True: every floating input). ``torch_options``
    override what torch is given where lossreg's option differs (an extension, say).
    """
    options = options or {}
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    wanted = set(arrays) if grads is True else set(grads or ())
    tensors = {k: _torch(v, k in wanted) for k, v in arrays.items()}
    torch_opts = {k: _torch(np.asarray(v), False) if isinstance(v, np.ndarray) else v
                  for k, v in {**options, **(torch_options or {})}.items()}
    value = reference(*tensors.values(), **torch_opts)
    case: dict[str, Any] = {
        "loss": loss,
        "id": id,
        "inputs": {k: encode_array(v) for k, v in arrays.items()},
        "options": {k: encode_array(v) if isinstance(v, np.ndarray) else v for k, v in options.items()},
        "expected": value.detach().numpy().tolist(),
    }
    leaves = {k: t for k, t in tensors.items() if t.requires_grad}
    if leaves:
        got = torch.autograd.grad(value.sum(), list(leaves.values()), allow_unused=True)
        case["grads"] = {k: (torch.zeros_like(leaves[k]) if g is None else g).detach().numpy().tolist()
                         for k, g in zip(leaves, got)}
    if dtypes:
        case["dtypes"] = dtypes
    if source:
        case["source"] = source
    return case


def raises(loss: str, id: str, error: str, inputs: dict[str, Any], options: dict[str, Any] | None = None,
           source: str = "") -> dict[str, Any]:
    """A case whose call must raise the lossreg exception named ``error``."""
    return error_case(loss, id, error, inputs, options, source=source)


def write(family: str) -> Path:
    module = importlib.import_module(f"golden.{family}")
    cases = list(module.cases())
    path = write_cases(CASES / f"{family}.json", cases, family=family,
                       generator=f"conformance/golden/{family}.py", torch=torch.__version__)
    print(f"{path.relative_to(HERE.parent)}: {len(cases)} cases")
    return path


def families() -> list[str]:
    return sorted(p.stem for p in (HERE / "golden").glob("*.py") if not p.stem.startswith("_"))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    for name in sys.argv[1:] or families():
        write(name)
