"""torch.distributed on CPU (gloo), as a user of tensor parallelism runs it: lossreg's losses on
DTensors sharded across two processes give the answer torch.nn gives on the whole tensors.

A process group is process-wide, so each check runs its two ranks in a subprocess (with a timeout).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.tensor")

import two_ranks  # noqa: E402  (it imports torch, which may be missing)


def _two_ranks(body: str, timeout_s: int = 60) -> str:
    """A script that runs ``body`` (indented as a function's body) on each of two gloo ranks of a (2,)
    CPU mesh, with ``rank``, ``mesh`` and ``failed`` (what disagreed with torch) in scope; each rank
    then prints "rankN: all torch's" or what failed."""
    head = textwrap.dedent(f'''
        import datetime, math, os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
        import lossreg
        from torch.distributed.tensor import distribute_tensor, Replicate, Shard
        from torch.distributed.device_mesh import init_device_mesh

        def worker(rank, port):
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
            dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds={timeout_s}))
            mesh = init_device_mesh("cpu", (2,))
            torch.manual_seed(0)
            failed = []
    ''')
    tail = textwrap.dedent('''
            print(f"rank{rank}: " + ("; ".join(failed) or "all torch's"), flush=True)
            dist.barrier()
            dist.destroy_process_group()
            os._exit(0)  # the checks are reported: skip the teardown, where gloo's threads can abort a rank

        if __name__ == "__main__":
            mp.spawn(worker, args=(sys.argv[1],), nprocs=2, join=True)
    ''')
    return head + textwrap.indent(textwrap.dedent(body), " " * 4) + tail


CLASS_SHARDED = _two_ranks('''
        cases = {
            "cross_entropy (N, C)": ("cross_entropy", torch.randn(6, 4, dtype=torch.float64),
                                     torch.randint(0, 4, (6,))),
            "cross_entropy (N, C, d)": ("cross_entropy", torch.randn(6, 4, 3, dtype=torch.float64),
                                        torch.randint(0, 4, (6, 3))),
            "nll_loss": ("nll_loss", torch.log_softmax(torch.randn(6, 4, dtype=torch.float64), 1),
                         torch.randint(0, 4, (6,))),
        }
        for case, (name, x, t) in cases.items():
            leaf = x.clone().requires_grad_()
            want = getattr(torch.nn.functional, name)(leaf, t)
            (want_grad,) = torch.autograd.grad(want, leaf)
            # logits sharded along the classes, the targets on every rank: a vocabulary-parallel head
            dx = distribute_tensor(x, mesh, [Shard(1)]).requires_grad_()
            try:
                with lossreg.use_kernels(False):  # the portable definition: torch.func's, plugins' losses'
                    got = getattr(lossreg, name)(dx, distribute_tensor(t, mesh, [Replicate()]))
                (grad,) = torch.autograd.grad(got, dx)
                torch.testing.assert_close(got.full_tensor(), want)
                torch.testing.assert_close(grad.full_tensor(), want_grad)
            except Exception as e:
                failed.append(f"{case}: {type(e).__name__}: {e}")
''')



def _run_two_ranks(tmp_path, script: str) -> list[str]:
    """What each rank reported ("rankN: ..."): the two ranks share stdout, and their lines may interleave."""
    done = two_ranks.run(tmp_path / "ranks.py", script, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return sorted(re.findall(r"rank\d: all torch's", done.stdout)) or [done.stdout]


def test_class_index_losses_take_logits_sharded_along_the_classes(tmp_path) -> None:
    """Picking the target's logit from class-sharded logits is a partial result on each rank;
    torch reduced it only while it kept the gather's shape, and the squeezed pick raised
    "IndexError: too many indices" in torch's own redistribution code."""
    assert _run_two_ranks(tmp_path, CLASS_SHARDED) == ["rank0: all torch's", "rank1: all torch's"]


EXTRAS_SOURCE = str(Path(__file__).resolve().parents[1] / "plugins" / "lossreg-extras" / "src")
CLASS_NUMBERING = _two_ranks(f'''
        if "extras" not in lossreg.registry().plugins:  # not installed: registered from its sources
            sys.path.insert(0, {EXTRAS_SOURCE!r})
            import lossreg_extras
            lossreg.register_plugin(lossreg_extras, "extras")
        sparsemax = lossreg.get("sparsemax_loss")
        cases = {{  # the loss, its reference on the whole tensors, a target
            "multi_margin_loss": (lossreg.multi_margin_loss, torch.nn.functional.multi_margin_loss,
                                  torch.randint(0, 4, (6,))),
            "multilabel_margin_loss": (lossreg.multilabel_margin_loss, torch.nn.functional.multilabel_margin_loss,
                                       torch.tensor([[0, 3, -1, 0]] * 3 + [[2, -1, 1, 1]] * 3)),
            # a plugin's loss, with no torch.nn equivalent: the same loss on the whole tensors
            "sparsemax_loss": (sparsemax, sparsemax, torch.randint(0, 4, (6,))),
        }}
        for name, (loss, reference, t) in cases.items():
            x = torch.randn(6, 4, dtype=torch.float64)
            leaf = x.clone().requires_grad_()
            want = reference(leaf, t)
            (want_grad,) = torch.autograd.grad(want, leaf)
            for placement in (Shard(0), Replicate()):  # a batch split over the ranks, or on every rank
                dx = distribute_tensor(x, mesh, [placement]).requires_grad_()
                try:
                    got = loss(dx, distribute_tensor(t, mesh, [placement]))
                    (grad,) = torch.autograd.grad(got, dx)
                    torch.testing.assert_close(got.full_tensor(), want)
                    torch.testing.assert_close(grad.full_tensor(), want_grad)
                except Exception as e:
                    failed.append(f"{{name}} {{placement}}: {{type(e).__name__}}: {{e}}")
''')


def test_losses_that_number_the_classes_take_dtensors(tmp_path) -> None:
    """torch's multi_margin_loss and multilabel_margin_loss have no sharding strategy; lossreg's
    compare the targets with the class numbers, and lossreg-extras' sparsemax_loss numbers its
    sorted classes: the numbers are made by ``toolkit.arange_like``, a DTensor on the input's mesh.
    A plain ``arange`` met the DTensor in "got mixed torch.Tensor and DTensor"."""
    assert _run_two_ranks(tmp_path, CLASS_NUMBERING) == ["rank0: all torch's", "rank1: all torch's"]


INVALID_TARGET = _two_ranks('''
        x, t = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 4, (8,))
        t[5] = 7  # no class 7: only rank 1's half of the batch holds it
        for kernels in (True, False):
            try:
                with lossreg.use_kernels(kernels):
                    got = lossreg.cross_entropy(distribute_tensor(x, mesh, [Shard(0)]),
                                                distribute_tensor(t, mesh, [Shard(0)]))
                if not math.isnan(got.full_tensor().item()):
                    failed.append(f"kernels={kernels}: {got.full_tensor().item()}, not NaN")
            except Exception as e:
                failed.append(f"kernels={kernels}: {type(e).__name__}: {e}")
''', timeout_s=20)  # a rank that raises alone leaves the other waiting


def test_an_invalid_target_on_one_rank_is_nan_on_every_rank(tmp_path) -> None:
    """On a DTensor, bool() of a reduction reads the rank's own part: the rank holding the bad
    class raised lossreg's error while the other went on, into a collective that never completed
    (torch's own F.cross_entropy does the same). lossreg does not read DTensors' values: the
    check is in the graph, and the loss is NaN on every rank, as where values cannot be read."""
    assert _run_two_ranks(tmp_path, INVALID_TARGET) == ["rank0: all torch's", "rank1: all torch's"]

