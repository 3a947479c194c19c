"""A user-style hunt: lossreg's torch modules in the stacks PyTorch users train and ship with,
beyond tests/test_user_hunt_torch_stacks.py: ONNX export (both exporters, run in onnxruntime),
TorchScript of a model that holds its criterion, torch.export of a module with torch.nn's
dynamic_shapes. Each test is a defect found, compared with torch.nn's answer; the optional
packages (onnxruntime, onnxscript, pytorch_lightning) are skipped with a reason.
"""

from __future__ import annotations

import copy
import inspect
import io
import pickle
from typing import Any

import pytest
import torch

import lossreg
import lossreg.torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::FutureWarning")


def _onnx_runtime() -> Any:
    return pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported ONNX model")


def _run_onnx(model: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamo: bool) -> Any:
    """The loss the ONNX model exported from ``model`` gives in onnxruntime."""
    ort = _onnx_runtime()
    if dynamo:
        pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) builds the model with onnxscript")
        onnx_bytes = torch.onnx.export(model, args, dynamo=True, verbose=False).model_proto.SerializeToString()
    else:
        buffer = io.BytesIO()
        torch.onnx.export(model, args, buffer, dynamo=False)
        onnx_bytes = buffer.getvalue()
    session = ort.InferenceSession(onnx_bytes)
    return session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})[0]


# torch.nn.LinearCrossEntropyLoss exports to ONNX with both exporters; lossreg's called its own
# operator, lossreg::linear_cross_entropy, which ONNX has not: DispatchError "No ONNX function found"
# (dynamo=True) or UnsupportedOperatorError "unrecognized namespace lossreg" (dynamo=False).
@pytest.mark.parametrize(("dynamo", "options"), [
    pytest.param(dynamo, options, id=f"{'dynamo' if dynamo else 'torchscript'}-{name}")
    for name, options in [("default", {}), ("bias-ignore", {"bias": True, "ignore_index": 2}),
                          ("smoothing", {"label_smoothing": 0.1})]
    for dynamo in (True, False) if dynamo or name != "smoothing"])  # torch's TorchScript exporter refuses it
def test_onnx_export_of_linear_cross_entropy_gives_torch_nns_value(dynamo: bool, options: dict) -> None:
    torch.manual_seed(0)
    hidden, target = torch.randn(6, 8), torch.tensor([0, 4, 2, 1, 2, 3])
    ours = lossreg.torch.LinearCrossEntropyLoss(8, 5, **options)
    theirs = torch.nn.LinearCrossEntropyLoss(8, 5, **options)
    theirs.load_state_dict(ours.state_dict())
    want = theirs(hidden, target)
    if options.get("label_smoothing"):
        # torch 2.13's bug, which lossreg's exported logits path shares with torch.nn's module: dynamo's
        # ONNX model drops label_smoothing (the unsmoothed loss, here 1.9584 for 1.9320; F.cross_entropy's
        # own export does the same). lossreg's model gives torch.nn's.
        want = torch.as_tensor(_run_onnx(theirs, (hidden, target), dynamo))
    torch.testing.assert_close(torch.as_tensor(_run_onnx(ours, (hidden, target), dynamo)), want.detach())


class _HeadAndLoss(torch.nn.Module):
    """A model whose forward returns its training loss: a layer, then the loss with its own head."""

    def __init__(self, library: Any) -> None:
        super().__init__()
        self.body = torch.nn.Linear(8, 8)
        self.loss = library.LinearCrossEntropyLoss(8, 5, bias=True, reduction="none")

    def forward(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(torch.tanh(self.body(hidden)), target)


# The portable definition's chunk loop (a Python range over the tokens) fixed the exported batch:
# onnxruntime refused 11 tokens, "Got invalid dimensions for input ... Got: 11 Expected: 6".
def test_onnx_export_of_linear_cross_entropy_keeps_a_dynamic_batch() -> None:
    ort = _onnx_runtime()
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) builds the model with onnxscript")
    batch = torch.export.Dim("batch")
    ours, theirs = _HeadAndLoss(lossreg.torch), _HeadAndLoss(torch.nn)
    theirs.load_state_dict(ours.state_dict())
    program = torch.onnx.export(ours, (torch.randn(6, 8), torch.tensor([0, 4, 2, 1, 2, 3])), dynamo=True,
                                verbose=False, dynamic_shapes=({0: batch}, {0: batch}))
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    hidden, target = torch.randn(11, 8), torch.randint(0, 5, (11,))
    got = session.run(None, {"hidden": hidden.numpy(), "target": target.numpy()})[0]
    torch.testing.assert_close(torch.as_tensor(got), theirs(hidden, target).detach())

