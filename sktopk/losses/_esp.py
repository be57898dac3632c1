"""Elementary symmetric polynomials (ESP) for the smooth top-k SVM loss.

The degree-j elementary symmetric polynomial of ``x_1..x_m`` is
``e_j(x) = sum over j-subsets S of prod_{i in S} x_i``, the coefficient of
``t^j`` in ``prod_i (1 + x_i t)``. The smooth top-k SVM loss (Berrada et al.,
2018) needs ``log e_{k-1}`` and ``log e_k`` of ``exp(z)`` for each row of a
score matrix. Two routes live here:

- :func:`log_esp`: exact, general, log-space divide and conquer (pairwise
  products of truncated polynomials over ``log2 m`` levels, batched over rows).
  Differentiable by autograd; the reference, and the route of last resort.
- :func:`esp_unit`: the same divide and conquer in linear space for values in
  ``[0, 1]`` (no cancellation, no underflow that matters), with a backward pass
  through the stored product tree; the route for large k.
- The fast route of the smooth top-k SVM (``_svm_fast``): from the
  :func:`power_sums` of the two parts of a split set, :func:`split_esp_lags`
  gives both ESPs (Newton's identities in closed form) and every lagged
  product the loss and its gradient need, in a few batched operations. Only
  accurate for values in ``[0, 1]`` and small ``k``, the setting that
  ``_svm_fast`` arranges by normalising at the k-th largest score.
- :func:`constants`: constant tensors cached per device (never for fake
  tensors or code being compiled).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from ._checks import _PLAIN

__all__ = [
    "constants",
    "esp_unit",
    "log_esp",
    "power_sums",
    "split_esp_lags",
]


def log_esp(z: Tensor, k: int) -> Tensor:
    """Log elementary symmetric polynomials of ``exp(z)`` along the last axis.

    Computes ``log e_j(exp(z_1), ..., exp(z_m))`` for ``j = 0..k``, where
    ``e_j = sum over j-subsets S of exp(sum_{i in S} z_i)``, by divide and
    conquer in log-space: the polynomial ``prod_i (1 + exp(z_i) t)`` truncated
    at degree ``k`` is built from pairwise products of halves, ``log2 m`` levels
    of batched tensor operations and ``O(k m)`` work per row. Entries are taken
    relative to the row maximum, so the result is exact up to rounding for any
    finite input, and differentiable by autograd (``dlog e_j / dz_i`` is the
    probability that ``i`` belongs to a random j-subset drawn with weight
    ``exp(sum of its z)``).

    Parameters
    ----------
    z : Tensor of shape (..., m)
        Log-values. ``-inf`` entries stand for zeros and are allowed.
    k : int
        Highest degree, ``k >= 0``.

    Returns
    -------
    Tensor of shape (..., k + 1)
        ``log e_0 = 0``, ..., ``log e_k``; ``-inf`` where ``e_j = 0`` (fewer than
        ``j`` non-zero entries).

    Notes
    -----
    Entries more than ``finfo.max / (8 (k + 1))`` below their row maximum
    (about ``1e36`` in float32) count as zeros. Internally they are held at that
    finite floor, which keeps the gradients free of ``inf - inf``.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018, section 4 (divide and conquer in log-space).

    Examples
    --------
    >>> import torch
    >>> z = torch.log(torch.tensor([[1.0, 2.0, 3.0]]))
    >>> log_esp(z, 3).exp().round()  # e_0..e_3 of (1, 2, 3)
    tensor([[ 1.,  6., 11.,  6.]])
    """
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    if z.shape[-1] == 0:
        out = torch.full(
            (*z.shape[:-1], k + 1), -math.inf, dtype=z.dtype, device=z.device
        )
        out[..., 0] = 0.0
        return out
    floor = torch.finfo(z.dtype).min / 4  # stands for log 0; 2 * floor is finite
    zmax = z.detach().amax(-1, keepdim=True)
    zmax = torch.where(torch.isfinite(zmax), zmax, torch.zeros_like(zmax))
    # A degree-j coefficient adds up j leaves, so it stays above floor / 2.
    leaf_floor = floor / (2 * (k + 1))
    leaves = (z - zmax).clamp_min(leaf_floor)
    poly = torch.stack([torch.zeros_like(leaves), leaves], -1)[..., : k + 1]
    while poly.shape[-2] > 1:
        if poly.shape[-2] % 2:
            one = torch.full_like(poly[..., :1, :], floor)
            one[..., 0] = 0.0
            poly = torch.cat([poly, one], -2)
        poly = _log_polymul(poly[..., 0::2, :], poly[..., 1::2, :], k, floor)
    out = torch.nn.functional.pad(
        poly[..., 0, :], (0, k + 1 - poly.shape[-1]), value=floor
    )
    degree = torch.arange(k + 1, dtype=z.dtype, device=z.device)
    # A coefficient at or below the leaf floor is dominated by a zero entry.
    return torch.where(out > leaf_floor, out + degree * zmax, -math.inf)


def _log_polymul(p: Tensor, q: Tensor, k: int, floor: float) -> Tensor:
    """Log-space product of polynomials ``p`` and ``q`` truncated at degree k.

    ``out_s = logsumexp_i (p_i + q_{s-i})``. The windows of the padded ``q``
    form a Hankel view, so one broadcast add and one logsumexp do all pairs.
    """
    d = p.shape[-1] - 1
    deg = min(2 * d, k)
    q_pad = torch.nn.functional.pad(q, (d, deg - d), value=floor)
    windows = q_pad.unfold(-1, deg + 1, 1)  # [..., i', s] = q[s - d + i']
    terms = p.flip(-1)[..., :, None] + windows  # p[d - i'] + q[s - (d - i')]
    return torch.logsumexp(terms, -2).clamp_min(floor)


def esp_unit(x: Tensor, k: int) -> Tensor:
    """Elementary symmetric polynomials ``e_0..e_k`` of values in ``[0, 1]``.

    Divide and conquer in linear space: the coefficients of
    ``prod_i (1 + x_i t)`` truncated at degree ``k``, from pairwise products of
    halves over ``log2 m`` levels, ``O(k m)`` work. With ``0 <= x_i <= 1`` every
    partial product is a sum of non-negative terms bounded by ``C(m, j)``, so
    each coefficient is accurate to a few ulps (float64 holds ``C(m, j)`` up
    to about ``1e308``). The backward pass runs through the stored product
    tree, so gradients are as accurate (no deflation, no cancellation). A
    second backward pass through it raises an error: use :func:`log_esp`,
    differentiable to every order, for that.

    Parameters
    ----------
    x : Tensor of shape (..., m)
        Values in ``[0, 1]``.
    k : int
        Highest degree, ``k >= 1``.

    Returns
    -------
    Tensor of shape (..., k + 1)

    Examples
    --------
    >>> x = torch.tensor([[1.0, 0.5, 0.25]], dtype=torch.float64)
    >>> esp_unit(x, 3)
    tensor([[1.0000, 1.7500, 0.8750, 0.1250]], dtype=torch.float64)
    """
    if x.shape[-1] == 0:
        return torch.nn.functional.pad(x.new_ones(*x.shape[:-1], 1), (0, k))
    return _UnitESP.apply(x, k)


class _UnitESP(torch.autograd.Function):
    """Product tree of ``(1 + x_i t)``; coefficients first, so slices are blocks."""

    @staticmethod
    def forward(ctx, x, k):
        poly = torch.stack([torch.ones_like(x), x])  # (degree + 1, ..., m)
        tree, sizes = [], []
        while poly.shape[-1] > 1:
            sizes.append(poly.shape[-1])
            if poly.shape[-1] % 2:
                one = torch.zeros_like(poly[..., :1])
                one[0] = 1.0
                poly = torch.cat([poly, one], -1)
            half = poly.shape[-1] // 2
            tree += [poly[..., :half], poly[..., half:]]
            poly = _polymul(tree[-2], tree[-1], k)
        ctx.save_for_backward(*tree)
        ctx.sizes = sizes
        out = poly[..., 0].movedim(0, -1)
        return torch.nn.functional.pad(out, (0, k + 1 - out.shape[-1]))

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "esp_unit (the product-tree route of smooth_topk_svm, k > 10) has "
                "first derivatives only: a second backward pass (create_graph=True, "
                "a gradient penalty, a Hessian) is not supported. Use k <= 10, or "
                "torch.func transforms, which take an exact route with every "
                "derivative."
            )
        tree = ctx.saved_tensors
        k = grad.shape[-1] - 1
        g = grad.movedim(-1, 0)[..., None]
        for level in range(len(ctx.sizes) - 1, -1, -1):
            p, q = tree[2 * level], tree[2 * level + 1]
            g = g[: min(2 * (p.shape[0] - 1), k) + 1]
            g = torch.cat(_polymul_backward(g, p, q), -1)
            # narrow, not [..., :size]: a full slice is an alias, which has no
            # batching rule for a gradient batched by is_grads_batched.
            g = g.narrow(-1, 0, ctx.sizes[level])
        return g[1], None


def _polymul(p: Tensor, q: Tensor, k: int) -> Tensor:
    """Coefficients (first axis) of ``p * q`` truncated at degree ``k``."""
    d = p.shape[0] - 1
    deg = min(2 * d, k)
    out = p.new_zeros(deg + 1, *p.shape[1:])
    for i in range(d + 1):
        n = min(d, deg - i) + 1
        out[i : i + n].addcmul_(p[i], q[:n])
    return out


def _polymul_backward(g: Tensor, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`_polymul` with respect to ``p`` and ``q``.

    ``grad_p[j] = sum_i q_i g_{i+j}`` and ``grad_q[j] = sum_i p_i g_{i+j}``,
    accumulated in place into tensors made like ``g``: a gradient batched by
    ``is_grads_batched`` or ``jacobian(vectorize=True)`` makes them batched
    too, so that every operation has a batching rule (no ``out=``).
    """
    d, deg = p.shape[0] - 1, g.shape[0] - 1
    grad_p, grad_q = torch.zeros_like(g[: d + 1]), torch.zeros_like(g[: d + 1])
    for i in range(d + 1):
        n = min(d, deg - i) + 1
        grad_p[:n].addcmul_(q[i], g[i : i + n])
        grad_q[:n].addcmul_(p[i], g[i : i + n])
    return grad_p, grad_q


