"""Build helpers of the sktopk documentation (imported by ``conf.py``).

* The gallery: the scripts in ``examples/`` are plain command-line programs
  (``--fast``, ``--out DIR``) that save their figures as PNG files and close
  them. :func:`prepare_gallery` copies them for sphinx-gallery with a page
  title, :func:`reset_argv` runs each one in fast mode, and
  :func:`png_scraper` puts the PNG files it wrote on the page.
* Generated tables: every registered loss (:func:`write_loss_table`), every
  estimator parameter with its default (:func:`write_parameter_table`) and
  the help of the ``sktopk`` command (:func:`write_cli_help`), so the pages
  cannot fall behind the code.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import shutil
from pathlib import Path

#: Gallery order: the README's table of examples; others follow by name.
EXAMPLE_ORDER = (
    "pipeline_gridsearch.py",
    "compare_aggregates.py",
    "robust_regression.py",
    "topk_label_noise.py",
    "gpu_and_persistence.py",
)

#: (name, modification time) of the PNG files already put on a page.
_SHOWN: set[tuple[str, int]] = set()


# -- gallery ------------------------------------------------------------------ #
def prepare_gallery(examples: Path, target: Path, header: Path) -> list[str]:
    """Copy the example scripts into ``target`` as sphinx-gallery sources.

    Each copy gets its docstring's first line as a page title, and sets
    ``__doc__`` again in a block hidden from the page (sphinx-gallery runs
    the code without the module docstring, and the examples build their
    ``--help`` from it).

    Parameters
    ----------
    examples : Path
        The ``examples/`` folder.
    target : Path
        Folder to (re)create with the copies and ``GALLERY_HEADER.rst``.
    header : Path
        The reST text shown above the gallery.

    Returns
    -------
    names : list of str
        File names of the copied scripts.
    """
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copyfile(header, target / "GALLERY_HEADER.rst")
    names = []
    for script in sorted(examples.glob("*.py")):
        text = script.read_text(encoding="utf-8")
        (target / script.name).write_text(_gallery_source(text), encoding="utf-8")
        names.append(script.name)
    return names


def _gallery_source(text: str) -> str:
    """The example's source with a reST title and ``__doc__`` restored."""
    tree = ast.parse(text)
    doc = ast.get_docstring(tree, clean=False)
    if doc is None:
        return text
    lines = text.splitlines()
    first = tree.body[0]
    after = first.end_lineno
    for node in tree.body[1:]:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            after = node.end_lineno
    hidden = [
        "# sphinx_gallery_start_ignore",
        f"__doc__ = {doc!r}",
        "# sphinx_gallery_end_ignore",
    ]
    lines[after:after] = hidden
    match = re.match(r'^([rRuU]?""")(.*?)\.?\s*$', lines[first.lineno - 1])
    if match and match.group(2) and not match.group(2).endswith('"""'):
        quote, title = match.groups()
        lines[first.lineno - 1 : first.lineno] = [quote + title, "=" * len(title)]
    return "\n".join(lines) + "\n"


def reset_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    """Command-line arguments of an example: fast mode, files into the current
    folder (sphinx-gallery runs each example in its source folder, which the
    build recreates; so the pages show file names, not paths)."""
    return ["--fast", "--out", "."]


def png_scraper(block, block_vars: dict, gallery_conf: dict) -> str:
    """Put the PNG files an example wrote (and no page shows yet) on its page."""
    from sphinx_gallery.scrapers import figure_rst

    folder = Path(block_vars["src_file"]).parent
    new = []
    for png in sorted(folder.glob("*.png")):
        stamp = (png.name, png.stat().st_mtime_ns)
        if stamp not in _SHOWN:
            _SHOWN.add(stamp)
            new.append(png)
    images = []
    paths = block_vars["image_path_iterator"]  # yields as many paths as asked
    for png, image_path in zip(new, paths, strict=False):
        shutil.copyfile(png, image_path)
        images.append(image_path)
    return figure_rst(images, gallery_conf["src_dir"]) if images else ""


class ExampleOrder:
    """Sort key of the gallery: :data:`EXAMPLE_ORDER`, then by name."""

    def __init__(self, src_dir: str):
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        name = Path(filename).name
        rank = (
            EXAMPLE_ORDER.index(name) if name in EXAMPLE_ORDER else len(EXAMPLE_ORDER)
        )
        return rank, name

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


# -- generated tables --------------------------------------------------------- #
def _grid_table(header: list[str], rows: list[list[str]]) -> str:
    """A reST list-table."""
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        out.append(f"   * - {row[0]}")
        out.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(out) + "\n"


