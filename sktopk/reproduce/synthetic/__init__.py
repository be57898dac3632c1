"""The synthetic experiments of Xia et al. (2024, Section 4).

- ``table1``: the time to sum the top 5 of 10,000 N(0, 1) samples, by the
  paper's four methods and by what a user calls today (numpy, torch, sktopk);
- ``table2``: l1-penalised logistic regression with each aggregate (and each
  smoothing of STk) on 200-dimensional imbalanced Gaussians: test accuracy,
  ParaF1 (support recovery) and time, with the Bayes-optimal rule as limit;
- ``figure3``: the 2-D example, each aggregate's learned boundary and w*, b*;
- ``figure4``: accuracy and ParaF1 against the negative ratio of the
  training set, for Average, ATk and STk.

``sktopk reproduce --table 1`` (or ``--table 2``, ``--figure 3``,
``--figure 4``) runs one of them; :func:`run_job` is the same from Python.

Examples
--------
>>> from sktopk.reproduce.synthetic import make_settings
>>> make_settings("table2", "paper").runs
50
>>> make_settings("figure4", "quick").negative_ratios
(0.5, 0.1, 0.05, 0.01, 0.005, 0.001)
"""

from .published import load_published_synthetic
from .runner import SyntheticResult, run_job
from .settings import COLUMNS, JOBS, GaussianSettings, TimingSettings, make_settings

__all__ = [
    "COLUMNS",
    "JOBS",
    "GaussianSettings",
    "SyntheticResult",
    "TimingSettings",
    "load_published_synthetic",
    "make_settings",
    "run_job",
]
