"""DTensor inputs (tensor parallelism, FSDP2) through the portable definitions (kernels off), which
torch.func and plugin losses built from the toolkit take: torch's value and gradient.

The class-index losses pick the target's logit with torch's gather along the class axis; the
flat take they used before built its indices as plain tensors, which DTensor refuses to mix
("got mixed torch.Tensor and DTensor"). A process group is process-wide, so the mesh (one rank,
gloo) lives in a subprocess.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.tensor")

SCRIPT = textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist, lossreg
    from torch.distributed.tensor import distribute_tensor, Shard
    from torch.distributed.device_mesh import init_device_mesh
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist.init_process_group("gloo", rank=0, world_size=1)
    mesh = init_device_mesh("cpu", (1,))
    torch.manual_seed(0)
    f64 = dict(dtype=torch.float64)
    cases = {
        "cross_entropy (N, C)": ("cross_entropy", torch.randn(6, 5, **f64), torch.randint(0, 5, (6,))),
        "cross_entropy (N, C, d)": ("cross_entropy", torch.randn(6, 5, 3, **f64), torch.randint(0, 5, (6, 3))),
        "cross_entropy, probabilities": ("cross_entropy", torch.randn(6, 5, **f64),
                                         torch.softmax(torch.randn(6, 5, **f64), 1)),
        "nll_loss": ("nll_loss", torch.log_softmax(torch.randn(6, 5, **f64), 1), torch.randint(0, 5, (6,))),
        "mse_loss": ("mse_loss", torch.randn(6, 5, **f64), torch.randn(6, 5, **f64)),
        "l1_loss": ("l1_loss", torch.randn(6, 5, **f64), torch.randn(6, 5, **f64)),
        "binary_cross_entropy": ("binary_cross_entropy", torch.rand(6, 5, **f64), torch.rand(6, 5, **f64)),
        "binary_cross_entropy_with_logits": ("binary_cross_entropy_with_logits", torch.randn(6, 5, **f64),
                                             torch.rand(6, 5, **f64)),
    }
    failed = []
    for case, (name, x, t) in cases.items():
        leaf = x.clone().requires_grad_()
        want = getattr(torch.nn.functional, name)(leaf, t)
        (want_grad,) = torch.autograd.grad(want, leaf)
        dx = distribute_tensor(x, mesh, [Shard(0)]).requires_grad_()
        try:
            with lossreg.use_kernels(False):
                got = getattr(lossreg, name)(dx, distribute_tensor(t, mesh, [Shard(0)]))
            (grad,) = torch.autograd.grad(got, dx)
            torch.testing.assert_close(got.full_tensor(), want)
            torch.testing.assert_close(grad.full_tensor(), want_grad)
        except Exception as e:
            failed.append(f"{case}: {type(e).__name__}: {e}")
    dist.destroy_process_group()
    print("\\n".join(failed) or "all torch's")
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_portable_definitions_take_batch_sharded_dtensors():
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(_free_port())], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "all torch's", done.stdout
