"""Number options too large for the array libraries' scalars.

A Python int is unbounded, but the array libraries take a scalar operand as a 64-bit integer or
float, and say so in their own words (torch: "int too big to convert", "Overflow when unpacking
long long"). lossreg's rule, for every number option of every built-in loss, on every library:

- an int past int64 given to an option whose default is a float (``margin=2**70``) is that float,
  as torch reads it (torch's answer where torch gives one);
- an int past int64 given to an integer option (``ignore_index``, ``blank``) is a
  ``LossValueError`` naming the option, and so is any int past float64's range;
- on JAX without x64, whose indices are int32, an ``ignore_index`` past int32 is refused naming
  ``ignore_index`` (not the target, which holds no such index).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from strategies import BUILT_IN, make_good

import lossreg
import lossreg.torch
from lossreg.errors import LossValueError

torch = pytest.importorskip("torch")
F = torch.nn.functional

NUMBER_OPTIONS = [(name, key, default) for name in BUILT_IN
                  for key, default in lossreg.spec(name).options.items()
                  if type(default) in (int, float)]
LIBRARIES = {"numpy": np.asarray, "torch": torch.from_numpy}


def _outcome(name: str, to_array: Any, **options: Any) -> Any:
    """The loss of the example (summed, as a Python float), or the lossreg error's option."""
    arrays = [to_array(np.asarray(a)) if isinstance(a, np.ndarray) else a for a in make_good(name).inputs.values()]
    try:
        return repr(float(np.sum(np.asarray(getattr(lossreg, name)(*arrays, **options)))))  # NaN equal to NaN
    except LossValueError as error:
        return ("LossValueError", error.argument)


def test_every_built_in_loss_with_a_number_option_is_covered() -> None:
    assert {name for name, _, _ in NUMBER_OPTIONS} >= {"cross_entropy", "ctc_loss", "huber_loss",
                                                        "margin_ranking_loss", "triplet_margin_loss"}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(("name", "key", "default"), NUMBER_OPTIONS, ids=[f"{n}-{k}" for n, k, _ in NUMBER_OPTIONS])
def test_an_int_past_int64_is_the_float_for_a_float_option_and_refused_for_an_integer_one(
        name: str, key: str, default: Any, library: str) -> None:
    for value in (2**70, -2**70):
        got = _outcome(name, LIBRARIES[library], **{key: value})
        if isinstance(default, float):
            assert got == _outcome(name, LIBRARIES[library], **{key: float(value)}), (value, got)
        else:
            assert got == ("LossValueError", key), (value, got)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(("name", "key", "default"), NUMBER_OPTIONS, ids=[f"{n}-{k}" for n, k, _ in NUMBER_OPTIONS])
def test_an_int_past_float64_is_refused_naming_the_option(name: str, key: str, default: Any, library: str) -> None:
    with pytest.raises(LossValueError) as info:
        arrays = [LIBRARIES[library](a) if isinstance(a, np.ndarray) else a for a in make_good(name).inputs.values()]
        getattr(lossreg, name)(*arrays, **{key: 10**400})
    assert info.value.argument == key and info.value.loss == name, str(info.value)


def test_a_huge_margin_gives_torchs_answer_value_and_gradient() -> None:
    x1 = torch.randn(5, dtype=torch.float64, requires_grad=True)
    x2, y = torch.randn(5, dtype=torch.float64), torch.tensor([1.0, -1, 1, -1, 1], dtype=torch.float64)
    want = F.margin_ranking_loss(x1, x2, y, margin=2**70)
    got = lossreg.margin_ranking_loss(x1, x2, y, margin=2**70)
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)
    torch.testing.assert_close(torch.autograd.grad(got, x1)[0], torch.autograd.grad(want, x1)[0])
    assert lossreg.torch.MarginRankingLoss(margin=2**70)(x1, x2, y).item() == want.item()


def test_where_torch_refuses_an_ignore_index_past_int64_lossreg_names_it() -> None:
    x, t = torch.randn(4, 5), torch.tensor([1, 0, 3, 4])
    with pytest.raises(ValueError, match="Overflow"):
        F.cross_entropy(x, t, ignore_index=2**70)
    with pytest.raises(LossValueError, match=r"cross_entropy: argument 'ignore_index' expected an integer in "
                                             r"\[-2\*\*63, 2\*\*63 - 1\], got 1180591620717411303424"):
        lossreg.cross_entropy(x, t, ignore_index=2**70)


def test_on_jax_without_x64_an_ignore_index_past_int32_is_named_and_int32s_own_extremes_work() -> None:
    jax = pytest.importorskip("jax")
    with jax.enable_x64(False):
        _check_jax_int32_ignore_index(jax.numpy)


def _check_jax_int32_ignore_index(jnp: Any) -> None:
    x, t = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5)), dtype=jnp.float32), jnp.asarray([1, 0, 3, 4])
    assert t.dtype == jnp.int32
    plain = float(lossreg.cross_entropy(x, t))
    for fits in (-2**31, 2**31 - 1):
        assert float(lossreg.cross_entropy(x, t, ignore_index=fits)) == plain
    for loss, arrays in (("cross_entropy", (x, t)), ("linear_cross_entropy", (x, jnp.eye(5, dtype=x.dtype), t))):
        with pytest.raises(LossValueError, match=f"{loss}: argument 'ignore_index' expected an integer in "
                                                 r"\[-2147483648, 2147483647\].*jax_enable_x64.*got 2147483648"):
            getattr(lossreg, loss)(*arrays, ignore_index=2**31)
