"""A user-style hunt: shipping models and training jobs that contain lossreg losses.

What an MLOps engineer does with a loss besides calling it: copies and pickles it (functional
forms, class forms, specs, torch modules, Keras losses), saves and loads the models holding it
(``torch.save``, ``weights_only`` state dicts, torch.nn criteria's state dicts), traces and exports
it (``torch.jit.trace``, ``torch.export`` with a dynamic batch, ``jax.export``), sends it to
worker processes (DataLoader workers, spawned process pools) and hands it to ``jax.jit``.
Each round trip must give the original's value, and torch.nn's where torch.nn has the loss.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sweep import sweep
from torch.export import Dim
from torch_examples import BUILTIN, differentiable, example, tensors, torch_options

import lossreg
import lossreg.torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ROUND_TRIPS = {
    "pickle": lambda obj: pickle.loads(pickle.dumps(obj)),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}
W3 = [1.0, 2.0, 0.5]
# Losses with array options, configured with them (torch.nn's class of the same name takes the same).
WEIGHTED = {
    "CrossEntropyLoss": dict(weight=W3, ignore_index=1, label_smoothing=0.1),
    "NLLLoss": dict(weight=W3),
    "BCELoss": dict(weight=W3),
    "BCEWithLogitsLoss": dict(weight=W3, pos_weight=[0.5, 1.0, 3.0]),
    "MultiMarginLoss": dict(weight=W3, p=2, margin=0.5),
    "MultiLabelSoftMarginLoss": dict(weight=W3),
}
WEIGHTED_LOSS = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "BCELoss": "binary_cross_entropy",
                 "BCEWithLogitsLoss": "binary_cross_entropy_with_logits", "MultiMarginLoss": "multi_margin_loss",
                 "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss"}


def _weighted_module_options(cls: str, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    return {k: torch.tensor(v, dtype=dtype) if isinstance(v, list) else v for k, v in WEIGHTED[cls].items()}


# --- copies and pickles --------------------------------------------------------------------------


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("name", BUILTIN)
def test_functional_and_class_forms_round_trip_to_the_same_value(name: str, how: str) -> None:
    inputs, options = example(name)
    want = getattr(lossreg, name)(*inputs.values(), **options)
    again = ROUND_TRIPS[how](getattr(lossreg, name))
    np.testing.assert_array_equal(again(*inputs.values(), **options), want)
    loss = lossreg.get(name, **options)
    copied = ROUND_TRIPS[how](loss)
    assert type(copied) is type(loss) and copied == loss
    np.testing.assert_array_equal(copied(*inputs.values()), want)


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("name", BUILTIN)
def test_loss_spec_round_trips_to_an_equal_spec(name: str, how: str) -> None:
    # lossreg.spec(name) is public; its function is the portable definition, which pickle did not
    # find under its name (the module's attribute of that name is the dispatching form).
    spec = lossreg.spec(name)
    again = ROUND_TRIPS[how](spec)
    assert again == spec and again.function is spec.function
    inputs, options = example(name)
    np.testing.assert_array_equal(again.function(*inputs.values(), **options),
                                  spec.function(*inputs.values(), **options))


def test_a_spec_pickles_in_one_process_and_loads_in_a_fresh_one() -> None:
    blob = pickle.dumps(lossreg.spec("cross_entropy"))
    code = ("import pickle, sys, lossreg; s = pickle.loads(sys.stdin.buffer.read());"
            "print(s == lossreg.spec('cross_entropy'), s.function is lossreg.cross_entropy.portable)")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.stdout.decode().split() == ["True", "True"], out.stderr.decode()[-2000:]


@pytest.mark.parametrize("library", ["list", "numpy", "torch", "jax"])
def test_class_form_with_array_options_of_each_library_round_trips(library: str) -> None:
    import jax.numpy as jnp

    convert = {"list": list, "numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[library]
    loss = lossreg.BCEWithLogitsLoss(weight=convert(W3), pos_weight=convert([0.5, 1.0, 3.0]))
    x, y = np.random.default_rng(0).normal(size=(4, 3)), np.random.default_rng(1).random((4, 3))
    if library in ("torch", "jax"):  # the loss on arrays of its options' library, in their float32
        x, y = convert(x.astype("float32")), convert(y.astype("float32"))
    want = np.asarray(loss(x, y))
    config = lambda o: lossreg.from_config(json.loads(json.dumps(o.get_config())))  # noqa: E731
    for how, trip in {**ROUND_TRIPS, "config": config}.items():
        again = trip(loss)
        assert again == loss, how
        np.testing.assert_allclose(np.asarray(again(x, y)), want, rtol=1e-6, err_msg=how)


def test_class_form_with_a_callable_option_compares_without_raising() -> None:
    # TripletMarginWithDistanceLoss takes a distance function, which get_config cannot write as
    # JSON: ==, used by pickle round-trip checks and by jax.jit's cache of static arguments,
    # raised LossTypeError (even loss == loss) instead of comparing.
    loss = lossreg.TripletMarginWithDistanceLoss(distance_function=F.pairwise_distance, margin=0.5)
    assert loss == loss
    assert pickle.loads(pickle.dumps(loss)) == loss
    assert copy.deepcopy(loss) == loss
    assert loss != lossreg.TripletMarginWithDistanceLoss(distance_function=F.pairwise_distance, margin=0.7)
    assert loss != lossreg.TripletMarginWithDistanceLoss(distance_function=torch.cdist, margin=0.5)
    with pytest.raises(lossreg.LossTypeError, match="distance_function"):
        loss.get_config()  # a config is still JSON or an error naming the option


def test_a_class_form_equals_its_pickle_made_after_a_reload() -> None:
    # A worker that registers a plugin reloads the registry, which remakes every class form: the
    # same loss with the same options, pickled before and loaded after, compared unequal.
    loss = lossreg.CrossEntropyLoss(weight=W3, label_smoothing=0.1)
    blob = pickle.dumps(loss)
    lossreg.reload()
    again = pickle.loads(blob)
    assert again == loss and loss == again
    assert again != lossreg.CrossEntropyLoss(weight=W3)


# --- torch modules -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("name", BUILTIN)
def test_torch_module_round_trips_to_the_same_value(name: str, how: str) -> None:
    inputs, options = example(name)
    crit = lossreg.torch.get(name, **torch_options(options))
    again = ROUND_TRIPS[how](crit)
    assert type(again) is type(crit)
    torch.testing.assert_close(again(*tensors(inputs).values()), crit(*tensors(inputs).values()), rtol=0, atol=0)


@pytest.mark.parametrize("cls", list(WEIGHTED))
def test_deepcopy_and_pickle_of_a_torch_module_copy_its_buffers(cls: str) -> None:
    crit = getattr(lossreg.torch, cls)(**_weighted_module_options(cls))
    reference = getattr(torch.nn, cls)(**_weighted_module_options(cls))
    for how in ("deepcopy", "pickle"):
        again = ROUND_TRIPS[how](crit)
        assert list(again.state_dict()) == list(reference.state_dict())
        for key, buffer in crit.named_buffers():
            copied = again.get_buffer(key)
            assert copied.data_ptr() != buffer.data_ptr()
            torch.testing.assert_close(copied, buffer)
            copied.mul_(2)  # the copy trains or is edited on its own: the original keeps its weights
            assert not torch.equal(copied, buffer)


def test_deepcopy_of_a_module_with_a_parameter_weight_copies_the_parameter() -> None:
    crit = lossreg.torch.CrossEntropyLoss(weight=torch.nn.Parameter(torch.tensor(W3)))
    again = copy.deepcopy(crit)
    assert isinstance(again.weight, torch.nn.Parameter) and again.weight is not crit.weight
    assert [k for k, _ in again.named_parameters()] == ["weight"]


@pytest.mark.parametrize("cls", list(WEIGHTED))
def test_state_dicts_move_between_torch_nn_criteria_and_lossreg_modules(cls: str) -> None:
    options = _weighted_module_options(cls)
    blank = {k: torch.zeros_like(v) if isinstance(v, torch.Tensor) else v for k, v in options.items()}
    reference, crit = getattr(torch.nn, cls)(**options), getattr(lossreg.torch, cls)(**blank)
    crit.load_state_dict(reference.state_dict(), strict=True)
    back = getattr(torch.nn, cls)(**blank)
    back.load_state_dict(crit.state_dict(), strict=True)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(crit.state_dict()[key], value)
        torch.testing.assert_close(back.state_dict()[key], value)


@pytest.mark.parametrize("cls", list(WEIGHTED))
def test_a_model_state_dict_loads_with_weights_only_and_gives_torch_nns_value(cls: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"net": torch.nn.Linear(4, 3, dtype=torch.float64),
                                 "loss": getattr(lossreg.torch, cls)(**_weighted_module_options(cls))})
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    blank = {k: torch.ones_like(v) if isinstance(v, torch.Tensor) else v for k, v in _weighted_module_options(cls).items()}
    fresh = torch.nn.ModuleDict({"net": torch.nn.Linear(4, 3, dtype=torch.float64), "loss": getattr(lossreg.torch, cls)(**blank)})
    fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    x = torch.randn(5, 4, dtype=torch.float64)
    target = _target(cls, 5)
    logits = fresh["net"](x)
    if cls == "BCELoss":
        logits = torch.sigmoid(logits)
    elif cls == "NLLLoss":
        logits = torch.log_softmax(logits, 1)
    want = getattr(torch.nn, cls)(**_weighted_module_options(cls))(logits, target)
    torch.testing.assert_close(fresh["loss"](logits, target), want)


def _target(cls: str, n: int) -> torch.Tensor:
    if cls in ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"):
        return torch.randint(0, 3, (n,))
    if cls == "MultiLabelSoftMarginLoss":
        return torch.randint(0, 2, (n, 3)).to(torch.float64)
    return torch.rand(n, 3, dtype=torch.float64)


def test_whole_model_loads_with_weights_only_once_the_class_is_allowed() -> None:
    # torch.load(weights_only=True) of a whole pickled model takes only allowed classes; lossreg's
    # generated class is found and allowed by name as torch.nn's is.
    model = torch.nn.ModuleDict({"net": torch.nn.Linear(4, 3),
                                 "loss": lossreg.torch.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.1)})
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    with torch.serialization.safe_globals([torch.nn.ModuleDict, torch.nn.Linear, lossreg.torch.CrossEntropyLoss]):
        loaded = torch.load(buf, weights_only=True)
    assert type(loaded["loss"]) is lossreg.torch.CrossEntropyLoss and loaded["loss"].label_smoothing == 0.1
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.1)(model["net"](x), y)
    torch.testing.assert_close(loaded["loss"](loaded["net"](x), y), want)


# --- tracing and export --------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_jit_trace_of_a_loss_gives_torch_nns_value_for_new_inputs(name: str) -> None:
    inputs, options = example(name)
    new, _ = example(name, seed=1)
    fn, crit = getattr(lossreg, name), lossreg.torch.get(name, **torch_options(options))
    want = getattr(F, name)(*tensors(new).values(), **torch_options(options))
    traced_fn = torch.jit.trace(lambda *xs: fn(*xs, **torch_options(options)), tuple(tensors(inputs).values()),
                                check_trace=False)
    traced_module = torch.jit.trace(crit, tuple(tensors(inputs).values()), check_trace=False)
    torch.testing.assert_close(traced_fn(*tensors(new).values()), want)
    torch.testing.assert_close(traced_module(*tensors(new).values()), want)


class _Net(torch.nn.Module):
    def __init__(self, crit: torch.nn.Module) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.crit = crit

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.crit(self.lin(x), y)


def test_jit_script_of_a_model_calling_a_lossreg_criterion_raises_when_run_as_the_readme_says() -> None:
    # torch.nn's criterion scripts; lossreg's forward(*arrays) is not TorchScript (README: "Not
    # covered: torch.jit.script"). It is marked unused, so that a model that only holds one scripts
    # (tests/test_user_hunt_torch_training.py); a scripted forward that calls it raises when run.
    x, y = torch.randn(2, 4), torch.tensor([0, 2])
    torch.jit.script(_Net(torch.nn.CrossEntropyLoss()))(x, y)
    scripted = torch.jit.script(_Net(lossreg.torch.CrossEntropyLoss()))
    with pytest.raises(torch.jit.Error, match="annotated to be ignored") as refused:
        scripted(x, y)
    assert "self.crit(" in str(refused.value)  # TorchScript's traceback points at the call


class _ModelAndLoss(torch.nn.Module):
    """A scale (the model) applied to the loss's first array, then the loss."""

    def __init__(self, crit: torch.nn.Module) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        self.crit = crit

    def forward(self, *arrays: torch.Tensor) -> torch.Tensor:
        return self.crit(arrays[0] * self.scale, *arrays[1:])


