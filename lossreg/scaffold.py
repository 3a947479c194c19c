"""``lossreg new-plugin NAME``: write a plugin package that installs and passes its own tests as generated.

    lossreg new-plugin charbonnier            # writes ./lossreg-charbonnier/
    cd lossreg-charbonnier && pip install -e ".[test]" && pytest

The package holds one real loss (the pseudo-Huber, or Charbonnier, loss, named after the
plugin), its conformance cases with the generator that computes them, and a test that runs the
conformance suite on them through lossreg's pytest plugin. Replace the loss with yours, rerun
the generator, and the rest keeps working.
"""

from __future__ import annotations

import re
import runpy
import textwrap
from pathlib import Path

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A lossreg plugin: the {name} loss"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["lossreg>=0.1", "numpy"]

[project.optional-dependencies]
test = ["pytest>=8", "array-api-strict>=2.3"]

# This is what makes it a plugin: lossreg loads every entry point of the group "lossreg".
[project.entry-points.lossreg]
{name} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{module} = ["cases/*.json"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''\
# {dist}

A [lossreg](https://pypi.org/project/lossreg/) plugin that adds the `{loss}` loss (class form
`{cls}`, also found as `lossreg.get("{name}")`): the pseudo-Huber (Charbonnier) loss, quadratic
for small errors and linear for large ones. It runs on every Array API library lossreg supports.

## Develop

```bash
pip install -e ".[test]"          # installs the package and registers its entry point
lossreg list                      # {loss} is listed, with plugin {name}
lossreg conformance --backend numpy,array_api_strict --loss {loss}
pytest                            # the same conformance suite, on --backend numpy,array_api_strict,torch
```

## Layout

- `src/{module}/losses.py`: the loss, one pure function written against the Array API.
- `src/{module}/__init__.py`: the hooks that hand the loss and its cases to lossreg.
- `generate_cases.py`: computes the reference values in float64, independently of the package's
  code, and writes `src/{module}/cases/{name}.json`. Rerun it after changing a loss.
- `tests/test_{name}.py`: runs the conformance suite on the cases and checks a few properties.
'''

INIT = '''\
"""{dist}: a lossreg plugin. lossreg finds it through the "lossreg" entry point in pyproject.toml."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lossreg import hookimpl

from .losses import {loss}

__all__ = ["{loss}"]


@hookimpl
def lossreg_losses() -> list:
    """The losses this package registers: functions decorated with lossreg.define_loss."""
    return [{loss}]


@hookimpl
def lossreg_cases() -> list[Path]:
    """Conformance cases of those losses: the JSON file that generate_cases.py writes."""
    return [Path(str(resources.files(__name__) / "cases" / "{name}.json"))]
'''

LOSSES = '''\
"""The losses of {dist}, each one pure function written against the Array API.

To run on every array library (NumPy, PyTorch, JAX, CuPy, Dask, ...), a loss uses only the
namespace ``xp`` of its inputs: no in-place writes, no boolean-mask indexing, no ``float()`` or
``bool()`` on arrays, no shapes that depend on values. ``lossreg.toolkit`` has the checks and the
reduction every built-in loss uses, so errors name the loss, the argument, what was expected
and what was given.
"""

from __future__ import annotations

from typing import Any

from lossreg import define_loss, toolkit
from lossreg.errors import LossValueError


@define_loss(
    class_name="{cls}",
    aliases=("{name}",),
    differentiable=("input", "target"),
    reference="Charbonnier et al. 1994; the pseudo-Huber loss",
)
def {loss}(input: Any, target: Any, /, *, delta: float = 1.0, reduction: str = "mean") -> Any:
    """Pseudo-Huber loss: ``ℓ_i = δ² (√(1 + (d_i / δ)²) - 1)``, ``d_i = x_i - y_i``, then reduced.

    About ``d² / 2`` for small errors and ``δ |d|`` for large ones, and smooth everywhere.
    Shapes: ``input`` and ``target`` of one shape, any number of dimensions.
    """
    name = "{loss}"
    toolkit.check_number(name, "delta", delta, 0.0)
    if delta == 0:
        raise LossValueError(name, "delta", "a positive number", "0")
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    d = x - y
    # The same value as δ²(√(1 + (d/δ)²) - 1), without its cancellation at small d.
    losses = d * d / (xp.sqrt(1 + (d / delta) ** 2) + 1)
    return toolkit.reduce(xp, losses, reduction, dtype)
'''

GENERATE = '''\
"""Reference conformance cases for {dist}; rerun after changing a loss:

    python generate_cases.py      # writes src/{module}/cases/{name}.json

The values come from the textbook formula in NumPy float64, written independently of the
package's code, and the gradients of sum(loss) are worked out by hand. Each case names its source.
lossreg's conformance suite runs every case on each backend and dtype (inputs rounded to the
dtype, tolerances growing with its epsilon) and compares values and gradients.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "src" / "{module}" / "cases" / "{name}.json"
SOURCE = "pseudo-Huber loss, Hartley & Zisserman, Multiple View Geometry (2nd ed.), A6.8; NumPy float64"


def array(x: Any) -> dict[str, Any]:
    return {{"data": np.asarray(x).tolist(), "dtype": "float"}}


