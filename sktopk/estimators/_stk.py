"""STkClassifier and STkRegressor: linear models or MLPs trained with an
aggregate (average, maximum, ATk, MATk, STk) of individual losses."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import log_expit, log_softmax
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if

from .._validation import k_fraction
from ..losses import SMOOTHINGS, get_aggregate, get_individual_loss, names
from ..losses._smoothing import get_smoothing
from ._base import (
    CLASS_WEIGHT_CONSTRAINT,
    TRAINING_PARAMETER_CONSTRAINTS,
    _store_params,
    _TopKEstimatorBase,
)
from ._classifier import _TopKClassifierBase
from ._sklearn_compat import Interval, RegistryOptions, StrOptions, _fit_context
from ._targets import loss_degree, target_scale

_AGGREGATE_CONSTRAINTS = {
    "aggregate": [RegistryOptions(lambda: names("aggregate"))],
    "k": [
        Interval(Integral, 1, None, closed="left"),
        Interval(Real, 0, 1, closed="right"),
    ],
    "delta": [Interval(Real, 0, None, closed="neither")],
    "smoothing": [StrOptions(set(SMOOTHINGS))],
}


class _STkMixin:
    """The aggregate's parameters, shared by the classifier and the regressor."""

    #: Parameters that may differ between the members of one batch, and the
    #: engine's per-member hyper-parameter each one sets (see ``_hyper``).
    _member_params = {
        "learning_rate": "lr",
        "C": "C",
        "l1_ratio": "l1_ratio",
        "k": "kappa",
        "delta": "delta",
    }

    @property
    def _aggregate_name(self) -> str:
        return self.aggregate

    def _engine_value(self, param: str, n_train: int) -> float:
        uses = get_aggregate(self.aggregate).params
        if param == "k":  # the engine takes k as a fraction of the rows
            return self._k_fraction(n_train) if "k" in uses else 1.0
        if param == "delta" and "smoothing" in uses:
            get_smoothing(self.smoothing, self.delta)  # leaky_relu: delta < 1
        return super()._engine_value(param, n_train)

    def _check_k_units(self, plan, units) -> None:
        """An integer ``k`` counts the training rows in units of their
        smallest positive weight (the rule of the aggregates): with weights
        that are not whole counts, a warning where those units are far from the
        rows (one row of weight 0.001 among 300 of weight 1 turns k=150 into
        150 of 299,001 units)."""
        if (
            not isinstance(self.k, Integral)
            or "k" not in get_aggregate(self.aggregate).params
        ):
            return
        w = plan.weight[plan.train_idx]
        w = w[w > 0]
        counts = np.all(w == np.round(w))  # repetitions: what k counts
        rows = len(w)
        if not counts and units > 2 * rows:
            warnings.warn(
                f"k={self.k} counts the training rows in units of their "
                f"smallest positive weight ({w.min():.4g}): here "
                f"{units:.6g} units for {rows} rows, so k is "
                f"{self.k / units:.3g} of the weight. Give k as a fraction "
                f"(e.g. k={min(1.0, self.k / rows):.3g}) to count a share of "
                "the weight.",
                UserWarning,
                stacklevel=4,
            )

    def _k_fraction(self, n_train: int) -> float:
        try:
            return k_fraction(self.k, n_train, "k")
        except ValueError as exc:
            if not self.early_stopping:
                raise
            raise ValueError(
                f"{exc}: n counts the rows left for training (in units of their "
                "smallest positive sample weight) once early_stopping has set "
                f"validation_fraction={self.validation_fraction} of them aside"
            ) from None

    def _train_spec(self, loss, task, loss_params, n_train):
        spec = super()._train_spec(loss, task, loss_params, n_train)
        spec.smoothing = self.smoothing
        return spec


