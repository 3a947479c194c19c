"""The documentation site, generated from the registry: ``lossreg docs build`` / ``lossreg docs serve``.

:func:`generate` writes a mkdocs project (``mkdocs.yml`` and ``docs/``, markdown and plots) into a
build folder; :func:`build` renders it with mkdocs and the material theme into ``site/``, strict by
default (a warning — a broken link, a page left out of the navigation — fails the build). Every
registered loss, plugins' included when they are loaded, gets a page; nothing is written per loss.
Needs the ``docs`` extra (mkdocs-material, mkdocstrings[python], matplotlib).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..registry import LossSpec, registry, reload
from . import equivalents, pages, plots

ROOT = Path(__file__).resolve().parents[2]  # the repository, in a source checkout
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"
MATHJAX_CONFIG = """\
window.MathJax = {
  tex: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"}
};
document$.subscribe(() => {
  if (window.MathJax.typesetPromise) {
    MathJax.startup.output.clearCache(); MathJax.typesetClear(); MathJax.texReset(); MathJax.typesetPromise();
  }
});
"""
EXTRA_CSS = """\
.md-typeset table:not([class]) { font-size: .68rem; }
.md-typeset table:not([class]) td img { max-width: 180px; }
.md-typeset .options td:first-child code { white-space: nowrap; }
.md-grid { max-width: 72rem; }
"""


# The README sections the site's guide pages are made of (a renamed section fails the build).
USAGE_SECTIONS = ["1. Call a loss with any array library", "2. Losses from plugins",
                  "3. The conformance suite, per backend", "Kernels and speed", "Errors and edge cases"]
FROM_README = ("index.md", "guide/usage.md", "guide/training.md", "guide/plugins.md")
TRAINING_SECTIONS = ["Inside training stacks", "Inside torch.compile, torch.func, meta tensors and CUDA graphs"]


GENERATED_MARK = '"site_name": "lossreg"'  # in the mkdocs.yml it writes: the folder may be emptied again


@dataclass
class Generated:
    root: Path  # holds mkdocs.yml
    losses: list[str]  # the losses that got a page
    plots: dict[str, str]  # loss -> why it has no plot (absent when it has one)


def _readme() -> str:
    """The README: from the checkout, else the installed package's long description (the same text)."""
    path = ROOT / "README.md"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return str(metadata.metadata("lossreg").get_payload() or "")  # type: ignore[attr-defined]


def _mathjax(assets: Path) -> str:
    """MathJax for the pages: a local copy from the ``django-static-mathjax`` package, else the CDN."""
    try:
        # the django-static-mathjax distribution: MathJax 3 as package data
        import mathjax  # type: ignore[import-untyped, import-not-found, unused-ignore]

        found = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    except ImportError:
        return MATHJAX_CDN
    if not found.is_file():
        return MATHJAX_CDN
    shutil.copy(found, assets / "tex-svg.js")
    return "assets/tex-svg.js"