def _batch_dims(inputs: dict[str, Any]) -> tuple[Any, ...]:
    batch = Dim("batch", min=2, max=64)
    return tuple(None if k == "linear_weight" else {1: batch} if k == "log_probs" else {0: batch} for k in inputs)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("name", sweep(BUILTIN))  # an export apiece
def test_export_of_model_and_loss_with_a_dynamic_batch_gives_torch_nns_value(name: str, strict: bool) -> None:
    inputs, options = example(name)
    larger, _ = example(name, size=1, seed=1)  # another batch size, other values
    module = _ModelAndLoss(lossreg.torch.get(name, **torch_options(options)))
    exported = torch.export.export(module, tuple(tensors(inputs).values()), dynamic_shapes=(_batch_dims(inputs),),
                                   strict=strict)
    want = getattr(F, name)(*tensors(larger).values(), **torch_options(options))
    torch.testing.assert_close(exported.module()(*tensors(larger).values()), want)
    torch.testing.assert_close(exported.run_decompositions().module()(*tensors(larger).values()), want)


class _Call(torch.nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *arrays: torch.Tensor) -> torch.Tensor:
        return self.fn(*arrays)


def _traced(how: str, fn: Any, arrays: tuple[torch.Tensor, ...]) -> Any:
    if how == "export":
        return torch.export.export(_Call(fn), arrays).module()
    return torch.jit.trace(fn, arrays, check_trace=False)


