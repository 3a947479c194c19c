"""The ``lossreg`` command: list losses and plugins, run the conformance suite."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from importlib import metadata

from . import conformance
from .registry import registry


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry()
    rows = [(s.name, s.class_name, s.plugin, ", ".join(s.aliases)) for s in (reg.specs[n] for n in sorted(reg.specs))]
    if args.json:
        print(json.dumps([dict(zip(("name", "class", "plugin", "aliases"), r)) for r in rows], indent=1))
        return 0
    widths = [max(len(r[i]) for r in rows + [("name", "class", "plugin", "")]) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(("name", "class", "plugin"), widths)) + "  aliases")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    infos = registry().plugins
    if args.json:
        print(json.dumps([info.__dict__ for info in infos.values()], indent=1))
        return 0
    for info in infos.values():
        dist = f"{info.distribution} {info.version}" if info.distribution else "(in-process)"
        print(f"{info.name}  [{info.status}]  {dist}")
        for hook, items in info.registered.items():
            print(f"    {hook}: {', '.join(items)}")
        for fault in info.faults:
            print(f"    fault: {fault}")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    reg = registry()
    wanted = _split(args.backend)
    if wanted == ["all"]:
        wanted = list(reg.backends)
    missing = {}
    if args.backend.strip() == "all":
        missing = {name: why for name in wanted if (why := reg.backends[name].unavailable())}
        wanted = [name for name in wanted if name not in missing]
    outcomes = conformance.run(wanted, _split(args.dtype), args.device, _split(args.loss) if args.loss else None)
    print(conformance.matrix(outcomes))
    for name, why in missing.items():
        print(f"not run: {name}: {why}")
    if args.json:
        versions = {}
        for name in [*wanted, "lossreg", "array_api_compat", "array_api_extra", "numpy"]:
            try:
                versions[name] = metadata.version(name.replace("_", "-"))
            except metadata.PackageNotFoundError:
                pass
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(conformance.to_json(outcomes, command=sys.argv, versions=versions, not_run=missing,
                                        python=platform.python_version(), machine=platform.platform()))
    return 1 if conformance.summarize(outcomes)["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lossreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered losses, their classes, aliases and plugins")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("plugins", help="plugins, what each registered, and any faults")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_plugins)
    p = sub.add_parser("conformance", help="run the conformance suite and print the matrix")
    p.add_argument("--backend", default="numpy", help="comma-separated backends, or 'all' (default numpy)")
    p.add_argument("--dtype", default="float32,float64", help="comma-separated dtypes (default float32,float64)")
    p.add_argument("--device", default=None, help="device name (default: the backend's first, e.g. cpu)")
    p.add_argument("--loss", default=None, help="comma-separated loss names (default: all)")
    p.add_argument("--json", default=None, metavar="PATH", help="write every outcome to this JSON file")
    p.set_defaults(run=cmd_conformance)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
