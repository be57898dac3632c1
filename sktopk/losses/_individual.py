"""Individual losses: one value per sample, to be aggregated over samples.

Binary classification takes real scores ``f`` and labels ``y`` in {-1, +1};
regression a prediction and a target; multi-class a score matrix and integer
labels. All are differentiable by autograd and numerically stable.

Unlike ``torch.nn.functional``'s losses, whose ``reduction`` defaults to
``"mean"``, these return one value per sample (``reduction="none"``): the
aggregates of :mod:`sktopk.losses` reduce them. The public functions take
torch's argument names ``input`` and ``target`` as keywords beside their own,
and the binary and regression ones broadcast ``input`` against ``target`` as
``torch.nn.functional.mse_loss`` does (with its warning when the shapes
differ). Under ``torch.autocast``, half-precision scores are computed and
returned in float32, as torch's autocast does for its losses (and as
:func:`smooth_topk_svm` does). Checks that read values (labels in {-1, +1},
class indices in range) run only in eager mode on host memory (see
:func:`set_value_checks`), so that ``torch.compile``, ``torch.export`` and
``torch.func`` trace them without a graph break or a host read.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import value_checks_apply
from ._registry import IndividualLoss
from ._svm_common import _result_dtype

__all__ = [
    "BUILTINS",
    "logistic",
    "hinge",
    "square",
    "absolute",
    "cross_entropy",
    "multiclass_hinge",
]

_REDUCTIONS = ("none", "mean", "sum")


def _one_of(fn: str, names: tuple[str, str], values: tuple) -> Tensor:
    """The argument given under either name (its own, or torch's)."""
    own, torch_name = values
    if own is None and torch_name is None:
        raise TypeError(
            f"{fn}() missing a required argument: {names[0]!r} (or {names[1]!r})"
        )
    if own is not None and torch_name is not None:
        raise TypeError(f"{fn}() got both {names[0]!r} and {names[1]!r}; pass one")
    return own if torch_name is None else torch_name


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")


def _check_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """Both tensors, ``a`` floating point; broadcast (with torch's warning)."""
    for x, name in ((a, names[0]), (b, names[1])):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a tensor; got {type(x).__name__}")
    if not a.is_floating_point():
        raise ValueError(f"{names[0]} must be a floating-point tensor; got {a.dtype}")
    if torch.jit.is_tracing() or a.shape == b.shape:
        return a, b  # traced sizes are tensors: torch broadcasts, unchecked
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{names[1]} must have the shape of {names[0]} {tuple(a.shape)} or "
            f"broadcast with it; got {names[1]} of shape {tuple(b.shape)}"
        ) from None
    warnings.warn(
        f"Using a target size ({b.size()}) that is different to the input size "
        f"({a.size()}). This will likely lead to incorrect results due to "
        "broadcasting. Please ensure they have the same size.",
        stacklevel=3,
    )
    return torch.broadcast_tensors(a, b)


def _autocast_float32(scores: Tensor) -> Tensor:
    """Half-precision scores as float32 under autocast, where torch's autocast
    runs its losses (cross_entropy, binary_cross_entropy_with_logits,
    soft_margin_loss, mse_loss, l1_loss, the hinge losses) in float32."""
    dtype = _result_dtype(scores)
    return scores if dtype == scores.dtype else scores.to(dtype)