_COMMON_DOC = """
    aggregate : {"stk", "matk", "atk", "average", "maximum"}, default="stk"
        How the individual losses of a minibatch are combined (method of
        Xia et al. 2024 for "stk", Fan et al. 2017 for "atk"/"matk").
    k : int or float, default=0.9
        The "k" of the top-k aggregates: an int counts training samples
        (``1 <= k <= n_train``), a float in (0, 1] is a fraction of them. With
        ``k = n_train`` (or 1.0) ATk is the average; ``k = 1`` is the maximum.
        Mind the type: ``k=1`` is one sample, ``k=1.0`` all of them (a pandas
        column built from a grid holding both shows them as the same 1.0).
        With ``sample_weight`` an int counts the samples in units of their
        smallest positive weight (weights 1 and 2 count as one and two
        repetitions; weights 2 and 4 as well, as every weight times a
        constant gives the same fit); weights that
        are not whole and make those units more than twice the samples get a
        warning (a fraction counts a share of the weight).
        Ignored by "average" and "maximum".
    delta : float, default=0.01
        Smoothing of SReLU in STk (> 0); STk tends to MATk as delta -> 0.
        For ``smoothing="leaky_relu"`` it is the negative slope, below 1.
        Used by "stk" only (like ``l1_ratio`` outside "elasticnet").
    smoothing : {"srelu", "softplus", "elu", "leaky_relu"}, default="srelu"
        The smooth replacement of ReLU in STk; used by "stk" only.
    C : float, default=1000.0
        Inverse strength of the penalty on the weight matrices (not biases),
        added to the mean-type aggregate: ``||W||^2 / (2 C)`` for "l2", ``W``
        the weights of the features with columns of spread above 1 brought
        to unit spread (see the user guide). ``C`` here is ``n_samples``
        times scikit-learn's ``LogisticRegression`` C (after a
        ``StandardScaler`` where the columns' spreads are 1 or more); with
        ``sample_weight``, ``sum(sample_weight)`` times it, as the losses
        are averaged with the weights: multiplying every weight by a
        constant changes nothing. ``np.inf``: no penalty.
    penalty : {"l2", "l1", "elasticnet"}, default="l2"
        The penalty, as in ``SGDClassifier``: "l1" is ``||W||_1 / C`` and
        "elasticnet" ``(1 - l1_ratio) ||W||^2 / (2 C) + l1_ratio ||W||_1 / C``.
        The l1 part is applied by a proximal (soft-threshold) step after each
        update, ``W <- sign(W) max(|W| - s r / C, 0)``, with ``r`` the l1
        share (1 for "l1", ``l1_ratio`` for "elasticnet") and ``s`` the
        step's size for that weight (``learning_rate`` for "sgd"; for
        "adagrad" and "adam", ``learning_rate`` times the optimizer's
        per-weight factor), so weights that the data do not support are
        exactly zero.
    l1_ratio : float, default=0.15
        The l1 share of "elasticnet" (0: l2 alone, 1: l1 alone); ignored by
        the other penalties.
    model : {"linear", "mlp"} or callable, default="linear"
        The model: linear, an MLP with ReLU hidden layers, or a callable
        ``model(n_features, n_outputs) -> torch.nn.Module`` (trained by
        autograd; weight matrices of dim >= 2 are penalised). Its initial
        weights come from torch's global generator: call ``torch.manual_seed``
        before ``fit`` to make them reproducible (``random_state`` seeds the
        data order and the validation split).
    hidden_layer_sizes : int, tuple of int or None, default=None
        Hidden layers of ``model="mlp"``; None gives one layer of 10 ReLU
        units, the paper's model (``STkClassifier(model="mlp")``). Giving it
        with ``model="linear"`` (or a callable) is a ValueError, never
        silently ignored.
    optimizer : {"adagrad", "adam", "sgd"}, default="adagrad"
        The optimizer (AdaGrad in the paper).
    optimizer_params : dict or None, default=None
        Options of the optimizer, with torch.optim's names and defaults:
        ``eps`` and ``initial_accumulator_value`` (adagrad); ``betas`` and
        ``eps`` (adam); ``momentum``, ``dampening`` and ``nesterov`` (sgd).
        An unknown option is a ValueError at fit.
    learning_rate : float, default=0.1
        Step size of the optimizer.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is a tenth of the training rows clipped to
        [16, 200] up to 20,000 rows (``MLPClassifier``'s 200 from 2,000
        rows), then a hundredth clipped to [200, 1000]. The paper uses 16,
        much slower on large data. An integer above the training rows is
        clipped to them, with a warning.
    max_epochs : int, default=200
        Largest number of passes over the training data.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when the validation score has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, and keep the best weights.
        Without it, training stops when the training objective has not
        improved by ``tol`` for ``n_iter_no_change`` epochs.
    validation_fraction : float, default=0.1
        Held-out fraction used by early stopping.
    n_iter_no_change : int, default=10
        Patience, in epochs.
    tol : float, default=1e-4
        Smallest improvement that resets the patience counter.
    device : str or torch.device, default="auto"
        Where to train: "auto" uses CUDA when available (the current
        device, e.g. "cuda:0"), else the CPU; "cpu", "cuda" or "cuda:N".
        MPS is refused: training sums some values in float64, which it
        lacks.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation ("linear" and "mlp"), data order and the
        validation split (through a local ``torch.Generator``; torch's global
        generator is never read or seeded).
    verbose : int, default=0
        Print one line per epoch when > 0.
    warm_start : bool, default=False
        Start from the weights of the previous fit.
"""

