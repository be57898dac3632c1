"""Label handling and prediction shared by the sktopk classifiers."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ._base import _TopKEstimatorBase


class _TopKClassifierBase(ClassifierMixin, _TopKEstimatorBase):
    """Encodes labels at fit; ``decision_function`` and ``predict`` from scores."""

    def _encode(self, y) -> np.ndarray:
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(
                f"{type(self).__name__} supports binary and multiclass targets; "
                f"got {type_of_target(y)!r}"
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "The number of classes has to be greater than one; got 1 class "
                f"({self.classes_[0]!r}) in y"
            )
        return encoded

    def decision_function(self, X) -> np.ndarray:
        """Scores: shape (n_samples,) for two classes (positive favours
        ``classes_[1]``), else (n_samples, n_classes)."""
        out = self._forward(X)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X) -> np.ndarray:
        """The class with the largest score, in the labels of ``y``."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[idx]

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)