def _regression_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``pred`` and ``target`` in the dtype ``F.mse_loss`` and ``F.l1_loss``
    compute in: a floating-point target promotes with the prediction (a
    float64 target gives float64 losses), any other is cast to the
    prediction's dtype; half-precision predictions first become float32
    under autocast."""
    pred = _autocast_float32(pred)
    if not target.is_floating_point():
        return pred, target.to(pred.dtype)
    dtype = torch.promote_types(pred.dtype, target.dtype)
    return pred.to(dtype), target.to(dtype)


def _check_margin_labels(scores: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    scores, y = _check_pair(scores, y, ("scores", "y"))
    if value_checks_apply(y):
        _check_plus_minus_one(y)
    scores = _autocast_float32(scores)
    return scores, y.to(scores.dtype)


def _check_plus_minus_one(y: Tensor) -> None:
    """Raise unless ``y`` holds only -1 and +1.

    An unsigned tensor cannot hold -1, yet torch's ``y == -1`` is true for a
    uint8 255 (the -1 is wrapped): there only +1 is valid.
    """
    bad = y != 1
    if y.dtype.is_signed:
        bad &= y != -1
    if bool(bad.any()):
        value = y[bad][0].item()
        hint = ""
        if not y.dtype.is_signed and y.dtype != torch.bool:
            dtype = str(y.dtype).removeprefix("torch.")
            hint = (
                f" (y has the unsigned dtype {dtype}, which cannot hold -1: a -1 "
                "computed in it wraps around; use a signed or floating-point dtype)"
            )
        raise ValueError(
            f"y must contain only -1 and +1; got the value {value!r}{hint}"
        )


def _check_class_labels(scores: Tensor, labels: Tensor) -> None:
    for x, name in ((scores, "scores"), (labels, "labels")):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a tensor; got {type(x).__name__}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor; got {scores.dtype}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got {labels.dtype}")
    if torch.jit.is_tracing():  # traced sizes are tensors: no Python bool of them
        return
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            "scores must be a tensor of shape (n_samples, n_classes >= 2); got "
            f"{tuple(scores.shape)}"
        )
    if labels.shape != scores.shape[:1]:
        raise ValueError(
            f"labels must be a tensor of shape ({scores.shape[0]},); got "
            f"{tuple(labels.shape)}"
        )
    if not value_checks_apply(labels) or not labels.numel():
        return
    # as int64: min and max have no CPU kernel for uint16, uint32 and uint64
    low, high = (int(v) for v in torch.aminmax(labels.long()))
    if not (0 <= low and high < scores.shape[1]):
        raise ValueError(
            f"labels must be class indices in [0, {scores.shape[1] - 1}]; got values "
            f"in [{low}, {high}]"
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


def logistic(
    scores: Tensor | None = None,
    y: Tensor | None = None,
    *,
    input: Tensor | None = None,
    target: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Logistic loss ``log(1 + exp(-y f))``, computed as ``softplus(-y f)``.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        Real scores ``f``; the positive class is ``y = +1``. Also accepted as
        ``input=`` (torch's name).
    y : Tensor of shape (n,)
        Labels in {-1, +1}; also accepted as ``target=``. A different shape
        that broadcasts with ``scores`` is broadcast, with torch's warning.
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample (unlike torch's losses, whose default
        is ``"mean"``).

    Returns
    -------
    Tensor of shape (n,)
        One loss per sample (a scalar when reduced); finite for any finite
        score.

    Examples
    --------
    >>> import torch
    >>> logistic(torch.tensor([0.0, 100.0]), torch.tensor([1, -1]))
    tensor([  0.6931, 100.0000])
    >>> logistic(input=torch.tensor([0.0, 1.0]), target=torch.tensor([1, -1]))
    tensor([0.6931, 1.3133])
    """
    scores = _one_of("logistic", ("scores", "input"), (scores, input))
    y = _one_of("logistic", ("y", "target"), (y, target))
    scores, y = _check_margin_labels(scores, y)
    return _reduce(logistic_value(scores, y), reduction)


