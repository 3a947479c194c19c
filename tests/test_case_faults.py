"""A case that could not check what it claims is refused when it is registered, as a fault of
its plugin naming the case and the reason, rather than ignored or failing at run time."""

from __future__ import annotations

import types

import pytest

import lossreg
from lossreg import cli
from lossreg.testing import Case

X = {"data": [1.0, 2.0]}
Y = {"data": [0.0, 0.0]}


@pytest.mark.parametrize("case, reason", [
    (Case("mse_lossx", "typo", {"input": X, "target": Y}, expected=2.5), "no loss 'mse_lossx' is registered"),
    (Case("mse_loss", "bad-dtypes", {"input": X, "target": Y}, expected=2.5, dtypes=["float33"]),
     "dtypes ['float33'] are not among float16, bfloat16, float32, float64"),
    (Case("mse_loss", "bad-kind", {"input": {**X, "dtype": "flot"}, "target": Y}, expected=2.5),
     "input's dtype 'flot' is not 'float' or a NumPy dtype name"),
    (Case("mse_loss", "bad-error", {"input": X, "target": Y}, raises="NotAnError"),
     "raises 'NotAnError', which is not a lossreg error"),
    (Case("mse_loss", "nothing", {"input": X, "target": Y}), "neither an expected value nor an error"),
    (Case("mse_loss", "misspelt-grad", {"input": X, "target": Y}, expected=2.5, grads={"inptu": [1.0, 2.0]}),
     "gradients of 'inptu', which is not one of its arrays (input, target)"),
])
def test_a_case_that_cannot_check_what_it_claims_is_a_fault(case, reason):
    plugin = types.SimpleNamespace(lossreg_cases=lossreg.hookimpl(lambda: [case]))
    with pytest.warns(lossreg.LossregPluginWarning, match="is not used"):
        lossreg.register_plugin(plugin, name="bad-case")
    try:
        reg = lossreg.registry()
        faults = reg.plugins["bad-case"].faults
        assert len(faults) == 1 and f"case {case.id!r}" in faults[0] and reason in faults[0], faults
        assert not [c for c in reg.cases if c.plugin == "bad-case"]
    finally:
        lossreg.unregister_plugin("bad-case")


def test_two_cases_of_one_loss_with_one_id_keep_the_first():
    first = Case("mse_loss", "same", {"input": X, "target": Y}, expected=2.5)
    second = Case("mse_loss", "same", {"input": X, "target": Y}, expected=2.5)
    plugin = types.SimpleNamespace(lossreg_cases=lossreg.hookimpl(lambda: [first, second]))
    with pytest.warns(lossreg.LossregPluginWarning, match="another case of this loss has the same id"):
        lossreg.register_plugin(plugin, name="twice")
    try:
        assert len([c for c in lossreg.registry().cases if c.plugin == "twice"]) == 1
        code = cli.main(["conformance", "--backend", "numpy", "--loss", "mse_loss", "--quick"])
        assert code == 0
    finally:
        lossreg.unregister_plugin("twice")
