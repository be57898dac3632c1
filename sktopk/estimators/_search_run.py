"""Training one batch of a search and scoring each of its members.

Runs where joblib sends it (this process, a worker process, a Dask worker):
everything it needs travels in the :class:`~._search_plan.Batch`.
"""

from __future__ import annotations

import time
import warnings
from contextlib import suppress
from dataclasses import dataclass, field
from numbers import Number, Real

import numpy as np
from sklearn import config_context
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.multiclass import type_of_target

from .._device import resolve_device
from ..engine import DivergenceError
from ..engine.grid import (
    BUDGET_FLOOR,
    available_bytes,
    make_data,
    train_in_chunks,
)
from ._search_plan import Batch, fit_failed_message, member_estimator

try:  # the scorer of scoring=None: the estimator's own score method
    from sklearn.metrics._scorer import _PassthroughScorer
except ImportError:  # pragma: no cover - a later scikit-learn
    _PassthroughScorer = None

__all__ = ["BatchScores", "run_batch", "fit_one_by_one", "error_fill", "is_passthrough"]


@dataclass
class BatchScores:
    """Scores of a batch's configurations (rows) on its folds (columns).

    A metric's array is made when its first score comes (a callable
    ``scoring`` names its metrics only in what it returns), filled with
    ``fill`` (``error_score``): a member that diverged or whose scoring
    failed keeps it.
    """

    configs: list[int]
    folds: list[int]
    test: dict[str, np.ndarray] = field(default_factory=dict)
    train: dict[str, np.ndarray] = field(default_factory=dict)
    fit_time: np.ndarray | None = None
    score_time: np.ndarray | None = None
    members_at_once: int = 0
    fill: float = np.nan
    # What the scorers returned: "number" and/or "dict" (a callable scoring's
    # metrics).
    kinds: set = field(default_factory=set)
    # The FitFailedWarnings of the batch (refused or diverged members), for
    # the caller's process to warn (a joblib worker's warnings never reach it).
    failures: list[str] = field(default_factory=list)
    # Whether each member's fit succeeded (its scores were computed).
    fitted: np.ndarray | None = None

    def put(self, table: dict, name: str, index: tuple, value: float) -> None:
        """``table[name][index] = value``, making the array if needed."""
        if name not in table:
            table[name] = np.full(self.score_time.shape, self.fill)
        table[name][index] = value


