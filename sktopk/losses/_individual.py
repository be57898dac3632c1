"""Individual losses: one value per sample, to be aggregated over samples.

Binary classification takes real scores ``f`` and labels ``y`` in {-1, +1};
regression a prediction and a target; multi-class a score matrix and integer
labels. All are differentiable by autograd and numerically stable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._registry import IndividualLoss

__all__ = [
    "BUILTINS",
    "logistic",
    "hinge",
    "square",
    "absolute",
    "cross_entropy",
    "multiclass_hinge",
]


def _check_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    for x, name in ((a, names[0]), (b, names[1])):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a tensor; got {type(x).__name__}")
    if not a.is_floating_point():
        raise ValueError(f"{names[0]} must be a floating-point tensor; got {a.dtype}")
    if a.shape != b.shape:
        raise ValueError(
            f"{names[1]} must have the shape of {names[0]} {tuple(a.shape)}; "
            f"got {names[1]} of shape {tuple(b.shape)}"
        )


def _check_margin_labels(scores: Tensor, y: Tensor) -> Tensor:
    _check_pair(scores, y, ("scores", "y"))
    y = y.to(scores.dtype)
    if not torch.all((y == 1) | (y == -1)):
        bad = y[(y != 1) & (y != -1)][0].item()
        raise ValueError(f"y must contain only -1 and +1; got the value {bad!r}")
    return y


def _check_class_labels(scores: Tensor, labels: Tensor) -> None:
    if not isinstance(scores, Tensor) or scores.ndim != 2 or scores.shape[1] < 2:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores)
        raise ValueError(
            f"scores must be a tensor of shape (n_samples, n_classes >= 2); got {shape}"
        )
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor; got {scores.dtype}")
    if not isinstance(labels, Tensor) or labels.shape != scores.shape[:1]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels)
        raise ValueError(
            f"labels must be a tensor of shape ({scores.shape[0]},); got {shape}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got {labels.dtype}")
    if labels.numel() and not (0 <= labels.min() and labels.max() < scores.shape[1]):
        raise ValueError(
            f"labels must be class indices in [0, {scores.shape[1] - 1}]; got values "
            f"in [{labels.min().item()}, {labels.max().item()}]"
        )


# --- definitions: value and gradient, batched over leading dims -------------------
# Binary and regression losses: f and y of shape lead + (n,). Multi-class: f of
# shape lead + (n, C), y integer labels broadcasting against lead + (n,).


def logistic_value(f: Tensor, y: Tensor) -> Tensor:
    return F.softplus(-y * f)


def logistic_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    neg_y = -y
    m = f * neg_y
    return F.softplus(m), torch.sigmoid(m) * neg_y


def hinge_value(f: Tensor, y: Tensor) -> Tensor:
    return torch.relu(1 - y * f)


def hinge_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    m = 1.0 - y * f
    return m.clamp_min(0.0), -y * (m > 0).to(f.dtype)


def square_value(f: Tensor, y: Tensor) -> Tensor:
    return (y - f) ** 2


def square_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    r = y - f
    return r * r, -2.0 * r


def absolute_value(f: Tensor, y: Tensor) -> Tensor:
    return (y - f).abs()


def absolute_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    r = y - f
    return r.abs(), -torch.sign(r)


def _label_index(f: Tensor, y: Tensor) -> Tensor:
    """The labels as an index into the last axis of ``f``: ``lead + (n, 1)``."""
    return y.long().expand(f.shape[:-1]).unsqueeze(-1)


def cross_entropy_value(f: Tensor, y: Tensor) -> Tensor:
    return torch.logsumexp(f, dim=-1) - f.gather(-1, _label_index(f, y))[..., 0]


def cross_entropy_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    idx = _label_index(f, y)
    logz = torch.logsumexp(f, dim=-1, keepdim=True)
    loss = (logz - f.gather(-1, idx))[..., 0]
    p = torch.exp(f - logz)
    return loss, p.scatter_(-1, idx, p.gather(-1, idx) - 1)


def _margin(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``1 + max_{j != y} f_j - f_y``, the index of that ``j``, and of ``y``."""
    idx = _label_index(f, y)
    f_other, j = f.scatter(-1, idx, float("-inf")).max(-1, keepdim=True)
    return (1 + f_other - f.gather(-1, idx))[..., 0], j, idx


def multiclass_hinge_value(f: Tensor, y: Tensor) -> Tensor:
    return torch.relu(_margin(f, y)[0])


