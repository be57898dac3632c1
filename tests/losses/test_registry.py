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
