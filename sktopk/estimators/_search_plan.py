"""Planning a batched search: which configurations train together, on which
(preprocessed) folds.

A grid point has three kinds of parameters: those of the preprocessing steps
of a Pipeline (fitted once per fold and distinct setting), the final
estimator's member parameters (``_member_params``: members of one batched
model) and its other parameters (one batch per distinct setting).
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import FitFailedWarning
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.metadata_routing import _routing_enabled

from .._device import resolve_device
from ._base import FitPlan, _TopKEstimatorBase, weight_units

__all__ = [
    "Fold",
    "Batch",
    "split_estimator",
    "check_candidates",
    "plan_batches",
    "split_for_jobs",
    "warn_fit_failed",
    "collected_failures",
    "all_failed_error",
    "warn_failures",
    "fit_failed_message",
]


@dataclass
class Fold:
    """One cross-validation fold, after the preprocessing steps."""

    index: int
    train: np.ndarray  # row indices into the caller's X
    test: np.ndarray
    X_train: object
    X_test: object
    y_train: np.ndarray
    y_test: np.ndarray
    fit_params: dict = field(default_factory=dict)  # the final step's, sliced
    score_test: dict = field(default_factory=dict)  # the scorers', sliced
    score_train: dict = field(default_factory=dict)
    # Whether the test or training labels are what accuracy_score accepts
    # against the fold's classes, checked once: "test" or "train" -> bool.
    plain_labels: dict = field(default_factory=dict)


@dataclass
class Batch:
    """Configurations of one structure, trained together over ``folds``."""

    base: _TopKEstimatorBase  # the final step, structural parameters set
    configs: list[int]  # candidate indices
    member_params: list[dict]  # the final step's member parameters of each
    folds: list[Fold]
    plans: list[FitPlan]  # each fold's validated data, same order
    grid: dict  # the engine's hyper-parameters, each (n_folds, n_configs)
    # (fold, configuration) pairs the estimator refused (an int k beyond the
    # fold), trained with a stand-in and scored error_score: their errors
    failed: dict = field(default_factory=dict)


def split_estimator(estimator) -> tuple[Pipeline | None, str | None, object]:
    """``(pipeline, final step name, final estimator)`` of what the search got.

    Raises a TypeError for anything but an sktopk estimator or a Pipeline
    whose last step is one.
    """
    if isinstance(estimator, Pipeline):
        name, final = estimator.steps[-1]
        if isinstance(final, _TopKEstimatorBase):
            return estimator, name, final
        what = f"a Pipeline whose last step is {type(final).__name__}"
    elif isinstance(estimator, _TopKEstimatorBase):
        return None, None, estimator
    else:
        what = type(estimator).__name__
    raise TypeError(
        "STkSearchCV needs an sktopk estimator (STkClassifier, STkRegressor, "
        "SmoothTopKSVMClassifier) or a Pipeline whose last step is one; got "
        f"{what}. Use sklearn.model_selection.GridSearchCV for other estimators."
    )


def split_params(params: dict, final_name: str | None) -> tuple[dict, dict]:
    """A grid point's ``(preprocessing, final step)`` parameters; the final
    step's keys lose their ``<name>__`` prefix."""
    if final_name is None:
        return {}, dict(params)
    prefix = final_name + "__"
    head, final = {}, {}
    for key, value in params.items():
        if key == final_name:
            raise ValueError(
                f"param_grid key {key!r} replaces the final step; STkSearchCV "
                "searches the final step's parameters (e.g. "
                f"'{prefix}k'), not the step itself"
            )
        if key.startswith(prefix):
            final[key[len(prefix) :]] = value
        else:
            head[key] = value
    return head, final


def check_candidates(
    estimator, candidates: list[dict], error_score=np.nan
) -> dict[int, Exception]:
    """Every grid point set on a clone and validated, before any training.

    Returns the invalid points as ``{index: error}``, each error naming the
    grid point and the parameter: GridSearchCV fails to fit them, and their
    scores are ``error_score``. With ``error_score="raise"``, or where every
    point is invalid, the first error is raised.
    """
    pipeline, final_name, final = split_estimator(estimator)
    base = clone(final)
    names = set(base.get_params(deep=False))
    invalid = {}
    for i, params in enumerate(candidates):
        error = _invalid(pipeline, final_name, base, names, params)
        if error is not None:
            if error_score == "raise":
                raise error
            invalid[i] = error
    if invalid and len(invalid) == len(candidates):
        raise next(iter(invalid.values()))
    return invalid