_ATTRIBUTES_DOC = """
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit (only when X has string column names).
    lambda_ : float
        The learned threshold of "matk"/"stk" (set only for those aggregates).
        At the optimum it is the k-th largest training loss; it is trained
        with the weights, by the same optimizer, so after few epochs it can
        still be far from it.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training objective (mean minibatch aggregate plus penalty) per epoch.
    validation_scores_ : list of float or None
        Validation score per epoch when ``early_stopping=True``.
    best_epoch_ : int
        Epoch whose weights are kept. Like ``n_iter_``, ``loss_curve_`` and
        ``validation_scores_``, it counts on across ``warm_start`` fits and
        ``partial_fit`` calls.
    coef_ : ndarray
        The linear model's coefficients ("linear" only), in the layout of
        scikit-learn's linear models: ``(n_features,)`` for the regressor,
        ``(1, n_features)`` for two classes, else ``(n_classes, n_features)``;
        ``SelectFromModel`` reads it.
    intercept_ : ndarray or float
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
        The device the model was trained on (e.g. "cpu" or "cuda:0").
"""


class STkClassifier(_STkMixin, _TopKClassifierBase):
    __doc__ = f"""Classifier trained with a top-k aggregate loss (default: STk).

    Binary problems use the margin losses (``"logistic"``, ``"hinge"``) on one
    output; more classes use their multi-class forms (softmax cross-entropy,
    Crammer-Singer hinge) on one output per class. See :ref:`aggregates`.

    Parameters
    ----------
    loss : {{"logistic", "hinge"}}, default="logistic"
        The individual loss.
{_COMMON_DOC}    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, as in scikit-learn's classifiers: each
        sample's weight is multiplied by its class's ("balanced":
        ``n_samples / (n_classes * count)``). Top-k aggregates are often used
        on imbalanced data; weighting the classes is usually the stronger
        remedy there, and the two combine. With ``aggregate="maximum"`` a
        weight only says whether a sample counts (zero or not). Not with
        ``partial_fit`` when "balanced" (a chunk's counts are not the data's).
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
{_ATTRIBUTES_DOC}
    See Also
    --------
    STkRegressor : The same aggregates for regression.
    SmoothTopKSVMClassifier : Top-k classification over classes.

    References
    ----------
    Xia, Liu, Mao. "ST_k: A Scalable Module for Solving Top-k Problems".
    NeurIPS 2024. Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss".
    NeurIPS 2017.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sktopk import STkClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> clf = STkClassifier(k=0.5, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    >>> round(clf.score(X, y), 2) > 0.8
    True
    """

    _parameter_constraints: dict = {
        "loss": [RegistryOptions(lambda: names("individual", task="binary"))],
        **_AGGREGATE_CONSTRAINTS,
        **TRAINING_PARAMETER_CONSTRAINTS,
        **CLASS_WEIGHT_CONSTRAINT,
    }

    def __init__(
        self,
        aggregate="stk",
        loss="logistic",
        k=0.9,
        delta=0.01,
        smoothing="srelu",
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
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; the aggregates use their weighted forms
            (the maximum over the samples of positive weight, whatever its
            value, for "maximum").

        Returns
        -------
        self : STkClassifier
        """
        return self._fit(X, y, sample_weight)

    def _task_spec(self, y, keep: bool = False, weight=None):
        encoded = self._encode(y, keep)
        if len(self.classes_) == 2:
            margin = np.where(encoded == 1, 1.0, -1.0).astype(np.float32)
            return margin, "binary", 1, self.loss, {}
        loss = get_individual_loss(self.loss).multiclass_form
        if loss is None:
            raise ValueError(
                f"loss={self.loss!r} has no multi-class form; y has "
                f"{len(self.classes_)} classes"
            )
        return encoded.astype(np.int64), "multiclass", len(self.classes_), loss, {}

    def _has_proba(self) -> bool:
        return get_individual_loss(self.loss).probabilistic

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (sigmoid or softmax of the scores; logistic loss
        only), shape (n_samples, n_classes)."""
        return self._proba_from_scores(self.decision_function(X))

    @available_if(_has_proba)
    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithms of :meth:`predict_proba`, computed without underflow
        (finite where a probability rounds to 0), shape (n_samples,
        n_classes)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([log_expit(-scores), log_expit(scores)])
        return log_softmax(scores, axis=1)


class STkRegressor(_STkMixin, RegressorMixin, _TopKEstimatorBase):
    __doc__ = f"""Regressor trained with a top-k aggregate loss (default: STk).

    Works on raw targets: ``fit`` standardises ``y`` (centre ``y_center_``,
    scale ``y_scale_``: mean and standard deviation for the square loss,
    median and median absolute deviation for the absolute loss, which huge
    outliers in ``y`` do not move; all weighted by ``sample_weight``) and
    ``predict``
    maps back, so fitting ``a * y + b`` (``a > 0``) predicts
    ``a * y_hat + b``. The aggregate, ``delta`` and the penalty ``C`` act on
    the losses of the standardised targets, so their meaning does not depend
    on the units of ``y``; ``lambda_`` is reported in the user's units (the
    threshold on the losses of ``y`` itself). The built-in models' last layer
    is folded back too: ``coef_``, ``coefs_``, ``intercepts_`` and ``module_``
    give ``y``'s units, as ``predict`` (``module_`` computes in float32, where
    targets far from zero relative to their spread, such as ``1e8 + noise``,
    lose digits that ``predict``, in float64, keeps; a callable model's
    ``module_`` gives the standardised output ``(predict(X) - y_center_) /
    y_scale_``, so that a warm start on targets of another centre or scale
    starts from outputs in the new units). ``loss_curve_`` and
    ``validation_scores_`` are computed on the standardised targets; with
    ``early_stopping=True`` the validation score is minus the mean squared
    error for the square loss and minus the mean absolute error for the
    absolute loss (outliers in the validation rows do not rule a robust fit).

    Parameters
    ----------
    loss : {{"square", "absolute"}}, default="square"
        The individual loss of the residual ``y - f(x)``.
{_COMMON_DOC}
    Attributes
    ----------
    y_center_ : float
        Centre subtracted from the targets for training.
    y_scale_ : float
        Scale the centred targets are divided by for training.
{_ATTRIBUTES_DOC}
    See Also
    --------
    STkClassifier : The same aggregates for classification.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sktopk import STkRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0,
    ...                        random_state=0)
    >>> reg = STkRegressor(random_state=0).fit(X, 100 * y + 500)
    >>> round(reg.score(X, 100 * y + 500), 2) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "loss": [RegistryOptions(lambda: names("individual", task="regression"))],
        **_AGGREGATE_CONSTRAINTS,
        **TRAINING_PARAMETER_CONSTRAINTS,
    }

    def __init__(
        self,
        aggregate="stk",
        loss="square",
        k=0.9,
        delta=0.01,
        smoothing="srelu",
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
    ):
        _store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model (see :meth:`STkClassifier.fit`)."""
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """One pass (one epoch) over ``(X, y)``, continuing from earlier calls.

        For data that does not fit in memory: the weights, the optimizer's
        state and the threshold ``lambda_`` carry over between calls, and
        ``n_iter_`` counts the calls; the targets are standardised with the
        first call's ``y_center_`` and ``y_scale_`` (so give it several
        samples: a constant first ``y`` gets scale 1, with a warning). An
        integer ``k`` counts the first call's samples; later calls, of any
        size, keep that fraction. ``fit`` starts afresh.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        first = "n_iter_" not in self.__dict__
        self._partial_fit(X, y, None, sample_weight)
        if first and np.ptp(np.asarray(y, dtype=np.float64)) == 0:
            warnings.warn(
                "The first partial_fit call sets the targets' centre and scale "
                "(y_center_, y_scale_) for every later call, and its y is constant "
                "(a single sample?): y_scale_ is 1, so the targets are only "
                "centred. Give the first call several samples, or scale y.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _task_spec(self, y, keep: bool = False, weight=None):
        if np.asarray(y).dtype.kind in "OUS":
            raise ValueError(
                f"y must be numbers for a regressor; got dtype "
                f"{np.asarray(y).dtype} (convert it, e.g. y.astype(float))"
            )
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(y)):
            raise ValueError("y must be finite; it contains NaN or inf")
        if not keep:  # partial_fit keeps the first call's centre and scale
            self.y_center_, self.y_scale_ = target_scale(
                y, loss_degree(self.loss), weight
            )
        target = ((y - self.y_center_) / self.y_scale_).astype(np.float32)
        return target, "regression", 1, self.loss, {}

    def _user_lambda(self, lam: float) -> float:
        # The losses of the standardised targets are (1 / y_scale_)^p times
        # the user's (p the loss's degree: 2 for square, 1 for absolute);
        # inf where that overflows (targets beyond 1e154 with the square loss).
        with np.errstate(over="ignore"):
            factor = np.float64(self.y_scale_) ** loss_degree(self.loss)
        return float(lam * factor) if lam else 0.0

    def _validation_error(self) -> str:
        # Early stopping measures the error the loss does: outliers in the
        # validation rows would otherwise rule a robust fit.
        return "absolute" if self.loss == "absolute" else "squared"

    def _output_affine(self) -> tuple[float, float]:
        # The network is trained on (y - y_center_) / y_scale_.
        return self.y_center_, self.y_scale_

    def _affine_of_outputs(self, coef, intercept):
        # The last layer is in the units of y (folded): Ridge's 1-D coef_.
        return coef[0], float(intercept[0])

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shape (n_samples,), in the units of ``y``."""
        out = self._forward(X)[:, 0]
        if "coefs_" in self.__dict__:  # the targets' units folded in
            return out
        return self.y_center_ + self.y_scale_ * out
