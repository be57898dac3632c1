"""The one place that imports scikit-learn's private helpers."""

from collections.abc import Callable, Iterable

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["Interval", "StrOptions", "RegistryOptions", "_fit_context"]


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
