"""STkSearchCV against GridSearchCV run one configuration at a time."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV, KFold

from sktopk import STkClassifier, STkRegressor, STkSearchCV

# Compared bit for bit with GridSearchCV's single fits: on the CPU.
pytestmark = pytest.mark.usefixtures("auto_is_cpu")


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(n_samples=240, n_features=5, random_state=0)


def _compare(est, grid, X, y, cv, **kw):
    ours = STkSearchCV(est, grid, cv=cv, **kw).fit(X, y)
    ref = GridSearchCV(est, grid, cv=cv).fit(X, y)
    # A fold's score may differ by one of its 80 samples: batched products
    # round otherwise, which an MLP with a small k can amplify (the user guide
    # says so).
    for key in ["mean_test_score"] + [f"split{i}_test_score" for i in range(3)]:
        np.testing.assert_allclose(
            ours.cv_results_[key], ref.cv_results_[key], atol=0.013, err_msg=key
        )
    assert ours.cv_results_["params"] == ref.cv_results_["params"]
    return ours, ref


def test_classifier_grid_equals_grid_search(clf_data):
    X, y = clf_data
    est = STkClassifier(model="mlp", max_epochs=15, random_state=0)
    grid = {
        "aggregate": ["stk", "atk"],
        "k": [0.3, 1.0],
        "C": [10.0, 1000.0],
        "learning_rate": [0.1, 0.02],
    }
    ours, ref = _compare(est, grid, X, y, cv=3)
    assert ours.best_params_ == ref.best_params_
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_regressor_with_early_stopping_equals_grid_search():
    X, y = make_regression(n_samples=200, n_features=4, noise=5.0, random_state=0)
    est = STkRegressor(
        early_stopping=True, n_iter_no_change=3, max_epochs=30, random_state=1
    )
    grid = {"k": [0.2, 0.6, 1.0], "delta": [0.1, 0.001]}
    _compare(est, grid, X, y / y.std(), cv=KFold(3, shuffle=True, random_state=0))


def test_memory_budget_splits_batches_without_changing_results(clf_data):
    X, y = clf_data
    est = STkClassifier(max_epochs=5, random_state=0)
    grid = {"k": [0.2, 0.4, 0.6, 0.8, 1.0]}
    whole = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    small = STkSearchCV(est, grid, cv=3, refit=False, max_memory="20KB").fit(X, y)
    assert whole.members_per_batch_ == [15]
    assert small.members_per_batch_[0] < 15
    np.testing.assert_allclose(
        small.cv_results_["mean_test_score"], whole.cv_results_["mean_test_score"]
    )
    with pytest.raises(MemoryError, match="max_memory"):
        STkSearchCV(est, grid, cv=3, max_memory=10).fit(X, y)


def test_callable_model_is_fitted_one_by_one_as_grid_search(clf_data):
    X, y = clf_data

    def build(n_in, n_out):
        torch.manual_seed(0)  # the callable seeds its own initial weights
        return torch.nn.Linear(n_in, n_out)

    est = STkClassifier(model=build, max_epochs=5, random_state=0)
    ours, _ = _compare(est, {"k": [0.5, 1.0]}, X, y, cv=3)
    assert ours.members_per_batch_ == [1]


def _accuracy_calls(monkeypatch):
    import sklearn.metrics

    calls = []
    original = sklearn.metrics.accuracy_score

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(sklearn.metrics, "accuracy_score", counted)
    return calls


@pytest.mark.parametrize("labels", ["int", "str"])
def test_default_score_is_accuracy_score_without_rechecking_labels(
    clf_data, monkeypatch, labels
):
    X, y = clf_data
    y = np.where(y == 1, "yes", "no") if labels == "str" else y
    est = STkClassifier(max_epochs=5, random_state=0)
    grid = {"k": [0.3, 1.0], "C": [10.0, 1000.0]}
    calls = _accuracy_calls(monkeypatch)
    fast = STkSearchCV(est, grid, cv=3, return_train_score=True).fit(X, y)
    assert calls == []  # the members' default score skips accuracy_score
    fast.best_estimator_.score(X, y)
    assert calls == [1]  # which the estimator's own score calls
    ref = STkSearchCV(est, grid, cv=3, scoring="accuracy", return_train_score=True)
    ref.fit(X, y)
    for key in ["mean_test_score", "split1_test_score", "mean_train_score"]:
        np.testing.assert_array_equal(fast.cv_results_[key], ref.cv_results_[key])


def test_default_score_with_weights_goes_through_the_scorer(clf_data, monkeypatch):
    import sklearn

    X, y = clf_data
    w = np.linspace(0.5, 2.0, len(y))
    calls = _accuracy_calls(monkeypatch)
    with sklearn.config_context(enable_metadata_routing=True):
        est = STkClassifier(max_epochs=5, random_state=0)
        est.set_fit_request(sample_weight=False).set_score_request(sample_weight=True)
        search = STkSearchCV(est, {"k": [0.3, 1.0]}, cv=3).fit(X, y, sample_weight=w)
    assert len(calls) == 2 * 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_default_score_with_a_class_seen_only_in_a_test_fold(clf_data):
    # A class that a training fold never saw counts as an error in its test
    # fold, as with accuracy_score.
    X, y = clf_data
    y = y.copy()
    y[-20:] = 2  # only in the last test fold of an unshuffled split
    folds = [
        (np.arange(0, 160), np.arange(160, 240)),
        (np.arange(80, 240), np.arange(80)),
    ]
    est = STkClassifier(max_epochs=5, random_state=0)
    grid = {"k": [0.3, 1.0]}
    fast = STkSearchCV(est, grid, cv=folds).fit(X, y)
    ref = STkSearchCV(est, grid, cv=folds, scoring="accuracy").fit(X, y)
    for key in ["split0_test_score", "split1_test_score"]:
        np.testing.assert_array_equal(fast.cv_results_[key], ref.cv_results_[key])


class _ColumnPredictions(STkClassifier):
    """Predictions as a column: accuracy_score flattens them."""

    def predict(self, X):
        return super().predict(X)[:, None]


def test_default_score_of_predictions_of_another_shape_goes_through_the_scorer(
    clf_data,
):
    X, y = clf_data
    est = _ColumnPredictions(max_epochs=5, random_state=0)
    grid = {"k": [0.3, 1.0]}
    with pytest.warns(Warning):  # the scorer's: a column vector was passed
        fast = STkSearchCV(est, grid, cv=3).fit(X, y)
    ref = STkSearchCV(STkClassifier(max_epochs=5, random_state=0), grid, cv=3).fit(X, y)
    np.testing.assert_array_equal(
        fast.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"]
    )
    assert fast.cv_results_["mean_test_score"].max() > 0.6  # not broadcast (n, n)


@pytest.mark.parametrize("aggregate", ["maximum", "stk", "matk"])
def test_folds_of_unequal_steps_equal_grid_search(aggregate):
    # 161 rows in 5 folds: training folds of 128 and 129 rows, 8 and 9
    # minibatches of 16. The shorter folds skip a step, which must add nothing
    # to their epoch's objective: it decides when they stop (and, for the
    # maximum, an all-padding batch is -inf: every member diverged).
    X, y = make_classification(n_samples=161, n_features=5, random_state=0)
    est = STkClassifier(aggregate=aggregate, max_epochs=40, random_state=0)
    grid = {"learning_rate": [0.1, 0.02]}
    ours = STkSearchCV(est, grid, cv=KFold(5)).fit(X, y)
    ref = GridSearchCV(est, grid, cv=KFold(5)).fit(X, y)
    for i in range(5):
        key = f"split{i}_test_score"
        np.testing.assert_array_equal(ours.cv_results_[key], ref.cv_results_[key])


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_prints_grid_search_first_line(clf_data, capsys, verbose):
    X, y = clf_data
    grid = {"k": [0.3, 1.0]}
    est = STkClassifier(max_epochs=2, random_state=0)
    STkSearchCV(est, grid, cv=3, verbose=verbose, refit=False).fit(X, y)
    out = capsys.readouterr()
    line = "Fitting 3 folds for each of 2 candidates, totalling 6 fits, as 1 batched"
    assert (line in out.out) == bool(verbose)
    assert ("batches" in out.err) == bool(verbose)  # the progress bar


def test_results_do_not_depend_on_the_memory_free(clf_data, monkeypatch):
    # The default budget is half the free memory but never below 1 GiB: a
    # grid within it is cut into the same chunks (MLP scores differed by
    # 0.01 between 72 and 6 members at once).
    from sktopk.engine import grid as engine_grid

    X, y = clf_data
    est = STkClassifier(model="mlp", max_epochs=5, random_state=0)
    grid = {"k": [0.1, 0.5, 0.9], "C": [10.0, 1000.0], "learning_rate": [0.05, 0.1]}
    runs = []
    for free in (2**20, 64 * 2**30):  # 1 MiB or 64 GiB available
        monkeypatch.setattr(engine_grid, "host_available", lambda *a, f=free: f)
        runs.append(STkSearchCV(est, grid, cv=3, refit=False).fit(X, y))
    assert runs[0].members_per_batch_ == runs[1].members_per_batch_ == [36]
    np.testing.assert_array_equal(
        runs[0].cv_results_["mean_test_score"], runs[1].cv_results_["mean_test_score"]
    )
