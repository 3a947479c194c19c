"""``torch.nn.Module`` forms of every registered loss, plugins' included.

    >>> import torch, lossreg.torch
    >>> crit = lossreg.torch.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1)
    >>> isinstance(crit, torch.nn.Module), list(crit.state_dict())
    (True, ['weight'])

The classes are generated from the registry on first access (``lossreg.torch.CrossEntropyLoss``,
``lossreg.torch.get("dice")``), named as the class form and defined in this module, so that
``torch.save``/``pickle`` of a model holding one finds the class again. Each takes the class
form's options as keywords, with torch.nn's names and defaults; where a torch.nn class of the
same name exists, its leading positional arguments too (``CrossEntropyLoss(weight)``). Array
options (``weight``, ``pos_weight``, ...) are buffers: they move with ``.to()``/``.double()``,
are saved in ``state_dict`` (``None`` is allowed and then not saved, as in torch.nn) and are
broadcast by DDP; an option given as an ``nn.Parameter`` is registered as a parameter, and trains. The other options are plain attributes (``crit.reduction``), as in torch.nn.
``forward(*arrays)`` calls the registered functional form, kernels included. Importing this module
registers lossreg's torch operators, so a program saved by ``torch.export.save`` loads
(``torch.export.load``) in any process that imports ``lossreg.torch``.
"""

from __future__ import annotations

import inspect
import math
import types
from typing import Any, TypeGuard

import torch
from torch import nn

from .errors import DefinitionError, LossTypeError, UnsupportedError
# Registers lossreg's torch operators (``lossreg::linear_cross_entropy``), which a graph made by
# torch.export calls: ``torch.export.load`` in another process needs them, and finds them once
# this module is imported (otherwise they exist only after the kernel's first call).
from .kernels import torch_lce as _torch_lce  # noqa: F401
from . import losses as _catalogue
from .registry import (ForkSafeLock, Loss, LossSpec, _same, by_class_name, check_call, listed_as_arrays,
                       python_numbers, registry, signed_copy)
from .registry import from_config as lossreg_from_config
from .toolkit import not_an_array

# The built-in losses' module classes (made on first access, see __getattr__) too: `from lossreg.torch
# import *` gives CrossEntropyLoss and the others, as `from torch.nn import *` gives torch's.
__all__ = ["LossModule", "LinearLossModule", "get", "from_config",
           *(getattr(_catalogue, name).spec.class_name for name in _catalogue.__all__)]


