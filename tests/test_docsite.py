"""The documentation site: built strictly from the registry, a page per loss, and looked at in a browser.

One strict build of the built-in catalogue (about 10 s of CPU) serves the checks on its pages;
a second, of the same project with a broken link and a loss page removed, must fail. The browser
check opens a loss page in headless Chromium (Debian's ``chromium``; skipped, saying so, where
it is not installed) and reads back whether MathJax rendered the formula and the plot loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("matplotlib", reason="the docs extra is not installed: pip install -e '.[docs]'")

import lossreg  # noqa: E402
from lossreg.docsite import equivalents, pages, plots  # noqa: E402

BUILTIN = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]
ENV = {**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1", "MPLBACKEND": "Agg"}


def _docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lossreg.cli", "docs", *args], env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The strict build of the built-in catalogue, made once per session even under pytest-xdist."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build(tmp_path_factory.mktemp("docs"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, common to its workers
    import fcntl

    with open(shared / "docsite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds; the others wait, then reuse it
        out = shared / "docsite"
        if not (out / "built").exists():
            _build(out)
            (out / "built").touch()
    return out


def _build(out: Path) -> Path:
    done = _docs("build", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_strict_build_gives_every_registered_loss_a_page(site: Path) -> None:
    built = {p.stem for p in (site / "site" / "losses").glob("*.html")}
    assert built == set(BUILTIN)
    nav = json.loads((site / "mkdocs.yml").read_text())["nav"]
    assert all(f"losses/{name}.md" in json.dumps(nav) for name in BUILTIN)


def test_a_loss_page_has_formula_options_equivalents_examples_curve_and_matrix(site: Path) -> None:
    html = (site / "site" / "losses" / "huber_loss.html").read_text(encoding="utf-8")
    assert re.search(r'<div class="arithmatex">\\\[.*\\delta', html, flags=re.S)  # the docstring's LaTeX
    assert "<code>delta</code>" in html and "where the quadratic part turns linear" in html
    assert "keras.losses.Huber" in html and "optax.losses.huber_loss" in html
    assert html.count('class="tabbed-block"') == len(pages.LIBRARIES)
    assert (site / "site" / "losses" / "img" / "huber_loss.png").stat().st_size > 10_000
    assert 'src="img/huber_loss.png"' in html
    assert "passed (" in html and "<td>jax_jit</td>" in html  # from conformance/results/cpu.json


def test_overview_pages_are_built(site: Path) -> None:
    root = site / "site"
    catalogue = (root / "catalogue.html").read_text(encoding="utf-8")
    assert all(f"losses/{name}.html" in catalogue for name in BUILTIN)
    assert catalogue.count('src="img/thumbs/') == len(BUILTIN)
    assert "robust.png" in (root / "robust-regression.html").read_text(encoding="utf-8")
    cli = (root / "reference" / "cli.html").read_text(encoding="utf-8")
    assert all(f"lossreg {command}" in cli for command in ("list", "plugins", "conformance", "bench", "docs"))
    assert "lossreg_losses" in (root / "guide" / "plugins.html").read_text(encoding="utf-8")
    training = (root / "guide" / "training.html").read_text(encoding="utf-8")
    for image in re.findall(r'src="\.\./(repo/[^"]+)"', training):  # the README's pictures, copied in
        assert (root / image).stat().st_size > 0
    assert "keras.losses.SparseCategoricalCrossentropy" in (root / "coming-from" / "keras.html").read_text()


def test_a_broken_link_or_a_missing_loss_page_fails_the_strict_build(site: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(site, project, ignore=shutil.ignore_patterns("site"))
    page = project / "docs" / "catalogue.md"
    page.write_text(page.read_text() + "\n[gone](losses/no_such_loss.md)\n")
    (project / "docs" / "losses" / "mse_loss.md").unlink()
    code = "import sys, pathlib; from lossreg.docsite import render; render(pathlib.Path(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(project)], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0 and "BuildError" in done.stderr
    assert "no_such_loss.md" in done.stderr and "mse_loss.md" in done.stderr


def test_every_builtin_loss_documents_its_formula_and_options() -> None:
    for name in BUILTIN:
        spec = lossreg.spec(name)
        doc = pages.parse_docstring(inspect.getdoc(spec.function) or "")
        assert doc.formulas, f"{name}: no $$ ... $$ formula in its docstring"
        assert doc.shapes, f"{name}: no 'Shapes:' in its docstring"
        undocumented = [o for o in spec.options if not pages.option_meaning(spec, o, doc)]
        assert not undocumented, f"{name}: options without a meaning (docstring Args:): {undocumented}"
        assert set(doc.args) <= set(spec.options), f"{name}: Args: names options it does not have"


def test_every_builtin_loss_has_a_curve_from_its_own_values() -> None:
    for name in BUILTIN:
        recipe, why = plots.recipe_for(lossreg.spec(name))
        assert recipe is not None, why
        assert plots.curves(lossreg.spec(name), recipe), f"{name}: no curve could be computed"


def test_curves_are_the_loss_and_its_derivative() -> None:
    spec = lossreg.spec("huber_loss")
    (label, t, value, grad), *_ = plots.curves(spec, plots.RECIPES["huber_loss"])
    assert label == "delta=0.5"
    np.testing.assert_allclose(value, np.where(abs(t) < 0.5, 0.5 * t**2, 0.5 * (abs(t) - 0.25)), atol=1e-12)
    away = abs(abs(t) - 0.5) > 1e-3  # the finite difference straddles the kink
    np.testing.assert_allclose(grad[away], np.clip(t, -0.5, 0.5)[away], atol=1e-6)


def test_a_plugin_loss_without_recipe_or_latex_still_gets_a_curve_and_a_formula() -> None:
    @lossreg.define_loss(class_name="CharbonnierDocLoss", differentiable=("input", "target"))
    def charbonnier_doc_loss(input, target, /, *, delta=1.0, reduction="mean"):  # type: ignore[no-untyped-def]
        """Pseudo-Huber loss: ``ℓ_i = δ² (√(1 + (d_i / δ)²) - 1)``, then reduced."""
        from lossreg import toolkit

        xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_doc_loss", input, target, reduction)
        d = x - y
        return toolkit.reduce(xp, delta**2 * (xp.sqrt(1 + (d / delta) ** 2) - 1), reduction, dtype)

    spec = charbonnier_doc_loss.spec
    recipe, _ = plots.recipe_for(spec)
    assert recipe is not None and recipe.xlabel.startswith("error")
    (_, t, value, _), *_ = plots.curves(spec, recipe)
    np.testing.assert_allclose(value, 0.25 * (np.sqrt(1 + (t / 0.5) ** 2) - 1), atol=1e-12)  # delta halved first
    page = pages.loss_page(spec, [], [], {}, "img/x.png", "")
    assert r"\sqrt" in page and "no `$$ ... $$` formula" in page and "(not documented)" in page


MAPPINGS = """
import importlib, json, os, sys
import numpy as np, keras, optax, lossreg
missing = []
for full in json.loads(sys.argv[1]):
    module, _, attr = full.rpartition(".")
    if not hasattr(importlib.import_module(module), attr):
        missing.append(full)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