def write_loss_table(path: Path) -> None:
    """Every registered loss: name, kind, task, parameters, function and module."""
    from sktopk.losses import REGISTRY

    rows = []
    for name, info in sorted(REGISTRY.items(), key=lambda kv: (kv[1].kind, kv[0])):
        task = getattr(info, "task", "") or "any"
        params = ", ".join(f"``{p}``" for p in info.params) or "none"
        if info.kind == "aggregate":
            extra = "trainable threshold ``lam``" if info.uses_threshold else ""
        else:
            forms = []
            if getattr(info, "probabilistic", False):
                forms.append("probabilities")
            multi = getattr(info, "multiclass_form", None)
            if multi and multi != name:
                forms.append(f"multi-class form ``{multi}``")
            extra = ", ".join(forms)
        rows.append(
            [
                f"``{name}``",
                info.kind,
                task if info.kind != "aggregate" else "any",
                params,
                _ref(info.function),
                _ref(info.module) if info.module is not None else "",
                extra,
            ]
        )
    header = ["name", "kind", "task", "parameters", "function", "module", "notes"]
    path.write_text(_grid_table(header, rows), encoding="utf-8")


def _ref(obj) -> str:
    name = getattr(obj, "__name__", None)
    if name is None:
        return ""
    role = "class" if inspect.isclass(obj) else "func"
    return f":{role}:`~sktopk.losses.{name}`"


def write_parameter_table(path: Path) -> None:
    """Every parameter of every estimator, its defaults and its description."""
    from numpydoc.docscrape import ClassDoc

    import sktopk

    public = (getattr(sktopk, name) for name in sktopk.__all__ if name[0] != "_")
    estimators = [obj for obj in public if inspect.isclass(obj)]
    docs = {est: _param_docs(ClassDoc(est)) for est in estimators}
    params: list[str] = []
    for est in estimators:
        for name in inspect.signature(est.__init__).parameters:
            if name != "self" and name not in params:
                params.append(name)
    rows = []
    for name in params:
        cells = [f"``{name}``"]
        for est in estimators:
            parameter = inspect.signature(est.__init__).parameters.get(name)
            if parameter is None:
                cells.append("")
            elif parameter.default is inspect.Parameter.empty:
                cells.append("required")
            else:
                cells.append(f"``{parameter.default!r}``")
        cells.append(_meaning(name, estimators, docs))
        rows.append(cells)
    header = ["parameter", *[f":class:`~sktopk.{e.__name__}`" for e in estimators]]
    path.write_text(_grid_table([*header, "meaning"], rows), encoding="utf-8")


def _meaning(name: str, estimators: list, docs: dict) -> str:
    """The description of parameter ``name``; where estimators give it
    different meanings (the top-k SVM's ``k``), each with their names. A
    description that refers to another estimator's ("As in ...") is not a
    meaning of its own."""
    meanings: dict[str, list[str]] = {}
    for est in estimators:
        text = docs[est].get(name)
        if text and not text.startswith("As in"):
            meanings.setdefault(text, []).append(est.__name__)
    if len(meanings) <= 1:
        return next(iter(meanings), "")
    return " ".join(f"{', '.join(owners)}: {text}" for text, owners in meanings.items())


#: The end of a sentence: a full stop, then a capital (not "et al." or "e.g.").
_SENTENCE_END = re.compile(r"(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`(])")


def _param_docs(doc) -> dict[str, str]:
    """First sentence of each parameter's description (names split on commas)."""
    out = {}
    for param in doc["Parameters"]:
        text = " ".join(param.desc).strip()
        sentence = _SENTENCE_END.split(text, maxsplit=1)[0]
        for name in re.split(r",\s*", param.name):
            out.setdefault(name.strip(), sentence)
    return out


def write_cli_help(path: Path) -> None:
    """The ``--help`` of ``sktopk`` and of ``sktopk reproduce``."""
    from sktopk.reproduce.cli import build_parser

    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions:  # the sub-commands
        texts += [sub.format_help() for sub in action.choices.values()]
    path.write_text("\n".join(texts), encoding="utf-8")


