"""scikit-learn's estimator checks on deterministic CPU configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor, STkSearchCV

_SW_REASON = (
    "minibatch order is drawn over samples, so a weight of 2 is not the same "
    "as a repeated sample under shuffling"
)
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": _SW_REASON,
    "check_sample_weight_equivalence_on_sparse_data": _SW_REASON,
}


def _expected_failures(estimator) -> dict:
    if isinstance(estimator, STkSearchCV):  # its fit takes **params: skipped
        return {}
    return EXPECTED_FAILURES


ESTIMATORS = [
    STkClassifier(device="cpu", random_state=0),
    STkClassifier(
        aggregate="atk", loss="hinge", model="mlp", device="cpu", random_state=0
    ),
    STkRegressor(device="cpu", random_state=0),
    SmoothTopKSVMClassifier(k=1, device="cpu", random_state=0),
    # The search raises the estimators' own errors (through its "all fits
    # failed" message), as GridSearchCV does.
    STkSearchCV(STkClassifier(device="cpu", random_state=0), {"C": [1.0, 10.0]}, cv=2),
    STkSearchCV(STkRegressor(device="cpu", random_state=0), {"C": [1.0, 10.0]}, cv=2),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
