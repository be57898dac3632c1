"""sktopk: top-k losses for PyTorch and scikit-learn."""

import importlib
from typing import TYPE_CHECKING

from ._show_versions import show_versions

if TYPE_CHECKING:  # imported on first use: they import torch
    from .estimators import (
        SmoothTopKSVMClassifier,
        STkClassifier,
        STkRegressor,
        STkSearchCV,
    )

__version__ = "0.1.0"

__all__ = [
    "STkClassifier",
    "STkRegressor",
    "SmoothTopKSVMClassifier",
    "STkSearchCV",
    "show_versions",
    "__version__",
]

#: Submodules reachable as attributes after ``import sktopk``, imported on
#: first use (as scikit-learn's).
_SUBMODULES = ("datasets", "losses", "metrics", "model_selection", "reproduce")
#: The estimators, imported on first use, so that ``import sktopk.datasets``
#: or ``sktopk.metrics`` does not import torch.
_ESTIMATORS = (
    "STkClassifier",
    "STkRegressor",
    "SmoothTopKSVMClassifier",
    "STkSearchCV",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _ESTIMATORS:
        return getattr(importlib.import_module(".estimators", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES) | set(_ESTIMATORS))
