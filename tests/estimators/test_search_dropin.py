"""STkSearchCV where GridSearchCV goes: Pipelines on mixed DataFrames,
scoring, refit, error_score, sample_weight, n_jobs, nested CV."""

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import FitFailedWarning, UnsetMetadataPassedError
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from sktopk import STkClassifier, STkRegressor, STkSearchCV
from sktopk.engine import DivergenceError

# Compared bit for bit with GridSearchCV's single fits: on the CPU.
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.usefixtures("auto_is_cpu"),
]


@pytest.fixture(scope="module")
def mixed():
    """A DataFrame with numbers on different scales and categories."""
    rng = np.random.default_rng(0)
    n = 360
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n) * 10 + 5,
            "c": pd.Categorical(rng.choice(["x", "y", "z"], n)),
            "d": rng.choice(["u", "v"], n),
        }
    )
    signal = df.a + (df.c == "x") * 1.0 + rng.normal(size=n) * 0.5
    return df, (signal > 0.3).astype(int).to_numpy()


def _pipe(**clf):
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["c", "d"]),
            ("num", StandardScaler(), ["a", "b"]),
        ]
    )
    est = STkClassifier(max_epochs=8, random_state=0, **clf)
    return Pipeline([("pre", pre), ("clf", est)])


def _both(est, grid, X, y, fit_params=None, **kw):
    fit_params = fit_params or {}
    ours = STkSearchCV(est, grid, **kw).fit(X, y, **fit_params)
    ref = GridSearchCV(est, grid, **kw).fit(X, y, **fit_params)
    return ours, ref


def _assert_same(ours, ref, keys):
    for key in keys:
        np.testing.assert_allclose(
            ours.cv_results_[key], ref.cv_results_[key], atol=0.01, err_msg=key
        )


def test_pipeline_multimetric_refit_by_name_equals_grid_search(mixed):
    X, y = mixed
    grid = {
        "clf__k": [0.3, 1.0],
        "clf__C": [1.0, 1000.0],
        "pre__num__with_mean": [True, False],
    }
    ours, ref = _both(
        _pipe(),
        grid,
        X,
        y,
        cv=3,
        scoring=["accuracy", "roc_auc"],
        refit="roc_auc",
        return_train_score=True,
    )
    assert set(ours.cv_results_) == set(ref.cv_results_)
    keys = [f"{s}_{m}" for s in ("mean_test", "mean_train") for m in ("accuracy",)]
    _assert_same(ours, ref, keys + ["mean_test_roc_auc", "split2_test_accuracy"])
    np.testing.assert_array_equal(
        ours.cv_results_["rank_test_roc_auc"], ref.cv_results_["rank_test_roc_auc"]
    )
    assert ours.best_params_ == ref.best_params_ and ours.multimetric_
    assert isinstance(ours.best_estimator_, Pipeline)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y))
    assert ours.refit_time_ > 0 and ours.n_splits_ == 3
    # two distinct preprocessing settings: two batches of 4 configs x 3 folds
    assert ours.members_per_batch_ == [12, 12]


def test_sample_weight_reaches_each_fold(mixed):
    X, y = mixed
    w = np.random.default_rng(1).uniform(0.1, 3.0, len(y))
    grid = {"clf__k": [0.3, 1.0]}
    ours, ref = _both(_pipe(), grid, X, y, {"clf__sample_weight": w}, cv=3)
    _assert_same(ours, ref, ["split0_test_score", "split1_test_score"])
    unweighted = STkSearchCV(_pipe(), grid, cv=3).fit(X, y)
    assert not np.allclose(
        unweighted.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]
    )


def test_metadata_routing_of_sample_weight():
    X, y = make_classification(n_samples=240, n_features=5, random_state=0)
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        for scored in (False, True):
            est = (
                STkClassifier(max_epochs=8, random_state=0)
                .set_fit_request(sample_weight=True)
                .set_score_request(sample_weight=scored)
            )
            grid = {"k": [0.3, 1.0]}
            ours, ref = _both(est, grid, X, y, {"sample_weight": w}, cv=3)
            _assert_same(ours, ref, ["split0_test_score", "mean_test_score"])


