"""Top-k multi-class SVM losses over classes (Berrada, Zisserman, Kumar, 2018).

The public :func:`smooth_topk_svm` and :func:`topk_svm`, and the choice of the
route that computes the smooth loss. Every route is exact (no switch to the
hard loss, no truncation), and the route is chosen from the shapes and
hyper-parameters only, never from values (:func:`_route`); under
``torch.compile``, ``torch.export`` and ``jit.trace`` from ``k`` only, so
that it depends on neither the batch size nor the number of classes:

* ``k = 1``: ``tau softplus(margin / tau + logsumexp_{j != y} (s_j - s_y) /
  tau)``, which is ``tau`` times the cross-entropy of ``(s - margin onehot_y) /
  tau`` (plain autograd, :mod:`._svm_small`).
* few k-subsets (``C(C, k) <= _SUBSET_MAX``): the definition itself, one
  matrix product with a 0/1 subset matrix and two log-sum-exps; in plain
  eager mode with its gradient in closed form, made in the forward pass
  (:mod:`._svm_small`).
* ``k <= _FAST_MAX_K``: the wrong classes split at the k-th largest wrong
  score, elementary symmetric polynomials from power sums, and an analytic
  backward (a custom autograd Function, :mod:`._svm_fast`).
* larger k: exact product trees and, where ``C(C - 1, k)`` overflows float64,
  log-space ones (:mod:`._svm_large`).

Before any of them, a plain eager call on float32 scores in host memory with
``k <= 10`` goes through the compiled kernel where numba is installed
(:mod:`._svm_compiled`, :mod:`._svm_kernel`): the fast route's maths in one
pass per row, its values checked in the same pass.

Elsewhere: validation (:mod:`._svm_checks`), dtypes, autocast and reductions
(:mod:`._svm_common`), the top k of the wrong classes (:mod:`._svm_wrong_topk`)
and the registry's batched value and gradient (:mod:`._svm_registry`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._esp import constants
from ._svm_checks import _check_data, _check_hyper
from ._svm_common import (
    _compute_dtype,
    _no_autocast,
    _reduce,
    _result_dtype,
    _traced,
    _vector,
)
from ._svm_compiled import compiled_smooth_topk_svm
from ._svm_fast import _apply_fast
from ._svm_large import _smooth_large
from ._svm_small import CLOSED_ROUTES, closed_form_route
from ._svm_wrong_topk import _wrong_topk

__all__ = ["smooth_topk_svm", "topk_svm"]

# Newton's identities and the polynomial gradient lose accuracy as k grows;
# up to k = 10 float32 gradients stay within ~1e-5 of float64 (tests).
_FAST_MAX_K = 10
# Routes are chosen by size. In eager mode by the work of the whole batch: few
# large operations cost less than many small ones only while tensors are small.
# Under compile, export or tracing by k only, so that the route depends on
# neither the batch size nor the number of classes (one graph for all).
# Enumerate the k-subsets while a row has at most this many, and in eager mode
# while the batch has at most _SUBSET_TOTAL subsets (measured on CPU with the
# closed-form gradient: 0.4-0.8x the fast route's time up to 16k subsets a
# batch, 1.1-1.3x at 30k-70k, 3.5x at 250k).
_SUBSET_MAX = 256
_SUBSET_TOTAL = 16384
# k = 1 is a log-sum-exp (plain autograd) up to this many scores in eager mode,
# the fast route's passes beyond.
_K1_TOTAL = 1 << 20


def smooth_topk_svm(
    scores: Tensor,
    labels: Tensor,
    k: int = 5,
    margin: float = 1.0,
    tau: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Smooth top-k SVM loss of Berrada, Zisserman and Kumar (2018).

    For scores ``s`` over ``C`` classes and true class ``y``, with ``A`` ranging
    over the k-subsets of classes and ``Delta(A, y) = margin`` if ``y`` is not in
    ``A`` (else 0)::

        L(s, y) = tau log sum_A exp((Delta(A, y) + sum_{j in A} s_j / k) / tau)
                - tau log sum_{A containing y} exp(sum_{j in A} s_j / (k tau))
                = tau softplus(margin / tau - z_y + log e_k(z') - log e_{k-1}(z'))

    where ``z = s / (k tau)``, ``z'`` is ``z`` without the true class and
    ``e_j`` is the elementary symmetric polynomial of degree ``j`` of
    ``exp(z')``. ``L >= 0``; ``k = 1, margin = 0, tau = 1`` gives the
    cross-entropy; as ``tau -> 0`` it tends to :func:`topk_svm`. It is exact for
    every ``tau > 0`` (no switch to the hard loss), invariant to adding a
    constant to all scores, and costs ``O(k C)`` per sample. The gradient is
    ``-sigma / k`` for the true class and ``(sigma / k)(p_k(j) - p_{k-1}(j))``
    for the others (``sigma`` the sigmoid of the softplus argument, ``p_m(j)``
    the inclusion probability of class ``j`` in a weighted m-subset); it sums to
    zero per sample and is bounded by ``1 / k``.

    Parameters
    ----------
    scores : Tensor of shape (n_samples, n_classes)
        Class scores, finite, floating point, on any device.
    labels : Tensor of shape (n_samples,)
        True classes, integers in ``[0, n_classes - 1]``; moved to the device of
        ``scores``.
    k : int, default=5
        Size of the predicted set, in ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    tau : float, default=1.0
        Temperature, ``> 0``.
    reduction : {"none", "mean", "sum"}, default="mean"
        ``"none"`` returns the per-sample losses.

    Returns
    -------
    Tensor
        Scalar, or of shape (n_samples,) with ``reduction="none"``; dtype of
        ``scores``, except under ``torch.autocast``, where half-precision
        scores give float32 (as ``torch.nn.functional.cross_entropy`` does).

    Raises
    ------
    ValueError
        For invalid arguments, naming the argument and its allowed range.

    See Also
    --------
    topk_svm : The non-smooth limit ``tau -> 0``.

    Notes
    -----
    Computation (all routes exact): ``k = 1`` is a log-sum-exp of the
    differences to the true score; in eager mode, when there are at most 256
    k-subsets and few in the whole batch, the definition is evaluated over
    them; otherwise, for ``k <= 10``, the wrong
    classes are split at the k-th largest wrong score ``c``, which maps every
    value into ``[0, 1]``, the elementary symmetric polynomials come from power
    sums and the backward pass is analytic (float32 gradients within about
    1e-6 of float64); larger ``k`` uses exact product trees in float64, and
    log-space products once ``C(n_classes - 1, k)`` exceeds float64.
    Half-precision scores are computed in float32, and float64 is used where
    ``1 / (k tau)`` would overflow float32.

    Higher derivatives (a gradient penalty, ``torch.autograd.functional.hessian``)
    are exact on every route for ``k <= 10``; for larger ``k``, the product-tree
    route raises a clear error on a second backward pass. The loss works with
    the ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``, ``hessian``
    for ``k <= 10``), meta and fake tensors, ``torch.compile(fullgraph=True)``
    and ``torch.export`` (a dynamic batch dimension included, and with
    ``torch.compile`` a dynamic number of classes too). Traced, the route
    depends on ``k`` only, so one graph serves every batch size: torch
    specialises on the first batch size and compiles one
    dynamic graph at the second, then never again
    (``torch._dynamo.mark_dynamic(scores, 0)`` before the first call compiles
    the dynamic graph at once). ``torch.jit.trace`` follows the batch size too.

    Speed (CPU, forward + backward, one thread): with numba installed (the
    ``fast`` extra), float32 scores and integer labels, both tensors in host
    memory, with ``k <= 10`` go through one compiled pass that computes the
    losses and their gradient in float64, validates the values on the way,
    and hands the gradient over in the backward pass: within 2 times
    ``torch.nn.functional.cross_entropy`` for ``k = 1`` and 5 at batch 16
    and 256 from 10 to 10,000 classes, except for ``k = 5`` at batch 256
    with 100 classes, where a fixed cost per sample dominates: 1.8 to 2.1
    times there from run to run (2.0 to 2.2 on another machine of the same
    kind; ``benchmarks/bench_topk_svm.py``, see :ref:`performance`). Without numba
    the loss takes tens of small tensor operations: 1.4 to 11 times the
    cross-entropy for ``k = 5`` and 0.8 to 3.8 times for ``k = 1``, most at
    small batches and few classes. A backward pass that builds a graph
    (``create_graph=True``) differentiates the tensor routes, so higher
    derivatives are the same either way.

    Validation: shapes, dtypes and hyper-parameters are always checked; the
    values (finite scores, labels in range) only in eager mode on tensors in
    host memory (see ``sktopk.losses.set_value_checks``), so that the training
    path never waits for an accelerator.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.5]])
    >>> labels = torch.tensor([0, 2])
    >>> smooth_topk_svm(scores, labels, k=2, tau=0.1, reduction="none")
    tensor([0.0693, 0.7579])
    >>> topk_svm(scores, labels, k=2, reduction="none")  # the tau -> 0 limit
    tensor([0.0000, 0.7500])
    >>> smooth_topk_svm(scores, labels, k=1, margin=0.0)  # cross-entropy
    tensor(1.3385)
    >>> torch.nn.functional.cross_entropy(scores, labels)
    tensor(1.3385)
    """
    _check_hyper(k, margin, tau, reduction, scores)
    compiled = compiled_smooth_topk_svm(scores, labels, k, margin, tau, reduction)
    if compiled is not None:
        return compiled
    return smooth_topk_svm_by_routes(scores, labels, k, margin, tau, reduction)


