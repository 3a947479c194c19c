"""``lossreg new-plugin NAME``: write a plugin package that installs and passes its own tests as generated.

    lossreg new-plugin charbonnier            # writes ./lossreg-charbonnier/
    cd lossreg-charbonnier && pip install -e ".[test]" && pytest

The package holds one loss named after the plugin (a placeholder formula, half the scaled squared
error, marked TODO), its conformance cases with the generator that computes them, and a test
that runs the conformance suite on them through lossreg's pytest plugin. Replace the formula and
its reference with yours, rerun the generator, and the rest keeps working.
"""

from __future__ import annotations

import re
import runpy
import shlex
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .registry import Registry

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
`{cls}`, also found as `lossreg.get("{name}")`). As generated, `{loss}` is a placeholder (half the
scaled squared error) that shows every part working: replace its formula with yours, rewrite the
reference in `generate_cases.py`, rerun it, and the tests check your loss.

## Develop

```bash
pip install -e ".[test]"          # installs the package and registers its entry point
lossreg list                      # {loss} is listed, with plugin {name}
lossreg conformance --backend numpy,array_api_strict --loss {loss}
pytest                            # the same conformance suite, on --lossreg-backend numpy,array_api_strict,torch
```

## Layout

- `src/{module}/losses.py`: the loss, one pure function written against the Array API.
- `src/{module}/__init__.py`: the hooks that hand the loss and its cases to lossreg.
- `generate_cases.py`: computes the reference values in float64, independently of the package's
  code, and writes `src/{module}/cases/{name}.json`. Rerun it after changing a loss.
- `conftest.py`: turns on lossreg's pytest plugin (its fixtures and `--lossreg-backend`).
- `tests/test_{name}.py`: runs the conformance suite on the cases and checks a property.
'''

INIT = '''\
\"\"\"{dist}: a lossreg plugin. lossreg finds it through the "lossreg" entry point in pyproject.toml.\"\"\"

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lossreg import hookimpl

from .losses import {loss}

__all__ = ["{loss}"]


@hookimpl
def lossreg_losses() -> list:
    \"\"\"The losses this package registers: functions decorated with lossreg.define_loss.\"\"\"
    return [{loss}]


@hookimpl
def lossreg_cases() -> list[Path]:
    \"\"\"Conformance cases of those losses: the JSON file that generate_cases.py writes.\"\"\"
    return [Path(str(resources.files(__name__) / "cases" / "{name}.json"))]
'''

LOSSES = '''\
\"\"\"The losses of {dist}, each one pure function written against the Array API.

To run on every array library (NumPy, PyTorch, JAX, CuPy, Dask, ...), a loss uses only the
namespace ``xp`` of its inputs: no in-place writes, no boolean-mask indexing, no ``float()`` or
``bool()`` on arrays, no shapes that depend on values. ``lossreg.toolkit`` has the checks,
reductions and shared numerics (log_softmax, log_sigmoid, class_inputs, ...) every built-in
loss uses, so errors name the loss, the argument, what was expected and what was given.
\"\"\"

from __future__ import annotations

from typing import Any

from lossreg import define_loss, toolkit


@define_loss(
    class_name="{cls}",
    aliases=("{name}",),
    differentiable=("input", "target"),
    reference="TODO: the paper or library this loss comes from",
)
def {loss}(input: Any, target: Any, /, *, scale: float = 1.0, reduction: str = "mean") -> Any:
    \"\"\"TODO: your loss. As generated, a placeholder: ``ℓ_i = scale · (x_i - y_i)² / 2``, then reduced.

    Arrays are positional-only (before ``/``), options keyword-only with defaults (after ``*``).
    Shapes: ``input`` and ``target`` of one shape, any number of dimensions.

    Options:
        scale: the factor of the squared error, ≥ 0 (the docs page's meaning of the option).
    \"\"\"
    name = "{loss}"
    toolkit.check_number(name, "scale", scale, 0.0)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    d = x - y
    return toolkit.reduce(xp, scale * (d * d) / 2, reduction, dtype)
'''

GENERATE = '''\
\"\"\"Reference conformance cases for {dist}; rerun after changing a loss:

    python generate_cases.py      # writes src/{module}/cases/{name}.json

The values come from the formula in NumPy float64, written independently of the package's code,
and the gradients of sum(loss) are worked out by hand. Each case names its source. lossreg's
conformance suite runs every case on each backend and dtype (inputs rounded to the dtype,
tolerances growing with its epsilon) and compares values and gradients.
\"\"\"

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lossreg.testing import error_case, value_case, write_cases

OUT = Path(__file__).resolve().parent / "src" / "{module}" / "cases" / "{name}.json"
SOURCE = "TODO: where the formula comes from; NumPy float64"


def case(id: str, x: np.ndarray, y: np.ndarray, scale: float = 1.0, reduction: str = "mean") -> dict[str, Any]:
    d = x - y
    values = scale * d**2 / 2
    grad = scale * d  # d ℓ_i / d x_i; d ℓ_i / d y_i is its negative
    if reduction == "mean":
        value, grad = values.mean(), grad / values.size
    else:
        value = values.sum() if reduction == "sum" else values
    return value_case("{loss}", id, {{"input": x, "target": y}}, value, {{"scale": scale, "reduction": reduction}},
                      grads={{"input": grad, "target": -grad}}, source=SOURCE)


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for shape in [(5,), (3, 4), (2, 2, 3)]:
        x, y = rng.normal(size=shape), rng.normal(size=shape)
        for reduction in ("none", "mean", "sum"):
            out.append(case(f"{{len(shape)}}d-{{reduction}}", x, y, reduction=reduction))
    x, y = rng.normal(scale=3.0, size=6), rng.normal(size=6)
    out.append(case("scale-0.5", x, y, scale=0.5, reduction="none"))
    out.append(case("scale-4", x, y, scale=4.0, reduction="none"))
    zeros = np.zeros(3)
    out.append(error_case("{loss}", "shape-mismatch", "LossValueError", {{"input": zeros, "target": np.zeros((3, 1))}}))
    out.append(error_case("{loss}", "negative-scale", "LossValueError", {{"input": zeros, "target": zeros}},
                          {{"scale": -1.0}}))
    out.append(error_case("{loss}", "bad-reduction", "LossValueError", {{"input": zeros, "target": zeros}},
                          {{"reduction": "average"}}))
    return out


if __name__ == "__main__":
    print(f"wrote {{write_cases(OUT, cases(), generator='generate_cases.py')}}")
'''

CONFTEST = '''\
\"\"\"lossreg's pytest plugin is opt-in: this line gives the tests its fixtures (``lossreg_xp``,
``lossreg_backend``, ``lossreg_device``, ``lossreg_conformance``) and ``--lossreg-backend``.\"\"\"

