"""lossreg.torch modules swapped in for torch.nn's inside existing PyTorch code: what code that
inspects, builds or extends a criterion sees is what it saw with torch.nn's module."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
import torch

import lossreg
import lossreg.torch as lt

DEPRECATED = {"size_average", "reduce"}  # torch.nn's, deliberately not taken (README)
SHARED = [s.class_name for s in lossreg.registry().specs.values()
          if s.plugin == "lossreg" and isinstance(getattr(torch.nn, s.class_name, None), type)
          and s.class_name != "LinearCrossEntropyLoss"]  # (its own constructor, in_features and num_classes)


@pytest.mark.parametrize("name", SHARED)
def test_the_constructor_signature_is_torch_nns_less_its_deprecated_arguments(name: str) -> None:
    """What builds a criterion from its signature (LightningCLI's ``init_args``, a config system's
    checks, ``help()``) sees torch.nn's arguments: the same leading positional ones, in order, then
    the options by keyword, with the same defaults. It saw ``(*args, **options)``."""
    ours = inspect.signature(getattr(lt, name)).parameters
    theirs = {k: p for k, p in inspect.signature(getattr(torch.nn, name)).parameters.items() if k not in DEPRECATED}
    positional = [k for k, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == [k for k in theirs if k in lt.get(name)._positional]
    assert all(p.kind is p.KEYWORD_ONLY for k, p in ours.items() if k not in positional)
    for key, parameter in theirs.items():  # every torch.nn argument, with torch.nn's default
        assert key in ours, key
        assert ours[key].default == parameter.default, key


def test_the_owned_layer_modules_signature_lists_torch_nns_arguments_and_the_losss_options() -> None:
    ours = inspect.signature(lt.LinearCrossEntropyLoss).parameters
    theirs = inspect.signature(torch.nn.LinearCrossEntropyLoss).parameters
    assert list(ours)[:2] == list(theirs)[:2] == ["in_features", "num_classes"]
    for key, parameter in theirs.items():
        assert key in ours and ours[key].kind is parameter.kind, key
        if key not in ("in_features", "num_classes", "bias"):  # None there: the module built from options alone
            assert ours[key].default == parameter.default, key
    assert {"z_loss", "softcap"} <= set(ours)  # lossreg's own options, by keyword


def test_the_signature_binds_as_the_constructor_takes_the_arguments() -> None:
    signature = inspect.signature(lt.CrossEntropyLoss)
    weight = torch.tensor([1.0, 2.0, 0.5])
    bound = signature.bind(weight, label_smoothing=0.1)
    crit = lt.CrossEntropyLoss(*bound.args, **bound.kwargs)
    assert crit.weight is weight and crit.label_smoothing == 0.1
    with pytest.raises(TypeError):  # as the constructor refuses it, the signature does
        signature.bind(weight, None)
    with pytest.raises(lossreg.LossTypeError, match="size_average"):
        lt.CrossEntropyLoss(weight, None)
    assert str(inspect.signature(lt.HuberLoss)) == "(reduction='mean', delta=1.0, *, weight=None)"


def test_a_subclass_with_its_own_constructor_keeps_its_own_signature() -> None:
    class FocalLoss(lt.CrossEntropyLoss):
        def __init__(self, weight: torch.Tensor | None = None, gamma: float = 2.0) -> None:
            super().__init__(weight, reduction="none")
            self.gamma = gamma

        def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            ce = super().forward(input, target)
            return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()

    assert list(inspect.signature(FocalLoss).parameters) == ["weight", "gamma"]
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    ce = torch.nn.functional.cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(FocalLoss()(x, y), ((1 - torch.exp(-ce)) ** 2 * ce).mean())


class Doubled(lt.CrossEntropyLoss):
    """A criterion extended the torch.nn way: forward overridden, the loss from super().forward."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(input, target=target)


class Model(torch.nn.Module):
    def __init__(self, criterion: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.criterion = torch.nn.Linear(4, 3), criterion

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.net(x), y)


