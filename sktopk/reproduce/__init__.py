"""Reproduce the benchmark tables of Xia et al. (2024) and compare.

``sktopk reproduce --table 3`` (or ``python -m sktopk reproduce --table 3``)
runs Average, Maximum, ATk, MATk and STk on the table's datasets under the
protocol of the paper (random 50/25/25 splits, hyper-parameters chosen on the
validation split) or a quicker preset, and writes every run, a Markdown report
and plots with the published numbers side by side.

Examples
--------
>>> from sktopk.reproduce import make_protocol, table_cells
>>> make_protocol("quick").runs
10
>>> len(table_cells(3, ["wisconsin"]))
5
"""

from .experiment import run_cell, select_configuration
from .protocol import PRESETS, TABLES, Cell, Protocol, make_protocol, table_cells
from .published import load_published, published_table
from .report import compare, summarize
from .runner import Reproduction, reproduce

__all__ = [
    "PRESETS",
    "TABLES",
    "Cell",
    "Protocol",
    "Reproduction",
    "compare",
    "load_published",
    "make_protocol",
    "published_table",
    "reproduce",
    "run_cell",
    "select_configuration",
    "summarize",
    "table_cells",
]