@pytest.mark.parametrize("how", ["export", "jit.trace"])
@pytest.mark.parametrize("name", sweep(BUILTIN))  # an export apiece
def test_a_traced_program_gives_the_gradients_its_run_asks_for(name: str, how: str) -> None:
    """Traced from example inputs that require no gradient (the usual way), run with ones that do:
    each gets eager's gradient, fixed neither by the trace nor left out (hidden states passed in)."""
    inputs, options = example(name)
    fn = lambda *xs: getattr(lossreg, name)(*xs, **torch_options(options))  # noqa: E731
    program = _traced(how, fn, tuple(tensors(inputs).values()))
    diff = differentiable(name, inputs)

    def gradients(call: Any) -> tuple[torch.Tensor, ...]:
        arrays = tensors(inputs, diff)
        return torch.autograd.grad(call(*arrays.values()).sum(), [arrays[k] for k in diff])

    for k, got, want in zip(diff, gradients(program), gradients(fn)):
        torch.testing.assert_close(got, want, msg=lambda m, k=k: f"gradient of {k}: {m}")


@pytest.mark.parametrize("how", ["export", "jit.trace"])
def test_a_head_frozen_when_traced_and_unfrozen_later_gets_its_gradient(how: str) -> None:
    """linear_cross_entropy's kernel makes only the gradients asked for (a frozen head costs no V×D
    product); in a traced program that is asked when it runs, not when it was traced."""
    inputs, _ = example("linear_cross_entropy")
    frozen = tensors(inputs, ["input"])
    program = _traced(how, lossreg.linear_cross_entropy, tuple(frozen.values()))
    both = tensors(inputs, ["input", "linear_weight"])
    got = torch.autograd.grad(program(*both.values()), [both["input"], both["linear_weight"]])
    h, w, t = tensors(inputs, ["input", "linear_weight"]).values()
    want = torch.autograd.grad(F.cross_entropy(h @ w.T, t), [h, w])
    for g, wanted in zip(got, want):
        torch.testing.assert_close(g, wanted)


