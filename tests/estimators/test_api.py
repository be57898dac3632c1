"""Use inside scikit-learn tooling, persistence, devices and bad input."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor
from sktopk.engine import DivergenceError


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=300, n_features=5, random_state=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_over_k_and_delta_in_pipeline(data):
    # Each grid point scores as a pipeline built with its k and delta (the
    # same folds, seeded), and both parameters change the fit: the four
    # log-losses differ (accuracy alone ties across delta here).
    X, y = data
    pipe = make_pipeline(StandardScaler(), STkClassifier(max_epochs=10, random_state=0))
    grid = {"stkclassifier__k": [0.3, 1.0], "stkclassifier__delta": [0.1, 0.01]}
    scoring = {"accuracy": "accuracy", "nll": "neg_log_loss"}
    search = GridSearchCV(pipe, grid, cv=3, scoring=scoring, refit="accuracy")
    res = search.fit(X, y).cv_results_
    for i, params in enumerate(res["params"]):
        est = STkClassifier(
            max_epochs=10,
            random_state=0,
            k=params["stkclassifier__k"],
            delta=params["stkclassifier__delta"],
        )
        ref = cross_validate(
            make_pipeline(StandardScaler(), est), X, y, cv=3, scoring=scoring
        )
        for name in scoring:
            got = [res[f"split{j}_test_{name}"][i] for j in range(3)]
            np.testing.assert_allclose(got, ref[f"test_{name}"], rtol=1e-12)
    nll = res["mean_test_nll"]
    assert np.abs(np.subtract.outer(nll, nll))[np.triu_indices(4, 1)].min() > 1e-3
    assert search.score(X, y) > 0.7


def test_cross_val_score_and_clone(data):
    X, y = data
    est = STkRegressor(max_epochs=5, random_state=0)
    Xr, yr = make_regression(n_samples=200, n_features=4, random_state=0)
    scores = cross_val_score(est, Xr, yr / yr.std(), cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert clone(est).get_params() == est.get_params()


def test_parallel_workers_use_one_torch_thread(data):
    X, y = data
    seen = []

    def build(n_in, n_out):
        seen.append(torch.get_num_threads())  # runs in the worker
        module = torch.nn.Linear(n_in, n_out)
        module.register_buffer("threads", torch.tensor(torch.get_num_threads()))
        return module

    est = STkClassifier(model=build, max_epochs=2, random_state=0)
    out = cross_validate(est, X, y, cv=2, n_jobs=2, return_estimator=True)
    assert [int(e.module_.threads) for e in out["estimator"]] == [1, 1]


@pytest.mark.parametrize(
    "est",
    [
        STkClassifier(max_epochs=3, random_state=0, model="mlp"),
        SmoothTopKSVMClassifier(k=1, max_epochs=3, random_state=0),
    ],
    ids=["stk", "svm"],
)
def test_pickle_round_trip(data, est):
    X, y = data
    est = clone(est).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.decision_function(X), est.decision_function(X))
    assert all(p.device.type == "cpu" for p in again.module_.parameters())
    assert again.device_ == est.device_  # where it was trained (cuda:0 on a GPU)


def test_model_fitted_for_cuda_predicts_on_cpu_only_machine(data):
    X, y = data
    est = STkClassifier(max_epochs=2, random_state=0).fit(X, y)
    expected = est.predict(X)
    est.device = "cuda"  # as if fitted on a GPU machine and loaded here
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_pickles_cpu_weights(data):
    X, y = data
    est = STkClassifier(device="cuda", max_epochs=3, random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    cpu = STkClassifier(device="cpu", max_epochs=3, random_state=0).fit(X, y)
    assert np.mean(loaded.predict(X) == cpu.predict(X)) > 0.95


def test_input_arrays_not_modified(data):
    X, y = data
    X0, y0 = X.copy(), y.copy()
    w = np.ones(len(y))
    STkClassifier(max_epochs=2, random_state=0).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"k": 0}, "k"),
        ({"k": 1.5}, "k"),
        ({"k": 10_000}, "k=10000"),
        ({"k": -0.2}, "k"),
        ({"delta": 0.0}, "delta"),
        ({"delta": -1.0}, "delta"),
        ({"aggregate": "median"}, "aggregate"),
        ({"loss": "square"}, "loss"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"model": "cnn"}, "model"),
        ({"hidden_layer_sizes": (0,), "model": "mlp"}, "hidden_layer_sizes"),
        ({"device": "tpu"}, "device"),
        ({"C": 0}, "C"),
    ],
)
def test_bad_parameters_raise_value_error(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        STkClassifier(max_epochs=1, **params).fit(X, y)


def test_bad_svm_parameters(data):
    X, y = data
    with pytest.raises(ValueError, match="k=2 must be smaller than the number"):
        SmoothTopKSVMClassifier(k=2).fit(X, y)
    with pytest.raises(ValueError, match="tau"):
        SmoothTopKSVMClassifier(k=1, tau=0.0).fit(X, y)
    with pytest.raises(ValueError, match="margin"):
        SmoothTopKSVMClassifier(k=1, margin=-1.0).fit(X, y)


def test_bad_data(data):
    X, y = data
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        STkClassifier().fit(bad, y)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        STkClassifier().fit(bad, y)
    with pytest.raises(ValueError, match="class"):
        STkClassifier().fit(X, np.zeros(len(y)))
    est = STkClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])
    with pytest.raises(ValueError, match="continuous"):
        STkClassifier().fit(X, np.linspace(0, 1, len(y)))


def test_divergence_stops_with_clear_error():
    X, y = make_regression(n_samples=100, n_features=3, random_state=0)
    est = STkRegressor(optimizer="sgd", learning_rate=1e6, max_epochs=5)
    with pytest.raises(DivergenceError, match="smaller learning_rate"):
        est.fit(X * 1e3, y)
    assert not hasattr(est, "module_")
    # A small C with sgd: the advice is about learning_rate / C, not "a
    # smaller C", which diverges sooner.
    strong = STkRegressor(optimizer="sgd", learning_rate=0.5, C=0.1, max_epochs=20)
    with pytest.raises(DivergenceError, match=r"learning_rate / C = 5, overshoots"):
        strong.fit(X, y)


_LINEAR_CASES = [
    (STkClassifier, {}, 2),
    (STkClassifier, {}, 3),
    (SmoothTopKSVMClassifier, {"k": 1}, 2),
    (SmoothTopKSVMClassifier, {"k": 2}, 3),
]


@pytest.mark.parametrize(("cls", "params", "n_classes"), _LINEAR_CASES)
def test_linear_coef_gives_the_decision_function(cls, params, n_classes):
    X, y = make_classification(
        n_samples=150,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        random_state=0,
    )
    X = X + 50.0  # far from zero: the fitted shift must be in intercept_
    est = cls(max_epochs=3, random_state=0, **params).fit(X, y)
    lr = LogisticRegression().fit(X, y)
    assert est.coef_.shape == lr.coef_.shape
    assert est.intercept_.shape == lr.intercept_.shape
    scores = X @ est.coef_.T + est.intercept_
    decision = est.decision_function(X)
    np.testing.assert_allclose(scores.reshape(decision.shape), decision, atol=1e-9)


def test_regressor_coef_gives_predictions_in_the_units_of_y():
    X, y = make_regression(n_samples=150, n_features=4, random_state=0)
    est = STkRegressor(max_epochs=3, random_state=0).fit(X + 7.0, 300.0 * y - 2e4)
    assert est.coef_.shape == (4,) and isinstance(est.intercept_, float)
    pred = (X + 7.0) @ est.coef_ + est.intercept_
    np.testing.assert_allclose(pred, est.predict(X + 7.0), rtol=1e-9, atol=1e-6)


def test_coef_only_for_a_fitted_linear_model(data):
    X, y = data
    assert not hasattr(STkClassifier(), "coef_")
    mlp = STkClassifier(model="mlp", max_epochs=2, random_state=0).fit(X, y)
    assert not hasattr(mlp, "coef_") and not hasattr(mlp, "intercept_")
    with pytest.raises(AttributeError, match="model='linear'"):
        _ = mlp.coef_


def test_select_from_model_reads_coef():
    X, y = make_classification(
        n_samples=300,
        n_features=8,
        n_informative=2,
        n_redundant=0,
        shuffle=False,
        random_state=0,
    )
    selector = SelectFromModel(STkClassifier(max_epochs=30, random_state=0))
    support = selector.fit(X, y).get_support()
    assert support[:2].all() and support.sum() < 8
