"""``nn.Module`` forms of the top-k SVM losses over classes."""

import torch
from torch import Tensor

from ._svm_checks import _check_hyper
from ._topk_svm import smooth_topk_svm, topk_svm
from .modules import _SavedHyper, plain_number

__all__ = ["SmoothTopKSVMLoss", "TopKSVMLoss"]


class SmoothTopKSVMLoss(_SavedHyper):
    """Smooth top-k SVM loss (Berrada, Zisserman, Kumar, ICLR 2018) as a module.

    ``L(s, y) = tau softplus(margin / tau - z_y + log e_k(z') - log e_{k-1}(z'))``
    with ``z = s / (k tau)`` and ``e_j`` the elementary symmetric polynomials of
    ``exp(z)`` over the wrong classes; see :func:`smooth_topk_svm`. The module
    stores only the hyper-parameters, which its ``state_dict`` carries: labels
    are passed to ``forward`` and never kept, so it follows ``.to(device)``
    trivially.

    Parameters
    ----------
    k : int, default=5
        Size of the predicted set, in ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    tau : float, default=1.0
        Temperature, ``> 0``.
    reduction : {"none", "mean", "sum"}, default="mean"

    See Also
    --------
    TopKSVMLoss : The hard loss, the limit ``tau -> 0``.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> criterion = SmoothTopKSVMLoss(k=2, tau=0.1)
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, -1.0]], requires_grad=True)
    >>> loss = criterion(scores, torch.tensor([3]))
    >>> loss.backward()
    >>> scores.grad
    tensor([[ 0.0033,  0.4933,  0.0033, -0.5000]])
    """

    def __init__(
        self, k: int = 5, margin: float = 1.0, tau: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self._set_hyper(k, margin, tau, reduction)

    _hyper = ("k", "margin", "tau", "reduction")

    def _set_hyper(self, k, margin, tau, reduction) -> None:
        _check_hyper(k, margin, tau, reduction)
        self.k, self.margin, self.tau = (plain_number(v) for v in (k, margin, tau))
        self.reduction = str(reduction)

    # TorchScript cannot compile the loss (Python validation, an autograd
    # Function): a scripted model calls it back in Python.
    @torch.jit.ignore
    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        return smooth_topk_svm(
            scores, labels, self.k, self.margin, self.tau, self.reduction
        )

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, margin={self.margin}, tau={self.tau}, "
            f"reduction={self.reduction!r}"
        )


class TopKSVMLoss(_SavedHyper):
    """Hard top-k SVM loss ``max(0, margin + (s'_[k] - s_y) / k)`` as a module.

    ``s'_[k]`` is the k-th largest wrong-class score; see :func:`topk_svm`.
    Plain autograd operations: every derivative, ``torch.func``, compile and
    export work. Its ``state_dict`` carries the hyper-parameters.

    Parameters
    ----------
    k : int, default=5
        In ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    reduction : {"none", "mean", "sum"}, default="mean"

    See Also
    --------
    SmoothTopKSVMLoss : The smooth version.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> criterion = TopKSVMLoss(k=2)
    >>> criterion(torch.tensor([[2.0, 1.0, 0.0, -1.0]]), torch.tensor([3]))
    tensor(2.)
    """

    def __init__(
        self, k: int = 5, margin: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self._set_hyper(k, margin, reduction)

    _hyper = ("k", "margin", "reduction")

    def _set_hyper(self, k, margin, reduction) -> None:
        _check_hyper(k, margin, 1.0, reduction)
        self.k, self.margin = plain_number(k), plain_number(margin)
        self.reduction = str(reduction)

    @torch.jit.ignore
    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        return topk_svm(scores, labels, self.k, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"k={self.k}, margin={self.margin}, reduction={self.reduction!r}"
