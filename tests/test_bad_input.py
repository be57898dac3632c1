# ruff: noqa: E501  (a table reads best one case per line)
"""Every bad input gets a clear ValueError/TypeError naming what was wrong,
before any training, and never changes the caller's arrays.

One table of cases: (name, call, expected error, pattern in the message).
``call`` gets fresh copies of small data sets and must raise.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor, STkSearchCV
from sktopk.losses import (
    MATkLoss,
    SmoothTopKSVMLoss,
    STkLoss,
    TopKSVMLoss,
    atk,
    cross_entropy,
    logistic,
    stk,
)

_Xc, _yc = make_classification(n_samples=60, n_features=4, random_state=0)
_Xm, _ym = make_classification(
    n_samples=80, n_features=6, n_informative=4, n_classes=4, random_state=0
)


def _fit(est, X=None, y=None, **kw):
    def call(d):
        Xd = d["Xc"] if X is None else X(d)
        yd = d["yc"] if y is None else y(d)
        return est.fit(Xd, yd, **kw)

    return call


def _fitted(est, then):
    def call(d):
        est.fit(d["Xc"], d["yc"])
        return then(est, d)

    return call


CASES = [
    # parameters
    ("k zero", _fit(STkClassifier(k=0)), ValueError, "'k' parameter"),
    ("k too large", _fit(STkClassifier(k=500)), ValueError, "k=500 is out of range"),
    ("k fraction > 1", _fit(STkClassifier(k=1.5)), ValueError, "'k' parameter"),
    ("delta zero", _fit(STkClassifier(delta=0.0)), ValueError, "'delta' parameter"),
    ("delta negative", _fit(STkClassifier(delta=-1.0)), ValueError, "'delta'"),
    ("unknown loss", _fit(STkClassifier(loss="nope")), ValueError, "'loss' parameter"),
    ("regression loss", _fit(STkClassifier(loss="square")), ValueError, "'loss'"),
    ("unknown aggregate", _fit(STkClassifier(aggregate="x")), ValueError, "aggregate"),
    (
        "learning rate 0",
        _fit(STkClassifier(learning_rate=0)),
        ValueError,
        "learning_rate",
    ),
    ("C nan", _fit(STkClassifier(C=math.nan)), ValueError, "'C' parameter"),
    (
        "momentum of 1 or more",
        _fit(STkClassifier(optimizer="sgd", optimizer_params={"momentum": 1.5})),
        ValueError,
        r"momentum must be a number in \[0, 1\)",
    ),
    ("batch 0", _fit(STkClassifier(batch_size=0)), ValueError, "batch_size"),
    (
        "unknown optimizer",
        _fit(STkClassifier(optimizer="lbfgs")),
        ValueError,
        "optimizer",
    ),
    (
        "optimizer option",
        _fit(STkClassifier(optimizer_params={"beta": 1})),
        ValueError,
        "beta",
    ),
    ("penalty", _fit(STkClassifier(penalty="l3")), ValueError, "'penalty' parameter"),
    ("l1_ratio", _fit(STkClassifier(l1_ratio=2.0)), ValueError, "'l1_ratio'"),
    (
        "hidden [[3]]",
        _fit(STkClassifier(model="mlp", hidden_layer_sizes=[[3]])),
        ValueError,
        "hidden_layer_sizes",
    ),
    (
        "hidden (True,)",
        _fit(STkClassifier(model="mlp", hidden_layer_sizes=(True,))),
        ValueError,
        "hidden_layer_sizes",
    ),
    (
        "hidden (nan,)",
        _fit(STkClassifier(model="mlp", hidden_layer_sizes=(math.nan,))),
        ValueError,
        "hidden_layer_sizes",
    ),
    (
        "hidden with linear",
        _fit(STkClassifier(hidden_layer_sizes=(8,))),
        ValueError,
        'model="linear"',
    ),
    ("device meta", _fit(STkClassifier(device="meta")), ValueError, "device='meta'"),
    ("device mps", _fit(STkClassifier(device="mps")), ValueError, "device='mps'"),
    (
        "device nonsense",
        _fit(STkClassifier(device="gpu7")),
        ValueError,
        "device='gpu7'",
    ),
    (
        "svm k >= classes",
        _fit(SmoothTopKSVMClassifier(k=2)),
        ValueError,
        "k=2 must be smaller",
    ),
    ("svm tau 0", _fit(SmoothTopKSVMClassifier(k=1, tau=0.0)), ValueError, "'tau'"),
    (
        "svm margin < 0",
        _fit(SmoothTopKSVMClassifier(k=1, margin=-1.0)),
        ValueError,
        "'margin'",
    ),
    (
        "class_weight",
        _fit(STkClassifier(class_weight="nope")),
        ValueError,
        "class_weight",
    ),
    (
        "class_weight negative",
        _fit(STkClassifier(class_weight={0: -1.0, 1: 1.0})),
        ValueError,
        "class_weight must be finite and non-negative",
    ),
    (
        "class_weight infinite",
        _fit(STkClassifier(class_weight={0: math.inf, 1: 1.0})),
        ValueError,
        "class_weight must be finite and non-negative",
    ),
    (
        "class_weight all zero",
        _fit(STkClassifier(class_weight={0: 0.0, 1: 0.0})),
        ValueError,
        "gives every sample a zero weight",
    ),
    (
        "class_weight balanced in partial_fit",
        lambda d: STkClassifier(class_weight="balanced").partial_fit(
            d["Xc"], d["yc"], classes=[0, 1]
        ),
        ValueError,
        "not supported by partial_fit",
    ),
    (
        "optimizer option unknown",
        _fit(STkClassifier(optimizer="sgd", optimizer_params={"foo": 1})),
        ValueError,
        "Unknown option 'foo'",
    ),
    (
        "optimizer option in a grid",
        lambda d: STkSearchCV(
            STkClassifier(optimizer="sgd"),
            {"optimizer_params": [None, {"momentum": -1.0}]},
            error_score="raise",  # else that point scores nan, as in GridSearchCV
        ).fit(d["Xc"], d["yc"]),
        ValueError,
        "param_grid point .*momentum must be",
    ),
    (
        "search verbose negative",
        lambda d: STkSearchCV(STkClassifier(), {"C": [1.0]}, verbose=-1).fit(
            d["Xc"], d["yc"]
        ),
        ValueError,
        "'verbose' parameter of STkSearchCV",
    ),
    (
        "search refit number",
        lambda d: STkSearchCV(STkClassifier(), {"C": [1.0]}, refit=2).fit(
            d["Xc"], d["yc"]
        ),
        ValueError,
        "'refit' parameter of STkSearchCV",
    ),
    (
        "search n_jobs float",
        lambda d: STkSearchCV(STkClassifier(), {"C": [1.0]}, n_jobs=1.5).fit(
            d["Xc"], d["yc"]
        ),
        ValueError,
        "'n_jobs' parameter of STkSearchCV",
    ),
    (
        "search empty grid",
        lambda d: STkSearchCV(STkClassifier(), []).fit(d["Xc"], d["yc"]),
        ValueError,
        "has no grid point",
    ),
    (
        "loss weight infinite",
        lambda d: atk(torch.rand(4), 2, weight=torch.tensor([math.inf, 1, 1, 1.0])),
        ValueError,
        r"weight\[0\] = inf",
    ),
    # data
    (
        "NaN in X",
        _fit(STkClassifier(), X=lambda d: np.where(d["Xc"] > 1, np.nan, d["Xc"])),
        ValueError,
        "NaN",
    ),
    (
        "inf in X",
        _fit(STkClassifier(), X=lambda d: d["Xc"] * np.inf),
        ValueError,
        "infinity",
    ),
    (
        "one class",
        _fit(STkClassifier(), y=lambda d: np.zeros(len(d["yc"]))),
        ValueError,
        "one",
    ),
    (
        "continuous y",
        _fit(STkClassifier(), y=lambda d: d["Xc"][:, 0]),
        ValueError,
        "continuous",
    ),
    (
        "y wrong length",
        _fit(STkClassifier(), y=lambda d: d["yc"][:10]),
        ValueError,
        "inconsistent",
    ),
    (
        "string regression y",
        _fit(STkRegressor(), y=lambda d: np.array(["1.5"] * 60)),
        ValueError,
        "numbers",
    ),
    (
        "NaN regression y",
        _fit(STkRegressor(), y=lambda d: np.where(d["yc"] > 0, np.nan, 1.0)),
        ValueError,
        "NaN",
    ),
    (
        "regression y whose spread overflows",
        _fit(STkRegressor(), y=lambda d: np.where(d["yc"] > 0, 1.7e308, -1.7e308)),
        ValueError,
        "y is too large to train on",
    ),
    (
        "X beyond float32's range, callable model",
        _fit(
            STkClassifier(model=lambda d, o: torch.nn.Linear(d, o)),
            X=lambda d: np.where(d["Xc"] > 2, 1e39, d["Xc"]),
        ),
        ValueError,
        "beyond float32's range",
    ),
    (
        "early stopping split smaller than the classes",
        _fit(
            STkClassifier(early_stopping=True),
            X=lambda d: d["Xm"][:8],
            y=lambda d: d["ym"][:8],
        ),
        ValueError,
        "smaller than the number of classes",
    ),
    (
        "early stopping leaving no training rows, regressor",
        _fit(
            STkRegressor(early_stopping=True, validation_fraction=0.9),
            X=lambda d: d["Xc"][:3],
            y=lambda d: d["yc"][:3].astype(float),
        ),
        ValueError,
        "train set will be empty",
    ),
    ("X 1-D", _fit(STkClassifier(), X=lambda d: d["Xc"][:, 0]), ValueError, "2D array"),
    (
        "empty X",
        _fit(STkClassifier(), X=lambda d: d["Xc"][:0], y=lambda d: d["yc"][:0]),
        ValueError,
        "0 sample",
    ),
    # sample weights
    (
        "weights negative",
        _fit(STkClassifier(), sample_weight=np.r_[-5.0, np.ones(59)]),
        ValueError,
        "non-negative",
    ),
    (
        "weights all negative",
        _fit(STkClassifier(), sample_weight=-np.ones(60)),
        ValueError,
        "non-negative",
    ),
    (
        "weights zero",
        _fit(STkClassifier(), sample_weight=np.zeros(60)),
        ValueError,
        # scikit-learn's check ("... non-zero ...") where it runs first, else
        # sktopk's own (scikit-learn 1.6.0)
        "non-zero|positive sum",
    ),
    (
        "weights NaN",
        _fit(STkClassifier(), sample_weight=np.r_[np.nan, np.ones(59)]),
        ValueError,
        "NaN",
    ),
    (
        "weights length",
        _fit(STkClassifier(), sample_weight=np.ones(7)),
        ValueError,
        "sample_weight",
    ),
    # models
    (
        "callable not a module",
        _fit(STkClassifier(model=lambda i, o: 3)),
        TypeError,
        "nn.Module",
    ),
    (
        "callable wrong width",
        lambda d: STkClassifier(model=lambda i, o: torch.nn.Linear(i, 3)).fit(
            d["Xm"], d["ym"]
        ),
        ValueError,
        "n_outputs=4",
    ),
    # fitted state
    (
        "predict before fit",
        lambda d: STkClassifier().predict(d["Xc"]),
        NotFittedError,
        "not fitted",
    ),
    (
        "predict_topk before fit",
        lambda d: SmoothTopKSVMClassifier().predict_topk(d["Xc"]),
        NotFittedError,
        "not fitted",
    ),
    (
        "predict other width",
        _fitted(STkClassifier(max_epochs=1), lambda e, d: e.predict(d["Xc"][:, :2])),
        ValueError,
        "features",
    ),
    (
        "predict_topk k",
        _fitted(STkClassifier(max_epochs=1), lambda e, d: e.predict_topk(d["Xc"], k=3)),
        ValueError,
        "k must be an int",
    ),
    (
        "warm start other classes",
        _fitted(
            STkClassifier(max_epochs=1, warm_start=True),
            lambda e, d: e.fit(d["Xm"][:, :4], d["ym"]),
        ),
        ValueError,
        "warm_start",
    ),
    (
        "partial_fit no classes",
        lambda d: STkClassifier().partial_fit(d["Xc"], d["yc"]),
        ValueError,
        "classes must be given",
    ),
    # search
    (
        "search grid value",
        lambda d: STkSearchCV(STkClassifier(), {"C": [-1.0]}).fit(d["Xc"], d["yc"]),
        ValueError,
        "param_grid point",
    ),
    (
        "search error_score",
        lambda d: STkSearchCV(STkClassifier(), {"C": [1.0]}, error_score="x").fit(
            d["Xc"], d["yc"]
        ),
        ValueError,
        "error_score",
    ),
    # losses
    (
        "stk k out of range",
        lambda d: stk(torch.rand(5), torch.tensor(0.5), k=9),
        ValueError,
        "k=9",
    ),
    (
        "stk delta 0",
        lambda d: stk(torch.rand(5), torch.tensor(0.5), k=2, delta=0.0),
        ValueError,
        "delta",
    ),
    ("atk k 0", lambda d: atk(torch.rand(5), k=0), ValueError, "k=0"),
    ("MATk lam NaN", lambda d: MATkLoss(k=2, lam=math.nan), ValueError, "lam"),
    ("STk bad k type", lambda d: STkLoss(k="3"), TypeError, "k"),
    (
        "init_lambda NaN loss",
        lambda d: STkLoss(k=1).init_lambda(torch.tensor([math.nan, 1.0])),
        ValueError,
        "init_lambda: losses must not be NaN or",
    ),
    (
        "init_lambda inf loss",
        lambda d: MATkLoss(k=2).init_lambda(torch.tensor([math.inf, 1.0])),
        ValueError,
        "init_lambda: losses must not be NaN or",
    ),
    ("svm module k 0", lambda d: SmoothTopKSVMLoss(k=0), ValueError, "k must be in"),
    ("svm module k -1", lambda d: TopKSVMLoss(k=-1), ValueError, "k must be in"),
    (
        "uint8 wrapped -1 label",
        lambda d: logistic(
            torch.zeros(3), torch.tensor([1, 0, 1], dtype=torch.uint8) * 2 - 1
        ),
        ValueError,
        "y must contain only -1 and",
    ),
    (
        "uint16 class label out of range",
        lambda d: cross_entropy(
            torch.zeros(2, 3), torch.tensor([0, 3], dtype=torch.uint16)
        ),
        ValueError,
        "labels must be class indices",
    ),
]


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(name, call, error, match):
    data = {"Xc": _Xc.copy(), "yc": _yc.copy(), "Xm": _Xm.copy(), "ym": _ym.copy()}
    before = {k: v.copy() for k, v in data.items()}
    with pytest.raises(error, match=match) as info:
        call(data)
    assert "torch" not in str(info.value).lower().replace("torch.nn.module", "")
    for key, value in data.items():  # the caller's arrays are unchanged
        np.testing.assert_array_equal(value, before[key])


def test_regressor_early_stopping_split_never_speaks_of_classes():
    # Only a classifier's split is stratified; the regressor's error is
    # train_test_split's own, without a warning about classes.
    X, y = _Xc[:3], _yc[:3].astype(float)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="train set will be empty"):
            STkRegressor(early_stopping=True, validation_fraction=0.9).fit(X, y)
    assert not [w for w in seen if "stratif" in str(w.message)]