def power_sums(x: Tensor, k: int) -> Tensor:
    """Power sums ``p_j = sum_i x_i^j`` for ``j = 1..k`` along the last axis.

    Parameters
    ----------
    x : Tensor of shape (..., m)
    k : int
        Highest power, ``k >= 1``.

    Returns
    -------
    Tensor of shape (..., k)

    Examples
    --------
    >>> power_sums(torch.tensor([[1.0, 2.0]]), 3)
    tensor([[3., 5., 9.]])
    """
    sums = [x.sum(-1)]
    if k > 1:
        xp = x * x
        sums.append(xp.sum(-1))
        for _ in range(k - 2):
            sums.append(xp.mul_(x).sum(-1))
    return torch.stack(sums, -1)


# --- the split ESP of the smooth top-k SVM in three batched operations ------------


@functools.lru_cache(maxsize=256)
def _cached(builder, *key):
    return builder(*key)


def constants(builder, *key, like: Tensor):
    """``builder(*key, like.device)``, cached for real tensors.

    Fake and meta tensors, tensor subclasses and code being compiled get fresh
    constants: a cached constant made under a fake-tensor mode would be fake
    for every later caller.
    """
    if type(like) in _PLAIN and not torch.compiler.is_compiling():
        return _cached(builder, *key, like.device)
    return builder(*key, like.device)