@pytest.mark.parametrize("scoring", [None, "accuracy"])
def test_routing_an_unrequested_weight_to_a_single_scorer_raises_as_grid_search(
    scoring,
):
    # A single scorer is routed as itself: the estimator's score request
    # (scoring=None) or the scorer's own decides, and an unset one is an error.
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    w = np.ones(len(y))
    est = STkClassifier(max_epochs=2, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        est.set_fit_request(sample_weight=True)
        for search in (GridSearchCV, STkSearchCV):
            with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
                search(est, {"k": [0.5]}, cv=3, scoring=scoring).fit(
                    X, y, sample_weight=w
                )


def test_diverged_members_get_error_score_and_never_win():
    X, y = make_classification(n_samples=300, weights=[0.7], random_state=0)
    est = STkClassifier(optimizer="sgd", max_epochs=20, random_state=0)
    grid = {"learning_rate": [1e6, 1e-7]}
    with pytest.warns(FitFailedWarning, match="diverged"):
        search = STkSearchCV(est, grid, cv=3).fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"][0])
    assert search.cv_results_["rank_test_score"].tolist() == [2, 1]
    assert search.best_params_ == {"learning_rate": 1e-7}
    with pytest.raises(DivergenceError, match="learning_rate"):
        STkSearchCV(est, grid, cv=3, error_score="raise").fit(X, y)
    with pytest.warns(FitFailedWarning):
        low = STkSearchCV(est, grid, cv=3, error_score=-1.0, refit=False).fit(X, y)
    assert low.cv_results_["mean_test_score"][0] == -1.0


def test_diverged_regression_member_is_not_scored():
    X, y = make_regression(n_samples=200, n_features=4, random_state=0)
    est = STkRegressor(optimizer="sgd", max_epochs=20, random_state=0)
    with pytest.warns(FitFailedWarning):
        search = STkSearchCV(est, {"learning_rate": [1e3, 1e-2]}, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and scores[1] > 0.3


@pytest.mark.parametrize("error_score", [np.nan, "raise"])
@pytest.mark.parametrize(
    "grid, match",
    [
        ({"learning_rate": [0, -0.1]}, "'learning_rate' parameter"),
        ({"learning_rate": [-0.1]}, "'learning_rate' parameter"),
        ({"C": [-1.0]}, "'C' parameter"),
        ({"C": [0.0]}, "'C' parameter"),
        ({"aggregate": ["foo"]}, "'aggregate' parameter"),
        ({"batch_size": [0]}, "'batch_size' parameter"),
        ({"hidden_layer_sizes": [(4,)]}, "hidden_layer_sizes"),
        ({"nonsense": [1]}, "Invalid parameter 'nonsense'"),
        ({"k": [10_000]}, "out of range"),
    ],
)
def test_every_grid_value_is_checked_before_training(
    grid, match, error_score, monkeypatch
):
    # Where every grid point is invalid, the first error is raised before
    # any training, whatever error_score.
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    _no_training(monkeypatch)
    search = STkSearchCV(STkClassifier(), grid, cv=3, error_score=error_score)
    with pytest.raises(ValueError, match="param_grid point") as info:
        search.fit(X, y)
    assert info.match(match)


def _no_training(monkeypatch):
    import sktopk.estimators._search_run as run

    def no_training(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("training started")

    monkeypatch.setattr(run, "train_in_chunks", no_training)


@pytest.mark.parametrize(
    "kwargs, fit, error, match",
    [
        ({}, {"sample_weight": np.ones(7)}, ValueError, "sample_weight"),
        ({"error_score": "nan"}, {}, ValueError, "error_score"),
        ({"scoring": ["accuracy", "f1"], "refit": True}, {}, ValueError, "refit"),
    ],
)
def test_bad_search_arguments(kwargs, fit, error, match):
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    with pytest.raises(error, match=match):
        STkSearchCV(STkClassifier(max_epochs=2), {"k": [0.5]}, cv=3, **kwargs).fit(
            X, y, **fit
        )


def test_refuses_estimators_it_cannot_batch():
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=60, random_state=0)
    with pytest.raises(TypeError, match="GridSearchCV"):
        STkSearchCV(LogisticRegression(), {"C": [1.0]}).fit(X, y)
    with pytest.raises(TypeError, match="last step"):
        STkSearchCV(Pipeline([("lr", LogisticRegression())]), {}).fit(X, y)


def test_sparse_input_and_callable_refit():
    import scipy.sparse as sp

    X, y = make_classification(n_samples=150, n_features=6, random_state=0)
    est = STkClassifier(max_epochs=5, random_state=0)
    search = STkSearchCV(
        est, {"k": [0.2, 1.0]}, cv=3, refit=lambda r: int(np.argmin(r["params"] != 0))
    ).fit(sp.csr_matrix(X), y)
    assert search.best_index_ == 0 and not hasattr(search, "best_score_")
    assert search.predict(X).shape == (150,)


def test_nested_cross_validation():
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    inner = STkSearchCV(STkClassifier(max_epochs=5, random_state=0), {"k": [0.3, 1.0]})
    scores = cross_val_score(inner, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.6)


def test_n_jobs_spreads_batches_with_equal_results():
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    est = STkClassifier(max_epochs=5, random_state=0)
    grid = {"aggregate": ["stk", "atk"], "k": [0.3, 1.0]}
    one = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    with joblib.parallel_backend("loky"):
        two = STkSearchCV(est, grid, cv=3, n_jobs=2, refit=False).fit(X, y)
    np.testing.assert_array_equal(
        one.cv_results_["split0_test_score"], two.cv_results_["split0_test_score"]
    )


def test_n_jobs_splits_a_single_batch_by_configurations():
    # One batch (only member parameters vary): n_jobs=2 trains half of the
    # configurations in each worker, with the same scores.
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    est = STkClassifier(max_epochs=5, random_state=0, device="cpu")
    grid = {"k": [0.1, 0.3, 0.6, 1.0], "delta": [0.1, 0.01], "C": [10.0, 1e3]}
    one = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    with joblib.parallel_backend("loky"):
        two = STkSearchCV(est, grid, cv=3, n_jobs=2, refit=False).fit(X, y)
    assert len(one.members_per_batch_) == 1 and len(two.members_per_batch_) == 2
    assert sum(two.members_per_batch_) == one.members_per_batch_[0]
    np.testing.assert_allclose(
        one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    )
    assert one.best_params_ == two.best_params_


def test_split_for_jobs_interleaves_configurations():
    from sktopk.estimators._search_plan import Batch, split_for_jobs

    base = STkClassifier(device="cpu")
    grid = {"k": np.arange(10.0).reshape(2, 5)}
    # refused (fold, configuration) pairs, renumbered in each part
    failed = {(0, 1): "b0", (1, 4): "e1", (1, 2): "c1"}
    batch = Batch(base, [0, 1, 2, 3, 4], list("abcde"), [None, None], [], grid, failed)
    parts = split_for_jobs([batch], 2)
    assert [p.configs for p in parts] == [[0, 2, 4], [1, 3]]
    assert [p.member_params for p in parts] == [list("ace"), list("bd")]
    np.testing.assert_array_equal(parts[1].grid["k"], [[1.0, 3.0], [6.0, 8.0]])
    assert parts[0].failed == {(1, 2): "e1", (1, 1): "c1"}
    assert parts[1].failed == {(0, 0): "b0"}
    assert split_for_jobs([batch], 1) == [batch]
    assert split_for_jobs([batch, batch], 2) == [batch, batch]
    # A callable model trains one configuration at a time: not split.
    own = STkClassifier(model=lambda d, o: __import__("torch").nn.Linear(d, o))
    callable_batch = Batch(own, [0, 1], ["a", "b"], [], [], grid)
    assert split_for_jobs([callable_batch], 2) == [callable_batch]


def test_dask_backend_equals_n_jobs_1():
    distributed = pytest.importorskip("distributed", reason="needs the dask extra")
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    est = STkClassifier(max_epochs=5, random_state=0, device="cpu")
    grid = {"aggregate": ["stk", "atk"], "k": [0.3, 1.0]}
    one = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=False,
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster),
            joblib.parallel_backend("dask"),
        ):
            on_dask = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    np.testing.assert_array_equal(
        one.cv_results_["mean_test_score"], on_dask.cv_results_["mean_test_score"]
    )