def generate(out: Path, reports: Path | None = None, cli: argparse.ArgumentParser | None = None) -> Generated:
    """Write the mkdocs project for the losses registered now into ``out`` (emptied first).

    ``cli``: the ``lossreg`` argument parser, for the command-line reference (``lossreg docs``
    passes it; without it the site has no such page).
    """
    reg = registry()
    specs = [reg.specs[name] for name in sorted(reg.specs, key=lambda n: (pages.family(reg.specs[n]), n))]
    if out.exists() and any(out.iterdir()):
        made = out / "mkdocs.yml"
        if not (made.is_file() and GENERATED_MARK in made.read_text(encoding="utf-8")):
            raise BuildError(f"{out} is not empty and not a folder lossreg docs made; not emptying it")
        shutil.rmtree(out)
    docs = out / "docs"
    for folder in ("losses/img", "img/thumbs", "assets", "coming-from", "guide", "reference"):
        (docs / folder).mkdir(parents=True, exist_ok=True)
    if reports is None:  # the checkout lossreg runs from, else the clone the command runs in
        reports = next((p for p in (ROOT / "conformance" / "results", Path.cwd() / "conformance" / "results")
                        if p.is_dir()), None)
    found_reports = pages.load_reports(reports)

    # Links are relative to the page that holds them; these are from docs/losses/*.md.
    from_loss = {s.name: f"{s.name}.md" for s in specs}
    from_loss.update({f"coming-from-{k}": f"../coming-from/{k}.md" for k in equivalents.LIBRARIES})
    from_top = {s.name: f"losses/{s.name}.md" for s in specs}
    from_sub = {s.name: f"../losses/{s.name}.md" for s in specs}

    no_plot: dict[str, str] = {}
    thumbs: dict[str, str] = {}
    for spec in specs:
        recipe, why = plots.recipe_for(spec)
        plot = ""
        if recipe is not None:
            plots.plot_loss(spec, recipe, docs / "losses" / "img" / f"{spec.name}.png")
            plots.plot_thumbnail(spec, recipe, docs / "img" / "thumbs" / f"{spec.name}.png")
            plot, thumbs[spec.name] = f"img/{spec.name}.png", f"img/thumbs/{spec.name}.png"
        else:
            no_plot[spec.name] = why
        cases = [c for c in reg.cases if c.loss == spec.name]
        (docs / "losses" / f"{spec.name}.md").write_text(
            pages.loss_page(spec, cases, found_reports, from_loss, plot, why,
                            [k for (loss, _), ks in reg.kernels.items() if loss == spec.name for k in ks]),
            encoding="utf-8")

    by_name = {s.name: s for s in specs}
    drawn = plots.plot_robust(by_name, docs / "img" / "robust.png")
    missing = [n for n in plots.ROBUST if n not in drawn]
    readme = _readme()
    files = {
        "index.md": _home(readme, specs, from_top),
        "catalogue.md": pages.catalogue_page(specs, thumbs, from_top),
        "robust-regression.md": pages.robust_page(drawn, from_top, missing),
        "guide/usage.md": pages.readme_sections(readme, USAGE_SECTIONS, "Using lossreg"),
        "guide/training.md": pages.readme_sections(readme, TRAINING_SECTIONS, "In training stacks"),
        "guide/plugins.md": pages.readme_sections(readme, ["Writing a plugin"], "Writing a plugin") + _doc_conventions(),
        "reference/api.md": _api_page(),
        "reference/conformance.md": pages.reports_page(found_reports),
    }
    if cli is not None:
        files["reference/cli.md"] = pages.cli_page(cli)
    for key in equivalents.LIBRARIES:
        files[f"coming-from/{key}.md"] = pages.coming_from_page(key, specs, from_sub)
    for name, text in files.items():
        if name in FROM_README:
            text = _repo_links(text, docs, name.count("/"), set(files))
        (docs / name).write_text(text, encoding="utf-8")
    (docs / "assets" / "mathjax-config.js").write_text(MATHJAX_CONFIG, encoding="utf-8")
    (docs / "assets" / "extra.css").write_text(EXTRA_CSS, encoding="utf-8")
    mathjax = _mathjax(docs / "assets")

    families: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        families.setdefault(pages.family(spec), []).append({spec.class_name: f"losses/{spec.name}.md"})
    config = {
        "site_name": "lossreg",
        "site_description": "One catalogue of loss functions for every Array API library",
        "docs_dir": "docs",
        "site_dir": "site",
        "use_directory_urls": False,  # the built site opens from file:// as well
        "strict": True,
        "theme": {"name": "material", "features": ["navigation.sections", "navigation.top", "content.code.copy",
                                                   "content.tabs.link", "search.highlight"],
                  "palette": {"primary": "indigo"}},
        "markdown_extensions": ["admonition", "tables", "attr_list", "md_in_html", {"toc": {"permalink": True}},
                                {"pymdownx.arithmatex": {"generic": True}}, "pymdownx.superfences",
                                {"pymdownx.tabbed": {"alternate_style": True}}, "pymdownx.highlight"],
        "extra_javascript": ["assets/mathjax-config.js", mathjax],
        "extra_css": ["assets/extra.css"],
        "plugins": ["search", {"mkdocstrings": {"handlers": {"python": {"options": {
            "docstring_style": "google", "show_source": False, "heading_level": 2, "show_root_heading": True,
            "members_order": "source", "show_signature_annotations": True, "separate_signature": True,
            "line_length": 88}}}}}],
        "hooks": [str(Path(__file__).with_name("hooks.py"))],
        "validation": {"omitted_files": "warn", "absolute_links": "warn", "unrecognized_links": "warn",
                       "anchors": "warn", "not_found": "warn"},
        "nav": [
            {"Home": "index.md"},
            {"Catalogue": "catalogue.md"},
            {"Losses": [{name: members} for name, members in families.items()]},
            {"Compare": [{"Robust regression losses": "robust-regression.md"}]},
            {"Coming from": [{equivalents.LIBRARIES[k]: f"coming-from/{k}.md"} for k in equivalents.LIBRARIES]},
            {"Guides": [{"Using lossreg": "guide/usage.md"}, {"In training stacks": "guide/training.md"},
                        {"Writing a plugin": "guide/plugins.md"}]},
            {"Reference": [*([{"Command line": "reference/cli.md"}] if cli is not None else []),
                           {"Python API": "reference/api.md"}, {"Conformance reports": "reference/conformance.md"}]},
        ],
    }
    (out / "mkdocs.yml").write_text(json.dumps(config, indent=1), encoding="utf-8")  # JSON is YAML
    return Generated(out, [s.name for s in specs], no_plot)


