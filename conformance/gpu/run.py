"""Run the conformance suite on CuPy and on torch with CUDA, and write the report.

    python3 conformance/gpu/run.py [OUT_DIR]        # or: conformance/gpu/run.sh

For a machine with an NVIDIA GPU and torch and CuPy (JAX optional) installed, and no network.
lossreg is taken from this checkout, installed or not; array-api-compat and array-api-extra, if
the machine lacks them, from ``conformance/gpu/site`` (filled by ``vendor.sh`` on a machine that
has them, and carried along). Writes to OUT_DIR (default ``$OUT``, else
``conformance/results/gpu-<date>``):

- ``gpu-matrix-{torch,cupy,cupy-quick}.txt``: the printed matrix of ``lossreg conformance --backend
  torch --device cuda`` (and cupy; and cupy ``--quick``, a fallback) in float16, bfloat16, float32
  and float64, with the device's name, the date and versions;
- ``gpu-conformance-*.json``: every outcome, with the same context (``lossreg conformance --json``);
- ``gpu-checks.txt``: mixed libraries and devices on the GPU (a CuPy array with a torch tensor,
  CUDA with CPU tensors) must raise lossreg errors; kernels on and off agree on real calls;
- ``gpu-sync.txt``: every loss, and a training step, under ``torch.cuda.set_sync_debug_mode("error")``;
  the step captured in a CUDA graph; compiled (Triton) cross-entropy against compiled
  ``F.cross_entropy`` (``sync_checks.py``; ``DEVICE=cpu`` dry-runs it without a GPU);
- ``gpu-env.json``: nvidia-smi, versions, the commands and their exit codes and times.

Environment: ``MAX_CASES`` (cases per loss, default all), ``DTYPES`` (default all four),
``STEP_TIMEOUT`` (seconds for the steps, which run side by side; default 420), ``JAX=1`` to add
``jax_jit`` on the GPU, ``JOBS`` (processes for the matrix, default 4).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _importable(module: str, path: list[str]) -> bool:
    code = f"import sys; sys.path[:0] = {path!r}; import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tempfile.gettempdir()).returncode == 0


def python_path() -> list[str]:
    """Folders that make ``import lossreg`` (with its cases) and its dependencies work here."""
    path: list[str] = []
    if os.environ.get("LOSSREG_GPU_SHIM") == "1" or not _importable("lossreg.cases", []):
        # Not installed: a package folder of links to this checkout's files, with cases/ in it,
        # as the installed package has it (pyproject maps lossreg.cases to conformance/cases).
        shim = Path(tempfile.mkdtemp(prefix="lossreg-gpu-")) / "lossreg"
        shim.mkdir()
        for item in (ROOT / "lossreg").iterdir():
            if item.name != "__pycache__":
                (shim / item.name).symlink_to(item)
        (shim / "cases").symlink_to(ROOT / "conformance" / "cases")
        path.append(str(shim.parent))
    for module in ("array_api_compat", "array_api_extra", "pluggy"):
        if not _importable(module, path) and (HERE / "site").is_dir():
            path.append(str(HERE / "site"))
            break
    missing = [m for m in ("numpy", "array_api_compat", "array_api_extra", "pluggy", "lossreg.cases")
               if not _importable(m, path)]
    if missing:
        sys.exit(f"cannot import {', '.join(missing)}; run conformance/gpu/vendor.sh where they are "
                 "installed and carry conformance/gpu/site along")
    return path


def nvidia_smi() -> str:
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                           "--format=csv,noheader"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT") or
               ROOT / "conformance" / "results" / f"gpu-{datetime.date.today():%Y%m%d}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lossreg-gpu-run-"))  # not the checkout: its lossreg/ lacks cases/
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([*python_path(), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    timeout = int(os.environ.get("STEP_TIMEOUT", "420"))
    device = os.environ.get("DEVICE", "cuda")  # DEVICE=cpu: a dry run of the whole script
    dtypes = os.environ.get("DTYPES", "float16,bfloat16,float32,float64")
    limit = ["--max-cases", os.environ["MAX_CASES"]] if os.environ.get("MAX_CASES") else []
    smi = nvidia_smi()
    report: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "nvidia-smi": smi,
                    "python": sys.version, "machine": platform.platform(), "steps": []}
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        report["commit"] = commit.stdout.strip()
    except OSError:
        pass
    jobs = os.environ.get("JOBS", "4")

    def matrix(backend: str, *extra: str) -> list[str]:
        name = backend + ("-quick" if "--quick" in extra else "")
        return [sys.executable, "-m", "lossreg.cli", "conformance", "--backend", backend, "--device", device,
                "--dtype", dtypes, *extra, "--jobs", jobs, "--json", str(out / f"gpu-conformance-{name}.json")]

    # One matrix per backend, so that a slow one cannot take the other's results with it when the
    # time limit stops it; the quick CuPy matrix (every option value, shape and error once) is the
    # fallback should CuPy's first compiles of its kernels make the full one too slow.
    steps = [
        ("gpu-matrix-torch.txt", matrix("torch", *limit)),
        ("gpu-matrix-cupy.txt", matrix("cupy", *limit)),
        ("gpu-matrix-cupy-quick.txt", matrix("cupy", "--quick")),
        ("gpu-checks.txt", [sys.executable, str(HERE / "checks.py")]),
        ("gpu-sync.txt", [sys.executable, str(HERE / "sync_checks.py")]),
    ]
    if os.environ.get("JAX") == "1":
        steps.append(("gpu-jax.txt", [sys.executable, "-m", "lossreg.cli", "conformance", "--backend", "jax_jit",
                                      "--device", device, "--dtype", "float32,float64", "--max-cases",
                                      os.environ.get("MAX_CASES", "4"), "--json", str(out / "gpu-jax.json")]))
    # The steps share the GPU but not their results: run them side by side (the matrix is bound by
    # launches on the host, and the machine has cores to spare), each within the same time limit.
    status = 0
    start = time.perf_counter()
    running = []
    for name, command in steps:
        header = f"# {' '.join(command[1:] if command[1] == '-m' else command)}\n# {smi}\n# {report['date']}\n"
        print(header, end="", flush=True)
        running.append((name, command, header, subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                                                                 stderr=subprocess.PIPE, text=True)))
    for name, command, header, process in running:
        try:
            stdout, stderr = process.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))
            code = process.returncode
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            code, stderr = 124, f"{stderr}\nstopped after {timeout} s"
        text = stdout + ("\n" + stderr if stderr else "")
        took = time.perf_counter() - start
        (out / name).write_text(header + text + f"\n# exit {code} after {took:.1f} s\n", encoding="utf-8")
        print(header + text, flush=True)
        report["steps"].append({"file": name, "command": command[1:], "exit": code, "seconds": round(took, 1)})
        status = status or code
        if name.startswith("gpu-matrix-") and code in (0, 1):
            ran = json.loads((out / name.replace("matrix", "conformance").replace(".txt", ".json")).read_text(
                encoding="utf-8"))
            for backend in sorted({o["backend"] for o in ran["outcomes"]}):
                mine = [o for o in ran["outcomes"] if o["backend"] == backend]
                if not any(o["status"] in ("passed", "failed") for o in mine):  # none ran (unsupported, n/a)
                    why = sorted({o["reason"] for o in mine})
                    print(f"NOT RUN: {backend} on cuda: {'; '.join(why)}", flush=True)
                    report.setdefault("not_run", {})[backend] = why
                    status = status or 2
    versions = subprocess.run([sys.executable, "-c", VERSIONS], env=env, capture_output=True, text=True, cwd=work)
    report["versions"] = json.loads(versions.stdout) if versions.returncode == 0 else versions.stderr
    (out / "gpu-env.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}; exit {status}")
    return status


VERSIONS = """
import json, importlib
found = {}
for name in ("lossreg", "numpy", "array_api_compat", "array_api_extra", "pluggy", "torch", "cupy", "jax",
             "jaxlib", "triton"):
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:
        found[name] = f"not importable: {type(exc).__name__}"
try:
    import torch
    found["torch.cuda"] = torch.version.cuda
    found["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
except Exception:
    pass
try:
    import cupy
    found["cupy.cuda.runtime"] = cupy.cuda.runtime.runtimeGetVersion()
except Exception:
    pass
print(json.dumps(found))
"""

if __name__ == "__main__":
    sys.exit(main())