# -- drop-in details: each compared side by side with GridSearchCV ---------- #
@pytest.fixture(scope="module")
def small():
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    return X, y, w


def _small_est():
    return STkClassifier(max_epochs=5, random_state=0)


def _plain_accuracy(est, X, y):
    """A scoring callable without sample_weight."""
    return float(np.mean(est.predict(X) == y))


def _acc_f1(est, X, y):
    """A scoring callable that returns several metrics."""
    pred = est.predict(X)
    return {"acc": accuracy_score(y, pred), "f1": f1_score(y, pred)}


def _recorded(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fit()
    return out, [str(w.message) for w in caught if "sample_weight" in str(w.message)]


@pytest.mark.parametrize(
    "scoring", [None, "balanced_accuracy", _plain_accuracy, ["accuracy", "f1"]]
)
def test_fit_sample_weight_reaches_the_scorers_as_in_grid_search(small, scoring):
    # Since scikit-learn 1.7 GridSearchCV also weights the scores with the
    # fit's sample_weight, where a scorer accepts it (and warns where not).
    X, y, w = small
    grid = {"k": [0.3, 1.0], "C": [1.0, 1000.0]}
    kw = {
        "cv": 3,
        "scoring": scoring,
        "refit": "f1" if isinstance(scoring, list) else True,
    }
    ours, ours_warned = _recorded(
        lambda: STkSearchCV(_small_est(), grid, **kw).fit(X, y, sample_weight=w)
    )
    ref, ref_warned = _recorded(
        lambda: GridSearchCV(_small_est(), grid, **kw).fit(X, y, sample_weight=w)
    )
    key = "f1" if isinstance(scoring, list) else "score"
    _assert_same(ours, ref, [f"split{i}_test_{key}" for i in range(3)])
    assert ours.best_params_ == ref.best_params_
    assert len(ours_warned) == len(ref_warned)


def test_grid_values_equal_but_of_other_types_are_not_merged():
    # max_df=1 keeps the terms of at most one document, max_df=1.0 every
    # term: equal as numbers (1 == 1.0) but not as parameters.
    docs, y = _docs(ids=True)
    pipe = make_pipeline(CountVectorizer(), _small_est())
    grid = {"countvectorizer__max_df": [1.0, 1]}
    ours, ref = _both(pipe, grid, docs, y, cv=3)
    _assert_same(ours, ref, ["split0_test_score", "mean_test_score"])
    assert ours.members_per_batch_ == [3, 3]


def test_ragged_list_values_in_the_grid():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"c": rng.choice(list("ABCD"), 90), "d": rng.choice(list("xyz"), 90)}
    )
    y = (df.c == "A").astype(int).to_numpy()
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["c", "d"])]
    )
    pipe = make_pipeline(pre, _small_est())
    cats = [list("ABCD"), list("xyz")]
    grid = {"columntransformer__cat__categories": ["auto", cats]}
    ours, ref = _both(pipe, grid, df, y, cv=3)
    _assert_same(ours, ref, ["split0_test_score", "mean_test_score"])


