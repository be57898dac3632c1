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
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv
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

from .._device import resolve_device
from ..engine.grid import parse_memory
from ._search_plan import (
    all_failed_error,
    check_candidates,
    collected_failures,
    group_candidates,
    plan_batches,
    preprocess_folds,
    sliced,
    split_estimator,
    split_for_jobs,
    split_params,
    warn_failures,
    warn_fit_failed,
)
from ._search_results import results_table
from ._search_run import (
    check_error_score,
    error_fill,
    fit_one_by_one,
    is_passthrough,
    refused,
    run_batch,
)
from ._sklearn_compat import (
    Interval,
    _MultimetricScorer,
    _raise_for_params,
    multimetric_scorers,
    scorers_take_sample_weight,
)


class STkSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Exhaustive search over a parameter grid, with GridSearchCV's interface,
    training all folds and configurations of a batch as one stacked model.

    Configurations that differ only in the final estimator's member
    parameters (``learning_rate``, ``C`` and ``l1_ratio``; also ``k`` and
    ``delta`` of the STk estimators) are members of one batched model, one
    group per fold; every other parameter (the aggregate, loss, model, hidden sizes,
    optimizer, the top-k SVM's ``k``, preprocessing parameters) splits the
    grid into separate batches. The scores equal GridSearchCV's (same seeds,
    up to float32 rounding, which an ill-conditioned problem, a small ``k``
    on small data, can amplify into visibly different models: see the user
    guide), at a fraction of the time: a small model at a small batch size
    is all overhead when trained alone.

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
        Every grid point is validated before any training: as in
        GridSearchCV, an invalid one (``hidden_layer_sizes`` with
        ``model="linear"``, say) scores ``error_score`` on every fold, with a
        FitFailedWarning, and the others train; with ``error_score="raise"``,
        or where every point is invalid, the first error is raised.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in GridSearchCV: None is the estimator's ``score`` (accuracy or
        R^2); several metrics as a list or dict, or a callable that returns
        a dict of them, with ``refit`` naming the one that chooses the best.
    n_jobs : int or None, default=None
        Batches run in parallel through joblib (``None``: 1, unless inside a
        ``joblib.parallel_backend`` context, e.g. "dask"). Where there are
        fewer batches than jobs, each batch trained on the CPU is split into
        ``n_jobs`` batches of its configurations, so that every worker trains
        (the results are the same up to float rounding). On 2 cores,
        ``n_jobs=2`` was about 1.1x as fast as torch's two threads in one
        process (17.2 s against 19.4 s on the paper's grid, 1200 x 3, of the
        Performance page).
    refit : bool, str or callable, default=True
        Refit the best configuration on all the data as ``best_estimator_``
        (a Pipeline when given one). With several metrics, the name of the
        metric to choose by; a callable takes ``cv_results_`` and returns the
        best index.
    cv : int, cross-validation generator or iterable, default=None
        As in GridSearchCV (5 folds; stratified for classifiers).
    verbose : int, default=0
        When > 0, print GridSearchCV's first line (folds, candidates, fits),
        with the number of batched models, and show a progress bar over the
        batches.
    pre_dispatch : int or str, default="2*n_jobs"
        As in GridSearchCV, passed to ``joblib.Parallel``: how many batches
        are dispatched to the workers ahead of time (each carries its folds'
        data). It changes neither the batches nor the results.
    error_score : "raise" or float, default=np.nan
        Score of a configuration on a fold where it could not be fitted or
        scored, with a FitFailedWarning, as in GridSearchCV: training
        diverged, scoring failed, the preprocessing steps failed, the grid
        point is invalid, or the estimator refuses the fold (one class, an
        integer ``k`` beyond it). "raise" raises the error instead
        (DivergenceError for a divergence, ValueError for a refusal).
    return_train_score : bool, default=False
        Also score every member on its training fold.
    max_memory : int or str, default=None
        Memory budget for the members trained at once (bytes or e.g. "2GB"),
        shared by the ``n_jobs`` batches trained at the same time; by default
        half of the memory available on the device, and never less than 1 GiB
        (estimated) for each batch: a grid within that is cut into the same
        chunks, so gives the same results, whatever memory is free. It
        counts the members' weights and activations (generously: about ten
        times an MLP's measured need), not the copies of the data (each
        fold's preprocessed training and test rows, a few times the data's
        size).

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
    feature_names_in_ : ndarray of str
        The names of the features, where ``best_estimator_`` has them.
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

    # GridSearchCV's, and max_memory (checked in full by parse_memory).
    _parameter_constraints: dict = {
        **GridSearchCV._parameter_constraints,
        "max_memory": [None, Interval(Integral, 1, None, closed="left"), str],
    }

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
        pre_dispatch="2*n_jobs",
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
        self.pre_dispatch = pre_dispatch
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
            an sktopk estimator (and for the scorers that accept it, where
            the installed GridSearchCV passes it to them),
            ``<step>__<param>`` for a Pipeline's steps, ``groups`` for the
            splitter; with metadata routing enabled, whatever the estimator,
            splitter and scorers request.

        Returns
        -------
        self : STkSearchCV
        """
        self._validate_params()
        split_estimator(self.estimator)
        check_error_score(self.error_score)
        X, y = indexable(X, y)
        y = np.asarray(y)
        candidates = list(ParameterGrid(self.param_grid))
        if not candidates:
            raise ValueError(f"param_grid={self.param_grid!r} has no grid point")
        invalid = check_candidates(self.estimator, candidates, self.error_score)
        scorers = self._scorers()
        fit_params, split_params_, score_params = self._route(X, params, scorers)
        self._check_score_requests(scorers, score_params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y, **split_params_))
        if not folds:
            raise ValueError(
                "No fits were performed. Was the CV iterator empty? "
                "Were there no candidates?"
            )
        valid = [i for i in range(len(candidates)) if i not in invalid]
        with collected_failures() as failures:
            self._warn_invalid(invalid, len(folds))
            batches = self._plan(
                candidates, valid, X, y, folds, fit_params, score_params
            )
            if not batches:
                raise all_failed_error(len(candidates) * len(folds), failures)
            n, m = len(candidates), len(folds)
            header = (
                f"Fitting {m} folds for each of {n} candidates, totalling {n * m} fits"
            )
            results = self._run(batches, scorers, header)
            if not any(r.fitted.any() for r in results):  # all diverged, say
                raise all_failed_error(n * m, failures)
        self._store_results(candidates, results, scorers, len(folds))
        self.n_splits_ = len(folds)
        if self.refit:
            self._refit(X, y, fit_params)
        return self

    def _scorers(self) -> dict:
        """The scorers by name; sets ``scorer_`` and ``multimetric_`` (a
        callable ``scoring`` that returns dicts makes it True only after the
        first scores, as in GridSearchCV) and checks ``refit`` against the
        metrics' names where they are known."""
        scorers, self.multimetric_ = multimetric_scorers(self.estimator, self.scoring)
        self.scorer_ = scorers if self.multimetric_ else scorers["score"]
        self._refit_metric(scorers)
        return scorers

    def _refit_metric(self, names) -> str | None:
        """The metric that chooses the best ("score" for a single one); None
        where ``refit`` is False or a callable with several metrics."""
        if not self.multimetric_:
            return "score"
        if callable(self.refit) or self.refit is False:
            return None
        if not isinstance(self.refit, str) or self.refit not in names:
            raise ValueError(
                "With several metrics, refit must be False, a callable or the "
                f"name of one of them ({sorted(names)}); got {self.refit!r}"
            )
        return self.refit

    def _route(self, X, params: dict, scorers: dict) -> tuple[dict, dict, dict]:
        """``(estimator fit params, splitter params, scorer params)``, as
        GridSearchCV routes them. Without metadata routing, the scorers get
        ``sample_weight`` where the installed GridSearchCV gives it to them
        (see :func:`scorers_take_sample_weight`)."""
        if _routing_enabled():
            routed = process_routing(self, "fit", **params)
            fit_params = dict(routed.estimator.fit)
            split_params_ = dict(routed.splitter.split)
            score_params = dict(routed.scorer.score)
        else:
            fit_params = dict(params)
            groups = fit_params.pop("groups", None)
            split_params_ = {"groups": groups} if groups is not None else {}
            score_params = self._fit_weight_for_scorers(fit_params, scorers)
        if fit_params.get("sample_weight") is not None:
            fit_params["sample_weight"] = _check_sample_weight(
                fit_params["sample_weight"], X
            )
        return fit_params, split_params_, score_params

    def _check_score_requests(self, scorers: dict, score_params: dict) -> None:
        """Under metadata routing, a Pipeline's own score (``scoring=None``)
        checks its steps' score requests for the metadata it is given, as
        ``Pipeline.score`` does in GridSearchCV (which turns the error into
        ``error_score`` on every fit); the members are scored by their final
        step's score, so the check is made here, once, before training."""
        pipeline = split_estimator(self.estimator)[0]
        if (
            _routing_enabled()
            and pipeline is not None
            and score_params
            and not self.multimetric_
            and is_passthrough(scorers["score"])
        ):
            process_routing(pipeline, "score", **score_params)

    def _fit_weight_for_scorers(self, fit_params: dict, scorers: dict) -> dict:
        weight = fit_params.get("sample_weight")
        if weight is None:
            return {}
        if not scorers_take_sample_weight(self, scorers, self.multimetric_):
            return {}
        return {"sample_weight": weight}

    def _warn_invalid(self, invalid: dict, n_splits: int) -> None:
        """A FitFailedWarning for each fold of each invalid grid point."""
        what = type(self.estimator).__name__
        for error in invalid.values():
            for fold in range(n_splits):
                warn_fit_failed(what, fold, self.error_score, error)

    def _step_params(self, pipeline, final_name, fit_params: dict) -> tuple:
        """``(preprocessing, final step)`` fit parameters: the keyword
        arguments of the preprocessing steps' ``fit_transform``
        (``step__param`` keys; under metadata routing, the metadata, of which
        each step takes what it requests) and the final step's own."""
        if pipeline is None:
            unknown = set(fit_params) - {"sample_weight"}
            if unknown:
                raise TypeError(
                    f"{type(self.estimator).__name__}.fit takes only sample_weight; "
                    f"got {sorted(unknown)}"
                )
            return {}, fit_params
        routed = pipeline._check_method_params(method="fit", props=fit_params)
        final_params = dict(routed[final_name].fit)
        if _routing_enabled():
            return dict(fit_params), final_params
        prefix = final_name + "__"
        head = {k: v for k, v in fit_params.items() if not k.startswith(prefix)}
        return head, final_params

    def _plan(self, candidates, valid, X, y, folds, fit_params, score_params) -> list:
        """Every batch of the ``valid`` candidates (indices), with its folds
        preprocessed and validated, before any training."""
        pipeline, final_name, final = split_estimator(self.estimator)
        step_params = self._step_params(pipeline, final_name, fit_params)
        keys = final._member_params
        batches, prepared = [], {}
        groups = group_candidates([candidates[i] for i in valid], final_name, keys)
        for (head_key, _), indices in groups.items():
            configs = [valid[j] for j in indices]
            head, own = split_params(candidates[configs[0]], final_name)
            if head_key not in prepared:
                prepared[head_key] = preprocess_folds(
                    pipeline,
                    head,
                    X,
                    y,
                    folds,
                    step_params,
                    error_score=self.error_score,
                )
            structure = {k: v for k, v in own.items() if k not in keys}
            base = clone(final).set_params(**clone(structure, safe=False))
            members = [_members_of(candidates[i], final_name, keys) for i in configs]
            batches += plan_batches(
                base, members, configs, prepared[head_key], self.error_score
            )
        batches = _trainable(batches, self.error_score)
        _slice_score_params(batches, score_params, len(y))
        return batches

    def _run(self, batches: list, scorers: dict, header: str) -> list:
        n_jobs = effective_n_jobs(self.n_jobs)
        batches = split_for_jobs(batches, n_jobs)
        if self.verbose > 0:  # GridSearchCV's first line, and the batches
            print(f"{header}, as {len(batches)} batched models")
        options = {
            "error_score": self.error_score,
            "return_train_score": self.return_train_score,
            "max_memory": parse_memory(self.max_memory),
            "jobs": min(n_jobs, len(batches)),
            "dict_scores": callable(self.scoring),
        }
        jobs = (
            delayed(fit_one_by_one if callable(b.base.model) else run_batch)(
                b, scorers, options
            )
            for b in batches
        )
        # Batches on a GPU share it from threads: no worker process has to
        # start CUDA again (which a forked one cannot).
        on_gpu = any(resolve_device(b.base.device).type != "cpu" for b in batches)
        parallel = Parallel(
            n_jobs=self.n_jobs,
            pre_dispatch=self.pre_dispatch,
            return_as="generator",
            prefer="threads" if on_gpu else None,
        )
        bar = tqdm(total=len(batches), disable=not self.verbose, desc="batches")
        out = []
        for result in parallel(jobs):
            warn_failures(result.failures)
            out.append(result)
            bar.update()
        bar.close()
        self.members_per_batch_ = [r.members_at_once for r in out]
        return out

    def _store_results(self, candidates, results, scorers, n_splits) -> None:
        shape = (len(candidates), n_splits)
        names = self._metric_names(results, scorers)
        refit_metric = self._refit_metric(names)
        fill = error_fill(self.error_score)
        test = {name: np.full(shape, fill) for name in names}
        train = {name: np.full(shape, fill) for name in names}
        fit_time, score_time = np.zeros(shape), np.zeros(shape)
        for r in results:
            rows, cols = np.ix_(r.configs, r.folds)
            for table, part in ((test, r.test), (train, r.train)):
                for name, scores in part.items():
                    table[name][rows, cols] = scores
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

    def _metric_names(self, results: list, scorers: dict) -> list[str]:
        """The metrics' names: the scorers', or those in the dicts that a
        callable ``scoring`` returned (then the search is multi-metric)."""
        if not callable(self.scoring):
            return list(scorers)
        kinds = set().union(*(r.kinds for r in results))
        if kinds == {"dict", "number"}:
            raise ValueError(
                "The scoring callable returned a dict for some configurations "
                "or folds and a number for others"
            )
        if "dict" not in kinds:
            return ["score"]
        self.multimetric_ = True
        parts = (part for r in results for part in (r.test, r.train))
        return list(dict.fromkeys(name for part in parts for name in part))

    def _choose_best(self, refit_metric: str | None) -> None:
        results = self.cv_results_
        if callable(self.refit):
            best = self.refit(results)
            if not isinstance(best, Integral):
                raise TypeError("best_index_ returned is not an integer")
            if not 0 <= best < len(results["params"]):
                raise IndexError("best_index_ index out of range")
            self.best_index_ = int(best)
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
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_  # from an earlier fit on a DataFrame

    def get_metadata_routing(self) -> MetadataRouter:
        """Route fit parameters to the estimator, the splitter and the
        scorers, as GridSearchCV does (a single scorer is routed as itself,
        so that its own request, or the estimator's ``score`` request for
        ``scoring=None``, decides)."""
        scorers, multimetric = multimetric_scorers(self.estimator, self.scoring)
        if multimetric:
            scorer = _MultimetricScorer(scorers=scorers, raise_exc=True)
        else:
            scorer = scorers["score"]
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
                scorer=scorer,
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

    @available_if(_best_has("predict"))
    def predict(self, X):
        """Predictions of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(_best_has("predict_proba"))
    def predict_proba(self, X):
        """Probabilities of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    @available_if(_best_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log-probabilities of ``best_estimator_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_log_proba(X)

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

    def score(self, X, y=None, **params) -> float:
        """``best_estimator_`` scored with the refit metric's scorer, as in
        GridSearchCV.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        **params : dict
            Parameters for the scorer (e.g. ``sample_weight``); only with
            metadata routing enabled, where the scorer requests them.

        Returns
        -------
        score : float
        """
        self._check_refitted("score")
        _raise_for_params(params, self, "score")
        if _routing_enabled():
            params = process_routing(self, "score", **params).scorer["score"]
        return self._score_best(X, y, params)

    def _score_best(self, X, y, params: dict) -> float:
        scorer = self.scorer_
        if isinstance(scorer, dict):
            scorer = scorer[self.refit]
        score = scorer(self.best_estimator_, X, y, **params)
        if self.multimetric_ and isinstance(score, dict):  # a callable's metrics
            score = score[self.refit]
        return score

    def _check_refitted(self, name: str) -> None:
        """GridSearchCV's AttributeError for ``name`` under ``refit=False``,
        else NotFittedError before ``fit``."""
        if not self.refit:
            raise AttributeError(
                f"This {type(self).__name__} instance was initialized with "
                f"`refit=False`. {name} is available only after refitting on the "
                "best parameters. You can refit an estimator manually using the "
                "`best_params_` attribute"
            )
        check_is_fitted(self, "best_estimator_")

    @property
    def classes_(self):
        self._check_refitted("classes_")
        return self.best_estimator_.classes_

    @property
    def n_features_in_(self):
        self._check_refitted("n_features_in_")
        return self.best_estimator_.n_features_in_


def _members_of(params: dict, final_name: str | None, keys) -> dict:
    """The final step's member parameters (``keys``) of a grid point."""
    return {k: v for k, v in split_params(params, final_name)[1].items() if k in keys}


def _slice_score_params(batches: list, score_params: dict, n: int) -> None:
    """Each fold's scoring parameters, on its test and its training rows."""
    for fold in {id(f): f for b in batches for f in b.folds}.values():
        fold.score_test = sliced(score_params, fold.test, n)
        fold.score_train = sliced(score_params, fold.train, n)


def _trainable(batches: list, error_score) -> list:
    """The batches with a member that the estimator takes; for the others,
    every (fold, configuration) refused, the warnings now, no training.
    Where nothing is left, the first refusal is raised."""
    kept = [b for b in batches if len(b.failed) < len(b.folds) * len(b.configs)]
    dropped = [b for b in batches if b not in kept]
    if not kept and dropped:
        raise next(iter(dropped[0].failed.values()))
    for batch in dropped:
        warn_failures(
            [refused(batch, g, m, error_score, e) for (g, m), e in batch.failed.items()]
        )
    return kept
