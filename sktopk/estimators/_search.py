"""STkSearchCV: GridSearchCV's interface, every configuration and fold of a
batch trained at once as one stacked model.

The planning (which configurations share a batch, the preprocessing of each
fold) is in ``_search_plan``; training and scoring a batch in ``_search_run``;
the results table in ``_search_results``.
"""

from __future__ import annotations

import time
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, indexable
from tqdm.auto import tqdm

from ..engine.grid import parse_memory
from ._search_plan import (
    check_candidates,
    group_candidates,
    plan_batches,
    preprocess_folds,
    sliced,
    split_estimator,
    split_for_jobs,
    split_params,
)
from ._search_results import results_table
from ._search_run import check_error_score, fit_one_by_one, run_batch
from ._sklearn_compat import _MultimetricScorer, multimetric_scorers


class STkSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Exhaustive search over a parameter grid, with GridSearchCV's interface,
    training all folds and configurations of a batch as one stacked model.

    Configurations that differ only in the final estimator's member
    parameters (``learning_rate`` and ``C``; also ``k`` and ``delta`` of the
    STk estimators) are members of one batched model, one group per fold;
    every other parameter (the aggregate, loss, model, hidden sizes,
    optimizer, the top-k SVM's ``k``, preprocessing parameters) splits the
    grid into separate batches. The scores equal GridSearchCV's (same seeds,
    up to float32 rounding), at a fraction of the time: a small model at a
    small batch size is all overhead when trained alone.

    Parameters
    ----------
    estimator : STkClassifier, STkRegressor, SmoothTopKSVMClassifier or Pipeline
        An sktopk estimator, or a Pipeline whose last step is one. The
        Pipeline's other steps are fitted once per fold and per distinct
        setting of their parameters in the grid; then the final step's
        configurations are trained batched on the transformed folds. A
        callable ``model`` cannot be stacked: its configurations are fitted
        one at a time (as GridSearchCV would).
    param_grid : dict or list of dicts
        As in GridSearchCV: parameter names (``k``, or ``stkclassifier__k``
        and ``scaler__with_mean`` in a Pipeline) mapped to lists of values.
        Every grid point is validated before any training.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in GridSearchCV: None is the estimator's ``score`` (accuracy or
        R^2); several metrics as a list or dict, with ``refit`` naming the
        one that chooses the best.
    n_jobs : int or None, default=None
        Batches run in parallel through joblib (``None``: 1, unless inside a
        ``joblib.parallel_backend`` context, e.g. "dask"). Where there are
        fewer batches than jobs, each batch trained on the CPU is split into
        ``n_jobs`` batches of its configurations, so that every worker trains
        (the results are the same up to float rounding). On 2 cores,
        ``n_jobs=2`` trains about twice as fast as torch's threads in one
        process do.
    refit : bool, str or callable, default=True
        Refit the best configuration on all the data as ``best_estimator_``
        (a Pipeline when given one). With several metrics, the name of the
        metric to choose by; a callable takes ``cv_results_`` and returns the
        best index.
    cv : int, cross-validation generator or iterable, default=None
        As in GridSearchCV (5 folds; stratified for classifiers).
    verbose : int, default=0
        Show a progress bar over batches when > 0.
    error_score : "raise" or float, default=np.nan
        Score of a configuration whose training diverged on a fold (or whose
        scoring failed), with a FitFailedWarning; "raise" raises
        DivergenceError instead.
    return_train_score : bool, default=False
        Also score every member on its training fold.
    max_memory : int or str, default=None
        Memory budget for the members trained at once (bytes or e.g. "2GB");
        by default half of the memory available on the device.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        GridSearchCV's keys: ``params``, ``param_<name>``,
        ``split<i>_test_<scorer>``, ``mean_test_<scorer>``,
        ``std_test_<scorer>``, ``rank_test_<scorer>`` (``<scorer>`` is
        "score" for a single metric), the train scores when asked,
        ``mean_fit_time`` (a batch's training time shared among its members)
        and ``mean_score_time``.
    best_estimator_ : estimator
        The refitted best configuration (when ``refit``).
    best_index_, best_score_, best_params_ : int, float, dict
        The chosen configuration (``best_score_`` not with a callable refit).
    scorer_ : callable or dict
        The scorer(s) used.
    multimetric_ : bool
        Whether several metrics were evaluated.
    n_splits_ : int
        Number of folds.
    refit_time_ : float
        Seconds spent refitting the best configuration.
    members_per_batch_ : list of int
        Members (configurations x folds) trained at once in each batch.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The reference it reproduces.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sktopk import STkClassifier, STkSearchCV
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> pipe = make_pipeline(StandardScaler(),
    ...                      STkClassifier(max_epochs=20, random_state=0))
    >>> grid = {"stkclassifier__k": [0.5, 1.0], "stkclassifier__C": [10.0, 1e3]}
    >>> search = STkSearchCV(pipe, grid, scoring=["accuracy", "roc_auc"],
    ...                      refit="roc_auc", cv=3).fit(X, y)
    >>> sorted(search.best_params_)
    ['stkclassifier__C', 'stkclassifier__k']
    """

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        error_score=np.nan,
        return_train_score=False,
        max_memory=None,
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.cv = cv
        self.verbose = verbose
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.max_memory = max_memory

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.input_tags.sparse = inner.input_tags.sparse
        return tags

    # -- fitting -------------------------------------------------------------- #
    def fit(self, X, y, **params):
        """Run the search, then refit the best configuration on all the data.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        **params : dict
            Fit parameters, as GridSearchCV takes them: ``sample_weight`` for
            an sktopk estimator, ``<step>__<param>`` for a Pipeline's steps,
            ``groups`` for the splitter; with metadata routing enabled,
            whatever the estimator, splitter and scorers request.

        Returns
        -------
        self : STkSearchCV
        """
        pipeline, final_name, final = split_estimator(self.estimator)
        check_error_score(self.error_score)
        X, y = indexable(X, y)
        y = np.asarray(y)
        candidates = list(ParameterGrid(self.param_grid))
        check_candidates(self.estimator, candidates)
        scorers, self.multimetric_ = multimetric_scorers(self.estimator, self.scoring)
        refit_metric = self._refit_metric(scorers)
        fit_params, split_params_, score_params = self._route(X, params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y, **split_params_))
        batches = self._plan(
            pipeline, final_name, final, candidates, X, y, folds, fit_params
        )
        for batch in batches:
            for fold in batch.folds:
                fold.score_test = sliced(score_params, fold.test, len(y))
                fold.score_train = sliced(score_params, fold.train, len(y))
        results = self._run(batches, scorers)
        self._store_results(candidates, results, scorers, len(folds), refit_metric)
        self.scorer_ = scorers if self.multimetric_ else scorers["score"]
        self.n_splits_ = len(folds)
        if self.refit:
            self._refit(X, y, fit_params)
        return self

    def _refit_metric(self, scorers: dict) -> str | None:
        if not self.multimetric_:
            return "score"
        if callable(self.refit) or self.refit is False:
            return None
        if not isinstance(self.refit, str) or self.refit not in scorers:
            raise ValueError(
                "With several metrics, refit must be False, a callable or the "
                f"name of one of them ({sorted(scorers)}); got {self.refit!r}"
            )
        return self.refit

    def _route(self, X, params: dict) -> tuple[dict, dict, dict]:
        """``(estimator fit params, splitter params, scorer params)``, as
        GridSearchCV routes them (scorers get parameters only with metadata
        routing enabled)."""
        if _routing_enabled():
            routed = process_routing(self, "fit", **params)
            fit_params = dict(routed.estimator.fit)
            split_params_ = dict(routed.splitter.split)
            score_params = dict(routed.scorer.score)
        else:
            params = dict(params)
            groups = params.pop("groups", None)
            fit_params, score_params = params, {}
            split_params_ = {"groups": groups} if groups is not None else {}
        if fit_params.get("sample_weight") is not None:
            fit_params["sample_weight"] = _check_sample_weight(
                fit_params["sample_weight"], X
            )
        return fit_params, split_params_, score_params

    def _step_params(self, pipeline, final_name, fit_params: dict) -> dict:
        """Fit parameters per step name (the final step's under its name)."""
        if pipeline is None:
            unknown = set(fit_params) - {"sample_weight"}
            if unknown:
                raise TypeError(
                    f"{type(self.estimator).__name__}.fit takes only sample_weight; "
                    f"got {sorted(unknown)}"
                )
            return {None: fit_params}
        routed = pipeline._check_method_params(method="fit", props=fit_params)
        return {name: dict(routed[name].fit) for name, _ in pipeline.steps}

    def _plan(
        self, pipeline, final_name, final, candidates, X, y, folds, fit_params
    ) -> list:
        """Every batch, with its folds preprocessed and validated, before any
        training."""
        step_params = self._step_params(pipeline, final_name, fit_params)
        member_keys = final._member_params
        batches, prepared = [], {}
        groups = group_candidates(candidates, final_name, member_keys)
        for (head_key, _), configs in groups.items():
            head, own = split_params(candidates[configs[0]], final_name)
            structural = {k: v for k, v in own.items() if k not in member_keys}
            if head_key not in prepared:
                prepared[head_key] = preprocess_folds(
                    pipeline, head, X, y, folds, step_params, final_name
                )
            base = clone(final).set_params(**structural)
            members = [
                {
                    k: v
                    for k, v in split_params(candidates[i], final_name)[1].items()
                    if k in member_keys
                }
                for i in configs
            ]
            batches += plan_batches(base, members, configs, prepared[head_key])
        return batches

    def _run(self, batches: list, scorers: dict) -> list:
        n_jobs = effective_n_jobs(self.n_jobs)
        batches = split_for_jobs(batches, n_jobs)
        options = {
            "error_score": self.error_score,
            "return_train_score": self.return_train_score,
            "max_memory": parse_memory(self.max_memory),
            "jobs": min(n_jobs, len(batches)),
        }
        jobs = (
            delayed(fit_one_by_one if callable(b.base.model) else run_batch)(
                b, scorers, options
            )
            for b in batches
        )
        parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
        bar = tqdm(total=len(batches), disable=not self.verbose, desc="batches")
        out = []
        for result in parallel(jobs):
            out.append(result)
            bar.update()
        bar.close()
        self.members_per_batch_ = [r.members_at_once for r in out]
        return out

    def _store_results(self, candidates, results, scorers, n_splits, refit_metric):
        shape = (len(candidates), n_splits)
        test = {name: np.full(shape, np.nan) for name in scorers}
        train = {name: np.full(shape, np.nan) for name in scorers}
        fit_time, score_time = np.zeros(shape), np.zeros(shape)
        for r in results:
            rows, cols = np.ix_(r.configs, r.folds)
            for name in scorers:
                test[name][rows, cols] = r.test[name]
                if self.return_train_score:
                    train[name][rows, cols] = r.train[name]
            fit_time[rows, cols], score_time[rows, cols] = r.fit_time, r.score_time
        self.cv_results_ = results_table(
            candidates,
            test,
            train if self.return_train_score else {},
            fit_time,
            score_time,
            self.multimetric_,
        )
        self._choose_best(refit_metric)

    def _choose_best(self, refit_metric: str | None) -> None:
        results = self.cv_results_
        if callable(self.refit):
            self.best_index_ = int(self.refit(results))
            if not (isinstance(self.best_index_, Integral) and 0 <= self.best_index_):
                raise ValueError("refit callable must return a non-negative index")
        elif refit_metric is not None:
            self.best_index_ = int(results[f"rank_test_{refit_metric}"].argmin())
            self.best_score_ = float(
                results[f"mean_test_{refit_metric}"][self.best_index_]
            )
        else:
            return
        self.best_params_ = results["params"][self.best_index_]

    def _refit(self, X, y, fit_params: dict) -> None:
        start = time.perf_counter()
        best = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
        self.best_estimator_ = best.fit(X, y, **fit_params)
        self.refit_time_ = time.perf_counter() - start

    def get_metadata_routing(self) -> MetadataRouter:
        """Route fit parameters to the estimator and the splitter, as
        GridSearchCV does."""
        return (
            MetadataRouter(owner=type(self).__name__)
            .add(
                estimator=self.estimator,
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=check_cv(self.cv),
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
            .add(
                scorer=_MultimetricScorer(
                    scorers=multimetric_scorers(self.estimator, self.scoring)[0],
                    raise_exc=True,
                ),
                method_mapping=MethodMapping()
                .add(caller="fit", callee="score")
                .add(caller="score", callee="score"),
            )
        )

    # -- delegation to the refitted best estimator --------------------------- #
    def _best_has(name):  # noqa: N805
        def check(self):
            if not self.refit:
                return False
            if hasattr(self, "best_estimator_"):
                return hasattr(self.best_estimator_, name)
            return hasattr(self.estimator, name)

        return check

    def predict(self, X):
        """Predictions of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(_best_has("predict_proba"))
    def predict_proba(self, X):
        """Probabilities of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    @available_if(_best_has("decision_function"))
    def decision_function(self, X):
        """Scores of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    @available_if(_best_has("predict_topk"))
    def predict_topk(self, X, k=None):
        """The top-k classes of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_topk(X, k)

    def score(self, X, y):
        """``best_estimator_`` scored with the refit metric's scorer."""
        check_is_fitted(self, "best_estimator_")
        scorer = self.scorer_[self.refit] if self.multimetric_ else self.scorer_
        return scorer(self.best_estimator_, X, y)

    @property
    def classes_(self):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.classes_

    @property
    def n_features_in_(self):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.n_features_in_