@pytest.mark.parametrize("cls", list(WEIGHTED))
def test_export_keeps_array_options_as_buffers_and_gives_torch_nns_value(cls: str) -> None:
    torch.manual_seed(0)

    class Model(torch.nn.Module):
        def __init__(self, crit: torch.nn.Module) -> None:
            super().__init__()
            self.lin, self.crit = torch.nn.Linear(4, 3, dtype=torch.float64), crit

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            out = self.lin(x)
            return self.crit(torch.sigmoid(out) if cls == "BCELoss" else out, y)

    model = Model(getattr(lossreg.torch, cls)(**_weighted_module_options(cls)))
    reference = Model(getattr(torch.nn, cls)(**_weighted_module_options(cls)))
    reference.lin.load_state_dict(model.lin.state_dict())
    batch = Dim("batch")
    exported = torch.export.export(model, (torch.randn(5, 4, dtype=torch.float64), _target(cls, 5)),
                                   dynamic_shapes=({0: batch}, {0: batch}))
    assert set(exported.state_dict) == {f"crit.{k}" for k in reference.crit.state_dict()} | {"lin.weight", "lin.bias"}
    x, y = torch.randn(9, 4, dtype=torch.float64), _target(cls, 9)
    torch.testing.assert_close(exported.module()(x, y), reference(x, y))