def test_group_candidates_keys_values_by_their_exact_types():
    import pickle

    from sktopk.estimators._search_plan import group_candidates

    scaler = StandardScaler()
    distinct = [1, 1.0, True, np.int64(1), np.float32(1), [1], (1,), [1.0]]
    distinct += [np.array([1]), np.array([1.0]), np.array([[1]]), {"a": 1}]
    distinct += [{"a": 1.0}, 0.0, -0.0, scaler, StandardScaler(), None, "1"]
    # a preprocessing parameter, and a non-member one of the final step
    for name in ("pre__p", "clf__q"):
        groups = group_candidates([{name: v} for v in distinct], "clf", {"k"})
        assert len(groups) == len(distinct)
    equal = [[["a", "b"], ["c"]], float("nan"), np.arange(3.0), {"a": [1, 2]}]
    equal += [np.array(["x", None], dtype=object)]
    for value in equal:
        copy = pickle.loads(pickle.dumps(value))
        groups = group_candidates([{"pre__p": value}, {"pre__p": copy}], "clf", {})
        assert list(groups.values()) == [[0, 1]]
    groups = group_candidates([{"pre__p": scaler}, {"pre__p": scaler}], "clf", {})
    assert list(groups.values()) == [[0, 1]]


def _docs(ids: bool):
    """Short documents, with a term of their own where ``ids``."""
    y = np.random.default_rng(0).integers(0, 2, 90)
    docs = [f"{'good' if t else 'bad'} movie" for t in y]
    return ([f"{d} id{i}" for i, d in enumerate(docs)] if ids else docs), y


