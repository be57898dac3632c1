"""A callable model's fit and prediction leave the process's state alone:
torch's global generator, the modules' train/eval modes, the warning
filters; and fit gives the same model whatever torch context encloses it."""

import contextlib
import warnings

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from sktopk.estimators import SmoothTopKSVMClassifier, STkClassifier, STkRegressor
from sktopk.estimators._search import STkSearchCV


def _data(n=60, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = (X[:, 0] + 0.5 * rng.randn(n) > 0).astype(int)
    return X, y


def _dropout_net(d, o):
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, o))


class _Recorder(nn.Module):
    """A linear layer that records, at each forward, whether gradients are
    on and whether it is in training mode."""

    def __init__(self, d, o, calls):
        super().__init__()
        self.lin = nn.Linear(d, o)
        self.calls = calls

    def forward(self, X):
        self.calls.append((torch.is_grad_enabled(), self.training))
        return self.lin(X)


class _Float32Inside(nn.Module):
    """A linear map computed in float32 whatever the module's dtype (as a
    module with a mixed-precision part does): an enclosing autocast lowers
    it to bfloat16."""

    def __init__(self, d, o):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d, o) / d)

    def forward(self, X):
        return (X.float() @ self.w.float()).to(X.dtype)


# -- 1. prediction does not draw from the global generator ----------------- #
@pytest.mark.parametrize("Est", [STkClassifier, STkRegressor, SmoothTopKSVMClassifier])
def test_prediction_leaves_global_generator(Est):
    X, y = _data()
    extra = {}
    if Est is SmoothTopKSVMClassifier:
        y, extra = np.arange(len(X)) % 3, {"k": 1}
    est = Est(model=_dropout_net, random_state=0, max_epochs=2, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = torch.get_rng_state()
    first = est.predict(X)
    est.score(X, y)
    assert isinstance(est.module_, nn.Module)
    for method in ("decision_function", "predict_proba"):
        if hasattr(est, method):
            getattr(est, method)(X)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(est.predict(X), first)


def test_prediction_module_is_rebuilt_for_a_refit():
    X, y = _data()
    est = STkClassifier(model=_dropout_net, random_state=0, max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = est.fit(X, y).decision_function(X)
        second = est.set_params(max_epochs=4).fit(X, y).decision_function(X)
    assert not np.array_equal(first, second)
    with torch.no_grad():
        direct = est.module_(torch.tensor(X, dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_allclose(second, direct, rtol=1e-5, atol=1e-5)


def test_predictions_follow_an_edited_fitted_state():
    # Built from module_state_ at each call: no module cached beside it that
    # an edit of the arrays would leave stale.
    X, y = _data()
    est = STkClassifier(model=lambda d, o: nn.Linear(d, o), max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert np.ptp(est.decision_function(X)) > 0
    for value in est.module_state_.values():
        value[...] = 0
    np.testing.assert_array_equal(est.decision_function(X), 0.0)


def test_search_scoring_does_not_change_later_fits():
    """Scoring the training folds too must not move the initial weights of
    the configurations fitted after."""
    X, y = _data(90)
    grid = {"max_epochs": [1, 2, 3]}

    def scores(return_train_score):
        torch.manual_seed(0)
        search = STkSearchCV(
            STkClassifier(model=_dropout_net, random_state=0),
            grid,
            cv=3,
            scoring="roc_auc",
            return_train_score=return_train_score,
            refit=False,
        )
        return search.fit(X, y).cv_results_["mean_test_score"]

    np.testing.assert_array_equal(scores(False), scores(True))


# -- 2. passes without gradients run in eval mode -------------------------- #
def test_predictions_in_eval_mode():
    X, y = _data()
    calls = []
    est = STkClassifier(
        model=lambda d, o: _Recorder(d, o, calls),
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=2,
        random_state=0,
        max_epochs=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    calls.clear()  # the module of the fit
    est.predict(X)
    assert calls == [(False, False)]


def test_fit_modes_of_each_pass():
    """Training steps in training mode, the threshold's and validation's
    passes in eval mode, each mode given back."""
    X, y = _data()
    modules = []

    def factory(d, o):
        modules.append(_Recorder(d, o, []))
        return modules[-1]

    est = STkClassifier(
        model=factory, early_stopping=True, n_iter_no_change=2, max_epochs=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    module = modules[0]
    calls = module.calls[1:]  # after the estimator's shape check
    assert {training for grad, training in calls if grad} == {True}
    assert {training for grad, training in calls if not grad} == {False}
    assert sum(not grad for grad, _ in calls) >= 2  # threshold, validation
    assert module.training


def test_batchnorm_statistics_skip_validation_rows():
    """The running statistics of batch normalisation come from the training
    steps alone: the same with and without early stopping's validation
    passes, given the same training rows."""
    X, y = _data(80)
    modules = []

    def factory(d, o):
        torch.manual_seed(0)
        modules.append(nn.Sequential(nn.BatchNorm1d(d), nn.Linear(d, o)))
        return modules[-1]

    common = dict(model=factory, random_state=0, max_epochs=2, n_iter_no_change=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with_val = STkClassifier(early_stopping=True, **common).fit(X, y)
        rows = _training_rows(with_val, len(X), y)
        without = STkClassifier(early_stopping=False, **common)
        without.fit(X[rows], y[rows])
    for name in ("0.running_mean", "0.running_var"):
        np.testing.assert_allclose(
            with_val.module_state_[name], without.module_state_[name], rtol=1e-5
        )


def _training_rows(est, n, y):
    """The rows that early stopping kept for training (its split's)."""
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    rng = check_random_state(est.random_state)
    rng.randint(np.iinfo(np.int32).max)  # the fit's seed
    train, _ = train_test_split(
        np.arange(n), test_size=est.validation_fraction, stratify=y, random_state=rng
    )
    return train


# -- 3. the search leaves the warning filters alone ------------------------ #
def test_search_fits_keep_the_process_filters():
    """Each fit of a callable model's search runs with the process's own
    filter list: swapping it (``warnings.catch_warnings``) is not thread-safe."""
    X, y = _data(90)
    seen = []

    def factory(d, o):
        seen.append(warnings.filters is outer and warnings.filters == before)
        return nn.Linear(d, o)

    search = STkSearchCV(
        STkClassifier(model=factory, random_state=0),
        {"max_epochs": [1, 2]},
        cv=3,
        refit=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        outer = warnings.filters
        search.fit(X, y)
    assert seen and all(seen)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_threaded_search_leaves_no_filter():
    X, y = _data(90)
    before = list(warnings.filters)
    for _ in range(3):
        with parallel_backend("threading", n_jobs=2):
            STkSearchCV(
                STkClassifier(model=lambda d, o: nn.Linear(d, o), random_state=0),
                {"max_epochs": [1, 2, 3, 4], "tol": [0.0, 1e-4]},
                cv=3,
                n_jobs=2,
                refit=False,
            ).fit(X, y)
    assert warnings.filters == before


# -- 5. fit and prediction under an enclosing torch context ---------------- #
def _autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("context", [_autocast, torch.inference_mode])
@pytest.mark.parametrize("model", ["linear", "mlp", _dropout_net, _Float32Inside])
def test_fit_ignores_enclosing_context(context, model):
    X, y = _data()

    def fitted(enclosing):
        torch.manual_seed(0)
        est = STkClassifier(model=model, random_state=0, max_epochs=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with enclosing():
                return est.fit(X, y)

    plain, inside = fitted(_nothing), fitted(context)
    np.testing.assert_array_equal(
        plain.decision_function(X), inside.decision_function(X)
    )
    assert plain.loss_curve_ == inside.loss_curve_


def _nothing():
    return contextlib.nullcontext()


@pytest.mark.parametrize("model", ["mlp", _Float32Inside])
def test_prediction_ignores_enclosing_autocast(model):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = STkClassifier(model=model, random_state=0, max_epochs=2).fit(X, y)
    plain = est.predict_proba(X)
    with _autocast():
        inside = est.predict_proba(X)
    assert inside.dtype == plain.dtype == np.float64
    np.testing.assert_array_equal(plain, inside)
