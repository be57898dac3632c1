"""scikit-learn's estimator checks on deterministic CPU configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor

_SW_REASON = (
    "minibatch order is drawn over samples, so a weight of 2 is not the same "
    "as a repeated sample under shuffling"
)
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": _SW_REASON,
    "check_sample_weight_equivalence_on_sparse_data": _SW_REASON,
}


ESTIMATORS = [
    STkClassifier(device="cpu", random_state=0),
    STkClassifier(
        aggregate="atk", loss="hinge", model="mlp", device="cpu", random_state=0
    ),
    STkRegressor(device="cpu", random_state=0),
    SmoothTopKSVMClassifier(k=1, device="cpu", random_state=0),
]


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda estimator: EXPECTED_FAILURES
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
