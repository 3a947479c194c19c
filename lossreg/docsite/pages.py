"""The site's markdown, generated from the registry, the docstrings, the cases and the reports.

Nothing here is written per loss: a loss's page comes from its :class:`~lossreg.LossSpec`
(names, options and defaults), its docstring (summary, the ``$$ ... $$`` formula, "Shapes:",
the "Args:" section for option meanings), its conformance cases (the examples), the committed
conformance reports (its matrix) and :mod:`.equivalents`.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import LossSpec
from . import equivalents

# What an option means when the loss's docstring does not say: options that mean the same in
# every loss that has them. A loss's own "Args:" entry takes precedence.
COMMON_OPTIONS = {
    "reduction": '"none": one loss per element (or per sample); "mean": their mean; "sum": their sum',
    "weight": "a weight per class (or per element), multiplying each term",
    "ignore_index": "targets equal to it contribute nothing, nor count in the mean",
}


@dataclass
class Doc:
    """A loss docstring, taken apart."""

    summary: str
    formulas: list[str]  # LaTeX, from $$ ... $$ blocks
    shapes: str
    args: dict[str, str]
    notes: str
    fallback_formulas: list[str] = field(default_factory=list)  # the summary's code spans with "="


ARGS_HEADING = re.compile(r"^(Args|Arguments|Options|Keyword Args|Keyword Arguments):\s*$")


def parse_docstring(text: str) -> Doc:
    """Split a loss docstring into the parts a page shows (see the plugin guide's conventions)."""
    formulas = [f.strip() for f in re.findall(r"\$\$(.+?)\$\$", text, flags=re.S)]
    text = re.sub(r"\n?[ \t]*\$\$.+?\$\$[ \t]*\n?", "\n", text, flags=re.S)
    args: dict[str, str] = {}
    kept: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if ARGS_HEADING.match(lines[i].strip()) and not lines[i].startswith(" "):
            i += 1
            current = None
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                entry = re.match(r"^\s{2,8}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", lines[i])
                if entry and (current is None or len(lines[i]) - len(lines[i].lstrip()) <= 8):
                    current = entry.group(1)
                    args[current] = entry.group(2).strip()
                elif current and lines[i].strip():
                    args[current] += " " + lines[i].strip()
                i += 1
            continue
        kept.append(lines[i])
        i += 1
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", "\n".join(kept)) if p.strip()]
    summary = paragraphs.pop(0) if paragraphs else ""
    shapes = ""
    for k, paragraph in enumerate(paragraphs):
        before, found, after = paragraph.partition("Shapes:")
        if found:
            shapes = after.strip()
            paragraphs[k] = before.strip()
            break
    fallback = [s for s in re.findall(r"``(.+?)``", summary) if "=" in s] if not formulas else []
    return Doc(summary, formulas, shapes, args, "\n\n".join(p for p in paragraphs if p), fallback)


def markdown(text: str, names: dict[str, str] | None = None) -> str:
    """reStructuredText-isms of docstrings as markdown: ``x`` -> `x`, :func:`loss` -> a link."""
    def role(match: re.Match[str]) -> str:
        target = match.group(1).lstrip("~").rsplit(".", 1)[-1]
        if names and target in names:
            return f"[`{target}`]({names[target]})"
        return f"`{target}`"

    text = re.sub(r":(?:func|class|meth|mod|attr):`([^`]+)`", role, text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


_TEX_WORDS = {"log": r"\log", "exp": r"\exp", "max": r"\max", "min": r"\min", "cos": r"\cos", "cosh": r"\cosh",
              "sin": r"\sin", "tanh": r"\tanh", "Σ": r"\sum ", "Π": r"\prod ", "·": r"\cdot ", "≠": r"\ne ",
              "≤": r"\le ", "≥": r"\ge ", "∈": r"\in ", "∉": r"\notin ", "‖": r"\| ", "√": r"\sqrt "}


def unicode_tex(formula: str) -> str:
    """A docstring's plain-text formula (``ℓ_i = log cosh(x_i - y_i)``) as TeX, for losses without ``$$``."""
    functions = r"\b(log|exp|max|min|cosh|cos|sin|tanh)\b"
    out = re.sub(r"\b([A-Za-z]{4,})\b", lambda m: m.group(1) if re.fullmatch(functions, m.group(1))
                 else rf"\text{{{m.group(1)}}}", formula)
    out = re.sub(functions, lambda m: _TEX_WORDS[m.group(1)], out)
    for char, tex in _TEX_WORDS.items():
        if len(char) == 1:
            out = out.replace(char, tex)
    return out.replace("²", "^2")


# --- the conformance reports -------------------------------------------------------------------


def load_reports(folder: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, report)`` for every ``lossreg conformance --json`` report under ``folder``."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and isinstance(report.get("outcomes"), list):
            found.append((str(path.relative_to(folder)), report))
    return found


def _label(o: dict[str, Any]) -> str:
    device = str(o.get("device", "cpu"))
    return o["backend"] if device.lower() in ("cpu", "cpu_device") else f"{o['backend']}@{device}"


def _cell(group: list[dict[str, Any]]) -> str:
    statuses = {o["status"] for o in group}
    # No case applies to the dtype: "not_applicable" (an earlier report's "passed" with 0 cases run).
    na = [o for o in group if o["status"] == "not_applicable" or (o["status"] == "passed" and o.get("cases") == 0)]
    ran = [o for o in group if o["status"] == "passed" and all(o is not n for n in na)]
    if "failed" in statuses:
        bad = [o for o in group if o["status"] == "failed"]
        detail = "; ".join(f"{o['path']}: {(o.get('failures') or [o.get('reason', '')])[0]}" for o in bad)
        return f"**failed**: {_escape(detail)[:300]}"
    if not ran and na:
        return "n/a: no case applies to this dtype"
    if not ran:
        reasons = "; ".join(sorted({o.get("reason", "") for o in group}))
        return f"unsupported: {_escape(reasons)}"
    worst = max(o.get("worst", 0.0) for o in ran)
    paths = " + ".join(o["path"] for o in ran)
    text = f"passed ({worst:.2f} of tol.; {paths})"
    skipped = [o for o in group if o["status"] == "unsupported"]
    if skipped:
        text += "; unsupported " + "; ".join(f"{o['path']}: {_escape(o.get('reason', ''))}" for o in skipped)
    return text


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def loss_matrix(name: str, reports: list[tuple[str, dict[str, Any]]]) -> str:
    """One table per report: the loss's outcomes, backend × dtype."""
    if not reports:
        return "No conformance report is committed (`conformance/results/*.json`).\n"
    blocks = []
    for file, report in reports:
        mine = [o for o in report["outcomes"] if o["loss"] == name]
        dtypes = list(dict.fromkeys([*report.get("dtypes", []), *(o["dtype"] for o in mine)]))
        labels = list(dict.fromkeys([*(_label(o) for o in mine)]))
        head = f"**`{file}`** ({str(report.get('date', ''))[:10]}; `{' '.join(report.get('command', []))}`)"
        if not mine:
            blocks.append(f"{head}: this loss was not in the run (plugins off, or `--loss` left it out; "
                          "`lossreg conformance --backend all --json conformance/results/NAME.json` with its "
                          "plugin installed makes a report that covers it).")
            continue
        rows = [f"| backend | {' | '.join(dtypes)} |", "|---|" + "---|" * len(dtypes)]
        for label in labels:
            cells = []
            for dtype in dtypes:
                group = [o for o in mine if _label(o) == label and o["dtype"] == dtype]
                cells.append(_cell(group) if group else "not run")
            rows.append(f"| {label} | {' | '.join(cells)} |")
        not_run = [_escape(line) for line in report.get("not_run", [])]
        tail = ("\n\nNot run in this report: " + "; ".join(not_run) + ".") if not_run else ""
        blocks.append(head + "\n\n" + "\n".join(rows) + tail)
    return "\n\n".join(blocks) + "\n"


# --- examples from the cases -------------------------------------------------------------------


def _example_case(spec: LossSpec, cases: Iterable[Any]) -> Any:
    def key(case: Any) -> tuple[int, int, int, int]:
        sizes = [np.asarray(v["data"]).size for v in case.inputs.values()]
        changed = sum(1 for k, v in case.options.items() if spec.options.get(k, object()) != v)
        # the source document's examples first, then few options, then small arrays of 2 or more
        return (not case.id.startswith("document"), changed, min(sizes) < 2, sum(sizes))

    usable = [c for c in cases if c.loss == spec.name and c.raises is None and np.ndim(c.expected) == 0
              and c.expected is not None and np.isfinite(c.expected)
              and all("data" in v for v in c.inputs.values())
              and all(not isinstance(v, dict) for v in c.options.values())]
    return min(usable, key=key) if usable else None


def _rounded(data: Any, float_: bool) -> Any:
    if not float_:
        return data
    return np.round(np.asarray(data, dtype=np.float64), 3).tolist()


LIBRARIES = [  # (tab title, import line, how to make an array from (data, dtype name), how to print the result)
    ("NumPy", "import numpy as np", "np.asarray({data}, dtype=np.{dtype})", "{call}"),
    ("PyTorch", "import torch", "torch.tensor({data}, dtype=torch.{dtype})", "{call}"),
    ("torch.nn.Module", "import torch\nimport lossreg.torch", "torch.tensor({data}, dtype=torch.{dtype})", "{module}"),
    ("JAX", "import jax.numpy as jnp", "jnp.asarray({data}, dtype=jnp.{dtype})", "{call}"),
    ("CuPy", "import cupy as cp", "cp.asarray({data}, dtype=cp.{dtype})", "{call}"),
    ("Dask", "import dask.array as da\nimport numpy as np", "da.from_array(np.asarray({data}, dtype=np.{dtype}))",
     "{call}.compute()"),
    ("array-api-strict", "import array_api_strict as xp", "xp.asarray({data}, dtype=xp.{dtype})", "{call}"),
]


@dataclass
class Example:
    case: str  # the conformance case it comes from
    value: float  # computed by lossreg on NumPy float32 at build time
    snippets: list[tuple[str, str]]  # (library, code whose last line is the call)
    class_form: str


def example(spec: LossSpec, cases: Iterable[Any]) -> Example | None:
    """The loss on one of its conformance cases, as code for each array library."""
    case = _example_case(spec, cases)
    if case is None:
        return None
    arrays = {}
    for name, value in case.inputs.items():
        float_ = value["dtype"] == "float"
        arrays[name] = (_rounded(value["data"], float_), "float32" if float_ else value["dtype"])
    try:
        got = spec.function(*(np.asarray(d, dtype=t) for d, t in arrays.values()), **case.options)
    except Exception:  # rounding moved an input out of its domain: use the case's own digits
        arrays = {n: (v["data"], "float32" if v["dtype"] == "float" else v["dtype"]) for n, v in case.inputs.items()}
        try:
            got = spec.function(*(np.asarray(d, dtype=t) for d, t in arrays.values()), **case.options)
        except Exception:  # the case needs what NumPy float32 cannot give (a plugin's, say): no example
            return None
    changed = {k: v for k, v in case.options.items() if spec.options.get(k, object()) != v}
    options = "".join(f", {k}={v!r}" for k, v in changed.items())
    snippets = []
    for title, imports, make, show in LIBRARIES:
        lines = [imports, *([] if "import lossreg" in imports else ["import lossreg"]), ""]
        for n, (d, t) in arrays.items():
            t = "int32" if title == "JAX" and t == "int64" else t  # JAX has no int64 unless x64 is enabled
            lines.append(f"{n} = {make.format(data=json.dumps(d), dtype=t)}")
        module = f"lossreg.torch.{spec.class_name}({options.removeprefix(', ')})({', '.join(arrays)})"
        lines.append(show.format(call=f"lossreg.{spec.name}({', '.join(arrays)}{options})", module=module))
        snippets.append((title, "\n".join(lines)))
    cls = f"lossreg.{spec.class_name}({', '.join(f'{k}={v!r}' for k, v in changed.items())})({', '.join(arrays)})"
    return Example(case.id, float(got), snippets, cls)


def examples(spec: LossSpec, cases: Iterable[Any]) -> str:
    """A tab per array library; the value in the comment computed when the page was built."""
    found = example(spec, cases)
    if found is None:
        return "No example: none of the loss's conformance cases gives a single number on NumPy.\n"
    blocks = []
    for title, code in found.snippets:
        code = f"{code}  # {found.value:.6g}"
        indented = "\n".join("    " + line if line else "" for line in code.splitlines())
        blocks.append(f'=== "{title}"\n\n    ```python\n{indented}\n    ```\n')
    return ("\n".join(blocks) + f"\nThe class form is the same: `{found.class_form}`, and so is "
            f"`lossreg.get({spec.name!r})`. Inputs from the conformance case `{found.case}`, rounded; "
            "the value in the comment was computed by lossreg (NumPy, float32) when this page was built.\n")


# --- pages ------------------------------------------------------------------------------------


def family(spec: LossSpec) -> str:
    """The group a loss is listed under: its module within the built-in catalogue or its plugin."""
    module = spec.function.__module__.rsplit(".", 1)[-1]
    return module if spec.plugin == "lossreg" else f"{module} (plugin {spec.plugin})"


def option_meaning(spec: LossSpec, option: str, doc: Doc) -> str:
    return doc.args.get(option) or COMMON_OPTIONS.get(option, "")


def loss_page(spec: LossSpec, cases: list[Any], reports: list[tuple[str, dict[str, Any]]],
              links: dict[str, str], plot: str, plot_missing: str, kernels: Iterable[Any] = ()) -> str:
    doc = parse_docstring(inspect.getdoc(spec.function) or "")
    out = [f"# {spec.class_name}", "", f"`lossreg.{spec.name}` · `lossreg.{spec.class_name}` · "
           f"family **{family(spec)}**", "", markdown(doc.summary, links), ""]
    if doc.formulas:
        for formula in doc.formulas:
            out += ["$$", formula, "$$", ""]
    elif doc.fallback_formulas:
        out += ["$$", r"\quad ".join(unicode_tex(f) for f in doc.fallback_formulas), "$$", "",
                "*(read from the docstring's plain-text formula: the loss has no `$$ ... $$` formula)*", ""]
    if doc.notes:
        out += [markdown(doc.notes, links), ""]
    out += ["## Shapes", "", f"Arrays, in order: {', '.join(f'`{n}`' for n in spec.inputs)}; "
            f"differentiable: {', '.join(f'`{n}`' for n in spec.differentiable)}.", ""]
    if doc.shapes:
        out += [markdown(doc.shapes, links), ""]
    out += ["## Options", ""]
    if spec.options:
        out += ['<div class="options" markdown>', "", "| option | default | meaning |", "|---|---|---|"]
        for option, default in spec.options.items():
            meaning = option_meaning(spec, option, doc) or "*(not documented)*"
            out.append(f"| `{option}` | `{default!r}` | {_escape(markdown(meaning, links))} |")
        out += ["", "</div>"]
    else:
        out.append("None.")
    adapters = [f"- {what}: `lossreg.{module}.{spec.class_name}`" for module, what in
                (("torch", "`torch.nn.Module`"), ("keras", "Keras 3 loss")) if importlib.util.find_spec(f"lossreg.{module}")]
    out += ["", "## Names", "", f"- function: `lossreg.{spec.name}`", f"- class: `lossreg.{spec.class_name}`", *adapters,
            f"- aliases for `lossreg.get`: {', '.join(f'`{a}`' for a in spec.aliases) or 'none'}",
            *([f"- not its names (`lossreg.get` refuses them and says why): "
               + "; ".join(f"`{name}`: {_escape(meaning)}" for name, meaning in spec.false_friends.items())]
              if spec.false_friends else []),
            f"- plugin: `{spec.plugin}`", f"- reference: {spec.reference or 'none given'}",
            f"- kernels (faster paths for one library, checked against every case): "
            f"{', '.join(k.backend + (f' (`{k.name}`)' if k.name != k.backend else '') for k in kernels) or 'none'}",
            f"- conformance cases: {len(cases)}", ""]
    out += ["## Equivalents", "", "| library | equivalent | how the arguments map |", "|---|---|---|"]
    for key, found in equivalents.equivalents(spec).items():
        page = links.get(f"coming-from-{key}", "")
        library = f"[{equivalents.LIBRARIES[key]}]({page})" if page else equivalents.LIBRARIES[key]
        out.append(f"| {library} | `{found.name}` | {found.mapping} |" if found else f"| {library} | none | |")
    out += ["", "## Examples", "", examples(spec, cases), "## Curve", ""]
    if plot:
        out += [f"![{spec.class_name} and its gradient]({plot}){{ loading=lazy }}", "",
                "Values from lossreg on NumPy float64 (`reduction=\"none\"`, one loss per point); gradients by "
                "central finite differences of those values.", ""]
    else:
        out += [plot_missing, ""]
    out += ["## Conformance", "", "Each cell: the outcome over every case of this loss on that backend and dtype, "
            "through the portable definition and every kernel; the largest error as a fraction of the "
            "dtype's tolerance.", "", loss_matrix(spec.name, reports)]
    return "\n".join(out)


def catalogue_page(specs: list[LossSpec], thumbs: dict[str, str], pages: dict[str, str]) -> str:
    groups: dict[str, list[LossSpec]] = {}
    for spec in specs:
        groups.setdefault(family(spec), []).append(spec)
    out = ["# Catalogue", "", f"{len(specs)} losses, grouped by family; each curve is the loss against the error, "
           "margin or logit, with the default options (the loss's page has the gradient and more option values).", ""]
    for name, members in groups.items():
        out += [f"## {name}", "", "| curve | loss | what it is |", "|---|---|---|"]
        for spec in members:
            thumb = f"![]({thumbs[spec.name]})" if spec.name in thumbs else "no plot"
            doc = parse_docstring(inspect.getdoc(spec.function) or "")
            words = re.split(r"[:,]?\s*``", doc.summary, maxsplit=1)[0].rstrip(":. ")
            formula = doc.formulas[0] if doc.formulas else " ".join(unicode_tex(f) for f in doc.fallback_formulas)
            math = f"<br>${' '.join(formula.split())}$".replace("|", r"\vert ") if formula else ""
            out.append(f"| {thumb} | [{spec.class_name}]({pages[spec.name]})<br>`{spec.name}` | "
                       f"{_escape(markdown(words))}{math} |")
        out.append("")
    return "\n".join(out)


def robust_page(drawn: list[str], pages: dict[str, str], missing: list[str]) -> str:
    names = ", ".join(f"[`{n}`]({pages[n]})" for n in drawn)
    out = ["# Robust regression losses", "",
           f"{names} against the error `d = input − target`, with default options, on one axis. The "
           "gradient panel is what an outlier does to training: MSE's pull grows with the error, L1's is "
           "constant, Huber and SmoothL1 switch from the first to the second at `delta` / `beta` (with the "
           "defaults δ = β = 1 the two coincide: `huber_loss(delta=δ) = δ · smooth_l1_loss(beta=δ)`).", "",
           "![Robust regression losses and their gradients](img/robust.png)", ""]
    if missing:
        out += [f"Not drawn (not registered in this build: install `plugins/lossreg-extras` and build with "
                f"`--plugins`): {', '.join(f'`{n}`' for n in missing)}.", ""]
    return "\n".join(out)


def coming_from_page(key: str, specs: list[LossSpec], pages: dict[str, str]) -> str:
    title = equivalents.LIBRARIES[key]
    intro = {
        "torch": "lossreg's losses are `torch.nn`'s: the class names, the functional names of "
                 "`torch.nn.functional`, the argument order, option names and defaults are torch's, and on "
                 "torch tensors the value and gradient are torch's. What differs is listed on the home page's "
                 "*Errors and edge cases*: unequal shapes are an error rather than a broadcast, and options "
                 "are validated.",
        "keras": "Keras losses take `(y_true, y_pred)`; lossreg takes `(input, target)` as torch, i.e. "
                 "`(y_pred, y_true)`. Keras reduces over the last axis first and puts classes on the last axis; "
                 "lossreg follows torch (classes on axis 1, `reduction=\"mean\"` over every element).",
        "optax": "optax's losses return one value per example (reduce them yourself); lossreg reduces with "
                 "`reduction=\"mean\"` unless given `reduction=\"none\"`. optax puts classes on the last axis, "
                 "lossreg on axis 1 as torch. lossreg runs on JAX arrays directly, under `jit`, `grad` and `vmap`.",
    }[key]
    out = [f"# Coming from {title}", "", intro, "", f"| {title} | lossreg | how the arguments map |", "|---|---|---|"]
    rows = []
    for spec in specs:
        found = equivalents.equivalents(spec)[key]
        if found:
            rows.append((found.name, f"[`{spec.class_name}`]({pages[spec.name]})", found.mapping))
    out += [f"| `{a}` | {b} | {c} |" for a, b, c in sorted(rows)]
    absent = [spec for spec in specs if equivalents.equivalents(spec)[key] is None]
    if absent:
        listed = ", ".join(f"[`{s.class_name}`]({pages[s.name]})" for s in absent)
        out += ["", f"No {title} equivalent: {listed}."]
    return "\n".join(out) + "\n"


def cli_page(parser: Any) -> str:
    """The CLI reference, walked from the argument parser itself."""
    import argparse

    out = ["# Command line", "", (parser.description or "").strip(), "",
           "Generated from the argument parser (`lossreg.cli.build_parser`).", ""]

    def walk(p: argparse.ArgumentParser, depth: int) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    out.extend([f"{'#' * depth} `{sub.prog}`", "", helps.get(name) or "", "",
                                "```text", sub.format_usage().strip(), "```", ""])
                    rows = [a for a in sub._actions if not isinstance(a, (argparse._HelpAction,
                                                                          argparse._SubParsersAction))]
                    if rows:
                        out.extend(["| argument | default | meaning |", "|---|---|---|"])
                        for a in rows:
                            flag = ", ".join(a.option_strings) or a.dest
                            default = "" if a.default in (None, False, argparse.SUPPRESS) or not a.option_strings \
                                else f"`{a.default}`"
                            out.append(f"| `{flag}` | {default} | {_escape(a.help or '')} |")
                        out.append("")
                    walk(sub, depth + 1)

    walk(parser, 2)
    return "\n".join(out)


def readme_sections(readme: str, titles: list[str], top: str) -> str:
    """The README's ``##`` sections of these titles, one level up, under the title ``top``."""
    parts = re.split(r"(?m)^## ", readme)
    chosen = [part for part in parts[1:] if part.splitlines()[0].strip() in titles]
    found = {part.splitlines()[0].strip() for part in chosen}
    if found != set(titles):  # a renamed README section: say so rather than build an empty page
        raise ValueError(f"README.md has no section(s) {sorted(set(titles) - found)} for the page {top!r}; "
                         "update the titles in lossreg/docsite/__init__.py")
    body = "\n".join("## " + part for part in sorted(chosen, key=lambda p: titles.index(p.splitlines()[0].strip())))
    if len(chosen) == 1:  # one section: it is the page
        body = re.sub(r"(?m)^#(#+) ", r"\1 ", body)
        return body
    return f"# {top}\n\n{body}"


def reports_page(reports: list[tuple[str, dict[str, Any]]]) -> str:
    out = ["# Conformance reports", "", "The reports committed in `conformance/results/` (made by "
           "`lossreg conformance --json`); each loss's page shows its own rows.", ""]
    for file, report in reports:
        versions = report.get("versions", {})
        versions = versions if isinstance(versions, dict) else {}
        out += [f"## {file}", "", f"- date: {report.get('date', '?')}",
                f"- command: `{' '.join(report.get('command', []))}`",
                f"- machine: {report.get('machine', '?')} "
                + " ".join(f"{k}: {v}" for k, v in report.get("device_names", {}).items()),
                f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
                f"- summary: {report.get('summary', {})}", "", "```text", report.get("matrix", "").rstrip(), "```", ""]
    if not reports:
        out.append("None committed.")
    return "\n".join(out)
