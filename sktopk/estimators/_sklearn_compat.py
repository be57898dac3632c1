"""The one place that imports scikit-learn's private helpers."""

from collections.abc import Callable, Iterable

from sklearn.base import _fit_context
from sklearn.metrics import check_scoring
from sklearn.metrics._scorer import _check_multimetric_scoring, _MultimetricScorer
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = [
    "Interval",
    "StrOptions",
    "RegistryOptions",
    "_fit_context",
    "multimetric_scorers",
    "_MultimetricScorer",
]


def multimetric_scorers(estimator, scoring) -> tuple[dict, bool]:
    """``({name: scorer}, multimetric)`` as GridSearchCV reads ``scoring``:
    one scorer named "score" for None, a string or a callable; one per name
    for a list, tuple, set or dict."""
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return {"score": check_scoring(estimator, scoring)}, False
    return _check_multimetric_scoring(estimator, scoring), True


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
