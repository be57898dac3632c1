import pytest
import torch

import sktopk.losses as losses_pkg
from sktopk.losses import (
    AGGREGATES,
    AGGREGATES_WITH_LAMBDA,
    INDIVIDUAL_LOSSES,
    REGISTRY,
    SMOOTHINGS,
    functional,
    get_aggregate,
    get_individual_loss,
)


def test_names():
    assert AGGREGATES == ("average", "maximum", "atk", "matk", "stk")
    assert AGGREGATES_WITH_LAMBDA == ("matk", "stk")
    assert set(INDIVIDUAL_LOSSES) >= {
        "logistic",
        "hinge",
        "square",
        "absolute",
        "cross_entropy",
        "multiclass_hinge",
    }
    assert SMOOTHINGS == ("srelu", "softplus", "elu", "leaky_relu")


@pytest.mark.parametrize("name", AGGREGATES)
def test_aggregate_entries_point_to_the_functions_and_modules(name):
    info = get_aggregate(name)
    assert info.name == name and info.kind == "aggregate"
    assert info.function is getattr(functional, name)
    assert issubclass(info.module, torch.nn.Module)
    assert info.uses_lambda == ("lam" in dict(_module(info).named_parameters()))
    ls = torch.tensor([1.0, 4.0, 2.0, 3.0])
    args = (ls, 2.5, 2) if info.uses_lambda else (ls, 2) if name == "atk" else (ls,)
    torch.testing.assert_close(info(*args), info.function(*args))


def _module(info):
    return info.module(k=2) if info.name in ("atk", "matk", "stk") else info.module()


@pytest.mark.parametrize("name", INDIVIDUAL_LOSSES)
def test_individual_entries(name):
    info = get_individual_loss(name)
    assert info.kind == "individual" and callable(info.function)
    assert info.function is getattr(functional, name)


@pytest.mark.parametrize(
    "getter, name, valid",
    [
        (get_aggregate, "topk", "'average', 'maximum', 'atk', 'matk', 'stk'"),
        (get_aggregate, "logistic", "'average'"),  # right registry, wrong kind
        (get_individual_loss, "stk", "'logistic'"),
        (get_individual_loss, "Logistic", "'logistic'"),
        (get_aggregate, None, "'average'"),
    ],
)
def test_unknown_name_lists_the_valid_ones(getter, name, valid):
    with pytest.raises(ValueError, match=f"unknown .* loss {name!r}; valid names"):
        getter(name)
    with pytest.raises(ValueError, match=valid.replace("(", r"\(")):
        getter(name)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        REGISTRY["mine"] = REGISTRY["stk"]


def test_public_names_exist():
    for name in losses_pkg.__all__:
        assert hasattr(losses_pkg, name), name
    for name in functional.__all__:
        assert callable(getattr(functional, name)), name


def _inputs(info, n=6):
    g = torch.Generator().manual_seed(3)
    if info.task == "multiclass":
        f = torch.randn(n, 20, generator=g, dtype=torch.float64)
        return f, torch.randint(0, 20, (n,), generator=g)
    f = torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return f, (torch.sign(y) if info.task == "binary" else y)


# k = 12 of 20 classes: the SVM losses' largest route.
_PARAMS = {"smooth_topk_svm": {"k": 12, "tau": 0.5}, "topk_svm": {"k": 12}}


@pytest.mark.parametrize("name", INDIVIDUAL_LOSSES)
def test_every_individual_entry_returns_one_value_per_sample(name):
    info = get_individual_loss(name)
    f, y = _inputs(info)
    params = _PARAMS.get(name, {})
    got = info(f, y, **params)
    assert got.shape == (6,)
    torch.testing.assert_close(got, info.value(f, y, **params))
    # An explicit reduction is the caller's.
    total = info(f, y, **params, reduction="sum")
    torch.testing.assert_close(total, got.sum())


def test_reduction_is_given_only_to_functions_that_take_it():
    def per_sample(f, y):
        return f - y

    def reduced(f, y, *, reduction="mean"):
        return {"none": f - y, "mean": (f - y).mean()}[reduction]

    f, y = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    for fn in (per_sample, reduced):
        info = losses_pkg.IndividualLoss("mine", "regression", per_sample, None, fn)
        torch.testing.assert_close(info(f, y), f - y)