def _invalid(pipeline, final_name, base, names, params: dict) -> Exception | None:
    """The error of grid point ``params``, or None where it is valid.

    ``base`` is a clone of the final step and ``names`` its parameters'
    names. A point that sets only those (the common case: ``k``, ``C``,
    ``delta``, ...) is checked on a shallow copy of ``base`` with the
    values set as ``set_params`` sets them, which spares a clone and the
    signature lookups of ``set_params`` at each of thousands of points.
    """
    head, own = split_params(params, final_name)
    try:
        if own.keys() <= names:
            est = copy.copy(base)
            vars(est).update(own)
        else:
            est = clone(base).set_params(**clone(own, safe=False))
        est._check_params()
        if pipeline is not None and head:
            _check_steps(clone(pipeline).set_params(**clone(head, safe=False)))
    except (InvalidParameterError, ValueError, TypeError) as exc:
        error = type(exc)(f"param_grid point {params}: {exc}")
        error.__cause__ = exc
        return error
    return None


def _check_steps(pipeline: Pipeline) -> None:
    for _, step in pipeline.steps[:-1]:
        if hasattr(step, "_validate_params"):
            step._validate_params()


def group_candidates(
    candidates: list[dict], final_name: str | None, member_params
) -> dict[tuple, list[int]]:
    """Candidate indices grouped by everything that cannot vary within one
    batched model: the preprocessing parameters and the final step's
    non-member parameters."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, params in enumerate(candidates):
        head, own = split_params(params, final_name)
        key = (
            _freeze(head),
            _freeze({k: v for k, v in own.items() if k not in member_params}),
        )
        groups[key].append(i)
    return groups


def _freeze(params: dict) -> tuple:
    """A hashable, order-free key of ``params`` under which two settings are
    equal only if their values are equal and of the same types, all the way
    down (see :func:`_key`)."""
    return tuple((k, _key(v)) for k, v in sorted(params.items()))


_SCALARS = (bool, int, str, bytes, type(None))


def _key(value) -> tuple:
    """A hashable key of a parameter value that never merges two values that
    could behave differently.

    ``1``, ``1.0`` and ``True`` are equal and hash alike, but ``max_df=1``
    is a count of documents where ``max_df=1.0`` is a fraction: the key
    holds the exact type of every value, also inside lists, tuples, dicts
    and arrays (by dtype, shape and bytes); floats by their bits, so that
    NaN equals itself and ``-0.0`` differs from ``0.0``. Anything else (an
    estimator, a callable) is keyed by identity: only the same object shares
    a key.

    Examples
    --------
    >>> _key(1) == _key(1.0) or _key([1]) == _key((1,))
    False
    >>> _key([["a", "b"], ["c"]]) == _key([["a", "b"], ["c"]])
    True
    """
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)
    if kind is float:
        return (kind, value.hex())
    if kind is complex:
        return (kind, value.real.hex(), value.imag.hex())
    if isinstance(value, np.generic) and value.dtype.kind != "O":
        return (kind, value.dtype.str, value.tobytes())
    if kind in (list, tuple, set, frozenset):
        return (kind, tuple(_key(v) for v in value))
    if kind is dict:
        return (kind, tuple((_key(k), _key(v)) for k, v in value.items()))
    if kind is np.ndarray:
        return _array_key(value)
    return ("id", id(value))


def _array_key(value: np.ndarray) -> tuple:
    if value.dtype.kind == "O":
        return (np.ndarray, "O", value.shape, _key(value.ravel().tolist()))
    return (np.ndarray, value.dtype.str, value.shape, value.tobytes())


def preprocess_folds(
    pipeline: Pipeline | None,
    head: dict,
    X,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    fit_params: tuple[dict, dict],
    error_score=np.nan,
) -> list[Fold]:
    """Fit the preprocessing steps (set to ``head``) on each training fold and
    transform both sides; without a Pipeline (or with a Pipeline of one
    step) the folds are sliced as they are.

    ``fit_params`` is ``(preprocessing, final step)``: the keyword arguments
    of the preprocessing steps' ``fit_transform`` (``step__param`` keys, or
    the metadata under metadata routing) and the final step's fit
    parameters, over all rows (sliced here to the training rows). A fold
    whose preprocessing fails is left out, with a FitFailedWarning (its
    configurations keep ``error_score``), unless ``error_score`` is "raise".
    """
    prep_params, final_params = fit_params
    if set(final_params) - {"sample_weight"}:
        raise TypeError(
            f"the final step's fit takes only sample_weight; got {sorted(final_params)}"
        )
    out = []
    for i, (train, test) in enumerate(folds):
        X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
        y_train, y_test = y[train], y[test]
        if pipeline is not None and len(pipeline.steps) > 1:
            try:
                X_train, X_test = _transform(
                    pipeline,
                    head,
                    X_train,
                    y_train,
                    X_test,
                    sliced(prep_params, train, len(y)),
                )
            except Exception as exc:  # as GridSearchCV: error_score decides
                if error_score == "raise":
                    raise
                warn_fit_failed(
                    f"the preprocessing steps with {head}", i, error_score, exc
                )
                continue
        final_fit = sliced(final_params, train, len(y))
        out.append(Fold(i, train, test, X_train, X_test, y_train, y_test, final_fit))
    return out


def _transform(pipeline, head, X_train, y_train, X_test, prep_params: dict):
    """The training and test rows through the preprocessing steps (set to a
    copy of ``head``, as GridSearchCV clones grid values), fitted on the
    training rows with ``prep_params``."""
    steps = clone(pipeline).set_params(**clone(head, safe=False))
    prep = Pipeline(steps.steps[:-1], memory=steps.memory)
    X_train = prep.fit_transform(X_train, y_train, **_taken(prep, prep_params))
    return X_train, prep.transform(X_test)


def _taken(prep: Pipeline, params: dict) -> dict:
    """What ``prep.fit_transform`` takes of ``params``: all of them
    (``step__param`` keys), or under metadata routing the metadata that its
    steps request (the rest is for the final step)."""
    if not params or not _routing_enabled():
        return params
    consumed = prep.get_metadata_routing().consumes("fit_transform", params)
    return {k: v for k, v in params.items() if k in consumed}


def warn_fit_failed(what: str, fold: int, error_score, exc: Exception) -> None:
    """The FitFailedWarning of a fit that failed or was refused on ``fold``:
    its scores there stay ``error_score``."""
    warn_failures([fit_failed_message(what, fold, error_score, exc)])


def warn_failures(messages: list[str]) -> None:
    """Warn each FitFailedWarning message (those of a joblib worker in the
    caller's process, where its own warnings never reach); within
    :func:`collected_failures`, also keep them."""
    kept = _COLLECTED.get()
    for message in messages:
        if kept is not None:
            kept.append(message)
        warnings.warn(message, FitFailedWarning, stacklevel=3)


_COLLECTED: ContextVar[list | None] = ContextVar("sktopk_fit_failures", default=None)


@contextmanager
def collected_failures() -> Iterator[list[str]]:
    """The messages of the FitFailedWarnings raised within, in a list (they
    are still warned)."""
    token = _COLLECTED.set([])
    try:
        yield _COLLECTED.get()
    finally:
        _COLLECTED.reset(token)


def all_failed_error(n_fits: int, messages: list[str]) -> ValueError:
    """GridSearchCV's error where every fit failed, with the distinct causes
    and how many warnings gave each (the warnings may be filtered out)."""
    causes = Counter(m.split("Details: ", 1)[-1] for m in messages)
    details = "\n".join(f"- {n} x {cause}" for cause, n in causes.most_common())
    return ValueError(
        f"All the {n_fits} fits failed: the preprocessing steps or the "
        "estimator failed on every fold. It is very likely that your model is "
        "misconfigured; you can try to debug the error by setting "
        "error_score='raise'.\n\nBelow are more details about the failures "
        f"(of each FitFailedWarning):\n{details}"
    )


def fit_failed_message(what: str, fold: int, error_score, exc: Exception) -> str:
    """The message of :func:`warn_fit_failed`."""
    return (
        f"Fitting {what} failed on fold {fold}; "
        f"the scores of its configurations on this fold are set to "
        f"error_score={error_score}. Details: {exc!r}"
    )


def sliced(params: dict, rows: np.ndarray, n: int) -> dict:
    """Per-sample parameters (arrays of length ``n``) restricted to ``rows``."""
    out = {}
    for key, value in params.items():
        if value is not None and hasattr(value, "__len__") and len(value) == n:
            value = _safe_indexing(value, rows)
        out[key] = value
    return out


def plan_batches(
    final,
    member_params: list[dict],
    configs: list[int],
    folds: list[Fold],
    error_score=np.nan,
) -> list[Batch]:
    """Validate each fold's data for ``final`` and group the folds that can
    share a stacked model: the same number of features, outputs (a class
    missing from a training fold changes it) and batch size (with
    ``batch_size="auto"`` it follows the fold's size). A fold that ``final``
    refuses (one class only, say) is left out with a FitFailedWarning (its
    configurations keep ``error_score``), unless ``error_score`` is "raise"."""
    grouped: dict[tuple, list] = defaultdict(list)
    for fold in folds:
        est = clone(final)
        try:
            plan = est._prepare(
                fold.X_train, fold.y_train, fold.fit_params.get("sample_weight")
            )
        except Exception as exc:  # as GridSearchCV: error_score decides
            if error_score == "raise":
                raise
            warn_fit_failed(type(final).__name__, fold.index, error_score, exc)
            continue
        plan.estimator = est  # keeps the fold's classes_, y_center_, ...
        grouped[(plan.X.shape[1], plan.n_out, plan.spec.batch_size)].append(
            (fold, plan)
        )
    batches = []
    for pairs in grouped.values():
        folds_, plans = [f for f, _ in pairs], [p for _, p in pairs]
        grid, failed = hyper_grid(final, member_params, plans, error_score)
        batches.append(
            Batch(final, configs, member_params, folds_, plans, grid, failed)
        )
    return batches


def hyper_grid(
    final, member_params: list[dict], plans: list[FitPlan], error_score="raise"
) -> tuple[dict, dict]:
    """The engine's hyper-parameters of every (fold, configuration), each an
    array ``(n_folds, n_configs)``, and the pairs that the estimator refuses
    (an int ``k`` beyond a fold), as ``{(fold, configuration): error}``: they
    train with ``k`` at 1.0 and get ``error_score`` (with ``error_score="raise"``
    the error, naming the configuration, is raised)."""
    members = [member_estimator(final, params) for params in member_params]
    rows, failed = [], {}
    for g, plan in enumerate(plans):
        n, row = weight_units(plan), []
        for m, (params, est) in enumerate(zip(member_params, members, strict=True)):
            try:
                row.append(est._hyper(n))
            except (ValueError, TypeError) as exc:
                error = type(exc)(
                    f"param_grid point {params} on a training fold of {n} rows: {exc}"
                )
                if error_score == "raise" or "k" not in final._member_params:
                    raise error from exc
                failed[(g, m)] = error
                row.append(member_estimator(est, {"k": 1.0})._hyper(n))
        rows.append(row)
    keys = rows[0][0]
    return {k: np.array([[h[k] for h in row] for row in rows]) for k in keys}, failed


def member_estimator(template, params: dict):
    """A copy of ``template`` with the member parameters ``params`` set.

    A shallow copy, not ``clone``: members differ from their batch's
    template only in ``_member_params``, plain numbers, and a search builds
    thousands of them (``clone`` inspects the signature each time).
    """
    est = copy.copy(template)
    est.__dict__.update(params)
    return est


def split_for_jobs(batches: list[Batch], n_jobs: int) -> list[Batch]:
    """Give ``n_jobs`` parallel workers a batch each where there are fewer
    batches: each batch trained on the CPU is split into ``n_jobs`` batches
    of every ``n_jobs``-th configuration (configurations of a batch differ in
    how long they train; interleaving balances the parts).

    Every member of a group starts from the group's draw and sees its
    minibatches in the group's order, whichever members train beside it, so
    the split changes no result beyond float rounding.
    """
    if n_jobs <= 1 or len(batches) >= n_jobs:
        return batches
    out = []
    for batch in batches:
        if not _splittable(batch):
            out.append(batch)
            continue
        for j in range(min(n_jobs, len(batch.configs))):
            out.append(_part(batch, slice(j, None, n_jobs)))
    return out


def _splittable(batch: Batch) -> bool:
    if callable(batch.base.model) or len(batch.configs) < 2:
        return False
    return resolve_device(batch.base.device).type == "cpu"


def _part(batch: Batch, part: slice) -> Batch:
    """The configurations ``part`` of ``batch``, on the same folds; its
    refused (fold, configuration) pairs renumbered to the part's own."""
    members = range(len(batch.configs))[part]
    new = {m: i for i, m in enumerate(members)}
    failed = {(g, new[m]): e for (g, m), e in batch.failed.items() if m in new}
    return Batch(
        batch.base,
        batch.configs[part],
        batch.member_params[part],
        batch.folds,
        batch.plans,
        {k: np.asarray(v)[:, part] for k, v in batch.grid.items()},
        failed,
    )
