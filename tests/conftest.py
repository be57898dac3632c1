import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# The property tests draw the same examples on every run (a CI run cannot
# fail by chance); SKTOPK_HYPOTHESIS=explore draws new ones, to look for bugs.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("SKTOPK_HYPOTHESIS", "deterministic"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=["compiled", "tensor"])
def kernels(request, monkeypatch):
    """Run a test with the compiled kernels of the losses (numba, where it is
    installed) and with their tensor operations."""
    import sktopk.losses._aggregate as aggregate
    import sktopk.losses._native as native

    if request.param == "compiled" and not native.native_available():
        pytest.skip("numba is not installed (the fast extra)")
    if request.param == "tensor":
        monkeypatch.setitem(native._STATE, "on", False)
    aggregate._cached_plan.cache_clear()  # plans hold their kernel
    yield request.param
    aggregate._cached_plan.cache_clear()


@pytest.fixture
def auto_is_cpu(monkeypatch):
    """``device="auto"`` trains on the CPU, for tests that compare batched and
    single fits bit for bit (on a GPU their kernels round differently)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