def test_fx_traces_a_subclass_forward_once_as_it_traces_torch_nns_subclass() -> None:
    """fx traces a subclass's forward (its class is not torch.nn's); the call of super().forward in it
    is the functional form's node. It was the loss module's call_module node, which ran the subclass's
    whole forward again: the traced model gave twice the loss (four times it, not two)."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    weight = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    model = Model(Doubled(weight, label_smoothing=0.1)).double()
    traced = torch.fx.symbolic_trace(model)
    assert "call_module" not in {n.op for n in traced.graph.nodes if n.target == "criterion"}
    torch.testing.assert_close(traced(x, y), model(x, y))
    torch.testing.assert_close(model(x, y), 2 * torch.nn.functional.cross_entropy(
        model.net(x), y, weight=weight, label_smoothing=0.1))
    traced.criterion.weight = 2 * weight  # the graph reads the buffer, as it does for the loss module's own trace
    torch.testing.assert_close(traced(x, y), 2 * torch.nn.functional.cross_entropy(
        model.net(x), y, weight=2 * weight, label_smoothing=0.1))
    root = torch.fx.symbolic_trace(Doubled(weight))  # the subclass itself traced
    torch.testing.assert_close(root(model.net(x), y), Doubled(weight)(model.net(x), y))


class Scaled(lt.LinearCrossEntropyLoss):
    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(input, target)


class TorchScaled(torch.nn.LinearCrossEntropyLoss):
    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(input, target)


def test_a_subclass_of_the_module_owning_its_linear_layer_runs_its_own_forward() -> None:
    """LinearCrossEntropyLoss(in_features, num_classes) set its owned forward on the instance, which
    hid a subclass's forward: its work was silently never done (here, the loss not doubled)."""

    torch.manual_seed(0)
    ours, theirs = Scaled(8, 5, bias=True).double(), TorchScaled(8, 5, bias=True).double()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    h, y = torch.randn(4, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 4])
    plain = lt.LinearCrossEntropyLoss(8, 5, bias=True).double()
    plain.load_state_dict(ours.state_dict())
    for made in (ours, copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        torch.testing.assert_close(made(h, y), theirs(h, y))
        torch.testing.assert_close(made(h, y), 2 * plain(h, y))
    torch.testing.assert_close(torch.fx.symbolic_trace(ours)(h, y), theirs(h, y))


@pytest.mark.parametrize("module", [torch.nn, lt], ids=["torch.nn", "lossreg.torch"])
def test_fx_traced_model_runs_the_criterions_forward_hooks_once_as_eager_does(module) -> None:
    """fx calls a module that is not torch.nn's through ``__call__``, so its hooks run on the trace's
    proxies; the loss's call_module node then ran them again at each call of the traced model: a
    pre-hook scaling the logits by 2 and a hook scaling the loss by 3 gave 3·3·loss(4·logits)."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    model = Model(module.CrossEntropyLoss(torch.tensor([1.0, 2.0, 0.5]))).double()
    model.criterion.register_forward_pre_hook(lambda m, args, kwargs: ((2 * args[0], *args[1:]), kwargs),
                                              with_kwargs=True)
    model.criterion.register_forward_hook(lambda m, args, out: 3 * out)
    want = 3 * torch.nn.functional.cross_entropy(2 * model.net(x), y, weight=model.criterion.weight)
    torch.testing.assert_close(model(x, y), want)
    torch.testing.assert_close(torch.fx.symbolic_trace(model)(x, y), want)


@pytest.mark.parametrize("module", [torch.nn, lt], ids=["torch.nn", "lossreg.torch"])
def test_fx_traced_model_runs_a_global_forward_hook_on_the_criterion_once_as_eager_does(module) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    model = Model(module.CrossEntropyLoss()).double()
    added = torch.nn.modules.module.register_module_forward_hook(  # every module's forward hook
        lambda m, args, out: out + 1 if m is model.criterion else out)
    try:
        want = torch.nn.functional.cross_entropy(model.net(x), y) + 1
        torch.testing.assert_close(model(x, y), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x, y), want)
    finally:
        added.remove()


def test_fx_of_a_hooked_criterion_with_a_callable_option_says_what_traces() -> None:
    """fx records no callable as a node's argument: what it cannot trace once is refused, not run twice."""
    criterion = lt.TripletMarginWithDistanceLoss(distance_function=lambda u, v: (u - v).abs().sum(-1))
    criterion.register_forward_hook(lambda m, args, out: 2 * out)

    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.criterion = criterion

        def forward(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            return self.criterion(a, p, n)

    with pytest.raises(lossreg.UnsupportedError, match="forward hooks.*callable distance_function"):
        torch.fx.symbolic_trace(Embedder())


class Forwarding(torch.nn.Module):
    """A model that calls its criterion with the arrays its caller names, hooked or not."""

    def __init__(self, criterion: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.criterion, self.names = criterion, names

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        given = {"h": h, "y": y}
        return self.criterion(*(given[n] for n in self.names))


@pytest.mark.parametrize(("criterion", "names", "error"), [
    (lambda: lt.CrossEntropyLoss(), ("h", "y", "y"), "2 arrays by position .* got 3"),
    (lambda: lt.CrossEntropyLoss(), ("h",), "2 arrays by position .* got 1"),
    (lambda: lt.LinearCrossEntropyLoss(4, 3), ("h",), r"owned layer takes \(input, target\)"),
    (lambda: lt.LinearCrossEntropyLoss(4, 3), ("h", "y", "y"), r"owned layer takes \(input, target\)"),
], ids=["ce-three-arrays", "ce-one-array", "owned-layer-no-target", "owned-layer-three-arrays"])
def test_fx_trace_of_a_hooked_criterion_checks_its_arrays_as_an_eager_call_does(criterion, names, error) -> None:
    """A hooked criterion is traced as its functional form: with one array too many the extra one
    was dropped silently (the traced model gave the loss of the first two), with one too few it was
    an IndexError (a KeyError before) from inside the tracer. Now the eager call's error."""
    model = Forwarding(criterion(), names)
    h, y = torch.randn(2, 4), torch.tensor([0, 2])
    with pytest.raises((TypeError, lossreg.LossTypeError), match=error):
        model(h, y)
    model.criterion.register_forward_hook(lambda m, args, out: out)
    with pytest.raises((TypeError, lossreg.LossTypeError), match=error):
        torch.fx.symbolic_trace(model)