def test_a_saved_exported_program_loads_in_a_fresh_process_that_imports_lossreg_torch(tmp_path: Any) -> None:
    # linear_cross_entropy exports as lossreg's own operator (lossreg::linear_cross_entropy); it
    # was registered only when the torch kernel first ran, so torch.export.load in a serving
    # process failed ("failed to resolve torch.ops.lossreg.linear_cross_entropy.default") even
    # after import lossreg.torch. The other losses export as torch's own operators.
    inputs, _ = example("linear_cross_entropy")
    larger, _ = example("linear_cross_entropy", size=1, seed=1)
    module = _ModelAndLoss(lossreg.torch.LinearCrossEntropyLoss())
    exported = torch.export.export(module, tuple(tensors(inputs).values()), dynamic_shapes=(_batch_dims(inputs),))
    assert any("lossreg" in str(node.target) for node in exported.graph.nodes)
    torch.export.save(exported, tmp_path / "model.pt2")
    torch.save(tensors(larger), tmp_path / "inputs.pt")
    code = ("import sys, torch, lossreg.torch; m = torch.export.load(sys.argv[1]).module();"
            "print(m(*torch.load(sys.argv[2]).values()).item())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.pt2"), str(tmp_path / "inputs.pt")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    h, w, t = tensors(larger).values()
    assert float(out.stdout.split()[-1]) == pytest.approx(F.cross_entropy(h @ w.T, t).item(), rel=1e-12)


# --- worker processes ----------------------------------------------------------------------------


class LossDataset(torch.utils.data.Dataset):
    """Each item a loss computed on NumPy arrays in the worker, by the loss object it was given."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> float:
        return float(self.loss(*_pair(i)))


def _item(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    return rng.normal(size=3), rng.integers(0, 3)


def _pair(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Two samples of scores and class indices made from item ``i``."""
    x, y = _item(i)
    return np.stack([x, -x]), np.stack([y, (y + 1) % 3])


class ItemDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return _item(i)


