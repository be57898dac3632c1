"""What a scikit-learn user meets in the first hour: raw regression targets,
one model API, class weights, partial_fit, top-k predictions, safe
persistence, read-only and reversed arrays, torch's global generator."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor
from sktopk.losses import names

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLASSIFIERS = [STkClassifier, SmoothTopKSVMClassifier]


@pytest.fixture(scope="module")
def reg_data():
    return make_regression(
        n_samples=300, n_features=5, noise=5.0, random_state=0, bias=3.0
    )


@pytest.fixture(scope="module")
def multi_data():
    return make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=4, random_state=0
    )


@pytest.mark.parametrize("loss", names("individual", task="regression"))
@pytest.mark.parametrize("aggregate", names("aggregate"))
def test_affine_targets_give_affine_predictions(reg_data, loss, aggregate):
    X, y = reg_data
    est = STkRegressor(loss=loss, aggregate=aggregate, max_epochs=4, random_state=0)
    base = est.fit(X, y).predict(X)
    lam = getattr(est, "lambda_", None)
    a, b = 37.0, -1234.5
    moved = STkRegressor(**est.get_params()).fit(X, a * y + b)
    np.testing.assert_allclose(moved.predict(X), a * base + b, rtol=1e-6, atol=1e-6)
    if lam is not None:  # lambda_ is in the units of the user's losses
        power = 2 if loss == "square" else 1
        assert moved.lambda_ == pytest.approx(a**power * lam, rel=1e-5)


def test_raw_targets_score_as_ridge():
    X, y = make_regression(n_samples=400, n_features=8, noise=10.0, random_state=1)
    X = StandardScaler().fit_transform(X)
    target = 100 * y + 500
    ridge = cross_val_score(Ridge(), X, target, cv=3).mean()
    ours = cross_val_score(STkRegressor(random_state=0), X, target, cv=3).mean()
    assert ours >= ridge - 0.03


def test_regressor_refuses_string_targets():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="numbers"):
        STkRegressor().fit(X, np.array(["1.5"] * 20))


@pytest.mark.parametrize("cls", [STkClassifier, STkRegressor, SmoothTopKSVMClassifier])
def test_one_model_api(cls):
    assert cls().model == "linear" and cls().hidden_layer_sizes is None
    assert cls().batch_size == "auto"
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    kw = {"k": 1} if cls is SmoothTopKSVMClassifier else {}
    with pytest.raises(ValueError, match="hidden_layer_sizes=\\(256, 256\\)"):
        cls(hidden_layer_sizes=(256, 256), **kw).fit(X, y)
    mlp = cls(model="mlp", max_epochs=2, random_state=0, **kw).fit(X, y)
    assert [W.shape[1] for W in mlp.coefs_][:-1] == [10]  # the paper's MLP


@pytest.mark.parametrize("sizes", [[[3]], (True,), (np.nan,), (0,), ()])
def test_bad_hidden_sizes(sizes):
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        STkClassifier(model="mlp", hidden_layer_sizes=sizes).fit(X, y)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_class_weight_is_sample_weight_per_class(cls, multi_data):
    X, y = multi_data
    weights = {0: 1.0, 1: 3.0, 2: 0.5, 3: 2.0}
    common = dict(
        max_epochs=3, random_state=0, k=1 if cls is not STkClassifier else 0.9
    )
    by_class = cls(class_weight=weights, **common).fit(X, y)
    by_sample = cls(**common).fit(X, y, sample_weight=[weights[c] for c in y])
    np.testing.assert_allclose(
        by_class.decision_function(X), by_sample.decision_function(X), rtol=1e-6
    )
    balanced = cls(class_weight="balanced", **common).fit(X, y)
    assert not np.allclose(balanced.decision_function(X), by_class.decision_function(X))


@pytest.mark.parametrize("cls", [STkClassifier, STkRegressor, SmoothTopKSVMClassifier])
def test_partial_fit_over_chunks_reaches_fit(cls):
    task = make_regression if cls is STkRegressor else make_classification
    extra = {} if cls is STkRegressor else {"n_classes": 3, "n_informative": 4}
    X, y = task(n_samples=1200, n_features=6, random_state=0, **extra)
    kw = {"k": 1} if cls is SmoothTopKSVMClassifier else {}
    full = cls(max_epochs=10, random_state=0, **kw).fit(X, y)
    part = cls(random_state=0, **kw)
    classes = {} if cls is STkRegressor else {"classes": np.unique(y)}
    for _epoch in range(10):
        for rows in np.array_split(np.arange(len(y)), 4):
            part.partial_fit(X[rows], y[rows], **classes)
    assert part.n_iter_ == 40 and len(part.loss_curve_) == 40
    assert part.score(X, y) >= full.score(X, y) - 0.03
    if "optimizer" in part._partial_state:  # adagrad's sums carried over
        sums = part._partial_state["optimizer"]["sums"][0]
        assert np.all(sums > 0)


def test_partial_fit_checks_classes_and_features(multi_data):
    X, y = multi_data
    est = STkClassifier()
    with pytest.raises(ValueError, match="first partial_fit"):
        est.partial_fit(X, y)
    est.partial_fit(X[y < 3], y[y < 3], classes=[0, 1, 2, 3])
    assert list(est.classes_) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="3 features"):
        est.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="not among"):
        est.partial_fit(X, y + 10)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_predict_topk_on_every_classifier(cls, multi_data):
    X, y = multi_data
    with pytest.raises(NotFittedError):
        cls().predict_topk(X)
    est = cls(max_epochs=3, random_state=0, k=2).fit(X, y)
    top = est.predict_topk(X, k=4)
    np.testing.assert_array_equal(top[:, 0], est.predict(X))
    assert all(set(row) == {0, 1, 2, 3} for row in top)
    with pytest.raises(ValueError, match="k must be an int in \\[1, 4\\]"):
        est.predict_topk(X, k=5)


def test_predict_topk_binary_margin():
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    est = STkClassifier(max_epochs=3, random_state=0).fit(X, y * 2 + 5)
    top = est.predict_topk(X, k=2)
    np.testing.assert_array_equal(top[:, 0], est.predict(X))
    assert set(np.unique(top)) == {5, 7}


@pytest.mark.parametrize(
    "est",
    [
        STkClassifier(model="mlp", max_epochs=3, random_state=0),
        STkRegressor(max_epochs=3, random_state=0),
        SmoothTopKSVMClassifier(k=1, max_epochs=3, random_state=0),
    ],
    ids=["stk", "reg", "svm"],
)
def test_skops_round_trip_with_trusted_types(est, multi_data):
    sio = pytest.importorskip("skops.io", reason="skops is in the dev extra")
    X, y = multi_data
    est.fit(X, y)
    blob = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=blob)
    assert all(t.startswith("sktopk.") for t in untrusted), untrusted
    loaded = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert len(pickle.dumps(est)) < 20_000  # numpy weights, no torch objects


def test_read_only_and_reversed_arrays_just_work(multi_data):
    X, y = multi_data
    est = STkClassifier(max_epochs=3, random_state=0).fit(X, y)
    frozen = X.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = est.predict(frozen)
        reversed_ = est.predict(X[::-1])
    np.testing.assert_array_equal(got, est.predict(X))
    np.testing.assert_array_equal(reversed_, got[::-1])
    STkClassifier(max_epochs=2, random_state=0).fit(frozen[::-1], y[::-1])


def test_fit_and_predict_leave_torch_global_generator_alone(multi_data):
    X, y = multi_data
    torch.manual_seed(123)
    before = torch.get_rng_state()
    est = STkClassifier(model="mlp", max_epochs=2, random_state=0).fit(X, y)
    est.predict(X)
    est.module_  # noqa: B018 - building the torch module must not draw either
    assert torch.equal(torch.get_rng_state(), before)


def test_predict_proba_only_for_probabilistic_losses(multi_data):
    X, y = multi_data
    assert hasattr(STkClassifier(loss="logistic"), "predict_proba")
    assert not hasattr(STkClassifier(loss="hinge"), "predict_proba")
    est = STkClassifier(max_epochs=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(X).sum(1), 1.0)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(model="mlp"), "model 'linear' -> 'mlp'"),
        (dict(), "classes"),
    ],
)
def test_warm_start_changes_are_named(change, match, multi_data):
    X, y = multi_data
    est = STkClassifier(max_epochs=2, warm_start=True, random_state=0).fit(X, y)
    est.set_params(**change)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y % 2 if not change else y)


def test_warm_start_with_other_features_or_hidden_sizes(multi_data):
    X, y = multi_data
    est = STkClassifier(model="mlp", max_epochs=2, warm_start=True, random_state=0)
    est.fit(X, y)
    with pytest.raises(ValueError, match="layer sizes"):
        est.set_params(hidden_layer_sizes=(4,)).fit(X, y)
    est.set_params(hidden_layer_sizes=None)
    with pytest.raises(ValueError, match="layer sizes"):
        est.fit(X[:, :4], y)


def test_callable_model_of_the_wrong_width_is_refused(multi_data):
    X, y = multi_data
    est = STkClassifier(model=lambda n_in, n_out: torch.nn.Linear(n_in, 2))
    with pytest.raises(ValueError, match="n_outputs=4"):
        est.fit(X, y)


def test_pipeline_on_unscaled_features_with_defaults():
    X, y = make_classification(n_samples=400, n_features=6, random_state=0)
    X = X * np.array([1, 10, 100, 1000, 0.1, 1])

    def cv(est):
        return cross_val_score(make_pipeline(StandardScaler(), est), X, y, cv=3).mean()

    assert cv(STkClassifier(random_state=0)) >= cv(LogisticRegression()) - 0.02