# -- API reference ------------------------------------------------------------ #
#: The sections of the API reference: (module, title, intro, groups), each
#: group a (title, names) pair. Names of the module's ``__all__`` that no group
#: lists are added to a last group, so that every public name has its page.
API = [
    (
        "sktopk",
        "Estimators",
        "scikit-learn estimators trained with the top-k losses.",
        [
            (
                "",
                [
                    "STkClassifier",
                    "STkRegressor",
                    "SmoothTopKSVMClassifier",
                    "STkSearchCV",
                ],
            ),
            ("Utilities", ["show_versions"]),
        ],
    ),
    (
        "sktopk.losses",
        "Losses",
        "Plain PyTorch functions and modules; the same functions are also "
        "in :mod:`sktopk.losses.functional` (``from sktopk.losses import "
        "functional as F``).",
        [
            (
                "Aggregates over samples (1-D losses to a scalar)",
                ["average", "maximum", "atk", "matk", "stk", "kth_largest"],
            ),
            (
                "Aggregates as modules",
                ["AverageLoss", "MaximumLoss", "ATkLoss", "MATkLoss", "STkLoss"],
            ),
            (
                "Individual losses (one value per sample)",
                [
                    "logistic",
                    "hinge",
                    "square",
                    "absolute",
                    "cross_entropy",
                    "multiclass_hinge",
                ],
            ),
            (
                "Top-k losses over classes",
                ["smooth_topk_svm", "topk_svm", "SmoothTopKSVMLoss", "TopKSVMLoss"],
            ),
            ("Smoothing", ["srelu", "srelu_grad", "SMOOTHINGS"]),
            (
                "Registry of losses",
                [
                    "REGISTRY",
                    "register",
                    "unregister",
                    "names",
                    "get_aggregate",
                    "get_individual_loss",
                    "Aggregate",
                    "IndividualLoss",
                    "LossInfo",
                    "TASKS",
                    "AGGREGATES",
                    "AGGREGATES_WITH_LAMBDA",
                    "INDIVIDUAL_LOSSES",
                ],
            ),
        ],
    ),
    ("sktopk.datasets", "Datasets", "The bundled benchmark data.", []),
    (
        "sktopk.model_selection",
        "Model comparison",
        "Paired tests for scores from resampled splits.",
        [],
    ),
    (
        "sktopk.metrics",
        "Metrics",
        "Scores of the synthetic experiments.",
        [],
    ),
    (
        "sktopk.reproduce",
        "Reproduction",
        "The Python side of ``sktopk reproduce`` (see :doc:`/cli`).",
        [],
    ),
    (
        "sktopk.engine",
        "Training engine",
        "The batched training loop the estimators share; for extending "
        "sktopk rather than for everyday use.",
        [],
    ),
]

#: Public names that are modules: described in the text, not given a page.
_MODULE_NAMES = {"functional"}


def api_groups(module_name: str, groups: list) -> list[tuple[str, list[str]]]:
    """The groups of a section, restricted and completed to ``__all__``."""
    public = [
        n
        for n in importlib.import_module(module_name).__all__
        if n not in _MODULE_NAMES and not n.startswith("__")
    ]
    listed = {n for _, names in groups for n in names}
    out = [(title, [n for n in names if n in public]) for title, names in groups]
    rest = [n for n in public if n not in listed]
    if rest:
        out.append(("Other" if groups else "", rest))
    return [(title, names) for title, names in out if names]


def write_api(path: Path) -> None:
    """The autosummary tables of the API reference, one section per module."""
    lines = []
    for module, title, intro, groups in API:
        if importlib.util.find_spec(module) is None:
            continue
        lines += [
            title,
            "-" * len(title),
            "",
            f".. automodule:: {module}",
            "   :no-members:",
            "",
            intro,
            "",
            f".. currentmodule:: {module}",
            "",
        ]
        for group, names in api_groups(module, groups):
            if group:
                lines += [group, "~" * len(group), ""]
            lines += [
                ".. autosummary::",
                "   :toctree: generated/",
                "   :nosignatures:",
                "",
            ]
            lines += [f"   {name}" for name in names] + [""]
        for sub in _MODULE_NAMES:
            if sub in importlib.import_module(module).__all__:
                lines += [f".. automodule:: {module}.{sub}", "   :no-members:", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


# -- reproduction pages ------------------------------------------------------- #
#: Titles given in the table of contents where a report's own title would be
#: ambiguous (the folder name decides).
RESULT_TITLES = {
    "table3-step": "Table 3 under the paper's early-stopping rule",
    "table3-paper": "Table 3 under the paper protocol",
    "table4-paper": "Table 4 under the paper protocol",
    "table6-paper": "Table 6 under the paper protocol",
}


def write_results_toc(results: Path, path: Path) -> None:
    """A toctree of every Markdown report under ``results`` (docs/results).

    The overview (``README.md``) comes first, then the tables and then the
    figures, each in the natural order of their folders (table3 before
    table10), so a new report gets its page without editing the documentation.
    """

    def order(md: Path) -> tuple:
        parts = md.relative_to(results).parts
        folder = parts[0] if len(parts) > 1 else ""
        natural = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", folder)]
        return (md.name != "README.md", folder.startswith("figure"), natural, parts)

    reports = sorted(results.rglob("*.md"), key=order)
    lines = [".. toctree::", "   :maxdepth: 1", ""]
    for md in reports:
        doc = (Path(results.name) / md.relative_to(results)).with_suffix("").as_posix()
        title = RESULT_TITLES.get(md.parent.name)
        lines.append(f"   {title} <{doc}>" if title else f"   {doc}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
