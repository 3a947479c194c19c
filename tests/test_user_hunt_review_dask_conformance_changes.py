"""Review of the Dask and conformance changes after 0af0129: what a user of them would hit.

- ``docs.verified`` (the README's "verified on" column) reads an earlier report's "passed" with
  no case run as not applicable, as the loss pages do: a backend where nothing was checked is
  not listed as verified.
"""

from __future__ import annotations


def _outcome(dtype, status, cases):
    return {"loss": "mse_loss", "backend": "numpy", "device": "cpu", "dtype": dtype, "path": "portable",
            "status": status, "cases": cases, "worst": 0.0, "reason": ""}


def test_verified_column_does_not_list_a_backend_of_an_old_report_where_no_case_ran():
    from lossreg import docs
    from lossreg.docsite import pages

    old = {"outcomes": [_outcome("float16", "passed", 0)]}  # before the not_applicable status
    assert pages._cell(old["outcomes"]).startswith("n/a")
    assert docs.verified(old) == {}
    # with a dtype where cases did run and pass, the backend is verified
    both = {"outcomes": [_outcome("float16", "passed", 0), _outcome("float64", "passed", 3)]}
    assert docs.verified(both) == {"mse_loss": ["numpy"]}