logits, labels, bits = rng.normal(size=(4, 5)), np.array([0, 3, 1, 4]), rng.uniform(size=(4, 3)).round()
p = rng.dirichlet(np.ones(5), size=4)
q = p[::-1]
rate, counts = rng.uniform(0.5, 2, size=(4, 3)), rng.integers(0, 4, size=(4, 3)).astype(float)
L, K, O = lossreg, keras.losses, optax.losses
pairs = {  # what the "coming from" pages say is equal
    "optax squared_error": (O.squared_error(x, y), L.mse_loss(x, y, reduction="none")),
    "optax huber_loss": (O.huber_loss(x, y, delta=0.7), L.huber_loss(x, y, delta=0.7, reduction="none")),
    "optax huber_loss / beta": (O.huber_loss(x, y, delta=0.7) / 0.7, L.smooth_l1_loss(x, y, beta=0.7, reduction="none")),
    "optax sigmoid_binary_cross_entropy": (O.sigmoid_binary_cross_entropy(x, bits),
                                           L.binary_cross_entropy_with_logits(x, bits, reduction="none")),
    "optax softmax_cross_entropy_with_integer_labels": (O.softmax_cross_entropy_with_integer_labels(logits, labels),
                                                        L.cross_entropy(logits, labels, reduction="none")),
    "optax softmax_cross_entropy": (O.softmax_cross_entropy(logits, p), L.cross_entropy(logits, p, reduction="none")),
    "optax kl_divergence": (O.kl_divergence(np.log(q), p), L.kl_div(np.log(q), p, reduction="none").sum(-1)),
    "optax cosine_distance": (O.cosine_distance(x, y), L.cosine_embedding_loss(x, y, np.ones(4), reduction="none")),
    # Close, not equal: equal with eps 0 at p = 2 (optax adds eps under the root, torch to each difference).
    "optax triplet_margin_loss": (O.triplet_margin_loss(x, y, y[::-1], norm_degree=2, eps=0.0),
                                  L.triplet_margin_loss(x, y, y[::-1].copy(), eps=0.0, reduction="none")),
    "keras MeanSquaredError": (K.MeanSquaredError()(y, x), L.mse_loss(x, y)),
    "keras MeanAbsoluteError": (K.MeanAbsoluteError()(y, x), L.l1_loss(x, y)),
    "keras Huber": (K.Huber(delta=0.7)(y, x), L.huber_loss(x, y, delta=0.7)),
    "keras BinaryCrossentropy": (K.BinaryCrossentropy(from_logits=True)(bits, x), L.binary_cross_entropy_with_logits(x, bits)),
    "keras BinaryCrossentropy, multilabel": (K.BinaryCrossentropy(from_logits=True)(bits, x),
                                             L.multilabel_soft_margin_loss(x, bits)),
    "keras SparseCategoricalCrossentropy": (K.SparseCategoricalCrossentropy(from_logits=True)(labels, logits),
                                            L.cross_entropy(logits, labels)),
    "keras CategoricalCrossentropy": (K.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(p, logits),
                                      L.cross_entropy(logits, p, label_smoothing=0.1)),
    "keras KLDivergence": (K.KLDivergence()(p, q), L.kl_div(np.log(q), p, reduction="batchmean")),
    "keras Poisson": (K.Poisson()(counts, rate), L.poisson_nll_loss(rate, counts, log_input=False, eps=1e-7)),
    "keras CosineSimilarity": (K.CosineSimilarity()(y, x), L.cosine_embedding_loss(x, y, np.ones(4)) - 1),
}
unequal = [k for k, (a, b) in pairs.items() if not np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-4, atol=1e-5)]
print(json.dumps({"missing": missing, "unequal": unequal}))
"""


def test_equivalents_name_real_keras_and_optax_losses_that_agree() -> None:
    for needed in ("keras", "optax", "jax"):  # imported in the subprocess, where Keras gets its backend
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} is not installed")
    names = sorted({e.name for table in (equivalents.KERAS, equivalents.OPTAX) for e in table.values()})
    done = subprocess.run([sys.executable, "-c", MAPPINGS, json.dumps(names)], capture_output=True, text=True,
                          env={**ENV, "KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"missing": [], "unequal": []}
    for spec in map(lossreg.spec, BUILTIN):
        torch_name = equivalents.torch_equivalent(spec)
        assert torch_name is not None
        module, _, attr = torch_name.name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr)


PROBE = """
<script>
window.addEventListener("load", async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const img = document.querySelector('img[src$="huber_loss.png"]');
  const math = document.querySelectorAll("mjx-container svg");
  const box = math.length ? math[0].getBoundingClientRect() : {width: 0, height: 0};
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({img: img ? img.naturalWidth : -1, math: math.length,
                                    width: box.width, height: box.height});
  document.body.appendChild(out);
});
</script>
"""


def test_a_loss_page_renders_in_a_real_browser(site: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    page = site / "site" / "losses" / "huber_loss.html"
    # The page as built plus a script that reports back, written outside the site (which other
    # tests, under xdist at the same time, count the pages of) and resolving its links there.
    html = page.read_text(encoding="utf-8")
    assert html.count("<head>") == 1
    html = html.replace("<head>", f'<head><base href="{page.parent.as_uri()}/">').replace("</body>", PROBE + "</body>")
    probe = tmp_path / "huber_loss_probe.html"
    probe.write_text(html, encoding="utf-8")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout)
    assert found, f"the page did not finish loading: {done.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["img"] > 0, "the curve image did not load"
    assert result["math"] >= 1 and result["width"] > 0 and result["height"] > 0, "MathJax rendered no formula"


def test_the_matrix_reads_every_report_gpu_ones_included(tmp_path: Path) -> None:
    def outcome(backend: str, device: str, dtype: str, status: str, reason: str = "") -> dict:
        return {"loss": "mse_loss", "backend": backend, "device": device, "dtype": dtype, "path": "portable",
                "status": status, "worst": 0.25, "reason": reason, "failures": ["case x: off by 3"] * (status == "failed")}

    (tmp_path / "gpu-2026-11-30").mkdir()
    (tmp_path / "gpu-2026-11-30" / "report.json").write_text(json.dumps({
        "command": ["lossreg", "conformance", "--device", "cuda"], "dtypes": ["bfloat16", "float32"],
        "outcomes": [outcome("torch", "cuda", "bfloat16", "passed"), outcome("torch", "cuda", "float32", "failed"),
                     outcome("cupy", "cuda:0", "bfloat16", "unsupported", "CuPy has no bfloat16")]}))
    (tmp_path / "notes.json").write_text("[1, 2]")  # not a report: ignored
    reports = pages.load_reports(tmp_path)
    assert [file for file, _ in reports] == ["gpu-2026-11-30/report.json"]
    table = pages.loss_matrix("mse_loss", reports)
    assert "| torch@cuda | passed (0.25 of tol.; portable) | **failed**: portable: case x: off by 3 |" in table
    assert "| cupy@cuda:0 | unsupported: CuPy has no bfloat16 | not run |" in table


@pytest.mark.parametrize("library", ["NumPy", "PyTorch", "torch.nn.Module", "JAX", "Dask", "array-api-strict"])
def test_the_examples_run_and_give_the_value_shown(library: str) -> None:
    checked = 0
    for name in BUILTIN:
        spec = lossreg.spec(name)
        found = pages.example(spec, [c for c in lossreg.registry().cases if c.loss == name])
        assert found is not None, f"{name}: no example"
        code = dict(found.snippets)[library]
        *setup, call = code.splitlines()
        pytest.importorskip(setup[0].split()[1])  # the library the tab is about (not CuPy here)
        scope: dict = {}
        exec("\n".join(setup) + f"\nresult = {call}", scope)
        np.testing.assert_allclose(float(scope["result"]), found.value, rtol=2e-5, atol=1e-6, err_msg=f"{name}:\n{code}")
        checked += 1
    assert checked == len(BUILTIN)


def test_docs_build_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    done = _docs("build", "--out", str(tmp_path))
    assert done.returncode == 1 and "not emptying it" in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
