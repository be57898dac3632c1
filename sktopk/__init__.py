"""sktopk: top-k losses for PyTorch and scikit-learn."""

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
    "__version__",
]