def case(id: str, x: np.ndarray, y: np.ndarray, delta: float = 1.0, reduction: str = "mean") -> dict[str, Any]:
    d = x - y
    values = delta**2 * (np.sqrt(1 + (d / delta) ** 2) - 1)
    grad = d / np.sqrt(1 + (d / delta) ** 2)  # d ℓ_i / d x_i; d ℓ_i / d y_i is its negative
    if reduction == "mean":
        value, grad = values.mean(), grad / values.size
    else:
        value = values.sum() if reduction == "sum" else values
    return {{"id": id, "inputs": {{"input": array(x), "target": array(y)}},
            "options": {{"delta": delta, "reduction": reduction}}, "expected": np.asarray(value).tolist(),
            "grads": {{"input": grad.tolist(), "target": (-grad).tolist()}}, "source": SOURCE}}


def error(id: str, raises: str, x: Any, y: Any, **options: Any) -> dict[str, Any]:
    """A call that must raise the lossreg exception named ``raises``."""
    return {{"id": id, "inputs": {{"input": array(x), "target": array(y)}}, "options": options, "raises": raises}}


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for shape in [(5,), (3, 4), (2, 2, 3)]:
        x, y = rng.normal(size=shape), rng.normal(size=shape)
        for reduction in ("none", "mean", "sum"):
            out.append(case(f"{{len(shape)}}d-{{reduction}}", x, y, reduction=reduction))
    x, y = rng.normal(scale=3.0, size=6), rng.normal(size=6)
    out.append(case("delta-0.5", x, y, delta=0.5, reduction="none"))
    out.append(case("delta-4", x, y, delta=4.0, reduction="none"))
    out.append(error("shape-mismatch", "LossValueError", np.zeros(3), np.zeros((3, 1))))
    out.append(error("negative-delta", "LossValueError", np.zeros(3), np.zeros(3), delta=-1.0))
    out.append(error("bad-reduction", "LossValueError", np.zeros(3), np.zeros(3), reduction="average"))
    return out


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({{"loss": "{loss}", "cases": cases()}}, indent=1) + "\\n", encoding="utf-8")
    print(f"wrote {{OUT}}")
'''

TEST = '''\
"""Tests of {dist}. lossreg's pytest plugin adds ``--backend`` (default numpy,array_api_strict,torch)
and the ``xp``, ``backend`` and ``lossreg_conformance`` fixtures; backends not installed are skipped."""

from __future__ import annotations

import lossreg

from {module} import {loss}


def test_conformance(lossreg_conformance):
    """Every case of generate_cases.py on every backend and dtype; fails with the matrix."""
    lossreg_conformance(plugin="{name}")


def test_registered():
    assert lossreg.get("{name}").spec.plugin == "{name}"


def test_quadratic_then_linear(xp):
    x = xp.asarray([1e-3, 1e3], dtype=xp.float64)
    losses = {loss}(x, xp.zeros_like(x), reduction="none")
    assert abs(float(losses[0]) - 0.5e-6) < 1e-12  # d² / 2
    assert abs(float(losses[1]) - (1e3 - 1)) < 1e-3  # about δ |d| - δ² for δ = 1
'''

FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "generate_cases.py": GENERATE,
    "src/{module}/__init__.py": INIT,
    "src/{module}/losses.py": LOSSES,
    "tests/test_{name}.py": TEST,
}


def names(name: str) -> dict[str, str]:
    """The names derived from a plugin name: distribution, module, entry point, loss and class."""
    plain = re.sub(r"^lossreg[-_]", "", name.strip().lower())
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*", plain) or plain == "lossreg":
        raise ValueError(f"{name!r} is not a plugin name: use letters, digits, '-' or '_', starting with a "
                         "letter (e.g. 'charbonnier' for the distribution lossreg-charbonnier)")
    snake = plain.replace("-", "_")
    return {"name": snake, "dist": "lossreg-" + snake.replace("_", "-"), "module": "lossreg_" + snake,
            "loss": snake + "_loss", "cls": "".join(part.title() for part in snake.split("_")) + "Loss"}


def create(name: str, directory: str | Path = ".", *, force: bool = False) -> Path:
    """Write the package ``lossreg-NAME`` under ``directory``, with its cases generated; its root."""
    from .registry import normalize, registry

    values = names(name)
    taken = [n for n in (values["name"], values["loss"], values["cls"]) if normalize(n) in registry().index]
    if taken:
        owner = registry().lookup(taken[0])
        raise ValueError(f"the loss names of plugin {values['name']!r} ({', '.join(taken)}) are taken by "
                         f"'{owner.name}' of plugin '{owner.plugin}'; choose another name")
    root = Path(directory) / values["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} exists and is not empty (--force writes into it)")
    for template_path, template in FILES.items():
        path = root / template_path.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    runpy.run_path(str(root / "generate_cases.py"), run_name="__main__")
    return root


def next_steps(root: Path) -> str:
    values = names(root.name)
    return textwrap.dedent(f"""\
        Created the lossreg plugin package {root}. Next:
          cd {root}
          pip install -e ".[test]"
          lossreg list                      # {values['loss']} is there, from plugin {values['name']}
          lossreg conformance --backend numpy,array_api_strict --loss {values['loss']}
          pytest""")
