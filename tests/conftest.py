import numpy as np
import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