def _split_constants(k: int, device: torch.device) -> tuple[Tensor, ...]:
    """Float64 constants of :func:`split_esp_lags` for degree ``k``.

    ``exponents`` holds, for each monomial ``p_lambda`` of the power sums of
    degree up to ``k`` (one per partition ``lambda``, a column), the
    multiplicity of each ``p_i``; ``coef`` maps the monomials to
    ``e_0..e_k`` (Newton's identities solved in closed form:
    ``e_j = sum_{lambda |- j} (-1)^(j - len(lambda)) p_lambda / z_lambda``);
    ``lags`` maps the products ``a_i b_j`` to the columns of
    :func:`split_esp_lags`.
    """
    size = k + 1
    exponents, coef = [], []
    for degree in range(size):
        for part in _partitions(degree, degree):
            exponents.append([float(part.count(i)) for i in range(1, size)])
            z = math.prod(part)
            for i in set(part):
                z *= math.factorial(part.count(i))
            row = [0.0] * size
            row[degree] = (-1.0) ** (degree - len(part)) / z
            coef.append(row)
    lags = [[[0.0] * (2 + 4 * k) for _ in range(size)] for _ in range(size)]
    for j in range(size):
        lags[j][j][0] = 1.0  # A = sum_j a_j b_j
        if j < k:
            lags[j + 1][j][1] = 1.0  # B = sum_j a_{j+1} b_j
    for d in range(k):  # coefficient of (-x)^d, (-u)^d
        sign = float((-1) ** d)
        for i in range(size):
            if i + d + 1 <= k:
                lags[i + d + 1][i][2 + d] += sign  # g_{d+1}
                lags[i][i + d + 1][2 + k + d] += sign  # h_{d+1}
            if i + d + 2 <= k:
                lags[i + d + 2][i][2 + 2 * k + d] -= sign  # g_{d+2}
            if i + d <= k - 1:
                lags[i][i + d][2 + 3 * k + d] -= sign  # h_d without b_k
    f64 = dict(dtype=torch.float64, device=device)
    return (
        torch.tensor(exponents, **f64).T.contiguous(),
        torch.tensor(coef, **f64),
        torch.tensor(lags, **f64).reshape(size * size, -1),
    )