def collate_with_loss(batch: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    x, y = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
    return lossreg.cross_entropy(x, y, reduction="none", label_smoothing=0.1)


@pytest.mark.parametrize("context", ["spawn", "fork"])
def test_dataloader_workers_compute_losses_in_dataset_and_collate(context: str) -> None:
    for loss in (lossreg.cross_entropy, lossreg.CrossEntropyLoss(weight=W3, label_smoothing=0.1)):
        got = torch.cat(list(torch.utils.data.DataLoader(LossDataset(loss), batch_size=4, num_workers=2,
                                                         multiprocessing_context=context)))
        want = torch.tensor([float(loss(*_pair(i))) for i in range(8)], dtype=torch.float64)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    got = np.concatenate(list(torch.utils.data.DataLoader(ItemDataset(), batch_size=4, num_workers=2,
                                                          multiprocessing_context=context, collate_fn=collate_with_loss)))
    want = collate_with_loss([_item(i) for i in range(8)])
    np.testing.assert_array_equal(got, want)


def apply_loss(loss: Any, *arrays: Any) -> Any:
    return loss(*arrays)


def registry_contents() -> tuple[list[str], list[str], dict[str, str]]:
    reg = lossreg.registry()
    return lossreg.names(), sorted(reg.plugins), {n: s.plugin for n, s in reg.specs.items()}


def test_spawned_process_pool_takes_losses_and_modules_as_arguments_and_finds_the_same_plugins() -> None:
    x = np.random.default_rng(0).normal(size=(5, 3))
    y = np.array([0, 1, 2, 1, 0])
    weight = torch.tensor(W3, dtype=torch.float64)
    calls = [
        (lossreg.cross_entropy, x, y),
        (lossreg.CrossEntropyLoss(weight=W3, label_smoothing=0.1), x, y),
        (lossreg.torch.CrossEntropyLoss(weight, label_smoothing=0.1), torch.tensor(x), torch.tensor(y)),
        (lossreg.torch.BCEWithLogitsLoss(pos_weight=weight), torch.tensor(x), torch.tensor(x > 0, dtype=torch.float64)),
    ]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [pool.submit(apply_loss, *call) for call in calls]
        contents = pool.submit(registry_contents).result(timeout=300)
        for (loss, *arrays), result in zip(calls, results):
            np.testing.assert_array_equal(np.asarray(result.result(timeout=300)), np.asarray(loss(*arrays)))
    assert contents == registry_contents()  # discovery in the child loads the same plugins and losses


# --- JAX -----------------------------------------------------------------------------------------


def test_class_forms_are_static_arguments_of_jax_jit_and_equal_ones_share_a_compile() -> None:
    # Class forms defined __eq__ but no __hash__: jax.jit refused them as static arguments
    # ("Non-hashable static arguments are not supported").
    import functools

    import jax
    import jax.numpy as jnp

    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def step(loss: Any, x: Any, y: Any) -> Any:
        traces.append(loss)
        return loss(x, y)

    x, y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), dtype=jnp.float32), jnp.array([0, 1, 2, 1, 0])
    for smoothing in (0.1, 0.1, 0.2):
        loss = lossreg.CrossEntropyLoss(weight=W3, label_smoothing=smoothing)
        np.testing.assert_allclose(step(loss, x, y), loss(x, y), rtol=1e-6)
    assert len(traces) == 2  # the second, equal loss hit the first one's compile
    assert hash(lossreg.MSELoss(reduction="sum")) == hash(lossreg.MSELoss(reduction="sum"))


def test_jax_jit_and_export_of_a_class_form_and_of_a_closure_over_one() -> None:
    import jax
    import jax.numpy as jnp
    from jax import export

    loss = lossreg.CrossEntropyLoss(weight=W3, label_smoothing=0.1)
    x, y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), dtype=jnp.float32), jnp.array([0, 1, 2, 1, 0])
    want = loss(x, y)
    np.testing.assert_allclose(jax.jit(lambda x, y: loss(x, y))(x, y), want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(loss)(x, y), want, rtol=1e-6)  # raised: unhashable type
    exported = export.export(jax.jit(loss))(x, y)
    np.testing.assert_allclose(exported.call(x, y), want, rtol=1e-6)
    (batch,) = export.symbolic_shape("batch")
    symbolic = export.export(jax.jit(loss))(jax.ShapeDtypeStruct((batch, 3), x.dtype),
                                            jax.ShapeDtypeStruct((batch,), y.dtype))
    x7, y7 = jnp.ones((7, 3), dtype=x.dtype), (jnp.arange(7) % 3).astype(y.dtype)  # whatever x64 is
    np.testing.assert_allclose(symbolic.call(x7, y7), loss(x7, y7), rtol=1e-6)
    # A class form is one leaf of a pytree (its options are not traced arrays), as a torch module would be.
    leaves, tree = jax.tree_util.tree_flatten({"loss": loss, "x": x})
    assert leaves[0] is loss and jax.tree_util.tree_unflatten(tree, leaves)["loss"] is loss


