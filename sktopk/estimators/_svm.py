"""SmoothTopKSVMClassifier: top-k classification with the smooth top-k SVM."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ._base import (
    CLASS_WEIGHT_CONSTRAINT,
    TRAINING_PARAMETER_CONSTRAINTS,
    _store_params,
)
from ._classifier import _TopKClassifierBase
from ._sklearn_compat import Interval, _fit_context


class SmoothTopKSVMClassifier(_TopKClassifierBase):
    """Classifier trained with the smooth top-k SVM loss (Berrada et al. 2018).

    The loss only asks the true class to be among the ``k`` highest scores,
    by a margin ``margin``, smoothed with temperature ``tau``. It helps when a
    model can over-fit noisy labels (e.g. a wide MLP trained long on few
    samples); with a small model cross-entropy is usually as good.

    Parameters
    ----------
    k : int, default=5
        The "k" of top-k; ``1 <= k < n_classes``.
    margin : float, default=1.0
        Margin (>= 0): the loss charged to a top-k set that misses the true
        class (``alpha`` in Berrada et al.; renamed because scikit-learn's
        ``alpha`` is a penalty strength).
    tau : float, default=1.0
        Temperature (> 0) of the smoothing; ignored when ``smooth=False``.
    smooth : bool, default=True
        False trains the hard (non-smooth) top-k SVM loss.
    C, penalty, l1_ratio, model, hidden_layer_sizes, optimizer, \
optimizer_params, learning_rate, batch_size, \
max_epochs, early_stopping, validation_fraction, n_iter_no_change, tol, \
device, random_state, verbose, warm_start, class_weight
        As in :class:`STkClassifier` (the same defaults); the individual
        losses are averaged.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
    n_iter_ : int
    loss_curve_ : list of float
    validation_scores_ : list of float or None
        Top-``k`` validation accuracy per epoch when ``early_stopping=True``
        (the criterion early stopping follows: the loss optimises top-``k``,
        not top-1, accuracy).
    best_epoch_ : int
    coef_ : ndarray
        The linear model's coefficients ("linear" only): ``(1, n_features)``
        for two classes (the ``decision_function``), else ``(n_classes,
        n_features)``.
    intercept_ : ndarray
        The linear model's intercepts, matching ``coef_`` ("linear" only).
    coefs_ : list of ndarray
        Weight matrices ``(n_in, n_out)`` of each layer ("linear" and "mlp").
    intercepts_ : list of ndarray
        Bias vectors of each layer ("linear" and "mlp"); the first in float64
        (the model trains on rescaled features: the first layer's weights
        and bias are folded back for ``X``, in float64).
    module_state_ : dict of ndarray
        The state dict of a callable model, as numpy arrays.
    n_outputs_ : int
        Number of outputs of the network.
    module_ : torch.nn.Module
        The trained network as a torch module on the CPU, built from the
        fitted arrays at each access.
    device_ : str
        The device the model was trained on.

    See Also
    --------
    STkClassifier : Top-k aggregates over samples.
    sktopk.losses.smooth_topk_svm : The loss function.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sktopk import SmoothTopKSVMClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SmoothTopKSVMClassifier(k=3, max_epochs=5, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> clf.predict_topk(X[:2] / 16).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        "k": [Interval(Integral, 1, None, closed="left")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="neither")],
        "smooth": ["boolean"],
        **TRAINING_PARAMETER_CONSTRAINTS,
        **CLASS_WEIGHT_CONSTRAINT,
    }

    def __init__(
        self,
        k=5,
        margin=1.0,
        tau=1.0,
        smooth=True,
        C=1000.0,
        penalty="l2",
        l1_ratio=0.15,
        model="linear",
        hidden_layer_sizes=None,
        optimizer="adagrad",
        optimizer_params=None,
        learning_rate=0.1,
        batch_size="auto",
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        class_weight=None,
    ):
        _store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model (see :meth:`STkClassifier.fit`)."""
        return self._fit(X, y, sample_weight)

    def _task_spec(self, y, keep: bool = False, weight=None):
        encoded = self._encode(y, keep)
        n_classes = len(self.classes_)
        if self.k >= n_classes:
            raise ValueError(
                f"k={self.k} must be smaller than the number of classes "
                f"({n_classes}): with k >= n_classes every class is always in the "
                "top k, so the loss is constant"
            )
        loss = "smooth_topk_svm" if self.smooth else "topk_svm"
        params = {"k": int(self.k), "margin": float(self.margin)}
        if self.smooth:
            params["tau"] = float(self.tau)
        return encoded.astype(np.int64), "multiclass", n_classes, loss, params

    def decision_function(self, X) -> np.ndarray:
        """Class scores (n_samples, n_classes); for two classes the 1-D
        difference ``score(classes_[1]) - score(classes_[0])``."""
        out = self._forward(X)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def _affine_of_outputs(self, coef, intercept):
        if len(coef) == 2:  # the decision is the difference of the scores
            return coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        return coef, intercept

    def _default_topk(self) -> int:
        return int(self.k)