def smooth_topk_svm_by_routes(
    scores: Tensor, labels, k: int, margin: float, tau: float, reduction: str
) -> Tensor:
    """:func:`smooth_topk_svm` by the tensor routes (hyper-parameters checked)."""
    labels = _check_data(scores, labels, k)
    margin, tau = float(margin), float(tau)
    out_dtype, device = _result_dtype(scores), scores.device.type
    with _no_autocast(device):
        work = scores.to(_compute_dtype(scores.dtype, k * tau))
        if type(work.shape[0]) is int and work.shape[0] == 0:  # eager, empty
            loss = work.sum(1) * 0.0  # as F.cross_entropy: [], 0 or NaN
        else:
            loss = _smooth_per_sample(work, labels, k, margin, tau)
        return _reduce(loss.to(out_dtype), reduction)


def topk_svm(
    scores: Tensor,
    labels: Tensor,
    k: int = 5,
    margin: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """Hard top-k SVM loss, the ``tau -> 0`` limit of :func:`smooth_topk_svm`.

    ``l(s, y) = max(0, margin + (s'_[k] - s_y) / k)``, where ``s'_[k]`` is the
    k-th largest score among the wrong classes (note the ``1 / k`` on the score
    difference and none on ``margin``). Zero once the true score beats the k-th
    best wrong score by ``k margin``. Its gradient is sparse: ``-1 / k`` on the
    true class and ``+1 / k`` on the k-th wrong class where the loss is positive.

    Parameters
    ----------
    scores : Tensor of shape (n_samples, n_classes)
        Class scores, finite, floating point, on any device.
    labels : Tensor of shape (n_samples,)
        True classes, integers in ``[0, n_classes - 1]``.
    k : int, default=5
        In ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    reduction : {"none", "mean", "sum"}, default="mean"

    Returns
    -------
    Tensor
        Scalar, or of shape (n_samples,) with ``reduction="none"``; float32
        under ``torch.autocast`` for half-precision scores.

    See Also
    --------
    smooth_topk_svm : The smooth version.

    Notes
    -----
    Plain autograd operations (every derivative, ``torch.func``, compile and
    export work); validation as in :func:`smooth_topk_svm`. From 4096 classes
    the k-th wrong score is found among the top groups of scores, which is
    exact and about twice as fast as ``torch.topk`` on CPU.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018. Lapin, Hein, Schiele. "Top-k Multiclass SVM".
    NeurIPS 2015.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.5]])
    >>> topk_svm(scores, torch.tensor([0, 2]), k=2, reduction="none")
    tensor([0.0000, 0.7500])
    """
    _check_hyper(k, margin, 1.0, reduction, scores)
    labels = _check_data(scores, labels, k)
    out_dtype = _result_dtype(scores)
    with _no_autocast(scores.device.type):
        work = scores.to(_compute_dtype(scores.dtype, 1.0))
        y = labels[:, None]
        kth = _wrong_topk(work, y, k)[1][:, k - 1 :]
        pair = work.gather(1, torch.cat([kth, y], 1))
        weights = constants(_vector, (1.0 / k, -1.0 / k, margin), work.dtype, like=work)
        slack = torch.addmv(weights[2].expand(pair.shape[0]), pair, weights[:2])
        loss = torch.relu(slack)
        return _reduce(loss.to(out_dtype), reduction)


# --- routes of the smooth loss ------------------------------------------------------


def _smooth_per_sample(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample smooth loss by the route the shapes select."""
    route = _route(*scores.shape, k)
    if route in CLOSED_ROUTES:
        return closed_form_route(CLOSED_ROUTES[route], scores, labels, k, margin, tau)
    if route == "fast":
        return _apply_fast(scores, labels, k, margin, tau)
    return _smooth_large(scores, labels, k, margin, tau)


def _route(n: int, n_classes: int, k: int) -> str:
    """Which route computes the smooth loss: from the shapes only. Compiled,
    exported or traced, by ``k`` alone: the class count may be symbolic there
    (``dynamic=True``), which the subsets route cannot build its constants
    from, so it is not taken."""
    traced = _traced()
    if k == 1 and (traced or n * n_classes <= _K1_TOTAL):
        return "k1"
    if not traced:
        subsets = math.comb(n_classes, k)
        if subsets <= _SUBSET_MAX and n * subsets <= _SUBSET_TOTAL:
            return "subsets"
    if k <= _FAST_MAX_K:
        return "fast"
    return "large"
