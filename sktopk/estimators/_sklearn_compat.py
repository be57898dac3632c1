"""The one place that imports scikit-learn's private helpers."""

import warnings
from collections.abc import Callable, Iterable
from inspect import signature

from sklearn.base import _fit_context
from sklearn.metrics import check_scoring
from sklearn.metrics._scorer import _check_multimetric_scoring, _MultimetricScorer
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metadata_routing import _raise_for_params

# Since scikit-learn 1.7, GridSearchCV.fit(X, y, sample_weight=w) without
# metadata routing also passes w to the scorers that accept it.
SCORERS_GET_FIT_SAMPLE_WEIGHT = hasattr(
    BaseSearchCV, "_check_scorers_accept_sample_weight"
)

__all__ = [
    "Interval",
    "StrOptions",
    "RegistryOptions",
    "_fit_context",
    "multimetric_scorers",
    "_MultimetricScorer",
    "_raise_for_params",
    "scorers_take_sample_weight",
]


def multimetric_scorers(estimator, scoring) -> tuple[dict, bool]:
    """``({name: scorer}, multimetric)`` as GridSearchCV reads ``scoring``:
    one scorer named "score" for None, a string or a callable; one per name
    for a list, tuple, set or dict."""
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return {"score": check_scoring(estimator, scoring)}, False
    return _check_multimetric_scoring(estimator, scoring), True


def scorers_take_sample_weight(search, scorers: dict, multimetric: bool) -> bool:
    """Whether GridSearchCV, fitted with ``sample_weight`` and without metadata
    routing, passes it to its scorers ``scorers`` (as ``multimetric_scorers``
    gives them); with its warning for each scorer that does not accept it.

    Never before scikit-learn 1.7; since, when one of the scorers accepts it.
    """
    if not SCORERS_GET_FIT_SAMPLE_WEIGHT:
        return False
    accepted = False
    for name, scorer in scorers.items():
        if _accepts_sample_weight(scorer):
            accepted = True
            continue
        what = f"{name}={scorer}" if multimetric else f"{scorer}"
        warnings.warn(
            f"The scoring {what} does not support sample_weight, which may lead "
            f"to statistically incorrect results when fitting {search} with "
            "sample_weight. ",
            UserWarning,
            stacklevel=3,
        )
    return accepted


def _accepts_sample_weight(scorer) -> bool:
    if hasattr(scorer, "_accept_sample_weight"):
        return scorer._accept_sample_weight()
    return "sample_weight" in signature(scorer).parameters


class RegistryOptions(StrOptions):
    """``StrOptions`` whose valid strings are read from ``source()`` each time
    a value is checked, so that names registered after import are valid."""

    def __init__(self, source: Callable[[], Iterable[str]]):
        self._source = source
        super().__init__(set(source()))

    @property
    def options(self) -> set[str]:
        return set(self._source())

    @options.setter
    def options(self, value) -> None:  # set by StrOptions.__init__; read live
        pass