def _partitions(n: int, largest: int):
    """Partitions of ``n`` into parts ``<= largest``, as non-increasing tuples."""
    if n == 0:
        yield ()
        return
    for part in range(min(n, largest), 0, -1):
        for rest in _partitions(n - part, part):
            yield (part, *rest)


def split_esp_lags(p: Tensor) -> Tensor:
    r"""ESP products of a set split in two, from the power sums of each part.

    For the two parts ``u`` and ``x`` of a set (values in ``[0, 1]``), with
    power sums ``p[:, 0]`` of ``u`` and ``p[:, 1]`` of ``x``, Newton's
    identities in closed form (a sum over the partitions of each degree) give
    ``a = e(u)`` and ``b = e(x)`` up to degree ``k``, and one matrix product
    gives, per row,

    * ``A = sum_j a_j b_j`` and ``B = sum_j a_{j+1} b_j`` (columns 0 and 1);
    * ``(-1)^l g_{l+1}`` and ``(-1)^l h_{l+1}`` for ``l < k`` (columns
      ``2 .. 2 + 2k``), with ``g_d = sum_i a_{i+d} b_i``, ``h_d = sum_i a_i
      b_{i+d}``: the coefficients of ``dA / dx`` and ``dA / du``;
    * ``-(-1)^l g_{l+2}`` and ``-(-1)^l h'_l`` (columns ``2 + 2k ..``), with
      ``h'`` as ``h`` without the ``b_k`` terms: those of ``dB / dx``,
      ``dB / du``.

    This is what the smooth top-k SVM needs (see ``_svm_fast``): with ``u``
    the top k values inverted and ``x`` the rest, ``A`` and ``B`` are the
    scaled ``e_k`` and ``e_{k-1}`` of the whole set. Every step is a batched
    product or sum (no triangular solve, whose batched CPU version calls
    LAPACK once per row). Accurate for values in ``[0, 1]``, ``k <= 10`` and
    ``p`` in float64.

    Parameters
    ----------
    p : Tensor of shape (n, 2, k), float64

    Returns
    -------
    Tensor of shape (n, 2 + 4 k), float64

    Examples
    --------
    >>> u, x = torch.tensor([1.0, 0.5]), torch.tensor([0.25, 0.0, 1.0])
    >>> p = torch.stack([power_sums(u, 2), power_sums(x, 2)])[None].double()
    >>> split_esp_lags(p)[0, :2]  # A = 1 + 1.5 * 1.25 + 0.5 * 0.25, B = 1.5 + 0.625
    tensor([3.0000, 2.1250], dtype=torch.float64)
    """
    n, _, k = p.shape
    exponents, coef, lags = constants(_split_constants, k, like=p)
    # Monomials as exp(log p @ exponents): two small matrix products instead of
    # a gather (slow on CPU); p > 0 on this route, the clamp guards log(0).
    log_p = p.reshape(-1, k).clamp_min(1e-300).log()
    e = (torch.exp(log_p @ exponents) @ coef).view(n, 2, k + 1)  # a, b
    return (e[:, 0, :, None] * e[:, 1, None, :]).view(n, -1) @ lags
