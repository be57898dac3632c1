"""Sphinx configuration of the sktopk documentation.

Build from the repository root with ``python -m sphinx -W docs docs/_build/html``
after ``pip install -e ".[docs]"``. The gallery runs every script of
``examples/`` in its fast mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "sphinxext"))
sys.path.insert(0, str(ROOT))  # the checkout's package, installed or not

import sktopk_docs  # noqa: E402

import sktopk  # noqa: E402

# -- project ------------------------------------------------------------------ #
project = "sktopk"
author = "The sktopk developers"
copyright = "The sktopk developers"
release = sktopk.__version__
version = release

# -- general ------------------------------------------------------------------ #
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_gallery_src", "_generated_*.rst", "Thumbs.db"]
default_role = "literal"
pygments_style = "sphinx"
suppress_warnings = ["config.cache"]  # the gallery's callables are not picklable

# -- API reference ------------------------------------------------------------ #
# The sections are generated from the modules' __all__ (sktopk_docs.API) into a
# file that api.rst includes; autosummary is told to read it for its stubs.
sktopk_docs.write_api(DOCS / "_generated_api.rst")
autosummary_generate = ["api.rst", "_generated_api.rst"]
autodoc_typehints = "none"  # the numpydoc docstrings give the types


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's metadata routing (get_metadata_routing, set_fit_request,
    # ...) is documented by scikit-learn, with references to its own glossary.
    if name == "get_metadata_routing" or (
        name.startswith("set_") and name.endswith("_request")
    ):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)


numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown (the reproduction reports in docs/results) ---------------------- #
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------- #
html_theme = "pydata_sphinx_theme"
html_title = f"sktopk {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
html_static_path: list[str] = []

# -- gallery ------------------------------------------------------------------ #
sktopk_docs.prepare_gallery(
    ROOT / "examples", DOCS / "_gallery_src", DOCS / "gallery_header.txt"
)
sphinx_gallery_conf = {
    "examples_dirs": "_gallery_src",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example
    "within_subsection_order": "sktopk_docs.ExampleOrder",
    "reset_argv": "sktopk_docs.reset_argv",
    "image_scrapers": ("matplotlib", "sktopk_docs.png_scraper"),
    "doc_module": ("sktopk",),
    "backreferences_dir": "generated",
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
}
os.environ.setdefault("MPLBACKEND", "Agg")

# -- generated pages ---------------------------------------------------------- #
(DOCS / "generated").mkdir(exist_ok=True)
sktopk_docs.write_loss_table(DOCS / "generated" / "losses.inc")
sktopk_docs.write_parameter_table(DOCS / "generated" / "parameters.inc")
sktopk_docs.write_cli_help(DOCS / "generated" / "cli_help.inc")
sktopk_docs.write_results_toc(DOCS / "results", DOCS / "_generated_results.rst")