class _Classifier(torch.nn.Module):
    """A model that holds its criterion and calls it outside forward, in the training loop."""

    def __init__(self, library: Any) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 4)
        self.criterion = library.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5, 1.5]))
        self.bce = library.BCEWithLogitsLoss(pos_weight=torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# torch.jit.script compiles every submodule's forward, called or not: a model holding a lossreg
# criterion raised NotSupportedError "Compiled functions can't take variable number of arguments"
# at lossreg's forward(*arrays) (and then at the options property), where torch.nn's scripts.
@pytest.mark.parametrize("library", [torch.nn, lossreg.torch], ids=["torch.nn", "lossreg"])
def test_jit_script_of_a_model_that_holds_its_criterion_scripts_saves_and_loads(library: Any) -> None:
    model, x = _Classifier(library), torch.randn(3, 8)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(loaded.state_dict()["criterion.weight"], torch.tensor([1.0, 2.0, 0.5, 1.5]))
    torch.testing.assert_close(model.criterion(model(x), torch.tensor([0, 3, 1])),  # eager calls are unchanged
                               torch.nn.CrossEntropyLoss(weight=model.criterion.weight)(model(x), torch.tensor([0, 3, 1])))


def test_lightning_to_torchscript_of_a_module_holding_lossreg_losses() -> None:
    pl = pytest.importorskip("pytorch_lightning", reason="PyTorch Lightning's LightningModule.to_torchscript")

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 4)
            self.ce = lossreg.torch.CrossEntropyLoss(label_smoothing=0.1)
            self.lce = lossreg.torch.LinearCrossEntropyLoss(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    module, x = Module(), torch.randn(3, 8)
    torch.testing.assert_close(module.to_torchscript()(x), module(x))  # raised NotSupportedError


# lossreg's other modules sign forward as torch.nn's do; LinearCrossEntropyLoss kept (*arrays, **named),
# so torch.export refused the dynamic_shapes written for torch.nn's: by name, UserError "its top-level
# keys must be the arg names ['arrays']"; by position, "`inputs` has 1 elements, but `dynamic_shapes` has 2".
@pytest.mark.parametrize("by", ["position", "name", "keyword inputs"])
def test_export_of_linear_cross_entropy_with_its_layer_takes_torch_nns_dynamic_shapes(by: str) -> None:
    batch = torch.export.Dim("batch")
    hidden, target = torch.randn(6, 8), torch.tensor([0, 4, 2, 1, 2, 3])
    ours = lossreg.torch.LinearCrossEntropyLoss(8, 5, bias=True, reduction="none")
    theirs = torch.nn.LinearCrossEntropyLoss(8, 5, bias=True, reduction="none")
    theirs.load_state_dict(ours.state_dict())
    for module in (theirs, ours):  # the same call for both
        if by == "position":
            program = torch.export.export(module, (hidden, target), dynamic_shapes=({0: batch}, {0: batch}))
        else:
            args, kwargs = ((hidden, target), {}) if by == "name" else ((), {"input": hidden, "target": target})
            program = torch.export.export(module, args, kwargs, dynamic_shapes={"input": {0: batch}, "target": {0: batch}})
        run = program.module()
        got = run(hidden[:3], target[:3]) if by != "keyword inputs" else run(input=hidden[:3], target=target[:3])
        torch.testing.assert_close(got, theirs(hidden[:3], target[:3]))


def test_linear_cross_entropy_forward_signature_follows_the_layer_through_copies_and_pickles() -> None:
    owned, bare = lossreg.torch.LinearCrossEntropyLoss(8, 5), lossreg.torch.LinearCrossEntropyLoss()
    assert list(inspect.signature(owned.forward).parameters) == ["input", "target"]  # torch.nn's
    assert list(inspect.signature(bare.forward).parameters) == ["input", "linear_weight", "target"]
    hidden, target = torch.randn(6, 8), torch.tensor([0, 4, 2, 1, 2, 3])
    for again in (copy.copy(owned), copy.deepcopy(owned), pickle.loads(pickle.dumps(owned))):
        assert list(inspect.signature(again.forward).parameters) == ["input", "target"]
        again.reduction = "sum"  # the copy's forward is its own, not the original's
        torch.testing.assert_close(again(hidden, target), owned(hidden, target) * 6)
