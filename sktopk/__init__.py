"""sktopk: top-k losses for PyTorch and scikit-learn."""

import importlib

from ._show_versions import show_versions
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


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))