def test_a_failing_preprocessing_setting_gets_error_score():
    # max_df=1 keeps the terms of at most one document: none remains,
    # CountVectorizer raises on every fold.
    docs, y = _docs(ids=False)
    pipe = make_pipeline(CountVectorizer(), _small_est())
    grid = {"countvectorizer__max_df": [1.0, 1]}
    with pytest.warns(FitFailedWarning):
        ours, ref = _both(pipe, grid, docs, y, cv=3)
    _assert_same(ours, ref, ["split0_test_score", "mean_test_score"])
    assert np.isnan(ours.cv_results_["mean_test_score"][1])
    with pytest.raises(ValueError, match="no terms remain"):
        STkSearchCV(pipe, grid, cv=3, error_score="raise").fit(docs, y)
    with pytest.raises(ValueError, match="All the 3 fits failed"):
        STkSearchCV(pipe, {"countvectorizer__max_df": [1]}, cv=3).fit(docs, y)


def test_a_training_fold_the_estimator_refuses_gets_error_score():
    # KFold on labels in blocks: the middle fold trains on one class only.
    from sklearn.model_selection import KFold

    X, _ = make_classification(60, 4, random_state=0)
    y = np.r_[np.zeros(20), np.ones(20), np.zeros(20)].astype(int)
    grid = {"k": [0.5, 1.0]}
    with pytest.warns(FitFailedWarning, match="on fold 1"):
        ours, ref = _both(_small_est(), grid, X, y, cv=KFold(3))
    _assert_same(ours, ref, ["split0_test_score", "split2_test_score"])
    assert np.isnan(ours.cv_results_["split1_test_score"]).all()
    assert np.isnan(ref.cv_results_["split1_test_score"]).all()
    with pytest.raises(ValueError, match="one class|1 class"):
        STkSearchCV(_small_est(), grid, cv=KFold(3), error_score="raise").fit(X, y)
    with pytest.raises(ValueError, match="All the 4 fits failed"):
        STkSearchCV(_small_est(), grid, cv=KFold(2)).fit(X[:40], y[:40])


def test_an_integer_k_beyond_a_training_fold_gets_error_score():
    # 3 folds of 60 rows: 40 training rows; k=40 fits, k=50 does not.
    X, y = make_classification(60, 4, random_state=0)
    grid = {"k": [0.5, 40, 50]}
    with pytest.warns(FitFailedWarning, match="k=50"):
        ours, ref = _both(_small_est(), grid, X, y, cv=3)
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])
    assert np.isnan(ours.cv_results_["mean_test_score"][2])
    assert ours.best_params_ == ref.best_params_
    with pytest.raises(ValueError, match="param_grid point .*k.: 50"):
        STkSearchCV(_small_est(), grid, cv=3, error_score="raise").fit(X, y)


def test_callable_scoring_returning_a_dict_is_multimetric(small):
    X, y, _ = small
    grid = {"k": [0.3, 1.0], "C": [1.0, 1000.0]}
    kw = {"cv": 3, "scoring": _acc_f1, "refit": "acc", "return_train_score": True}
    ours, ref = _both(_small_est(), grid, X, y, **kw)
    assert list(ours.cv_results_) == list(ref.cv_results_)
    _assert_same(ours, ref, ["split0_test_acc", "mean_test_f1", "mean_train_acc"])
    for key in ("rank_test_acc", "rank_test_f1"):
        np.testing.assert_array_equal(ours.cv_results_[key], ref.cv_results_[key])
    assert ours.multimetric_ and ours.scorer_ is _acc_f1
    assert ours.best_params_ == ref.best_params_
    assert ours.best_score_ == pytest.approx(ref.best_score_)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y))
    for cls in (STkSearchCV, GridSearchCV):
        with pytest.raises(ValueError, match="refit"):
            cls(_small_est(), grid, cv=3, scoring=_acc_f1).fit(X, y)
        unrefitted = cls(_small_est(), grid, cv=3, scoring=_acc_f1, refit=False)
        assert not hasattr(unrefitted.fit(X, y), "best_params_")


