"""scikit-learn estimators trained with sktopk's losses."""

from ._search import STkSearchCV
from ._stk import STkClassifier, STkRegressor
from ._svm import SmoothTopKSVMClassifier

__all__ = ["STkClassifier", "STkRegressor", "SmoothTopKSVMClassifier", "STkSearchCV"]
