"""The fitted network of an estimator, kept as numpy arrays.

Linear models and MLPs keep ``coefs_`` and ``intercepts_`` (as
``MLPClassifier``); a callable model keeps ``module_state_``, its state dict as
arrays. Nothing fitted is a torch object: pickles stay small, ``skops`` can
store the estimator with trusted types only, and a model fitted on CUDA
predicts on a CPU-only machine. ``module_`` builds the torch module on demand.

A callable model's module is built by the user's factory, whose
initialisation draws from torch's global generator: prediction builds it,
from the fitted state at each call, with that generator's state put back
afterwards.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._device import resolve_device
from ..engine import ModuleAdapter, StackedMLP, to_sequential
from ..engine.trainer import plain_arithmetic

#: Rows of a sparse X made dense at once for a callable model's prediction.
_SPARSE_ROWS = 4096
#: Rows of a dense X evaluated at once (in float64) by the built-in models.
_PREDICT_ROWS = 65536

__all__ = ["FittedNetwork"]


class FittedNetwork:
    """Mixin: store, rebuild and evaluate the fitted network."""

    def _store_weights(self, model, index: tuple = (), shift=None, scale=None) -> None:
        """Keep member ``index`` of ``model`` as numpy arrays; a model trained
        on ``(X - shift) / scale`` gets its first layer for ``X`` (``W /
        scale`` and ``b - shift W / scale``, in float64)."""
        for name in ("coefs_", "intercepts_", "module_state_"):
            self.__dict__.pop(name, None)
        if isinstance(model, ModuleAdapter):
            state = model.module.state_dict()
            self.module_state_ = {
                k: v.detach().cpu().numpy().copy() for k, v in state.items()
            }
            return
        weights = [t.numpy() for t in model.member_state(index)]
        self.coefs_, self.intercepts_ = weights[0::2], weights[1::2]
        if scale is not None:
            self.coefs_[0] = self.coefs_[0].astype(np.float64) / scale[:, None]
        if shift is not None:
            W, b = self.coefs_[0].astype(np.float64), self.intercepts_[0]
            self.intercepts_[0] = b.astype(np.float64) - shift @ W
        affine = self._output_affine()
        if affine is not None:  # outputs in the targets' units
            centre, spread = affine
            W, b = self.coefs_[-1], self.intercepts_[-1]
            self.coefs_[-1] = W.astype(np.float64) * spread
            self.intercepts_[-1] = b.astype(np.float64) * spread + centre

    def _output_affine(self) -> tuple[float, float] | None:
        """``(centre, scale)`` that the trained outputs are mapped through,
        ``centre + scale * output``, into the user's units, or None (the
        outputs are the decision). :meth:`_store_weights` folds it into the
        last layer of a built-in model."""
        return None

    @property
    def coef_(self) -> np.ndarray:
        """The linear model's coefficients, in the layout of scikit-learn's
        linear models: ``(n_features,)`` for a regressor, ``(1, n_features)``
        for two classes (the ``decision_function`` of ``classes_[1]``), else
        ``(n_classes, n_features)``. Only for ``model="linear"`` (an
        AttributeError otherwise, so that ``SelectFromModel`` and ``hasattr``
        see that there is none). A new array at each access."""
        return self._decision_affine()[0]

    @property
    def intercept_(self) -> np.ndarray | float:
        """The linear model's intercepts, matching :attr:`coef_`: a float for
        a regressor, else ``(1,)`` or ``(n_classes,)``. Only for
        ``model="linear"``."""
        return self._decision_affine()[1]

    def _decision_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coef, intercept)`` of the fitted linear model's decision (float64)."""
        if len(self.__dict__.get("coefs_", ())) != 1:
            raise AttributeError(
                f"{type(self).__name__} has coef_ and intercept_ only once fitted "
                "with model='linear'"
            )
        W = self.coefs_[0].astype(np.float64)
        b = np.asarray(self.intercepts_[0], np.float64)
        return self._affine_of_outputs(W.T.copy(), b.copy())

    def _affine_of_outputs(self, coef, intercept):
        """The decision's ``(coef, intercept)`` from the outputs' ones, shapes
        ``(n_outputs, n_features)`` and ``(n_outputs,)`` (the outputs are the
        decision of classifiers; overridden where they are not)."""
        return coef, intercept

    def _check_network(self) -> None:
        check_is_fitted(self, ["coefs_", "module_state_"], all_or_any=any)

    @property
    def module_(self) -> nn.Module:
        """The trained network as a torch module on the CPU, in eval mode,
        built from the fitted arrays at each access (changing it changes
        nothing fitted; building a callable model's leaves torch's global
        generator as it was)."""
        if "coefs_" in self.__dict__:
            return to_sequential(self._layer_sizes(), self._weights("cpu")).eval()
        if "module_state_" in self.__dict__:
            return self._built_module()
        raise AttributeError(f"{type(self).__name__} is not fitted: no module_")

    def _built_module(self) -> nn.Module:
        """A callable model's module with the fitted state, in eval mode."""
        module = _without_drawing(self.model, self.n_features_in_, self.n_outputs_)
        module.load_state_dict(
            {k: torch.from_numpy(v.copy()) for k, v in self.module_state_.items()}
        )
        return module.eval()

    def _stacked_weights(self, device, shift=None, scale=None) -> StackedMLP:
        """The fitted linear model or MLP as a one-member stack on ``device``
        (warm start), for inputs ``(X - shift) / scale`` and with the outputs
        it was trained to give (before :meth:`_output_affine`)."""
        weights = self._weights(device, shift, scale, trained_outputs=True)
        return StackedMLP.from_params(self._layer_sizes(), weights)

    def _layer_sizes(self) -> tuple[int, ...]:
        """``(n_features, h1, ..., n_outputs)`` of the fitted linear model or MLP."""
        return (self.coefs_[0].shape[0], *(W.shape[1] for W in self.coefs_))

    def _weights(
        self, device, shift=None, scale=None, trained_outputs: bool = False
    ) -> list[torch.Tensor]:
        """``[W1, b1, ...]`` as new float32 tensors on ``device`` (the arrays
        are copied); with ``shift`` and ``scale``, for inputs ``(X - shift) /
        scale`` (``scale W1`` and ``b1 + shift W1``); ``trained_outputs``:
        with :meth:`_output_affine` taken out of the last layer."""
        coefs, intercepts = list(self.coefs_), list(self.intercepts_)
        affine = self._output_affine() if trained_outputs else None
        if affine is not None:
            centre, spread = affine
            coefs[-1] = coefs[-1].astype(np.float64) / spread
            intercepts[-1] = (intercepts[-1].astype(np.float64) - centre) / spread
        out = []
        for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
            if i == 0 and shift is not None:
                b = np.asarray(b, np.float64) + shift @ W.astype(np.float64)
            if i == 0 and scale is not None:
                W = W.astype(np.float64) * scale[:, None]
            out += [_tensor(W, device), _tensor(b, device)]
        return out

    def _network_outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs (n_samples, n_outputs) in float64 for validated ``X``.

        Linear models and MLPs are evaluated in numpy, a block of rows at a
        time (each row on its own: the same numbers as one pass, without a
        float64 copy of the whole of ``X``); a sparse ``X`` enters the first
        layer as a sparse product, never made dense. Predictions do not
        depend on the row order or batch size through float32 rounding, and
        read-only or negative-stride arrays need no copy.
        """
        if "coefs_" not in self.__dict__:
            return self._module_outputs(X)
        if sp.issparse(X):
            first = X.astype(np.float64) @ self.coefs_[0].astype(np.float64)
            return self._layers(np.asarray(first), multiplied=True)
        rows = range(0, X.shape[0], _PREDICT_ROWS)
        return np.concatenate(
            [
                self._layers(np.asarray(X[i : i + _PREDICT_ROWS], np.float64))
                for i in rows
            ]
        )

    def _layers(self, out: np.ndarray, multiplied: bool = False) -> np.ndarray:
        """The layers in float64; ``multiplied``: ``out`` is already the
        first layer's product ``X W``."""
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            product = out if (multiplied and i == 0) else out @ W.astype(np.float64)
            out = product + b
            if i < last:
                np.maximum(out, 0.0, out=out)
        return out

    def _module_outputs(self, X) -> np.ndarray:
        """A callable model's outputs, through its torch module (a sparse
        ``X`` made dense a block of rows at a time)."""
        if sp.issparse(X):
            starts = range(0, X.shape[0], _SPARSE_ROWS)
            chunks = [X[i : i + _SPARSE_ROWS] for i in starts] or [X]
            return np.concatenate([self._module_outputs(c.toarray()) for c in chunks])
        device = _inference_device(self.device)
        module = self._built_module().to(device, torch.float64)
        Xt = torch.as_tensor(np.ascontiguousarray(X, np.float64), device=device)
        # In float64 whatever encloses the call (an autocast's lower precision
        # would change the predictions).
        with plain_arithmetic(device), torch.no_grad():
            out = module(Xt)
        return out.detach().cpu().numpy().astype(np.float64).reshape(len(X), -1)

    def _network_summary(self) -> dict:
        """What a warm start must keep: the kind of model and its layer sizes."""
        if "coefs_" in self.__dict__:
            sizes = self._layer_sizes()
            return {"model": "linear" if len(sizes) == 2 else "mlp", "sizes": sizes}
        return {"model": "callable", "sizes": (self.n_features_in_, self.n_outputs_)}


def _inference_device(device) -> torch.device:
    """The fit-time device when it is still there, else the CPU (a model
    fitted on CUDA predicts on a CPU-only machine)."""
    try:
        return resolve_device(device)
    except ValueError:
        return torch.device("cpu")


def _without_drawing(factory, n_features: int, n_outputs: int) -> nn.Module:
    """``factory(n_features, n_outputs)`` with the state of torch's global
    generators put back afterwards: the CPU one, and CUDA's where CUDA is
    initialised (the state of one that is not cannot be read without
    initialising it). Another thread drawing from them meanwhile would see
    its draws undone: prediction builds a module once per fitted estimator."""
    cuda = torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        return factory(n_features, n_outputs)


def _tensor(a: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32, device=device)
