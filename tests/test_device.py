"""Device resolution, with CUDA present or absent (mocked: no GPU needed)."""

from unittest import mock

import pytest
import torch

from sktopk._device import resolve_device


@pytest.fixture
def one_gpu():
    with (
        mock.patch("torch.cuda.is_available", return_value=True),
        mock.patch("torch.cuda.device_count", return_value=1),
        mock.patch("torch.cuda.current_device", return_value=0),
    ):
        yield


def test_cuda_comes_back_with_its_index(one_gpu):
    for name in ("auto", "cuda", "cuda:0", torch.device("cuda")):
        assert resolve_device(name) == torch.device("cuda", 0)
    assert str(resolve_device("auto")) == "cuda:0"  # as device_ reports it


def test_a_cuda_index_beyond_the_devices_is_refused(one_gpu):
    with pytest.raises(ValueError, match="has 1 CUDA device.*cuda:0 to cuda:0"):
        resolve_device("cuda:1")


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused():
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("name", ["mps", "mps:0"])
def test_mps_is_refused_for_its_missing_float64(name):
    with pytest.raises(ValueError, match="MPS is not supported.*float64"):
        resolve_device(name)


def test_a_model_fitted_on_a_missing_gpu_predicts_on_the_cpu(one_gpu):
    from sktopk.estimators._fitted import _inference_device

    assert _inference_device("cuda:3") == torch.device("cpu")