class LossModule(nn.Module):
    """Base of the generated modules; ``spec`` is the loss's :class:`lossreg.LossSpec`."""

    spec: LossSpec
    _positional: tuple[str, ...] = ()  # the options torch.nn's class of this name takes positionally
    _forward_names: dict[str, str] = {}  # torch.nn's forward argument names that differ: {"log_input": "input"}
    # The spec's options, (name, default) in order, read by every call: a module made inside torch.compile's
    # trace (``CrossEntropyLoss()(z, y)`` in a forward) cannot hand Dynamo its spec, a frozen dataclass.
    _option_defaults: tuple[tuple[str, Any], ...] = ()
    _loss_name: str  # the spec's name, the key of its dispatching functional form in _FUNCTIONS
    # The array options whose default is None (weight, pos_weight): one given as a number is kept as
    # that number (see _is_number), which the functional form does not take there; each call makes it
    # an array of the input's dtype and device, as the class form does.
    _nullable_arrays: tuple[str, ...] = ()
    _array_names: tuple[str, ...] = ()  # the spec's array options
    # torch.jit.script compiles every submodule's forward and properties, also of a model that only
    # holds its criterion (a LightningModule, whose to_torchscript scripts it): forward(*arrays) and
    # the options dict are not TorchScript, so forward is marked unused (a scripted call raises
    # TorchScript's "annotated to be ignored" error) and the property is left out.
    __jit_unused_properties__ = ["options"]

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__()
        spec = self.spec
        if len(args) > len(self._positional):
            # torch.nn's next positional argument is most often the deprecated size_average.
            extra = _torch_parameter(spec, len(self._positional))
            raise LossTypeError(spec.name, extra or "options",
                                f"at most {len(self._positional)} positional option(s) "
                                f"({', '.join(self._positional) or 'none'}), then options by keyword"
                                + (" (torch.nn's deprecated size_average and reduce are not taken: pass "
                                   "reduction='none', 'mean' or 'sum')" if extra in ("size_average", "reduce") else ""),
                                f"{len(args)} positional arguments")
        for key, value in zip(self._positional, args):
            if key in options:
                raise LossTypeError(spec.name, key, "one value", "one by position and one by keyword")
            options[key] = value
        options = self._loss_class()(**options).options  # the class form checks the option names
        # An option named as one of nn.Module's own attributes would replace it on the module:
        # "training" was then set by .eval() (the loss 0 from then on, silently), "type" hid a method.
        taken = [k for k in options if k == "training" or (k != "options" and hasattr(LossModule, k))]
        if taken:
            what = " (its train/eval flag)" if taken[0] == "training" else ""
            raise DefinitionError(f"lossreg.torch.{spec.class_name}: option {taken[0]!r} of {spec.name} is "
                                  f"torch.nn.Module's own attribute{what}, which the module cannot also hold; "
                                  "rename the option in the definition (the functional and class forms take it "
                                  "as it is)")
        for key, value in options.items():
            if isinstance(value, nn.Parameter):  # a learned option (say, a temperature) trains with the model
                self.register_parameter(key, value)
            elif key in spec.array_options and not _is_number(value):
                self.register_buffer(key, _as_tensor(spec.name, key, value))
            else:
                setattr(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        # An array option held as a number (see _is_number) is a plain attribute, where a tensor assigned
        # (crit.pos_weight = torch.tensor([...])) would stay one: not moved by .to(), not saved. It becomes
        # a buffer, as it does in a module given None or an array for the option, and in torch.nn's.
        if (name in self._array_names and isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter)
                and _is_number(self.__dict__.get(name))):
            del self.__dict__[name]
            self.register_buffer(name, value)
            return
        super().__setattr__(name, value)

    @classmethod
    def _loss_class(cls) -> type[Loss]:
        if _dynamo_compiling():  # a module made inside torch.compile's trace: see _made
            _made(cls.spec.name)
        return registry().loss_class(cls.spec.name)

    @property
    def options(self) -> dict[str, Any]:
        """The options as the functional form takes them; array options are the current buffers.
        (A loss with an option named ``options`` has that option here instead, as torch.nn's
        ``LinearCrossEntropyLoss`` does; ``loss_options()`` is the same dict for every loss.)"""
        return self.loss_options()

    def loss_options(self) -> dict[str, Any]:
        """The options as the functional form takes them; array options are the current buffers."""
        return {key: getattr(self, key) for key, _ in self._option_defaults}

    @torch.jit.unused
    def forward(self, *arrays: Any, **named: Any) -> Any:
        """``loss(input, target)``, or by the functional form's argument names (``input=..., target=...``)
        or by torch.nn's forward's, where they differ (``PoissonNLLLoss()(log_input=..., target=...)``)."""
        return self._call(arrays, named)  # not unpacked here: fx's root trace makes ``arrays`` one proxy

    def _call(self, arrays: tuple[Any, ...], named: dict[str, Any]) -> Any:
        traced = _fx_leaf(self, arrays, named)
        if traced is not None:
            return traced
        if named:
            arrays = self._by_name(arrays, named)
        options = self._set_options()
        if options:  # (the default module's call, on 4×5 logits a few µs, asks nothing more)
            for key in self._nullable_arrays:
                if _is_number(options.get(key)):  # BCEWithLogitsLoss(pos_weight=3.0): a 0-d array of the input's dtype
                    options = listed_as_arrays(self.spec, options, arrays)
                    break
        return _FUNCTIONS[self._loss_name](*arrays, **options)

    def _set_options(self) -> dict[str, Any]:
        """The options the call passes: in eager code those not left at the loss's defaults, read from
        the module's own tables. nn.Module's ``__getattr__`` took 0.5 µs to find a buffer, and the
        defaults passed again 0.4 µs more, of a 3 µs call on 4×5 logits: 1.45× torch.nn's module."""
        if _dynamo_compiling():  # Dynamo follows attribute reads, not nn.Module's tables
            return self.loss_options()
        own = self.__dict__
        buffers, parameters = own["_buffers"], own["_parameters"]
        options = {}
        for key, default in self._option_defaults:
            # A parametrized option (torch.nn.utils.parametrize) leaves the tables for a property.
            value = (own[key] if key in own else buffers[key] if key in buffers
                     else parameters[key] if key in parameters else getattr(self, key))
            if value is not default:
                options[key] = value
        return options

    def _by_name(self, arrays: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, ...]:
        inputs = self.spec.inputs
        if self._forward_names:  # torch.nn's names, as its forward takes them (PoissonNLLLoss's log_input)
            renamed = {self._forward_names.get(k, k): v for k, v in named.items()}
            if len(renamed) < len(named):
                key = next(k for k in named if k in self._forward_names)
                raise LossTypeError(self.spec.name, key, f"each array once: forward({', '.join(inputs)})",
                                    f"it under two names (repeated {', '.join(sorted(named))})")
            named = renamed
        unknown = sorted(set(named) - set(inputs[len(arrays):]))
        if unknown:
            raise LossTypeError(self.spec.name, unknown[0], f"each array once: forward({', '.join(inputs)}); the "
                                "options when the module is made", "an unexpected or repeated argument")
        missing = [k for k in inputs[len(arrays):] if k not in named]
        if missing:
            raise LossTypeError(self.spec.name, missing[0], f"each array once: forward({', '.join(inputs)})",
                                "no value")
        return (*arrays, *(named[k] for k in inputs[len(arrays):]))

    def get_config(self) -> dict[str, Any]:
        """The class form's config (array options as lists): ``lossreg.torch.from_config`` rebuilds it."""
        return self._loss_class()(**self.loss_options()).get_config()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LossModule:
        return from_config(config)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # An array option held as a number (see _is_number) has no buffer, but a state_dict saved by
        # a module that held it as an array (given a tensor, rebuilt from its config, or saved by an
        # earlier lossreg that made every number a buffer) has one: the module takes it as that array.
        for key in self.spec.array_options:
            saved = state_dict.get(prefix + key)
            if isinstance(saved, torch.Tensor) and key in self.__dict__ and _is_number(self.__dict__[key]):
                del self.__dict__[key]
                self.register_buffer(key, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        # An option that is a module (a distance function) is a child, which repr shows on its own.
        defaults = self.spec.options
        return ", ".join(f"{k}={v!r}" for k, v in self.loss_options().items()
                         if (k not in self.spec.array_options or _is_number(v)) and not isinstance(v, nn.Module)
                         and not _same(v, defaults[k]))


class LinearLossModule(LossModule):
    """Base of the modules of losses that take a linear layer's weight (arrays ``input,
    linear_weight, ...``: ``LinearCrossEntropyLoss``), in torch.nn's two forms.

    ``LinearCrossEntropyLoss(in_features, num_classes, *, out_features=(), bias=False,
    device=None, dtype=None, **options)``, as torch.nn's, owns the layer: ``self.linear``, an
    ``nn.Linear`` to ``num_classes · ∏ out_features`` outputs, whose weight is reshaped to
    (C, d1, ..., dK, D) on each call; ``forward(input, target)``. Built from options alone it owns
    nothing and ``forward(input, linear_weight, target)`` takes the layer's weight. ``get_config``
    describes the loss's options; the layer is state, saved by ``state_dict``.
    """

    _owned_forward: Any  # forward, signed (input, target): made with the class (module_class)

    def __init__(self, in_features: int | None = None, num_classes: int | None = None, *,
                 out_features: tuple[int, ...] = (), bias: Any = False, device: Any = None, dtype: Any = None,
                 **options: Any) -> None:
        name = self.spec.class_name
        if in_features is None and num_classes is None:
            if out_features != () or device is not None or dtype is not None or bias is True:
                raise TypeError(f"{name}(): out_features, device, dtype and bias=True describe an owned linear "
                                "layer; give in_features and num_classes too")
            # bias defaults to False, as torch.nn's (whether an owned layer has one); without a layer a
            # bias given is the loss's own option, lossreg's earlier name of linear_bias (an array).
            if bias is not None and bias is not False:
                options["bias"] = bias
            super().__init__(**options)
            return
        if not (_is_size(in_features) and _is_size(num_classes)):
            raise TypeError(f"{name}(in_features, num_classes): two non-negative integers, got "
                            f"{in_features!r} and {num_classes!r}")
        if not isinstance(bias, (bool, type(None))):
            raise TypeError(f"{name}(in_features, num_classes, bias=...): whether the owned layer has a bias "
                            f"(a bool), got {type(bias).__name__}")
        for key in ("linear_bias", "bias"):
            if options.get(key) is not None:
                raise TypeError(f"{name}(): {key}= is the bias of a linear layer passed to forward; an owned "
                                "layer has its own (bias=True)")
        if bias and not {"linear_bias", "bias"} & set(self.spec.options):
            raise TypeError(f"{name}(..., bias=True): the loss takes no bias")
        super().__init__(**options)
        # forward as torch.nn's module of this name signs it, (input, target), where the class's names the
        # arrays without a layer: torch.export binds dynamic_shapes and keyword inputs to these names.
        if _forward_as_made(self):  # not over a subclass's own forward, which this hid (its work never done)
            self.forward = self._owned_forward  # type: ignore[method-assign]
        self.num_classes, self.out_features = num_classes, tuple(out_features)
        self.linear = nn.Linear(in_features, math.prod(self.out_features, start=num_classes), bias=bool(bias),
                                device=device, dtype=dtype)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("forward", None)  # bound to this module: a copy or an unpickled module binds its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "linear" in self._modules and _forward_as_made(self):
            self.forward = self._owned_forward  # type: ignore[method-assign]

    def _replicate_for_data_parallel(self) -> Any:
        # nn.DataParallel's replicas copy the module's __dict__, the owned form's bound forward with it:
        # each replica ran the original's layer (device 0's), not the copy replicate gives it. It binds its own.
        replica = super()._replicate_for_data_parallel()
        if "forward" in self.__dict__:
            replica.forward = replica._owned_forward
        return replica

    def extra_repr(self) -> str:
        linear = getattr(self, "linear", None)  # an owned layer, a submodule
        owned = "" if linear is None else (f"in_features={linear.in_features}, num_classes={self.num_classes}, "
                                           f"out_features={self.out_features}")
        return ", ".join(part for part in (owned, super().extra_repr()) if part)

    @torch.jit.unused  # as LossModule.forward
    def forward(self, *arrays: Any, **named: Any) -> Any:
        """``loss(input, target)`` with an owned layer, else ``loss(input, linear_weight, target)``."""
        linear = getattr(self, "linear", None)  # an owned layer, a submodule
        if linear is None:
            return self._call(arrays, named)
        traced = _fx_leaf(self, arrays, named)
        if traced is not None:
            return traced
        given = dict(zip(("input", "target"), arrays))
        for key, value in named.items():
            if key not in ("input", "target") or key in given:
                raise TypeError(f"{self.spec.class_name}.forward() with an owned layer takes (input, target); "
                                f"got unexpected or repeated {key}")
            given[key] = value
        if len(arrays) > 2 or set(given) != {"input", "target"}:
            raise TypeError(f"{self.spec.class_name}.forward() with an owned layer takes (input, target)")
        weight = linear.weight.reshape(self.num_classes, *self.out_features, linear.in_features)
        options = listed_as_arrays(self.spec, self.loss_options(), (given["input"], weight))
        if linear.bias is not None:  # the loss's own bias options are refused for an owned layer (__init__)
            options[next(k for k in ("linear_bias", "bias") if k in options)] = linear.bias.reshape(
                self.num_classes, *self.out_features)
        return _FUNCTIONS[self._loss_name](given["input"], weight, given["target"], **options)


_dynamo_compiling = torch.compiler.is_dynamo_compiling  # bound once: the module lookup was 0.03 µs a call

# fx's flag for "a symbolic trace is running" (torch.fx._symbolic_trace, set by Tracer.trace); where a
# torch lacks it, every call looks for proxies among its arrays.
_FX_TRACE: Any = getattr(torch.fx, "_symbolic_trace", None)
if not hasattr(_FX_TRACE, "_is_fx_tracing_flag"):
    _FX_TRACE = None


def _fx_leaf(module: LossModule, arrays: tuple[Any, ...], named: dict[str, Any]) -> Any:
    """Under ``torch.fx.symbolic_trace``, the call as a ``call_module`` node, else None. fx's tracer
    keeps torch.nn's modules as leaves (it decides so by their ``__module__``) and runs any other
    module's forward on its proxies, which lossreg's checks of shapes and dtypes cannot take: a model
    holding its loss traced with torch.nn's, and with lossreg's raised fx's TraceError."""
    if _FX_TRACE is not None and not _FX_TRACE._is_fx_tracing_flag:  # no fx trace anywhere: one global read,
        return None  # where looking for a Proxy among the arrays took half a microsecond of every call
    if isinstance(arrays, torch.fx.Proxy):  # the loss module is the root being traced
        return _fx_root(module, arrays)
    proxy = next((a for a in (*arrays, *named.values()) if isinstance(a, torch.fx.Proxy)), None)
    tracer = None if proxy is None else proxy.tracer
    if not isinstance(tracer, torch.fx.Tracer):  # not fx's module tracer (a bare TracerBase records no modules)
        return None
    if getattr(tracer, "root", None) is module or not _forward_as_made(module) or _hooked(module):
        # fx has called this module as it calls any but torch.nn's (by __call__, its hooks run on the proxies),
        # and runs here a subclass's forward calling super().forward(...): a call_module node would run the
        # hooks again at each call, or the whole forward (a subclass's "* 2" twice), so the functional form.
        if named:
            arrays = (module._by_name(arrays, named) if getattr(module, "linear", None) is None
                      else (*arrays, *(named[k] for k in ("input", "target")[len(arrays):])))
        return _fx_root(module, arrays, tracer)
    return tracer.create_proxy("call_module", tracer.path_of_module(module), arrays, named)


def _hooked(module: LossModule) -> bool:
    """Whether a call of the module runs forward hooks, its own or every module's."""
    hooks = nn.modules.module
    return bool(module._forward_hooks or module._forward_pre_hooks or hooks._global_forward_hooks
                or hooks._global_forward_pre_hooks)


def _forward_as_made(module: LossModule) -> bool:
    """Whether the module's forward is lossreg's (its class generated, or a subclass that keeps its forward)."""
    return next(c for c in type(module).__mro__ if "forward" in c.__dict__).__module__ == __name__


def _fx_root(module: LossModule, arrays: Any, tracer: Any = None) -> Any:  # arrays: an fx Proxy, or a tuple of them
    """``torch.fx.symbolic_trace(loss_module)``: the call as a node of the functional form, as
    torch.nn's loss modules trace to ``torch.nn.functional``'s. fx makes a root's ``*arrays`` a
    single proxy (and ``**named`` another), so the traced module takes the arrays by position and
    indexes them; array options and an owned layer's parameters are read as the module's attributes
    (``get_attr``), so the graph follows their updates."""
    tracer, options = tracer or arrays.tracer, module.loss_options()
    # An fx Proxy is callable too: an option the trace computes (a parametrized weight, a Parameter
    # option, which fx reads as get_attr nodes) is no callable option, and was refused as one.
    callable_options = [k for k, v in options.items() if callable(v) and not isinstance(v, torch.fx.Proxy)]
    if callable_options:  # fx records no callable as a node's argument
        what = ("the loss module itself" if getattr(tracer, "root", None) is module
                else "a loss module with forward hooks, or a subclass's forward,")
        raise UnsupportedError(f"{module.spec.name}: torch.fx.symbolic_trace of {what} with a callable "
                               f"{callable_options[0]}; trace a model that holds it (the loss is a leaf there, "
                               "unhooked and of lossreg's class), or use torch.compile")
    for key in module._nullable_arrays:  # a number there (pos_weight=2.0): an array of the input's dtype, per call
        if _is_number(options[key]):
            options[key] = tracer.create_proxy("call_function", _number_like, (options[key], arrays[0]), {})
    linear = getattr(module, "linear", None)
    if isinstance(arrays, tuple):  # a hooked module's or a subclass's call: its arrays checked as an eager call's
        if linear is None:
            check_call(module.spec, arrays, {})
        elif len(arrays) != 2:
            raise TypeError(f"{module.spec.class_name}.forward() with an owned layer takes (input, target)")
    if linear is None:
        return tracer.create_proxy("call_function", _traced_form(module._loss_name),
                                   tuple(arrays[i] for i in range(len(module.spec.inputs))), options)
    assert isinstance(module, LinearLossModule)  # the only module that owns a layer
    # The layer's weight and bias read as torch.nn's forward reads them (fx makes a parameter a get_attr
    # node and traces a parametrization's computation): a get_attr of "linear.weight" made a parametrized
    # weight (weight_norm) a copy of its value, which took no gradient and missed its updates, and a
    # parametrized bias, not among the layer's named_parameters as "bias", was left out of the call.
    shape = (module.num_classes, *module.out_features)
    weight, bias = linear.weight.reshape(*shape, linear.in_features), linear.bias
    if bias is not None:
        options[next(k for k in ("linear_bias", "bias") if k in options)] = bias.reshape(*shape)
    return tracer.create_proxy("call_function", _traced_form(module._loss_name), (arrays[0], weight, arrays[1]),
                               options)


def _number_like(value: float, like: torch.Tensor) -> torch.Tensor:
    """A number held for an array option as the 0-d array ``listed_as_arrays`` makes of it: a node of
    a traced module's graph (``_fx_root``), which can hold the function but not the dict it returns."""
    recorded = _fx_node(_number_like, (value, like), {})
    if recorded is not None:
        return recorded
    return torch.full((), float(value), dtype=like.dtype, device=like.device)


def _fx_node(function: Any, arrays: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """Under an fx trace, the call of a function a traced module's graph calls (``_traced_form``,
    ``_number_like``) as a node again, else None: an unpickled GraphModule (``torch.load`` of
    ``torch.save(symbolic_trace(...))``) is rebuilt by tracing its code, which called the function on
    proxies (as ``torch.nn.functional``'s record themselves by ``__torch_function__``)."""
    if _FX_TRACE is not None and not _FX_TRACE._is_fx_tracing_flag:
        return None
    proxy = next((a for a in (*arrays, *options.values()) if isinstance(a, torch.fx.Proxy)), None)
    return None if proxy is None else proxy.tracer.create_proxy("call_function", function, arrays, options)


_TRACED: dict[str, Any] = {}


def _traced_form(name: str) -> Any:
    """The call a traced loss module's graph records: the loss's functional form, as
    ``lossreg.torch.<name>`` (``__getattr__``), where pickle finds it by its ``__module__`` and
    ``__qualname__``. The registry's form itself names ``lossreg.losses.classification.cross_entropy``,
    another object, so pickling the GraphModule (``torch.save`` of a traced model, which imports every
    function its graph calls) failed with torch.package's ObjMismatchError; torch.nn's traced modules
    call ``torch.nn.functional``'s, which pickle. It calls the form the registry has now."""
    made = _TRACED.get(name)
    if made is None:
        module_class(name)  # the class, and with it _FUNCTIONS[name]: a fresh process's unpickling asks here first

        def form(*arrays: Any, **options: Any) -> Any:
            recorded = _fx_node(form, arrays, options)
            return _FUNCTIONS[name](*arrays, **options) if recorded is None else recorded

        form.__module__, form.__name__, form.__qualname__ = __name__, name, name
        form.__doc__ = _FUNCTIONS[name].__doc__
        form.__signature__ = inspect.signature(_FUNCTIONS[name])  # type: ignore[attr-defined]  # not (*arrays, **options)
        made = _TRACED.setdefault(name, form)
    return made


def _is_size(k: object) -> TypeGuard[int]:
    return isinstance(k, int) and not isinstance(k, bool) and k >= 0


def _is_number(value: Any) -> bool:
    """A Python number given for an array option (a plugin's ``quantile=0.9``, a learnable option's
    default): kept as a number, as torch.nn keeps its numeric options (``HuberLoss.delta``), not
    made a buffer, which took torch's default dtype: 0.9 became float32's 0.8999999762, so
    float64 inputs got another loss than the functional form's and ``get_config()`` another value."""
    return type(value) in (int, float)


def _as_tensor(loss: str, key: str, value: Any) -> torch.Tensor | None:
    """An array option as a buffer: tensors are kept as given (torch.nn does the same), others converted.

    A list (numbers, as the class form checked) takes torch's default dtype, whatever its numbers
    (Python ints past int64's range too); another library's array keeps its dtype, so that the call
    refuses integer, bool and complex weights as the functional and class forms do (a cast to the
    default dtype took them, and dropped a complex weight's imaginary part). What torch cannot make
    a tensor of (a string, a dict, a NumPy array of strings or objects) is refused here, naming the
    option, as the class form refuses it at the call: torch's own conversion error named neither."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    try:
        if isinstance(value, (list, tuple)):
            try:
                return torch.as_tensor(value, dtype=torch.get_default_dtype())
            except TypeError:  # a list of 0-d arrays (list(weights)): "len() of unsized object"
                return torch.as_tensor(python_numbers(value), dtype=torch.get_default_dtype())
        return torch.as_tensor(value)
    except (TypeError, RuntimeError, ValueError) as error:
        raise not_an_array(loss, key, value) from error


def _torch_parameters(spec: LossSpec) -> list[str]:
    """The positional constructor arguments of torch.nn's class of the same name, in order."""
    reference = getattr(nn, spec.class_name, None)
    if not (isinstance(reference, type) and issubclass(reference, nn.Module)):
        return []
    return [p.name for p in list(inspect.signature(reference.__init__).parameters.values())[1:]
            if p.kind is p.POSITIONAL_OR_KEYWORD]


def _torch_parameter(spec: LossSpec, index: int) -> str | None:
    """The name of torch.nn's positional constructor argument ``index`` for this loss, if any."""
    params = _torch_parameters(spec)
    return params[index] if index < len(params) else None


def _torch_forward_names(spec: LossSpec) -> dict[str, str]:
    """torch.nn's forward argument names of the class of the same name, where they differ from the
    loss's array names, mapped to those (``{"log_input": "input"}`` for PoissonNLLLoss)."""
    reference = getattr(nn, spec.class_name, None)
    if not (isinstance(reference, type) and issubclass(reference, nn.Module)):
        return {}
    names = [p.name for p in list(inspect.signature(reference.forward).parameters.values())[1:]
             if p.kind is p.POSITIONAL_OR_KEYWORD]
    if len(names) != len(spec.inputs):  # another interface (LinearCrossEntropyLoss owns its layer)
        return {}
    return {theirs: ours for theirs, ours in zip(names, spec.inputs) if theirs != ours and theirs not in spec.inputs}


def _forward_naming(spec: LossSpec, forward_names: dict[str, str]) -> Any:
    """``LossModule.forward`` under a signature that names the arrays as torch.nn's forward does
    (``(input, target)``; ``(log_input, target)`` for PoissonNLLLoss): ``torch.export`` binds its
    ``dynamic_shapes`` and keyword inputs to those names, and ``(*arrays, **named)`` matched none of
    the per-array specs written for torch.nn's module."""
    theirs = {ours: name for name, ours in forward_names.items()}
    return _signed(LossModule.forward, f"{spec.class_name}.forward",
                   tuple(theirs.get(name, name) for name in spec.inputs))


def _signed(function: Any, qualname: str, arrays: tuple[str, ...]) -> Any:
    """A copy of ``function`` named by ``qualname`` (its class's: ``CrossEntropyLoss.forward``, where
    pickle and ``help()`` find it, not the base's ``LossModule.forward``, another object), under a
    signature that names the arrays: ``inspect.signature``, which torch.export reads, gives
    ``(input, target)`` instead of ``(*arrays, **named)``."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return signed_copy(function, qualname.rpartition(".")[2], qualname,
                       [inspect.Parameter(array, kind) for array in ("self", *arrays)])


def _init_signed(spec: LossSpec, base: type[LossModule], positional: tuple[str, ...]) -> Any:
    """``base.__init__`` (the same code, no call added) under the signature torch.nn's class of this
    name has, less its deprecated ``size_average``/``reduce``: ``inspect.signature(CrossEntropyLoss)``
    was ``(*args, **options)``, so what builds a criterion from its signature (LightningCLI's
    ``class_path``/``init_args``, a config system's checks, ``help()``) found no option at all."""
    init, kind, options = base.__init__, inspect.Parameter, spec.options
    own = [p for p in inspect.signature(init).parameters.values()  # self, and an owned layer's arguments
           if p.kind not in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD)]
    return signed_copy(init, "__init__", f"{spec.class_name}.__init__",
                 own + [kind(k, kind.POSITIONAL_OR_KEYWORD, default=options[k]) for k in positional]
                 + [kind(k, kind.KEYWORD_ONLY, default=v) for k, v in options.items()
                    if k not in positional and all(k != p.name for p in own)])


def _torch_positional(spec: LossSpec) -> tuple[str, ...]:
    """The options torch.nn's class of the same name takes positionally, up to the first one lossreg lacks."""
    names = []
    for name in _torch_parameters(spec):
        if name not in spec.options:
            break
        names.append(name)
    return tuple(names)


_classes: dict[str, type[LossModule]] = {}
# Each class's dispatching functional form, read from this global (not the class, nor the spec)
# by every call: so torch.compile can trace a module made inside its trace too, whose attributes
# it can follow only to objects it can rebuild, which neither the form's closure nor a spec is.
_FUNCTIONS: dict[str, Any] = {}
_lock = ForkSafeLock()


def module_class(name: str) -> type[LossModule]:
    """The module class of the loss registered under ``name`` (any of its names)."""
    spec = registry().lookup(name)
    made = _classes.get(spec.name)
    if made is not None and made.spec == spec:  # without the lock, which torch.compile cannot trace
        return made
    with _lock:  # one class per spec: pickle requires that the name finds the very same class
        cls = _classes.get(spec.name)
        if cls is None or cls.spec != spec:
            base = LinearLossModule if spec.inputs[:2] == ("input", "linear_weight") else LossModule
            body: dict[str, Any] = {
                "spec": spec,
                "_positional": _torch_positional(spec),
                "_forward_names": _torch_forward_names(spec),
                "_option_defaults": tuple(spec.options.items()),
                "_nullable_arrays": tuple(k for k in spec.array_options if spec.options[k] is None),
                "_array_names": tuple(spec.array_options),
                "_loss_name": spec.name,
                "__module__": __name__,
                "__qualname__": spec.class_name,
                "__doc__": inspect.getdoc(spec.function),
            }
            if "options" in spec.options:  # torch.nn's name for an option: it shadows the property
                body["options"] = None
            if base is LossModule:
                body["forward"] = _forward_naming(spec, body["_forward_names"])
            else:  # the arrays depend on whether the module owns its layer; __init__ picks the owned one's
                body["forward"] = _signed(LinearLossModule.forward, f"{spec.class_name}.forward", spec.inputs)
                body["_owned_forward"] = _signed(LinearLossModule.forward, f"{spec.class_name}._owned_forward",
                                                 ("input", "target"))
            body["__init__"] = _init_signed(spec, base, body["_positional"])
            cls = type(spec.class_name, (base,), body)
            _FUNCTIONS[spec.name] = registry().loss_class(spec.name)._dispatch  # no lookup per call
            _classes[spec.name] = cls
    return cls


def get(name: str, *args: Any, **options: Any) -> LossModule:
    """The module of a loss, configured: ``lossreg.torch.get("mse", reduction="sum")``."""
    if torch.compiler.is_compiling():
        _made(name)
    return module_class(name)(*args, **options)


def _made(name: str) -> bool:
    """Make the class of ``name`` (loading the plugins first). Dynamo runs a function so marked
    rather than tracing it (as it runs ``torch.compiler.assume_constant_result`` functions), so a
    first lookup inside ``torch.compile`` takes the locks and reads the entry points outside the
    trace, and the traced lookup that follows finds the class made. The class form too, which a
    module's ``__init__`` looks up: a registry's first lookup of it (after ``lossreg.reload()``)
    compares the spec with the one an earlier registry made it for, and under ``dynamic=True``
    Dynamo takes the spec's ints for symbols and fails on the comparison ("SymNodeVariable() is
    not a constant")."""
    module_class(name)
    registry().loss_class(name)
    return True


_made._dynamo_marked_constant = True  # type: ignore[attr-defined]


def from_config(config: dict[str, Any]) -> LossModule:
    """A module from ``get_config()`` output of a module or of the class form."""
    loss = lossreg_from_config(config)  # checks the config as the class form does
    return get(loss.spec.name, **config.get("options", {}))


def __getattr__(name: str) -> Any:
    """``lossreg.torch.MSELoss``: the module class of each registered loss, by its class name; by the
    loss's name, the functional form a traced loss module's graph calls (``_traced_form``)."""
    if name in registry().specs:
        return _traced_form(name)
    return module_class(by_class_name("lossreg.torch", name).name)


def __dir__() -> list[str]:
    # The functional forms too (lossreg.torch.cross_entropy, what __getattr__ gives by a loss's name):
    # tab completion and dir() listed only the classes.
    specs = registry().specs
    return sorted({*globals(), *specs, *(s.class_name for s in specs.values())})