def run_batch(batch: Batch, scorers: dict, options: dict) -> BatchScores:
    """Train every configuration of ``batch`` on its folds at once and score
    each member with every scorer.

    ``options``: ``error_score``, ``return_train_score``, ``max_memory``,
    ``jobs``, the batches trained at the same time (they share the memory
    when ``max_memory`` is None), and ``dict_scores``, whether a scorer may
    return a dict of metrics (a callable ``scoring``).
    """
    start = time.perf_counter()
    plans, device = batch.plans, resolve_device(batch.base.device)
    # The batches trained at the same time share the budget (the given one,
    # else the memory available, at least BUDGET_FLOOR each).
    max_memory, jobs = options["max_memory"], options.get("jobs", 1)
    if jobs > 1 and max_memory is not None:
        max_memory //= jobs
    elif jobs > 1:  # never below the floor
        max_memory = max(available_bytes(device) // jobs, BUDGET_FLOOR)
    data = _stack(plans, device)
    sizes = batch.base._sizes(plans[0].X.shape[1], plans[0].n_out)
    grid = batch.grid
    out = _empty(batch, options)
    error_score = options["error_score"]
    offset = [0]

    def score_chunk(model, result):
        m = int(model.lead[-1])
        # The scorers' inputs are the estimators' own: skip re-validating
        # the metric functions' parameters thousands of times.
        with config_context(skip_parameter_validation=True):
            for g in range(len(plans)):
                for j in range(m):
                    member = offset[0] + j  # its index in the batch
                    error = batch.failed.get((g, member))
                    if error is not None:
                        out.failures.append(
                            refused(batch, g, member, error_score, error)
                        )
                        continue
                    est = _member(batch, g, member, model, result, (g, j))
                    _score_member(out, est, batch, g, member, scorers, options)
        offset[0] += m
        return (np.zeros((len(plans), m)),)

    chunk, _ = train_in_chunks(
        data,
        plans[0].spec,
        sizes,
        grid,
        [p.seed for p in plans],
        score_chunk,
        max_memory=max_memory,
    )
    # The batch's training time shared evenly among its (configuration, fold)
    # members; the scoring is counted apart, as GridSearchCV's score_time.
    training = time.perf_counter() - start - out.score_time.sum()
    out.fit_time = np.full(out.score_time.shape, training / out.score_time.size)
    out.members_at_once = chunk * len(plans)
    return out


def _stack(plans, device):
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


def _empty(batch: Batch, options: dict) -> BatchScores:
    shape = (len(batch.configs), len(batch.folds))
    out = BatchScores(batch.configs, [f.index for f in batch.folds])
    out.score_time = np.zeros(shape)
    out.fitted = np.zeros(shape, dtype=bool)
    out.fill = error_fill(options["error_score"])
    return out


def error_fill(error_score) -> float:
    """The score of a failed member (NaN where failures raise)."""
    return np.nan if error_score == "raise" else float(error_score)


def _member(batch: Batch, g: int, m: int, model, result, index: tuple):
    """Member ``index`` of the trained model as a fitted estimator (its
    DivergenceError if it diverged), with the fold's fitted attributes
    (classes_, y_center_, ...)."""
    est = member_estimator(batch.plans[g].estimator, batch.member_params[m])
    try:
        est._store(model, result, index=index, warn=False)
    except DivergenceError as exc:
        return exc
    est.device_ = str(model.flat.device)
    return est


def _score_member(out, est, batch, g, m, scorers, options) -> None:
    fold = batch.folds[g]
    if isinstance(est, DivergenceError):
        out.failures.append(_diverged(batch, g, m, options["error_score"], est))
        return
    out.fitted[m, g] = True
    start = time.perf_counter()
    sides = [("test", out.test, fold.X_test, fold.y_test, fold.score_test)]
    if options["return_train_score"]:
        sides.append(("train", out.train, fold.X_train, fold.y_train, fold.score_train))
    for side, table, X, y, params in sides:
        plain = _plain_labels(fold, side, y, est)
        scores = _scores(est, X, y, scorers, options, params, plain, out.kinds)
        for name, value in scores.items():
            out.put(table, name, (m, g), value)
    out.score_time[m, g] = time.perf_counter() - start


def _scores(
    est, X, y, scorers: dict, options: dict, params: dict, plain, kinds: set
) -> dict:
    """``{metric: score}`` of ``est``; a scorer that fails is left out (its
    score stays ``error_score``), with a warning."""
    out = {}
    for name, scorer in scorers.items():
        try:
            value = _score(scorer, est, X, y, params, plain)
        except Exception as exc:  # as GridSearchCV: error_score decides
            if options["error_score"] == "raise":
                raise
            warnings.warn(
                f"Scoring failed with {name!r}; its score is set to "
                f"{options['error_score']}. Details: {exc!r}",
                UserWarning,
                stacklevel=2,
            )
            continue
        if isinstance(value, dict) and options.get("dict_scores"):
            kinds.add("dict")
            out.update({k: _number(v, k) for k, v in value.items()})
        else:
            kinds.add("number")
            out[name] = _number(value, scorer)
    return out


def _number(value, scorer) -> float:
    """A score as a float; anything but a number raises, as in GridSearchCV."""
    if hasattr(value, "item"):
        with suppress(ValueError):
            value = value.item()
    if not isinstance(value, Number):
        raise ValueError(
            f"scoring must return a number, got {value} ({type(value)}) instead. "
            f"(scorer={scorer})"
        )
    return float(value)


def _score(scorer, est, X, y: np.ndarray, params: dict, plain: bool) -> float:
    """``scorer(est, X, y, **params)``.

    A classifier's own score (``scoring=None``, no scoring parameters) is
    the accuracy: where the labels are ``plain`` (see :func:`_plain_labels`)
    and the predictions have their shape, it is computed here as
    ``accuracy_score`` computes it, the mean of ``y == predict(X)``, without
    checking the same labels again for each of thousands of members (three
    quarters of the scoring time of a member).
    """
    if plain and not params and _is_default_accuracy(scorer, est):
        pred = est.predict(X)
        if np.shape(pred) == np.shape(y):
            return float(np.average(y == pred))
    return scorer(est, X, y, **params)


def _plain_labels(fold, side: str, y, est) -> bool:
    """Whether ``accuracy_score`` accepts the labels ``y`` against any
    predictions of ``est`` as they are, once per fold and side: 1-D binary
    or multiclass labels, comparable with the classes the member learned
    (a fold's test labels can hold what its training labels did not)."""
    if side not in fold.plain_labels:
        fold.plain_labels[side] = _accuracy_accepts(y, getattr(est, "classes_", None))
    return fold.plain_labels[side]


def _accuracy_accepts(y, classes) -> bool:
    if classes is None or np.ndim(y) != 1:
        return False
    try:
        if type_of_target(y) not in ("binary", "multiclass"):
            return False
        np.union1d(y, classes)  # raises TypeError for labels of mixed types
    except (TypeError, ValueError):
        return False
    return True


def is_passthrough(scorer) -> bool:
    """Whether ``scorer`` is the estimator's own score method (``scoring=None``)."""
    return _PassthroughScorer is not None and type(scorer) is _PassthroughScorer


def _is_default_accuracy(scorer, est) -> bool:
    return is_passthrough(scorer) and type(est).score is ClassifierMixin.score


def refused(batch: Batch, g: int, m: int, error_score, exc: Exception) -> str:
    """The FitFailedWarning message of configuration ``m`` refused by the
    estimator on fold ``g``."""
    what = f"{type(batch.base).__name__} with {batch.member_params[m]}"
    return fit_failed_message(what, batch.folds[g].index, error_score, exc)


def _diverged(batch: Batch, g: int, m: int, error_score, exc: DivergenceError) -> str:
    """Raise, or the FitFailedWarning message: the member's scores stay
    ``error_score``."""
    params = batch.member_params[m]
    message = f"For the configuration {params} on fold {batch.folds[g].index}: {exc}"
    if error_score == "raise":
        raise DivergenceError(message) from exc
    return f"{message} Its scores are set to error_score={error_score}."


def fit_one_by_one(batch: Batch, scorers: dict, options: dict) -> BatchScores:
    """The batch's configurations fitted one at a time (a callable model
    cannot be stacked), then scored like the members of a batch."""
    out = _empty(batch, options)
    out.fit_time = np.zeros_like(out.score_time)
    for m, params in enumerate(batch.member_params):
        for g, fold in enumerate(batch.folds):
            start = time.perf_counter()
            est = clone(batch.base).set_params(**params)
            try:
                # Its warn=False path, not a warnings.catch_warnings block,
                # which swaps the process's filters (threads can leave an
                # "ignore" filter behind).
                est._fit(fold.X_train, fold.y_train, **fold.fit_params, warn=False)
            except DivergenceError as exc:
                est = exc
            except (ValueError, TypeError) as exc:  # refused: as GridSearchCV
                if options["error_score"] == "raise":
                    raise
                out.failures.append(refused(batch, g, m, options["error_score"], exc))
                continue
            out.fit_time[m, g] = time.perf_counter() - start
            _score_member(out, est, batch, g, m, scorers, options)
    out.members_at_once = 1
    return out


def check_error_score(error_score) -> None:
    """``error_score`` is "raise" or a number."""
    if error_score != "raise" and not isinstance(error_score, Real):
        raise ValueError(
            f"error_score must be 'raise' or a number; got {error_score!r}"
        )