def hinge(
    scores: Tensor | None = None,
    y: Tensor | None = None,
    *,
    input: Tensor | None = None,
    target: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Hinge loss ``max(0, 1 - y f)``.

    Parameters
    ----------
    scores : Tensor of shape (n,)
        Real scores ``f`` (or ``input=``).
    y : Tensor of shape (n,)
        Labels in {-1, +1} (or ``target=``); broadcast as in :func:`logistic`.
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample (torch's losses default to ``"mean"``).

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> hinge(torch.tensor([0.5, 2.0]), torch.tensor([1, 1]))
    tensor([0.5000, 0.0000])
    """
    scores = _one_of("hinge", ("scores", "input"), (scores, input))
    y = _one_of("hinge", ("y", "target"), (y, target))
    scores, y = _check_margin_labels(scores, y)
    return _reduce(hinge_value(scores, y), reduction)


def square(
    pred: Tensor | None = None,
    target: Tensor | None = None,
    *,
    input: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Square loss ``(y - f)^2`` (``F.mse_loss`` with ``reduction="none"``).

    Parameters
    ----------
    pred : Tensor of shape (n,)
        Predictions ``f`` (or ``input=``).
    target : Tensor of shape (n,)
        Targets ``y``; a different shape that broadcasts with ``pred`` is
        broadcast, with torch's warning. As in torch, a floating-point target
        promotes the dtype (a float64 target gives float64 losses); an
        integer one takes the dtype of ``pred``.
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample (torch's losses default to ``"mean"``).

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> square(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor([1., 4.])
    """
    pred = _one_of("square", ("pred", "input"), (pred, input))
    if target is None:
        raise TypeError("square() missing a required argument: 'target'")
    pred, target = _regression_pair(*_check_pair(pred, target, ("pred", "target")))
    return _reduce(square_value(pred, target), reduction)


def absolute(
    pred: Tensor | None = None,
    target: Tensor | None = None,
    *,
    input: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Absolute loss ``|y - f|`` (``F.l1_loss`` with ``reduction="none"``).

    Parameters
    ----------
    pred : Tensor of shape (n,)
        Predictions ``f`` (or ``input=``).
    target : Tensor of shape (n,)
        Targets ``y``; broadcast and promoted as in :func:`square`.
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample (torch's losses default to ``"mean"``).

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> absolute(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    tensor([1., 2.])
    """
    pred = _one_of("absolute", ("pred", "input"), (pred, input))
    if target is None:
        raise TypeError("absolute() missing a required argument: 'target'")
    pred, target = _regression_pair(*_check_pair(pred, target, ("pred", "target")))
    return _reduce(absolute_value(pred, target), reduction)


def cross_entropy(
    scores: Tensor | None = None,
    labels: Tensor | None = None,
    *,
    input: Tensor | None = None,
    target: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Cross-entropy of the softmax, ``logsumexp(s) - s_y``, per sample.

    ``torch.nn.functional.cross_entropy`` returns the *mean* over samples by
    default; this function returns one loss per sample (``reduction="none"``),
    to be aggregated by :func:`stk` and the others. With ``reduction="mean"``
    it equals torch's.

    Parameters
    ----------
    scores : Tensor of shape (n, C)
        Class scores (logits), ``C >= 2`` (or ``input=``).
    labels : Tensor of shape (n,)
        Integer class indices in ``[0, C)`` (or ``target=``).
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> cross_entropy(torch.zeros(1, 4), torch.tensor([2]))
    tensor([1.3863])
    >>> s, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    >>> mean = cross_entropy(s, y, reduction="mean")
    >>> bool(mean == torch.nn.functional.cross_entropy(s, y))
    True
    """
    scores = _one_of("cross_entropy", ("scores", "input"), (scores, input))
    labels = _one_of("cross_entropy", ("labels", "target"), (labels, target))
    _check_class_labels(scores, labels)
    scores = _autocast_float32(scores)
    return _reduce(cross_entropy_value(scores, labels), reduction)


def multiclass_hinge(
    scores: Tensor | None = None,
    labels: Tensor | None = None,
    *,
    input: Tensor | None = None,
    target: Tensor | None = None,
    reduction: str = "none",
) -> Tensor:
    r"""Multi-class hinge loss of Crammer and Singer.

    .. math:: \ell(s, y) = \max\bigl(0,\; 1 + \max_{j \ne y} s_j - s_y\bigr)

    Parameters
    ----------
    scores : Tensor of shape (n, C)
        Class scores, ``C >= 2`` (or ``input=``).
    labels : Tensor of shape (n,)
        Integer class indices in ``[0, C)`` (or ``target=``).
    reduction : {"none", "mean", "sum"}, default="none"
        ``"none"``: one loss per sample.

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
    scores = _one_of("multiclass_hinge", ("scores", "input"), (scores, input))
    labels = _one_of("multiclass_hinge", ("labels", "target"), (labels, target))
    _check_class_labels(scores, labels)
    scores = _autocast_float32(scores)
    return _reduce(multiclass_hinge_value(scores, labels), reduction)


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