def _repo_links(text: str, docs: Path, depth: int, pages: set[str]) -> str:
    """The README's links to files of the repository (its example plots): copied into the site."""
    def copy(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if depth == 0 and target in pages:  # a page of the site (the home page's own links)
            return match.group(0)
        source = ROOT / target
        if not source.is_file():  # an installed lossreg without the repository: name the file
            return f"{label} (`{target}` in the repository)"
        (docs / "repo" / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, docs / "repo" / target)
        return f"{label}({'../' * depth}repo/{target})"

    return re.sub(r"(!?\[[^\]]*\])\((?!https?:|#|mailto:)([^)\s]+)\)", copy, text)


def _home(readme: str, specs: list[LossSpec], links: dict[str, str]) -> str:
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    setup = pages.readme_sections(readme, ["Set-up"], "Set-up").replace("# Set-up", "## Set-up", 1)
    plugins = sorted({s.plugin for s in specs})
    return "\n\n".join([
        "# lossreg", intro,
        f"This site documents the {len(specs)} losses registered when it was built (plugins: "
        f"{', '.join(f'`{p}`' for p in plugins)}): start at the [catalogue](catalogue.md), compare the "
        "[robust regression losses](robust-regression.md), or look a name up under *Coming from* "
        "([torch.nn](coming-from/torch.md), [Keras](coming-from/keras.md), [optax](coming-from/optax.md)).",
        setup,
        "## This site\n\n```bash\npip install -e \".[docs]\"\nlossreg docs serve             # http://127.0.0.1:8000\n"
        "lossreg docs build --plugins   # every installed plugin's losses too; site in build/docs/site\n```\n",
    ])


def _doc_conventions() -> str:
    return """

## Your losses on the documentation site

`lossreg docs build --plugins` gives every installed plugin's loss a page. It reads the docstring:

- the first paragraph is the summary;
- a `$$ ... $$` block is the formula, in LaTeX (write the docstring as `r\"\"\"...\"\"\"`); without one,
  the summary's plain-text formula is shown;
- the sentence that starts with `Shapes:` fills the *Shapes* section;
- an `Args:` section (one `name: meaning` per option) fills the options table; `reduction`,
  `weight` and `ignore_index` have a common meaning when not given.

The examples come from the loss's conformance cases, the matrix from the committed reports, and
the curve from a recipe in `lossreg/docsite/plots.py` or, failing that, the first generic layout
(error, logit, probability) the loss accepts.
"""


def _api_page() -> str:
    return "\n\n".join([
        "# Python API", "The registry and the author toolkit, from their docstrings.",
        "::: lossreg.registry.define_loss", "::: lossreg.registry.get", "::: lossreg.registry.spec",
        "::: lossreg.registry.names", "::: lossreg.registry.from_config", "::: lossreg.registry.use_kernels",
        "::: lossreg.registry.LossSpec", "::: lossreg.registry.Kernel", "::: lossreg.backends.Backend",
        "## The author toolkit",
        "::: lossreg.toolkit\n    options:\n      show_root_heading: false\n      heading_level: 3",
    ]) + "\n"


def _config(root: Path, strict: bool, dev_addr: str | None = None) -> Any:
    from mkdocs.config import load_config

    options: dict[str, Any] = {"config_file": str(root / "mkdocs.yml"), "strict": strict}
    if dev_addr:
        options["dev_addr"] = dev_addr
    return load_config(**options)


class BuildError(Exception):
    """A strict build met warnings (printed to stderr as they came)."""


def render(root: Path, strict: bool = True) -> None:
    """Render the mkdocs project in ``root`` to ``root/site``, printing mkdocs's warnings to stderr."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.exceptions import Abort

    log = logging.getLogger("mkdocs")
    if not any(getattr(h, "_lossreg", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._lossreg = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    try:
        mkdocs_build(_config(root, strict))
    except Abort as exc:
        raise BuildError(f"{exc.message} (lossreg docs build --no-strict lets warnings pass)") from None


def build(out: Path, reports: Path | None = None, strict: bool = True,
          cli: argparse.ArgumentParser | None = None) -> Generated:
    """Generate the project into ``out`` and render it to ``out/site``; a warning fails a strict build."""
    generated = generate(out, reports, cli)
    render(out, strict)
    missing = [name for name in registry().specs if not (out / "site" / "losses" / f"{name}.html").is_file()]
    if missing and strict:
        raise BuildError(f"registered losses without a page: {', '.join(sorted(missing))}")
    return generated


def serve(out: Path, reports: Path | None = None, dev_addr: str = "127.0.0.1:8000",
          cli: argparse.ArgumentParser | None = None) -> None:
    from mkdocs.commands.serve import serve as mkdocs_serve

    generate(out, reports, cli)
    mkdocs_serve(str(out / "mkdocs.yml"), dev_addr=dev_addr, strict=False)


def use_plugins(enabled: bool) -> None:
    """Before the registry loads: built-in catalogue only (the default), or every installed plugin."""
    if not enabled:
        os.environ["LOSSREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        from .. import registry as registry_module  # noqa: F401 (the module, lossreg.registry)
        import sys

        if sys.modules["lossreg.registry"]._registry is not None:
            reload()


__all__ = ["build", "generate", "render", "serve", "use_plugins", "BuildError", "Generated"]
