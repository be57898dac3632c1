"""Label handling and prediction shared by the sktopk classifiers."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ._base import _TopKEstimatorBase


class _TopKClassifierBase(ClassifierMixin, _TopKEstimatorBase):
    """Encodes labels at fit; ``decision_function`` and ``predict`` from scores."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass (one epoch) over ``(X, y)``, continuing from earlier calls.

        For data that does not fit in memory: the weights, the optimizer's
        state and the threshold ``lambda_`` carry over between calls, and
        ``n_iter_`` counts the calls. An integer ``k`` of the top-k aggregates
        counts the first call's samples; later calls, of any size, keep that
        fraction. ``fit`` starts afresh.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every label ``y`` can take; required on the first call (as in
            ``SGDClassifier.partial_fit``), checked on later ones.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        return self._partial_fit(X, y, classes, sample_weight)

    def _encode(self, y, keep: bool = False) -> np.ndarray:
        """Class indices of ``y``; sets ``classes_`` unless ``keep`` (a later
        ``partial_fit`` call, whose labels must be among ``classes_``)."""
        check_classification_targets(y)
        if keep:
            codes = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
            unseen = self.classes_[codes] != y
            if unseen.any():
                raise ValueError(
                    f"y has labels {np.unique(np.asarray(y)[unseen]).tolist()} that "
                    f"are not among the fitted classes ({self.classes_.tolist()})"
                )
            return codes
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

    def _default_topk(self) -> int:
        """``predict_topk``'s k when none is given."""
        return 1

    def predict_topk(self, X, k: int | None = None) -> np.ndarray:
        """The ``k`` highest-scoring classes per sample, best first.

        ``predict`` is the first column. Score a top-k prediction with
        scikit-learn's ``"top_k_accuracy"`` scorer (``top_k_accuracy_score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        k : int, default=None
            How many classes, in ``[1, n_classes]``; None is the top-k SVM's
            ``k`` for :class:`SmoothTopKSVMClassifier` and 1 otherwise.

        Returns
        -------
        ndarray of shape (n_samples, k)
            Class labels.
        """
        self._check_network()
        k = self._default_topk() if k is None else k
        n = len(self.classes_)
        if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= n:
            raise ValueError(f"k must be an int in [1, {n}]; got {k!r}")
        out = self._forward(X)
        if out.shape[1] == 1:  # one margin: classes_[1] when positive
            out = np.column_stack([np.zeros(len(out)), out[:, 0]])
        order = np.argsort(-out, axis=1, kind="stable")[:, :k]
        return self.classes_[order]

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)
