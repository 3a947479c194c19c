"""The ``lossreg`` command: list losses and plugins, run the conformance suite and the benchmarks."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from . import conformance
from .bench import positive_int
from .errors import LossError
from .registry import registry


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry()
    specs = [reg.specs[n] for n in sorted(reg.specs)]
    if args.json:
        print(json.dumps([{"name": s.name, "class": s.class_name, "plugin": s.plugin, "aliases": list(s.aliases)}
                          for s in specs], indent=1))
        return 0
    rows = [(s.name, s.class_name, s.plugin, ", ".join(s.aliases)) for s in specs]
    widths = [max(len(r[i]) for r in rows + [("name", "class", "plugin", "")]) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(("name", "class", "plugin"), widths)) + "  aliases")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    return 0


def _writable(path: str) -> bool:
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.isdir(folder) and os.access(folder, os.W_OK) and not os.path.isdir(path)


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = registry()
    for backend in reg.backends.values():  # a backend whose availability check raises is a fault to list
        backend.unavailable()
    infos = reg.plugins
    if args.json:
        print(json.dumps([info.__dict__ for info in infos.values()], indent=1))
    else:
        for info in infos.values():
            dist = f"{info.distribution} {info.version}" if info.distribution else "(in-process)"
            timing = f"  import {info.import_s:.3f} s" if info.import_s else ""
            faults = f", {len(info.faults)} fault{'s' * (len(info.faults) > 1)}" if info.faults else ""
            print(f"{info.name}  [{info.status}{faults}]  {dist}{timing}")
            for what, items in info.registered.items():
                print(f"    {what} ({len(items)}): {', '.join(items)}")
            for fault in info.faults:
                print(f"    fault: {fault}")
    broken = [info.name for info in infos.values() if info.faults]
    if args.strict and broken:
        print(f"lossreg plugins --strict: faults in {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from . import scaffold

    try:
        root = scaffold.create(args.name, args.dir, force=args.force)
    except (ValueError, FileExistsError) as exc:
        print(f"lossreg new-plugin: {exc}", file=sys.stderr)
        return 2
    print(scaffold.next_steps(root))
    return 0


STDOUT = "-"  # `--json` with no file (or `--json -`): the report on stdout


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While active, whatever is written to stdout (by Python, by a library's C code, by a worker
    process) goes to stderr: stdout then holds the JSON report alone."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        fd, saved = sys.stdout.fileno(), os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), fd)
    except (AttributeError, OSError, ValueError):  # not a file (captured in a test): Python's prints only
        fd = saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _selection_error(args: argparse.Namespace) -> str | None:
    """Why a list option names nothing (``--loss ""``, an unset variable in a CI script) or mixes
    ``all`` with names; None if each is well formed. Such a run would check something else than
    what was asked (every loss, or nothing), so it is refused as a usage error."""
    for flag, value in (("--backend", args.backend), ("--dtype", args.dtype), ("--loss", args.loss),
                        ("--plugin", args.plugin)):
        if value is None:
            continue
        names = _split(value)
        if not names:
            return f"{flag} {value!r} names nothing; leave {flag} out for its default"
        if flag in ("--backend", "--dtype") and "all" in names and len(names) > 1:
            return f"{flag} all means every one; it cannot be combined with names ({value!r})"
    # `--device "$DEVICE"`, the variable unset, ran on each backend's first device (the CPU) and
    # passed, where a GPU run was asked for.
    if args.device is not None and not args.device.strip():
        return f"--device {args.device!r} names nothing; leave --device out for each backend's first"
    return None


def _max_case_limits(args: argparse.Namespace, backends: Any, wanted: Sequence[str]) -> dict[str, int | str] | str:
    """``--quick`` and ``--max-cases`` as conformance.run's ``max_cases`` (backend or "*" -> N or
    "cover"), or what is wrong with them. A limit for a backend the run leaves out is noted, not
    refused: one MAX_CASES may serve several runs (``conformance/gpu/run.py``)."""
    limits: dict[str, int | str] = {"*": conformance.COVER} if args.quick else {}
    for item in _split(args.max_cases or ""):
        name, _, number = item.rpartition("=")
        if number != conformance.COVER and not number.isdigit():
            return f"--max-cases takes N, cover or BACKEND=N|cover,..., not {item!r}"
        if name and name not in backends:
            return f"--max-cases names backend {name!r}, which is not registered (known: {', '.join(backends)})"
        if name and name not in wanted:
            print(f"lossreg conformance: --max-cases names backend {name!r}, which this run leaves out "
                  f"(--backend {','.join(wanted)}): its limit is unused", file=sys.stderr)
        if number != conformance.COVER and int(number) == 0:  # "00" too: it ran no case, reported as "no cases registered"
            return "--max-cases 0 would run nothing; give at least 1, or cover"
        limits[name or "*"] = number if number == conformance.COVER else int(number)
    return limits


def _report(args: argparse.Namespace, outcomes: Any, wanted: list[str], dtypes: list[str],
            limits: dict[str, int | str], seconds: dict[str, float], not_run: list[str], to_stdout: bool) -> str:
    """The ``--json`` report: the outcomes, with the versions and the hardware they ran on."""
    import datetime

    from .timing import versions as installed

    reg = registry()
    versions = installed("lossreg", "array_api_compat", "array_api_extra", "numpy")
    hardware = {}
    with _stdout_to_stderr(to_stdout):  # a library that prints as it is asked its version
        for name in wanted:
            backend = reg.backends[name]
            if not backend.unavailable():
                versions.update(backend.versions())
                device = args.device or backend.devices[0]
                if not backend.device_unavailable(device) and (found := backend.device_name(device)):
                    hardware[f"{name}@{device}"] = found
    return conformance.to_json(
        outcomes, command=["lossreg", *sys.argv[1:]], date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        backends=wanted, dtypes=dtypes, device=args.device, device_names=hardware, max_cases=limits or None,
        versions=versions, seconds=seconds, not_run=not_run, machine=platform.platform(),
        processor=platform.processor(), matrix=conformance.matrix(outcomes, seconds))


def cmd_conformance(args: argparse.Namespace) -> int:
    from .backends import use_fast_jax_compile

    problem = _selection_error(args)
    if problem:
        print(f"lossreg conformance: {problem}", file=sys.stderr)
        return 2

    # This process is the conformance run: fast XLA compiles, unless JAX is already up.
    use_fast_jax_compile(eager_only=args.backend.strip() != "all" and "jax_jit" not in _split(args.backend))
    if "jax" in args.backend or args.backend.strip() == "all":
        conformance.share_jax_compiles()  # and JAX's compiled programs kept on disk between runs
    to_stdout = args.json == STDOUT  # `--json` alone (or `--json -`): the report is stdout, and only it
    if args.json is not None and not to_stdout and not args.json.strip():
        print("lossreg conformance: --json '' names nothing; give a file, or --json alone for stdout", file=sys.stderr)
        return 2
    if args.json and not to_stdout and not _writable(args.json):
        print(f"lossreg conformance: --json {args.json}: cannot write there (no such directory, or not writable)",
              file=sys.stderr)
        return 2
    reg = registry()
    all_backends = args.backend.strip() == "all"
    wanted = [name for name in reg.backends if not reg.backends[name].unavailable()] if all_backends \
        else list(dict.fromkeys(_split(args.backend)))  # each once, however often named
    dtypes = list(conformance.EPS) if args.dtype.strip() == "all" else _split(args.dtype)
    seconds: dict[str, float] = {}
    from .progress import ConformanceProgress

    # Each loss once, whichever of its names are given (an unknown name is an error here, exit 2).
    losses = list(dict.fromkeys(reg.lookup(n).name for n in _split(args.loss))) if args.loss else None
    for plugin in _split(args.plugin or ""):  # and every loss of each plugin named
        found, notes = conformance.plugin_losses(plugin)
        for note in notes:
            print(note, file=sys.stderr)
        losses = list(dict.fromkeys((losses or []) + found))
    # A live display on a terminal; plain lines (one per backend) in a pipe or log, or with --json.
    shown = ConformanceProgress({name: len(losses) if losses else len(reg.specs) for name in wanted},
                                live=False if args.json else None)

    def progress(name: str, device: str, took: float) -> None:
        seconds[name if args.device is None else f"{name}@{device}"] = took
        shown.backend_done(name, device, took)

    limits = _max_case_limits(args, reg.backends, wanted)
    if isinstance(limits, str):
        print(f"lossreg conformance: {limits}", file=sys.stderr)
        return 2
    with shown, _stdout_to_stderr(to_stdout):
        outcomes = conformance.run(wanted, dtypes, args.device, losses, max_cases=limits or None,
                                   progress=progress, step=shown.step,
                                   jobs=conformance.default_jobs(wanted) if args.jobs is None else args.jobs)
    order = list(dict.fromkeys(o.backend if args.device is None else f"{o.backend}@{o.device}" for o in outcomes))
    seconds = {name: seconds[name] for name in order if name in seconds}
    human = sys.stderr if to_stdout else sys.stdout  # the matrix, for a person; the JSON for a program
    print(conformance.matrix(outcomes, seconds), file=human)
    not_run = conformance.not_covered(wanted, args.device)
    for line in not_run:
        print(f"not run: {line}", file=human)
    if args.json:
        report = _report(args, outcomes, wanted, dtypes, limits, seconds, not_run, to_stdout)
        if to_stdout:
            print(report)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(report)
    counts = conformance.summarize(outcomes)
    if not counts["failed"] and not any(o.cases for o in outcomes):
        # A run that checked nothing is not a pass (as pytest's "no tests ran"): every outcome
        # unsupported or not applicable (n/a: each case restricted to other dtypes, or beyond the
        # dtype's range), which exited 0 on the matrix's "0 case runs".
        print("lossreg conformance: nothing ran (see the reasons above)", file=sys.stderr)
        return 1
    return 1 if counts["failed"] else 0


def cmd_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    import importlib.util

    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"lossreg docs: {', '.join(missing)} not installed; install the docs extra: pip install 'lossreg[docs]'",
              file=sys.stderr)
        return 2
    from . import docsite

    docsite.use_plugins(args.plugins)
    reports = Path(args.reports) if args.reports else None
    try:
        if args.action == "serve":
            print(f"lossreg docs: serving on http://{args.dev_addr} (Ctrl-C stops)", file=sys.stderr, flush=True)
            docsite.serve(Path(args.out), reports, dev_addr=args.dev_addr, cli=build_parser())
            return 0
        done = docsite.build(Path(args.out), reports, strict=not args.no_strict, cli=build_parser())
    except docsite.BuildError as exc:
        print(f"lossreg docs: {exc}", file=sys.stderr)
        return 1
    print(f"lossreg docs: {len(done.losses)} loss pages; site in {Path(args.out) / 'site'}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``lossreg`` argument parser (the site's CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="lossreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered losses, their classes, aliases and plugins")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("plugins", help="plugins, what each registered, and any faults")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any plugin has a fault")
    p.set_defaults(run=cmd_plugins)
    p = sub.add_parser("new-plugin", help="write a working plugin package skeleton (pyproject, a loss, cases, a test)")
    p.add_argument("name", help="the plugin's name, e.g. 'focal' for the distribution lossreg-focal")
    p.add_argument("--dir", default=".", help="the folder to create the package in (default: the current one)")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty package folder")
    p.set_defaults(run=cmd_new_plugin)
    p = sub.add_parser("conformance", help="run the conformance suite and print the matrix")
    p.add_argument("--backend", default="numpy",
                   help="comma-separated backends, or 'all' for every installed one (default numpy)")
    p.add_argument("--dtype", default="float32,float64",
                   help="comma-separated dtypes among float16, bfloat16, float32, float64, or 'all' "
                        "(default float32,float64)")
    p.add_argument("--device", default=None, help="device, e.g. cuda or cuda:1 (default: each backend's first, e.g. cpu)")
    p.add_argument("--loss", default=None, help="comma-separated loss names (default: all)")
    p.add_argument("--plugin", default=None,
                   help="comma-separated plugins (entry-point or distribution names): every loss each registered "
                        "or added kernels or cases to, with --loss's; a plugin that is not loaded cleanly is an error "
                        "(default: all losses)")
    p.add_argument("--max-cases", default=None, metavar="N|cover|BACKEND=N,...",
                   help="run at most N cases per loss, chosen to cover every option value, shape and expected "
                        "error first, or 'cover': as many as it takes to cover each once; per backend as "
                        "jax=4,dask=cover (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="--max-cases cover on every backend (a backend named in --max-cases keeps its own): "
                        "each option value, input shape and expected error once, about a quarter of the cases")
    p.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                   help="run (backend, loss) pairs, the slow backends' in slices of cases, in N processes "
                        "(default: one per core, at most 4, when eager JAX, jax_jit or Dask is among the "
                        "backends, else 1)")
    p.add_argument("--json", nargs="?", const=STDOUT, default=None, metavar="PATH",
                   help="the report, every outcome, as JSON: alone (or '-') on stdout, the matrix then on stderr, "
                        "as list --json and plugins --json print theirs; with PATH, written to that file")
    p.set_defaults(run=cmd_conformance)
    p = sub.add_parser("bench", help="time lossreg against native torch on CPU, side by side")
    from . import bench  # light: imports torch and numpy only when run

    bench.add_arguments(p)
    p.set_defaults(run=lambda a: bench.run_from_args(a, command=" ".join(["lossreg", *(argv or sys.argv[1:])])))
    p = sub.add_parser("docs", help="build or serve the documentation site (needs the docs extra)")
    p.add_argument("action", choices=["build", "serve"], help="build: render the site; serve: build and serve it")
    p.add_argument("--plugins", action="store_true",
                   help="document every installed plugin's losses too (default: the built-in catalogue)")
    p.add_argument("--out", default="build/docs", help="folder for the generated project and site/ (default build/docs)")
    p.add_argument("--reports", default=None, metavar="DIR",
                   help="conformance reports to show (default: the checkout's conformance/results)")
    p.add_argument("--no-strict", action="store_true", help="build: let warnings pass (broken links, missing pages)")
    p.add_argument("--dev-addr", default="127.0.0.1:8000", help="serve: address to serve on (default 127.0.0.1:8000)")
    p.set_defaults(run=cmd_docs)
    return parser


# The prefix of a message that already names the command: "lossreg: ...", "lossreg conformance: ...".
_PREFIXED = re.compile(r"^lossreg(?: [\w-]+)?: ")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; its exit status: 0 done (every case passed), 1 a failure (a case, or
    ``plugins --strict``), 2 a usage error, 130 interrupted (Ctrl-C), 141 stdout closed early."""
    args = build_parser(argv).parse_args(argv)
    try:
        if getattr(args, "json", None) in (True, STDOUT):  # `list --json`, `conformance --json`: stdout is JSON only
            with _stdout_to_stderr(True):  # so a plugin that prints as it is imported or registered prints to stderr
                registry()
        code = int(args.run(args))
        sys.stdout.flush()  # here, so that a reader gone away is seen below, not at exit
        return code
    except LossError as error:  # a bad argument: its message says which and why, no traceback
        # One prefix: "lossreg conformance: argument ..." (conformance.run's own) is not prefixed again.
        print(f"lossreg: {_PREFIXED.sub('', str(error), count=1)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback
        print("lossreg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lossreg list | head -1`: the reader has what it wanted
        try:  # nothing more can reach it, including what Python flushes at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a file (captured in a test)
            pass
        return 141  # 128 + SIGPIPE, as the shell reports a writer the pipe stopped


if __name__ == "__main__":
    sys.exit(main())
