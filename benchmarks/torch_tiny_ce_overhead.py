"""Where lossreg's tiny torch cross-entropy spends its time (issue 13, point 3), interleaved:
F.cross_entropy, lossreg as it is, and lossreg with a CPU fast path patched into the torch
kernel's ``_class_args`` (a prototype for the owner of lossreg/kernels/torch.py; not installed).

    python benchmarks/torch_tiny_ce_overhead.py
"""
import torch, torch.nn.functional as F, lossreg
from lossreg import toolkit
from lossreg.kernels import torch as KT
from lossreg.timing import measure
torch.set_num_threads(1)
x=torch.randn(4,5); y=torch.randint(0,5,(4,))
Tensor = torch.Tensor; orig = KT._class_args; _wrapped = torch._C._functorch.is_functorch_wrapped_tensor
def fast(input, target, weight, ignore_index, reduction):
    if (weight is None and type(target) is Tensor and type(input) is Tensor and target.dtype is torch.int64
            and input.ndim == 2 and target.ndim == 1 and target.shape[0] == input.shape[0]
            and not input.is_cuda and not target.is_cuda and not input.is_meta
            and reduction in KT._ENUM and type(ignore_index) is int and input.dtype in KT._FLOAT
            and not torch.compiler.is_compiling() and not _wrapped(target) and toolkit.check_mode() != "poison"):
        return target, None
    return orig(input, target, weight, ignore_index, reduction)
def merged():
    KT._class_args = orig; return lossreg.cross_entropy(x, y)
def fastpath():
    KT._class_args = fast; return lossreg.cross_entropy(x, y)
for r in range(3):
    med, samples, batch = measure({"F": lambda: F.cross_entropy(x, y), "merged": merged, "fast": fastpath}, 1.0)
    print(f"F {med['F']*1e6:.2f} µs, lossreg as merged {med['merged']*1e6:.2f} µs ({med['merged']/med['F']:.2f}×), "
          f"with the fast path {med['fast']*1e6:.2f} µs ({med['fast']/med['F']:.2f}×)  [{samples}×{batch}]")
