"""The documentation site builds without warnings; the packaging files agree.

``test_site_builds_without_warnings`` runs ``python -m sphinx -W`` on a copy of
``docs/`` (as a fresh clone would, with no earlier build output), including the
gallery, which runs every example in its fast mode: about a minute on two
cores. It is skipped when the ``docs`` extra is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sktopk
from sktopk.reproduce.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOCS_EXTRA = ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser")
THEME = "pydata_sphinx_theme"
# Written by a build into docs/ (ignored by git); a fresh clone has none of them.
BUILD_OUTPUT = ("_build", "auto_examples", "generated", "_gallery_src",
                "_generated_*.rst", "sg_execution_times.rst")  # fmt: skip


def _have_docs_extra() -> bool:
    return all(importlib.util.find_spec(m) for m in (*DOCS_EXTRA, THEME))


needs_docs_extra = pytest.mark.skipif(
    not _have_docs_extra(),
    reason="needs the docs extra: pip install -e '.[docs]'",
)


def _docs_helpers():
    sys.path.insert(0, str(DOCS / "sphinxext"))
    try:
        return importlib.import_module("sktopk_docs")
    finally:
        sys.path.remove(str(DOCS / "sphinxext"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the site from a clean copy of docs/ and return the HTML folder."""
    clone = tmp_path_factory.mktemp("clone")
    shutil.copytree(DOCS, clone / "docs", ignore=shutil.ignore_patterns(*BUILD_OUTPUT))
    for name in ("sktopk", "datasets", "examples", "CHANGELOG.md"):
        (clone / name).symlink_to(REPO / name)
    html = clone / "html"
    env = {**os.environ, "MPLBACKEND": "Agg", "SKTOPK_EXAMPLES_FAST": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
         "-b", "html", str(clone / "docs"), str(html)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-6000:]
    return html


@needs_docs_extra
def test_site_builds_without_warnings(site):
    for page in ("index", "api", "cli", "reproduction", "install", "changelog"):
        assert (site / f"{page}.html").is_file(), page


@needs_docs_extra
@pytest.mark.parametrize(
    "script", sorted(p.name for p in (REPO / "examples").glob("*.py"))
)
def test_gallery_page_shows_the_example_figures(site, script):
    stem = script[:-3]
    page = (site / "auto_examples" / f"{stem}.html").read_text(encoding="utf-8")
    assert "Fast mode" in page or "Saved" in page, "the page shows the script's output"
    if "savefig" in (REPO / "examples" / script).read_text(encoding="utf-8"):
        image = f"sphx_glr_{stem}_001.png"
        assert image in page
        assert (site / "_images" / image).is_file()


@needs_docs_extra
def test_every_public_name_has_a_page(site):
    helpers = _docs_helpers()
    documented = {module for module, *_ in helpers.API}
    for info in pkgutil.iter_modules(sktopk.__path__):
        name = f"sktopk.{info.name}"
        if info.name.startswith("_") or name in documented:
            continue
        public = getattr(importlib.import_module(name), "__all__", [])
        assert set(public) <= set(sktopk.__all__), f"{name} is not in the API pages"
    for module, _, _, groups in helpers.API:
        if importlib.util.find_spec(module) is None:
            continue
        for _, names in helpers.api_groups(module, groups):
            for name in names:
                assert (site / "generated" / f"{module}.{name}.html").is_file(), name


@needs_docs_extra
def test_every_loss_and_parameter_is_in_one_table(site):
    from sktopk.losses import REGISTRY

    losses = (site / "user_guide" / "losses.html").read_text(encoding="utf-8")
    for name in REGISTRY:
        assert f'<span class="pre">{name}</span>' in losses, name
    params = (site / "user_guide" / "parameters.html").read_text(encoding="utf-8")
    for estimator in _estimators():
        for name in inspect.signature(estimator).parameters:
            assert f'<span class="pre">{name}</span>' in params, name


def _estimators():
    return [
        getattr(sktopk, n)
        for n in sktopk.__all__
        if inspect.isclass(getattr(sktopk, n))
    ]


@pytest.mark.parametrize("estimator", _estimators(), ids=lambda e: e.__name__)
def test_every_estimator_parameter_is_documented(estimator):
    numpydoc = pytest.importorskip("numpydoc.docscrape", reason="needs numpydoc")
    documented = set()
    for param in numpydoc.ClassDoc(estimator)["Parameters"]:
        documented |= {n.strip() for n in param.name.split(",")}
    params = set(inspect.signature(estimator).parameters)
    assert params <= documented, sorted(params - documented)


def test_docstrings_point_at_the_guide_not_at_repository_files():
    for path in (REPO / "sktopk").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(method|design)\.md\b", text), path


def _code_blocks():
    blocks = []
    for page in sorted(DOCS.glob("*.rst")) + sorted(
        (DOCS / "user_guide").glob("*.rst")
    ):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(
            r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text
        ):
            blocks.append(
                pytest.param(match.group(1), id=f"{page.stem}-{match.start()}")
            )
    return blocks


@pytest.mark.parametrize("code", _code_blocks())
def test_documentation_code_runs(code, capsys):
    lines = [line[3:] for line in code.splitlines()]
    exec(compile("\n".join(lines), "documentation block", "exec"), {})


def test_version_agrees_everywhere(capsys):
    version = sktopk.__version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sktopk {version}"
    citation = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(rf"^version: {re.escape(version)}$", citation, re.M)
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(version)}\b", changelog, re.M)


def test_license_and_citation_files():
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "BSD 3-Clause License" in license_text
    assert "Copyright (c) The sktopk developers" in license_text
    yaml = pytest.importorskip("yaml", reason="needs PyYAML")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["license"] == "BSD-3-Clause"
    titles = {ref["title"] for ref in citation["references"]}
    assert "ST_k: A Scalable Module for Solving Top-k Problems" in titles
    assert "Smooth Loss Functions for Deep Top-k Classification" in titles


def test_readme_names_the_cpu_only_torch_index():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
