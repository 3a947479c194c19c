"""lossreg.torch modules used as a torch engineer uses torch.nn's criteria: weighted modules in model
trees converted to other dtypes and devices, checkpoints exchanged with torch.nn's modules, and
DDP with "sum" reduction and ignore_index. These held on first check; they guard the behaviour.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

import lossreg.torch as lt
import two_ranks

W, PW = [0.1, 0.3, 0.7], [1.3, 0.7, 2.9]  # not exact in half precision: a cast shows in the value
WEIGHTED = {"CrossEntropyLoss": ("weight",), "NLLLoss": ("weight",), "BCELoss": ("weight",),
            "BCEWithLogitsLoss": ("weight", "pos_weight"), "MultiMarginLoss": ("weight",),
            "MultiLabelSoftMarginLoss": ("weight",)}


def _options(name: str) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(W if k == "weight" else PW) for k in WEIGHTED[name]}


def _data(name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g).to(dtype)
    if name in ("CrossEntropyLoss", "MultiMarginLoss", "NLLLoss"):
        return (x.log_softmax(-1) if name == "NLLLoss" else x), torch.tensor([0, 1, 2, 1])
    if name == "BCELoss":
        return x.sigmoid(), torch.rand(4, 3, generator=g).to(dtype)
    return x, (torch.rand(4, 3, generator=g) > 0.5).to(dtype)


@pytest.mark.parametrize("name", WEIGHTED)
def test_state_dicts_load_strictly_both_ways_with_torch_nns(name: str) -> None:
    ours = torch.nn.Sequential(torch.nn.Linear(2, 3), getattr(lt, name)(**_options(name)))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), getattr(torch.nn, name)(**_options(name)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs[1].load_state_dict({k: 2 * v for k, v in ours[1].state_dict().items()}, strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("buffers", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("inputs", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_buffers_converted_with_the_model_then_another_dtypes_forward(name, buffers, inputs, reduction) -> None:
    """torch.nn's answer where it takes the mix; where it refuses (class weights of CrossEntropyLoss,
    NLLLoss, MultiMarginLoss) its answer once the weights are cast to the input's dtype (README)."""
    ours = torch.nn.ModuleDict({"loss": getattr(lt, name)(reduction=reduction, **_options(name))}).to(buffers)
    theirs = getattr(torch.nn, name)(reduction=reduction, **_options(name)).to(buffers)
    assert all(b.dtype == buffers for b in ours.buffers())
    x, y = _data(name, inputs)
    got = ours["loss"](x, y)
    try:
        want = theirs(x, y)
    except RuntimeError:
        want = theirs.to(inputs)(x, y)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", WEIGHTED)
def test_a_model_moved_to_meta_still_runs_its_loss(name: str) -> None:
    model = torch.nn.ModuleDict({"loss": getattr(lt, name)(**_options(name))}).to("meta")
    x, y = (t.to("meta") for t in _data(name, torch.float32))
    out, ref = model["loss"](x, y), getattr(torch.nn, name)(**_options(name)).to("meta")(x, y)
    assert out.device.type == "meta" and out.shape == ref.shape and out.dtype == ref.dtype


DDP_SCRIPT = textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    from torch.nn.parallel import DistributedDataParallel as DDP
    import lossreg.torch as lt

    def grads(mod, reduction, extra, x, y, ddp):
        torch.manual_seed(0)
        model = torch.nn.ModuleDict({"net": torch.nn.Linear(4, 3),
                                     "loss": mod.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]),
                                                                  reduction=reduction, **extra)}).double()
        class Step(torch.nn.Module):
            def __init__(self): super().__init__(); self.m = model
            def forward(self, x, y): return self.m["loss"](self.m["net"](x), y)
        step = DDP(Step()) if ddp else Step()
        step(x, y).backward()
        return [p.grad for p in model["net"].parameters()]

    def worker(rank, port):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=2)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 2, 1, 0, 1])
        half = slice(4 * rank, 4 * rank + 4)
        for reduction, extra in [("sum", {}), ("sum", {"ignore_index": 1}), ("mean", {"ignore_index": 1})]:
            got = grads(lt, reduction, extra, x[half], y[half], ddp=True)
            same_ddp = grads(torch.nn, reduction, extra, x[half], y[half], ddp=True)
            for a, b in zip(got, same_ddp):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
            if reduction == "sum":  # DDP averages: the full batch's sum gradient, halved
                for a, b in zip(got, grads(torch.nn, reduction, extra, x, y, ddp=False)):
                    torch.testing.assert_close(2 * a, b, rtol=1e-12, atol=1e-15)
        print(f"rank{rank}-ok", flush=True)
        dist.barrier()  # neither rank tears gloo down while the other still talks to it (SIGABRT on a busy machine)
        dist.destroy_process_group()
        # The checks are done and reported: leave without the interpreter's teardown, where gloo's threads
        # still aborted a rank now and then on a busy machine ("terminate called without an active
        # exception", SIGABRT, after both ranks had printed ok).
        os._exit(0)

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1],), nprocs=2, join=True)
''')


def test_ddp_gradients_equal_torch_nns_with_sum_and_ignore_index(tmp_path) -> None:
    done = two_ranks.run(tmp_path / "ddp_sum.py", DDP_SCRIPT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(done.stdout.replace("-ok", "-ok\n").split()) == ["rank0-ok", "rank1-ok"], done.stdout