pytest_plugins = ["lossreg.pytest_plugin"]
'''

TEST = '''\
\"\"\"Tests of {dist}, with lossreg's pytest plugin (see conftest.py): ``--lossreg-backend`` (default
numpy,array_api_strict,torch) and the ``lossreg_xp`` and ``lossreg_conformance`` fixtures; backends
not installed are skipped.\"\"\"

from __future__ import annotations

import lossreg

from {module} import {loss}


def test_conformance(lossreg_conformance):
    \"\"\"Every case of generate_cases.py on every backend and dtype; fails with the matrix.\"\"\"
    lossreg_conformance(plugin="{name}")


def test_registered():
    assert lossreg.get("{name}").spec.plugin == "{name}"


def test_zero_where_input_equals_target(lossreg_xp):
    x = lossreg_xp.asarray([-2.0, 0.0, 3.5], dtype=lossreg_xp.float64)
    assert float({loss}(x, x, reduction="sum")) == 0.0
'''

FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "generate_cases.py": GENERATE,
    "src/{module}/__init__.py": INIT,
    "src/{module}/losses.py": LOSSES,
    "tests/test_{name}.py": TEST,
    "conftest.py": CONFTEST,
}


def names(name: str) -> dict[str, str]:
    """The names derived from a plugin name: distribution, module, entry point, loss and class."""
    plain = re.sub(r"^lossreg[-_]", "", name.strip().lower())
    example = "(e.g. 'charbonnier' for the distribution lossreg-charbonnier)"
    if plain == "lossreg":  # the built-in catalogue's plugin and distribution name
        raise ValueError(f"{name!r} is not a plugin name: 'lossreg' is reserved for the built-in catalogue {example}")
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*", plain):
        # Say the whole rule: 'x_' and 'a--b' have only allowed characters, but a separator out of place.
        raise ValueError(f"{name!r} is not a plugin name: use letters and digits, starting with a letter, with "
                         f"single '-' or '_' only between them {example}")
    snake = plain.replace("-", "_")
    return {"name": snake, "dist": "lossreg-" + snake.replace("_", "-"), "module": "lossreg_" + snake,
            "loss": snake + "_loss", "cls": "".join(part.title() for part in snake.split("_")) + "Loss"}


def create(name: str, directory: str | Path = ".", *, force: bool = False) -> Path:
    """Write the package ``lossreg-NAME`` under ``directory``, with its cases generated; its root."""
    from .registry import normalize, registry

    values, reg = names(name), registry()
    taken = [n for n in (values["name"], values["loss"], values["cls"]) if normalize(n) in reg.index]
    if taken:
        owner = reg.lookup(taken[0])
        raise ValueError(f"the loss names of plugin {values['name']!r} ({', '.join(taken)}) are taken by "
                         f"'{owner.name}' of plugin '{owner.plugin}'; choose another name")
    # Installing a package of an installed plugin's distribution, module or entry-point name would
    # replace that plugin (pip uninstalls a distribution of the same name) or shadow it.
    installed = _installed_as(values, reg)
    if installed:
        raise ValueError(f"plugin name {values['name']!r} is taken: {installed}; installing the generated "
                         "package would replace or shadow it; choose another name")
    root = Path(directory) / values["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} exists and is not empty (--force writes into it)")
    for template_path, template in FILES.items():
        path = root / template_path.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    runpy.run_path(str(root / "generate_cases.py"), run_name="__main__")
    return root


def _installed_as(values: dict[str, str], reg: Registry) -> str:
    """What already installed holds the distribution, module or entry-point name of ``values``
    (``reg``: the loaded registry), or ""."""
    import importlib.metadata
    import importlib.util

    try:
        dist = importlib.metadata.distribution(values["dist"])
        return f"the distribution {dist.metadata['Name']} {dist.version} is installed"
    except importlib.metadata.PackageNotFoundError:
        pass
    info = reg.plugins.get(values["name"])
    if info is not None:
        return f"the lossreg plugin {info.name!r} ({info.distribution or 'in-process'}) is installed"
    if importlib.util.find_spec(values["module"]) is not None:
        return f"a module named {values['module']} is importable"
    return ""


def next_steps(root: Path) -> str:
    values = names(root.name)
    return textwrap.dedent(f"""\
        Created the lossreg plugin package {root}. Next:
          cd {shlex.quote(str(root))}
          pip install -e ".[test]"
          lossreg list                      # {values['loss']} is there, from plugin {values['name']}
          lossreg conformance --backend numpy,array_api_strict --loss {values['loss']}
          pytest""")