def test_one_step_pipeline_equals_grid_search(small):
    X, y, _ = small
    pipe = Pipeline([("clf", _small_est())])
    ours, ref = _both(pipe, {"clf__k": [0.3, 1.0]}, X, y, cv=3)
    _assert_same(ours, ref, ["split0_test_score", "mean_test_score"])
    assert ours.best_params_ == ref.best_params_
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_cv_results_layout_dtypes_and_feature_names_equal_grid_search(small):
    X, y, _ = small
    X = pd.DataFrame(X, columns=list("abcd"))
    grid = [
        {"k": [0.5, 1], "aggregate": ["stk"], "class_weight": [None, "balanced"]},
        {"aggregate": ["average"], "C": [1.0, 10], "model": ["mlp"]},
        {"model": ["mlp"], "hidden_layer_sizes": [(3,), (2, 2)]},
    ]
    ours, ref = _both(_small_est(), grid, X, y, cv=3, return_train_score=True)
    assert list(ours.cv_results_) == list(ref.cv_results_)
    for key in [k for k in ref.cv_results_ if k.startswith("param_")]:
        got, want = ours.cv_results_[key], ref.cv_results_[key]
        assert got.dtype == want.dtype, key
        np.testing.assert_array_equal(np.ma.getmaskarray(got), want.mask)
        assert got.tolist() == want.tolist(), key
    np.testing.assert_array_equal(ours.feature_names_in_, ref.feature_names_in_)


def test_score_takes_parameters_as_grid_search(small):
    X, y, w = small
    grid = {"k": [0.3, 1.0]}
    ours, ref = _both(_small_est(), grid, X, y, cv=3)
    for search in (ours, ref):
        with pytest.raises(ValueError, match="enable_metadata_routing"):
            search.score(X, y, sample_weight=w)
    with sklearn.config_context(enable_metadata_routing=True):
        est = _small_est().set_score_request(sample_weight=True)
        ours, ref = _both(est, grid, X, y, cv=3)
        weighted = ours.score(X, y, sample_weight=w)
        assert weighted == pytest.approx(ref.score(X, y, sample_weight=w))
    assert weighted != pytest.approx(ours.score(X, y))
    for cls in (STkSearchCV, GridSearchCV):
        with pytest.raises(AttributeError, match="refit=False"):
            cls(_small_est(), grid, cv=3, refit=False).fit(X, y).score(X, y)


@pytest.mark.parametrize("best, error", [(1.5, TypeError), (2, IndexError)])
def test_bad_refit_callable_raises_as_grid_search(small, best, error):
    X, y, _ = small
    for cls in (STkSearchCV, GridSearchCV):
        search = cls(_small_est(), {"k": [0.3, 1.0]}, cv=3, refit=lambda r: best)
        with pytest.raises(error):
            search.fit(X, y)


# -- n_jobs, Pipelines, grid values and attributes as in GridSearchCV ------- #
def _failure_messages(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fit()
    return out, sorted(
        str(w.message) for w in caught if issubclass(w.category, FitFailedWarning)
    )


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_refused_members_get_error_score_whatever_n_jobs(n_jobs):
    # 61 rows in 3 folds: 40 or 41 training rows. k=41 is refused on one
    # fold, k=50 on every fold; n_jobs=2 splits the batch into [0.5, 50]
    # and [41], trained in two worker processes.
    X, y = make_classification(61, 4, random_state=0)
    est = STkClassifier(max_epochs=5, random_state=0, device="cpu")
    grid = {"k": [0.5, 41, 50]}
    with joblib.parallel_backend("loky"):
        ours, messages = _failure_messages(
            lambda: STkSearchCV(est, grid, cv=3, n_jobs=n_jobs).fit(X, y)
        )
    with pytest.warns(FitFailedWarning):
        ref = GridSearchCV(est, grid, cv=3).fit(X, y)
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])
    assert np.isnan(ours.cv_results_["mean_test_score"][1:]).all()
    k41 = [ours.cv_results_[f"split{i}_test_score"][1] for i in range(3)]
    assert np.isnan(k41).sum() == 1  # refused on the fold of 40 training rows
    assert ours.best_params_ == ref.best_params_ == {"k": 0.5}
    assert len(messages) == 4 and sum("'k': 50" in m for m in messages) == 3