def test_jax_export_serializes_a_loss_and_loads_it() -> None:
    pytest.importorskip("flatbuffers")  # jax.export's serialization needs it
    import jax
    import jax.numpy as jnp
    from jax import export

    loss = lossreg.CrossEntropyLoss(label_smoothing=0.1)
    x, y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), dtype=jnp.float32), jnp.array([0, 1, 2, 1, 0])
    loaded = export.deserialize(export.export(jax.jit(loss))(x, y).serialize())
    np.testing.assert_allclose(loaded.call(x, y), loss(x, y), rtol=1e-6)


def test_cloudpickled_jitted_functions_over_lossreg_losses_give_the_same_value() -> None:
    # jax.jit's wrappers do not pickle with pickle itself (a local object of JAX's); cloudpickle,
    # what Dask, Ray and Spark use to ship functions, takes them and the losses they close over.
    cloudpickle = pytest.importorskip("cloudpickle")
    import functools

    import jax
    import jax.numpy as jnp

    x, y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), dtype=jnp.float32), jnp.array([0, 1, 2, 1, 0])
    loss = lossreg.CrossEntropyLoss(weight=W3, label_smoothing=0.1)
    for fn in (jax.jit(lossreg.cross_entropy), jax.jit(functools.partial(lossreg.cross_entropy, label_smoothing=0.1)),
               jax.jit(lambda x, y: 2 * loss(x, y)), jax.jit(loss)):
        np.testing.assert_allclose(cloudpickle.loads(cloudpickle.dumps(fn))(x, y), fn(x, y), rtol=1e-6)


# --- Keras ---------------------------------------------------------------------------------------

_KERAS_ROUND_TRIPS = textwrap.dedent("""
    import copy, json, pickle, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np, keras
    sys.path.insert(0, sys.argv[1])
    from torch_examples import BUILTIN, example
    import lossreg, lossreg.keras

    WEIGHTED = json.loads(sys.argv[2])
    cases = [(name, example(name)) for name in BUILTIN]
    cases += [(loss, (example(loss)[0], options)) for loss, options in WEIGHTED.items()]
    failures = []
    for name, (inputs, options) in cases:
        spec = lossreg.spec(name)
        options = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in options.items()}
        loss = lossreg.keras.get(name, **options)
        first, truth = spec.inputs[0], "target" if "target" in spec.inputs else spec.inputs[1]
        y_pred = inputs[first] if len(spec.inputs) == 2 else {k: v for k, v in inputs.items() if k != truth}
        y_true = inputs[truth] if len(spec.inputs) == 2 else {truth: inputs[truth]}
        want = np.asarray(loss(y_true, y_pred))
        trips = {"pickle": lambda o: pickle.loads(pickle.dumps(o)), "copy": copy.copy, "deepcopy": copy.deepcopy,
                 "from_config": lambda o: type(o).from_config(json.loads(json.dumps(o.get_config()))),
                 "keras.saving": lambda o: keras.saving.deserialize_keras_object(
                     json.loads(json.dumps(keras.saving.serialize_keras_object(o)))),
                 "lossreg_config": lambda o: lossreg.keras.from_config(o.lossreg_config())}
        for how, trip in trips.items():
            try:
                again = trip(loss)
                assert type(again) is type(loss), type(again)
                assert again.get_config() == loss.get_config()
                np.testing.assert_allclose(np.asarray(again(y_true, y_pred)), want, rtol=1e-6)
            except Exception as error:
                failures.append(f"{name} {options} {how}: {type(error).__name__}: {error}")
    print(json.dumps(failures))
""")


@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_losses_pickle_copy_and_config_round_trips_give_the_same_value(keras_backend: str) -> None:
    if importlib.util.find_spec("keras") is None:  # not imported here: that would fix this process's Keras backend
        pytest.skip("the keras extra is not installed")
    weighted = {WEIGHTED_LOSS[cls]: options for cls, options in WEIGHTED.items()}
    out = subprocess.run([sys.executable, "-c", _KERAS_ROUND_TRIPS, os.path.dirname(__file__), json.dumps(weighted)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": keras_backend})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

