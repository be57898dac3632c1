"""STkSearchCV: a grid search that trains every configuration and fold at once.

Configurations that differ only in ``k``, ``delta``, ``C`` or ``learning_rate``
become members of one batched model (one group per fold), trained by the same
engine as a single estimator; other parameters (aggregate, model, ...) split
the grid into such batches.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, indexable
from tqdm.auto import tqdm

from .._device import resolve_device
from ..engine import StackedMLP, TrainData
from ..engine.grid import make_data, parse_memory, train_in_chunks
from ._base import FitPlan


class STkSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Exhaustive search over a parameter grid, all folds and configurations
    trained together as one batched model.

    The results equal those of ``GridSearchCV(estimator, param_grid, cv=cv)``
    with the estimator's default ``score`` (same seeds, up to float32 rounding),
    at a fraction of the time: a small model at batch size 16 is all overhead
    when trained alone.

    Parameters
    ----------
    estimator : STkClassifier, STkRegressor or SmoothTopKSVMClassifier
        With ``model="linear"`` or ``"mlp"`` (a callable model cannot be
        stacked). Scale features beforehand (no pipeline inside).
    param_grid : dict or list of dicts
        As in ``GridSearchCV``. The parameters an estimator declares as member
        parameters (``learning_rate`` and ``C``; also ``k`` and ``delta`` of
        the STk estimators) are batched; any other parameter, such as the
        top-k SVM's ``k``, splits the grid into batches.
    cv : int, cross-validation generator or iterable, default=5
        As in ``GridSearchCV`` (stratified folds for classifiers).
    refit : bool, default=True
        Refit the best configuration on all the data as ``best_estimator_``.
    max_memory : int or str, default=None
        Memory budget for the members trained at once (bytes or e.g. "2GB");
        by default half of the free memory of the device.
    verbose : int, default=0
        Show a progress bar over batches when > 0.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        ``params``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``split{i}_test_score``, ``mean_fit_time`` (the
        batch's time shared among its configurations).
    best_index_, best_params_, best_score_, best_estimator_, n_splits_,
    members_per_batch_ : as their names say.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sktopk import STkClassifier, STkSearchCV
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> search = STkSearchCV(STkClassifier(max_epochs=20, random_state=0),
    ...                      {"k": [0.5, 1.0], "C": [10.0, 1000.0]}, cv=3)
    >>> search.fit(X, y).best_params_.keys() == {"k", "C"}
    True
    """

    def __init__(
        self, estimator, param_grid, *, cv=5, refit=True, max_memory=None, verbose=0
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.cv = cv
        self.refit = refit
        self.max_memory = max_memory
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Run the search, then refit the best configuration on all data."""
        if callable(getattr(self.estimator, "model", None)):
            raise ValueError("STkSearchCV needs model='linear' or 'mlp' to batch it")
        X, y = indexable(X, y)
        X, y = np.asarray(X), np.asarray(y)
        candidates = list(ParameterGrid(self.param_grid))
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y))
        scores = np.empty((len(candidates), len(folds)))
        times = np.empty(len(candidates))
        batches = _batches(candidates, self.estimator._member_params)
        self.members_per_batch_ = []
        for structural, members in tqdm(
            batches.items(), disable=not self.verbose, desc="batches"
        ):
            start = time.perf_counter()
            base = clone(self.estimator).set_params(**dict(structural))
            configs = [candidates[i] for i in members]
            scores[members] = self._run_batch(base, configs, X, y, sample_weight, folds)
            times[members] = (time.perf_counter() - start) / len(members)
        self._store_results(candidates, scores, times, len(folds))
        if self.refit:
            best = clone(self.estimator).set_params(**self.best_params_)
            self.best_estimator_ = best.fit(X, y, sample_weight=sample_weight)
        return self

    def _run_batch(self, base, configs, X, y, sample_weight, folds) -> np.ndarray:
        """(n_configs, n_folds) test scores of one batch."""
        device = resolve_device(base.device)
        plans = [_fold_plan(base, X, y, sample_weight, tr) for tr, _ in folds]
        data = _stack_plans(plans, device)
        sizes = clone(base)._sizes(plans[0].X.shape[1], plans[0].n_out)
        chunk, (out,) = train_in_chunks(
            data,
            plans[0].spec,
            sizes,
            _hyper_grid(base, configs, plans),
            [p.seed for p in plans],
            lambda model, _: (_test_scores(base, model, plans, X, y, folds),),
            max_memory=parse_memory(self.max_memory),
        )
        self.members_per_batch_.append(chunk * len(folds))
        return out.T

    def _store_results(self, candidates, scores, times, n_splits) -> None:
        mean, std = scores.mean(1), scores.std(1)
        ranks = (-mean).argsort(kind="stable").argsort() + 1
        results = {
            "params": candidates,
            "mean_test_score": mean,
            "std_test_score": std,
            "rank_test_score": _min_ranks(mean),
            "mean_fit_time": times,
        }
        for i in range(n_splits):
            results[f"split{i}_test_score"] = scores[:, i]
        for name in sorted({k for c in candidates for k in c}):
            results[f"param_{name}"] = np.ma.masked_array(
                [c.get(name) for c in candidates],
                mask=[name not in c for c in candidates],
                dtype=object,
            )
        self.cv_results_ = results
        self.best_index_ = int(np.argmin(ranks))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        self.n_splits_ = n_splits

    # -- delegation to the refitted best estimator --------------------------- #
    def _best_has(name):  # noqa: N805
        return lambda self: self.refit and hasattr(self.best_estimator_, name)

    def predict(self, X):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(_best_has("predict_proba"))
    def predict_proba(self, X):
        return self.best_estimator_.predict_proba(X)

    @available_if(_best_has("decision_function"))
    def decision_function(self, X):
        return self.best_estimator_.decision_function(X)

    def score(self, X, y):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.score(X, y)

    @property
    def classes_(self):
        return self.best_estimator_.classes_


def _batches(candidates: list[dict], member_params) -> dict[tuple, list[int]]:
    """Candidate indices grouped by the parameters that cannot vary within a
    batch (all but the estimator's declared ``member_params``)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, params in enumerate(candidates):
        key = tuple(sorted((k, v) for k, v in params.items() if k not in member_params))
        groups[key].append(i)
    return groups


def _fold_plan(base, X, y, sample_weight, train_rows) -> FitPlan:
    est = clone(base)
    w = None if sample_weight is None else np.asarray(sample_weight)[train_rows]
    plan = est._prepare(X[train_rows], y[train_rows], w)
    plan.estimator = est  # keeps classes_ of the fold
    return plan


def _stack_plans(plans: list[FitPlan], device) -> TrainData:
    """All folds' training rows one after another (one group per fold)."""
    offsets = np.cumsum([0] + [len(p.X) for p in plans])
    splits = [
        (o + p.train_idx, None if p.val_idx is None else o + p.val_idx)
        for o, p in zip(offsets, plans, strict=False)
    ]
    X = np.vstack([p.X for p in plans])
    target = np.concatenate([p.target for p in plans])
    weight = np.concatenate([p.weight for p in plans])
    return make_data(X, target, splits, weight, device)


def _hyper_grid(base, configs, plans) -> dict[str, np.ndarray]:
    """The engine's hyper-parameters of every (fold, configuration)."""
    rows = [
        [clone(base).set_params(**c)._hyper(len(p.train_idx)) for c in configs]
        for p in plans
    ]
    return {
        key: np.array([[h[key] for h in row] for row in rows]) for key in rows[0][0]
    }


def _test_scores(base, model, plans, X, y, folds) -> np.ndarray:
    """(n_folds, n_members) default ``score`` of every member on its test fold:
    accuracy for classifiers, R^2 for regressors."""
    out = []
    for g, (plan, (_, test)) in enumerate(zip(plans, folds, strict=True)):
        dev = model.flat.device
        Xt = torch.as_tensor(X[test], dtype=torch.float64, device=dev)
        with torch.no_grad():
            fold = StackedMLP(model.sizes, model.flat[g].double())
            f = fold.forward(Xt, cache=False)
            out.append(_score(plan.estimator, f, y[test]).cpu().numpy())
    return np.asarray(out)


def _score(est, f: torch.Tensor, y_true: np.ndarray) -> torch.Tensor:
    """Score of every member from its outputs ``f`` (members, n, outputs)."""
    if not is_classifier(est):
        y = torch.as_tensor(np.asarray(y_true, np.float64), device=f.device)
        ss_res = ((y - f[..., 0]) ** 2).sum(-1)
        return 1.0 - ss_res / ((y - y.mean()) ** 2).sum()
    codes = np.searchsorted(est.classes_, y_true).clip(0, len(est.classes_) - 1)
    codes[est.classes_[codes] != y_true] = -1  # a class the fold never saw
    truth = torch.as_tensor(codes, device=f.device)
    pred = (f[..., 0] > 0).long() if f.shape[-1] == 1 else f.argmax(-1)
    return (pred == truth).double().mean(-1)


def _min_ranks(mean: np.ndarray) -> np.ndarray:
    """Rank 1 for the best; ties share the smallest rank (as GridSearchCV)."""
    order = np.unique(-mean, return_inverse=True)[1]
    counts = np.bincount(order)
    starts = np.concatenate([[1], 1 + np.cumsum(counts)[:-1]])
    return starts[order].astype(np.int32)