def test_diverged_members_warn_the_caller_with_n_jobs():
    # A joblib worker's warnings never reach the caller: the batch carries
    # its FitFailedWarnings back.
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    est = STkClassifier(optimizer="sgd", max_epochs=5, random_state=0, device="cpu")
    grid = {"learning_rate": [1e6, 1e-7]}
    one, one_messages = _failure_messages(
        lambda: STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    )
    with joblib.parallel_backend("loky"):
        two, two_messages = _failure_messages(
            lambda: STkSearchCV(est, grid, cv=3, n_jobs=2, refit=False).fit(X, y)
        )
    assert len(two.members_per_batch_) == 2
    assert len(one_messages) == 3 and two_messages == one_messages
    np.testing.assert_array_equal(
        one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    )


def _weighted_pipe(scaler_weighted: bool):
    scaler = StandardScaler().set_fit_request(sample_weight=scaler_weighted)
    clf = _small_est().set_fit_request(sample_weight=True)
    return Pipeline([("sc", scaler), ("clf", clf)])


@pytest.mark.parametrize("scaler_weighted", [True, False])
def test_metadata_routing_to_a_pipeline_with_a_transformer(small, scaler_weighted):
    # Under metadata routing a Pipeline routes fit's metadata to each step's
    # fit_transform or fit, as the step requests it.
    from sklearn.metrics import make_scorer

    X, y, w = small
    w = np.where(np.arange(len(y)) % 2, w, 0.01)
    grid = {"clf__k": [0.5, 1.0]}
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight=True)
        ours, ref = _both(
            _weighted_pipe(scaler_weighted),
            grid,
            X,
            y,
            {"sample_weight": w},
            cv=3,
            scoring=scorer,
        )
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])
    assert ours.best_params_ == ref.best_params_


def test_an_unset_score_request_in_a_pipeline_raises_as_its_score(small):
    # GridSearchCV scores a Pipeline by Pipeline.score, which refuses weights
    # that its last step has not said it takes or not (an error on every fit,
    # NaN scores); STkSearchCV scores its members by the last step's score and
    # makes the Pipeline's check once, before training. A set request is
    # taken as set.
    X, y, w = small
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = _weighted_pipe(False)
        with pytest.raises(UnsetMetadataPassedError, match="Pipeline.score"):
            STkSearchCV(pipe, {"clf__k": [0.5]}, cv=3).fit(X, y, sample_weight=w)
        pipe.named_steps["clf"].set_score_request(sample_weight=True)
        ours, ref = _both(
            pipe, {"clf__k": [0.5, 1.0]}, X, y, {"sample_weight": w}, cv=3
        )
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])


@pytest.mark.parametrize("step", [None, "passthrough"])
def test_pipeline_with_an_empty_step_equals_grid_search(small, step):
    X, y, w = small
    pipe = Pipeline([("sc", step), ("clf", _small_est())])
    grid = {"clf__k": [0.5, 1.0], "sc": [step, StandardScaler()]}
    ours, ref = _both(pipe, grid, X, y, {"clf__sample_weight": w}, cv=3)
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])
    assert ours.best_params_ == ref.best_params_
    assert ours.members_per_batch_ == [6, 6]


def test_estimators_in_the_grid_are_cloned_as_in_grid_search(small):
    X, y, _ = small
    pipe = Pipeline([("sc", StandardScaler()), ("clf", _small_est())])
    for search in (STkSearchCV, GridSearchCV):
        minmax = MinMaxScaler()
        grid = {"sc": [minmax], "clf__k": [0.5, 1.0]}
        fitted = search(pipe, grid, cv=3).fit(X, y)
        assert not hasattr(minmax, "data_min_"), search.__name__
        assert fitted.cv_results_["params"][0]["sc"] is minmax
        assert not hasattr(fitted.best_params_["sc"], "data_min_")
        assert hasattr(fitted.best_estimator_["sc"], "data_min_")