def multiclass_hinge_loss_gradient(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    m, j, idx = _margin(f, y)
    active = (m > 0).to(f.dtype).unsqueeze(-1)
    grad = torch.zeros_like(f).scatter_(-1, j, active).scatter_(-1, idx, -active)
    return m.clamp_min(0.0), grad


# --- public functions: validation, then the definition ----------------------------


def logistic(scores: Tensor, y: Tensor) -> Tensor:
    r"""Logistic loss ``log(1 + exp(-y f))``, computed as ``softplus(-y f)``.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        Real scores ``f``; the positive class is ``y = +1``.
    y : Tensor of shape (n,)
        Labels in {-1, +1}.

    Returns
    -------
    Tensor of shape (n,)
        One loss per sample; finite for any finite score.

    Examples
    --------
    >>> import torch
    >>> logistic(torch.tensor([0.0, 100.0]), torch.tensor([1, -1]))
    tensor([  0.6931, 100.0000])
    """
    y = _check_margin_labels(scores, y)
    return logistic_value(scores, y)


def hinge(scores: Tensor, y: Tensor) -> Tensor:
    r"""Hinge loss ``max(0, 1 - y f)``.

    Parameters
    ----------
    scores : Tensor of shape (n,)
    y : Tensor of shape (n,)
        Labels in {-1, +1}.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> hinge(torch.tensor([0.5, 2.0]), torch.tensor([1, 1]))
    tensor([0.5000, 0.0000])
    """
    y = _check_margin_labels(scores, y)
    return hinge_value(scores, y)


def square(pred: Tensor, target: Tensor) -> Tensor:
    r"""Square loss ``(y - f)^2``.

    Parameters
    ----------
    pred : Tensor of shape (n,)
    target : Tensor of shape (n,)

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> square(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor([1., 4.])
    """
    _check_pair(pred, target, ("pred", "target"))
    return square_value(pred, target.to(pred.dtype))


def absolute(pred: Tensor, target: Tensor) -> Tensor:
    r"""Absolute loss ``|y - f|``.

    Parameters
    ----------
    pred : Tensor of shape (n,)
    target : Tensor of shape (n,)

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> absolute(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor([1., 2.])
    """
    _check_pair(pred, target, ("pred", "target"))
    return absolute_value(pred, target.to(pred.dtype))


def cross_entropy(scores: Tensor, labels: Tensor) -> Tensor:
    r"""Cross-entropy of the softmax, ``logsumexp(s) - s_y``.

    Parameters
    ----------
    scores : Tensor of shape (n, C)
        Class scores (logits), ``C >= 2``.
    labels : Tensor of shape (n,)
        Integer class indices in ``[0, C)``.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> cross_entropy(torch.zeros(1, 4), torch.tensor([2]))
    tensor([1.3863])
    """
    _check_class_labels(scores, labels)
    return cross_entropy_value(scores, labels)


def multiclass_hinge(scores: Tensor, labels: Tensor) -> Tensor:
    r"""Multi-class hinge loss of Crammer and Singer.

    .. math:: \ell(s, y) = \max\bigl(0,\; 1 + \max_{j \ne y} s_j - s_y\bigr)

    Parameters
    ----------
    scores : Tensor of shape (n, C)
        Class scores, ``C >= 2``.
    labels : Tensor of shape (n,)
        Integer class indices in ``[0, C)``.

    Returns
    -------
    Tensor of shape (n,)

    References
    ----------
    Crammer, Singer. "On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines". JMLR 2001.

    Examples
    --------
    >>> import torch
    >>> multiclass_hinge(torch.tensor([[2.0, 1.5, 0.0]]), torch.tensor([0]))
    tensor([0.5000])
    """
    _check_class_labels(scores, labels)
    return multiclass_hinge_value(scores, labels)


#: The built-in individual losses, registered by :mod:`sktopk.losses`.
BUILTINS = (
    IndividualLoss(
        "logistic", "binary", logistic_value, logistic_loss_gradient, logistic,
        probabilistic=True, multiclass_form="cross_entropy",
    ),
    IndividualLoss(
        "hinge", "binary", hinge_value, hinge_loss_gradient, hinge,
        multiclass_form="multiclass_hinge",
    ),
    IndividualLoss("square", "regression", square_value, square_loss_gradient, square),
    IndividualLoss(
        "absolute", "regression", absolute_value, absolute_loss_gradient, absolute
    ),
    IndividualLoss(
        "cross_entropy", "multiclass", cross_entropy_value,
        cross_entropy_loss_gradient, cross_entropy, probabilistic=True,
    ),
    IndividualLoss(
        "multiclass_hinge", "multiclass", multiclass_hinge_value,
        multiclass_hinge_loss_gradient, multiclass_hinge,
    ),
)  # fmt: skip