def test_takes_every_grid_search_parameter(small):
    X, y, _ = small
    grid = {"k": [0.5, 1.0]}
    ref = GridSearchCV(_small_est(), grid).get_params(deep=False)
    ours = STkSearchCV(_small_est(), grid).get_params(deep=False)
    assert {k: repr(ours.get(k)) for k in ref} == {k: repr(v) for k, v in ref.items()}
    assert set(ours) - set(ref) == {"max_memory"}
    est = STkClassifier(max_epochs=5, random_state=0, device="cpu")
    one = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    with joblib.parallel_backend("loky"):
        two = STkSearchCV(est, grid, cv=3, n_jobs=2, pre_dispatch=1, refit=False)
        two.fit(X, y)
    np.testing.assert_array_equal(
        one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    )


def test_invalid_grid_points_get_error_score_as_in_grid_search(small, monkeypatch):
    # hidden_layer_sizes with model="linear" is invalid: that point scores
    # error_score, the others train.
    X, y, _ = small
    grid = {"model": ["linear", "mlp"], "hidden_layer_sizes": [None, (4,)]}
    with pytest.warns(FitFailedWarning, match="hidden_layer_sizes"):
        ours, ref = _both(_small_est(), grid, X, y, cv=3)
    _assert_same(ours, ref, [f"split{i}_test_score" for i in range(3)])
    invalid = ours.cv_results_["params"].index(
        {"hidden_layer_sizes": (4,), "model": "linear"}
    )
    assert np.isnan(ours.cv_results_["mean_test_score"]).tolist() == [
        i == invalid for i in range(4)
    ]
    assert ours.best_params_ == ref.best_params_
    with pytest.warns(FitFailedWarning):
        low = STkSearchCV(_small_est(), grid, cv=3, error_score=-1.0).fit(X, y)
    assert low.cv_results_["mean_test_score"][invalid] == -1.0
    _no_training(monkeypatch)
    for mixed in (grid, {"learning_rate": [0.1, 0]}):
        search = STkSearchCV(_small_est(), mixed, cv=3, error_score="raise")
        with pytest.raises(ValueError, match="param_grid point"):
            search.fit(X, y)


def _exposed(search) -> dict:
    names = ["predict", "predict_proba", "predict_log_proba", "decision_function"]
    names += ["score", "transform", "inverse_transform", "score_samples"]
    return {name: hasattr(search, name) for name in names + ["classes_"]}


@pytest.mark.parametrize("refit", [True, False])
def test_methods_and_attributes_exposed_as_in_grid_search(small, refit):
    X, y, _ = small
    grid = {"k": [0.5, 1.0]}
    ours, ref = (
        cls(_small_est(), grid, cv=3, refit=refit)
        for cls in (STkSearchCV, GridSearchCV)
    )
    assert _exposed(ours) == _exposed(ref)  # before fit
    ours.fit(X, y), ref.fit(X, y)
    assert _exposed(ours) == _exposed(ref)
    assert hasattr(ours, "n_features_in_") == hasattr(ref, "n_features_in_")
    assert _exposed(ours)["predict"] == refit


def test_an_empty_cv_raises_as_grid_search(small):
    X, y, _ = small
    for cls in (STkSearchCV, GridSearchCV):
        with pytest.raises(ValueError, match="No fits were performed"):
            cls(_small_est(), {"k": [0.5]}, cv=[]).fit(X, y)


@pytest.mark.parametrize("name", ["classes_", "score"])
def test_refit_false_names_the_missing_refit_as_grid_search(name):
    # classes_ said "not fitted yet" after a successful fit.
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    est = STkClassifier(max_epochs=2, random_state=0)
    grid = {"k": [0.5, 1.0]}
    ours = STkSearchCV(est, grid, cv=2, refit=False).fit(X, y)
    ref = GridSearchCV(est, grid, cv=2, refit=False).fit(X, y)
    for search in (ours, ref):
        with pytest.raises(AttributeError, match=f"refit=False`. {name} is"):
            attr = getattr(search, name)
            attr(X, y)
    assert not hasattr(ours, "n_features_in_") and not hasattr(ref, "n_features_in_")


def test_every_member_diverging_is_an_error_as_in_grid_search():
    # The search went on to refit the best of its NaN scores.
    X, y = make_regression(n_samples=500, n_features=10, noise=1.0, random_state=0)
    est = STkRegressor(aggregate="maximum", optimizer="sgd", random_state=0)
    for search in (STkSearchCV, GridSearchCV):
        with pytest.raises(ValueError, match="All the 4 fits failed"):
            search(est, {"C": [1000.0, 1e4]}, cv=2).fit(X, y)
