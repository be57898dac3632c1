"""The smooth top-k SVM loss and its gradient in one compiled pass (numba).

The same maths as the fast route (:mod:`._svm_fast`), row by row: with ``c``
the k-th largest wrong score and ``alpha = 1 / (k tau)``, the top k wrong
classes give ``u_t = exp(alpha (c - s_t))`` and the rest ``x_j = exp(alpha
(s_j - c))``, all in ``[0, 1]``; ``a = e(u)`` (a product recurrence over k
values) and ``b = e(x)`` (Newton's identities from the power sums of ``x``)
give ``A = sum_m a_m b_m`` and ``B = sum_m a_{m+1} b_m``, the scaled ``e_k``
and ``e_{k-1}`` of the wrong classes, and

``L = tau softplus(z)``, ``z = log A - log B + alpha (c - s_y) + margin / tau``.

The gradient is ``-sigma / k`` for the true class, ``(sigma / k) x_j sum_l
w_l e_l(x without j)`` for the rest (a polynomial in ``x_j``, by Horner's
rule) and ``-(sigma / k) u_t (sum_m b_m e_{m-1}(u without t) / A - sum_m b_m
e_m(u without t) / B)`` for the top k (each from a recurrence without ``u_t``:
no cancellation), with ``w_l = a_{l+1} / A - a_{l+2} / B`` and ``sigma`` the
sigmoid of ``z``.

Everything is computed in float64 from float32 scores; each pass over a row
(the exponentials, the power sums, Horner's rule) is a loop that LLVM
vectorises. The exponential is evaluated in the loop itself
(:func:`_exp_into`: a reduction by ``ln 2`` and a degree-10 polynomial,
within about 1e-13 of ``math.exp``), because numba's calls to the C library's
``exp`` do not vectorise. Full blocks of rows of a few hundred classes at
most select their top k together, a row in each lane of a vectorised pass
(:func:`_select_lanes`); the loss and its sigmoid take one exponential and
one logarithm per row (:func:`_softplus`).
"""

from __future__ import annotations

import math

import numpy as np

from ._native import jit

# exp(t) for t <= 0 as 2^-m exp(r), m = round(-t / ln 2), |r| <= ln 2 / 2.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 = _LN2_HI + _LN2_LO
_LN2_LO = 1.90821492927058770002e-10
_EXP_FLOOR = -700.0  # below, exp is held at exp(-700): negligible beside A, B >= 1
_MAX_SIZE = 10  # the largest k
_INVERSE = np.array([0.0] + [1.0 / m for m in range(1, _MAX_SIZE + 1)])  # 1 / m

# Rows of at least _BLOCKS_FROM classes are scanned for the top k by blocks,
# skipping a block whose largest score does not beat the k-th (measured: faster
# from about 300 classes, slower below).
_BLOCK = 16
_BLOCKS_FROM = 512
# Rows of _BOUNDED_FROM to _BOUNDED_PER_K * k classes select the top k among
# the scores that reach a bound of the k-th, found without branches
# (measured, the selection alone: 1.2x faster at 100 classes and 1.8x at 1000
# for k = 5; slower on shorter rows, and on longer ones, where the scan's
# blocks skip more).
_BOUNDED_FROM = 80
_BOUNDED_PER_K = 400

# Full blocks of _LANES rows with _LANES_FROM to _LANES_BELOW classes and a
# row algebra of size 1 or 5 select their top k together, the rows in the
# lanes of one vectorised, branch-free insertion (:func:`_select_lanes`;
# measured, the whole kernel at 256 x 100, k = 5: 0.79x the time of the other
# selections; no gain from 256 classes on, nor at size 10).
_LANES = 32
_LANES_FROM = 24
_LANES_BELOW = 256

# What svm_rows returns for bad values (the total loss is >= 0).
OK, BAD_LABEL, NOT_FINITE = 0.0, -1.0, -2.0


@jit(inline=True)
def _clamped(v, c, alpha, floor):  # pragma: no cover - compiled
    """``alpha (v - c)`` held in ``[floor, 0]``."""
    return min(max(alpha * (v - c), floor), 0.0)


@jit(inline=True)
def _reduce(values, count, c, alpha, floor, bits, rest):  # pragma: no cover
    """The first pass of :func:`_exp_into`: of every ``t = alpha (v - c)``
    (held in ``[floor, 0]``) of the first ``count`` values, ``2^-m`` (``m =
    round(-t / ln 2)``) written as the bits of a float64 (``bits``, an int64
    view of the output) and the rest ``r = t + m ln 2``, in ``[-ln 2 / 2,
    ln 2 / 2]``."""
    for j in range(count):
        t = _clamped(values[j], c, alpha, floor)
        m = np.int64(0.5 - t * _LOG2E)  # t <= 0: truncation rounds
        bits[j] = (1023 - m) << 52
        mf = np.float64(m)
        rest[j] = t + mf * _LN2_HI + mf * _LN2_LO


# exp(r) on [-ln 2 / 2, ln 2 / 2]: the degree-10 polynomial through its
# Chebyshev nodes (within 5e-16 of exp there; 2e-13 for Taylor's of degree 10).
_EXP_POLY = (
    1.0,
    1.0000000000000067,
    0.5000000000000006,
    0.16666666666554406,
    0.04166666666657314,
    0.008333333385667782,
    0.0013888888932488599,
    0.00019841170270440067,
    2.4801504346997686e-05,
    2.764018079620985e-06,
    2.7626357241447223e-07,
)


@jit(inline=True)
def _exp_scaled(r, scale):  # pragma: no cover - compiled
    """``scale exp(r)`` for ``|r| <= ln 2 / 2`` (:data:`_EXP_POLY`)."""
    c = _EXP_POLY
    p = c[9] + r * c[10]
    p = c[8] + r * p
    p = c[7] + r * p
    p = c[6] + r * p
    p = c[5] + r * p
    p = c[4] + r * p
    p = c[3] + r * p
    p = c[2] + r * p
    p = c[1] + r * p
    return scale * (c[0] + r * p)


@jit(inline=True)
def _exp_into(values, count, c, alpha, floor, out, bits, rest):  # pragma: no cover
    """``out_j = exp(t_j)``, ``t_j = alpha (values_j - c)`` held in ``[floor,
    0]``, for the first ``count`` values: two vectorised passes (no gather, no
    call to the C library; unrolled where ``count`` is a constant); ``rest``
    is scratch space of the size of ``values``."""
    _reduce(values, count, c, alpha, floor, bits, rest)
    for j in range(count):
        out[j] = _exp_scaled(rest[j], out[j])


@jit
def exp_into(values, c, alpha, floor, out):  # pragma: no cover - compiled
    """:func:`_exp_into` (for the tests)."""
    bits, rest = out.view(np.int64), np.empty_like(out)
    _exp_into(values, values.shape[0], c, alpha, floor, out, bits, rest)


@jit
def _check(s, y):  # pragma: no cover - compiled
    """:data:`BAD_LABEL` or :data:`NOT_FINITE` before any work, else :data:`OK`."""
    n, n_classes = s.shape
    for i in range(n):
        if not _label_ok(y[i], n_classes):
            return BAD_LABEL
    for i in range(n):
        if not _finite(s[i]):
            return NOT_FINITE
    return OK


@jit(inline=True)
def _label_ok(yi, n_classes):  # pragma: no cover - compiled
    """Whether the label ``yi`` is a class, in ``[0, n_classes - 1]``."""
    return 0 <= yi < n_classes


@jit(inline=True)
def _finite(row):  # pragma: no cover - compiled
    """Whether every score of ``row`` is finite."""
    acc = 0.0
    for j in range(row.shape[0]):
        acc += row[j] * 0.0  # NaN if any score is NaN or infinite
    return acc == 0.0


@jit(inline=True)
def _insert(topv, topi, m, v, j):  # pragma: no cover - compiled
    """Insert ``v`` (class ``j``) at or above position ``m`` of the sorted top."""
    while m > 0 and v > topv[m - 1]:
        topv[m] = topv[m - 1]
        topi[m] = topi[m - 1]
        m -= 1
    topv[m] = v
    topi[m] = j


@jit(inline=True)
def _select(row, sbits, yi, k, size, topv, topi, pick):  # pragma: no cover
    """The k largest wrong scores of ``row`` (``sbits``: its float32 bits), in
    decreasing order (the first of equal scores first), in ``topv[:k]`` and
    their classes in ``topi[:k]``; returns the k-th, ``c``."""
    if _BOUNDED_FROM <= row.shape[0] < _BOUNDED_PER_K * k:
        return _select_bounded(row, sbits, yi, k, size, topv, topi, pick)
    return _select_scan(row, yi, k, topv, topi)


@jit(inline=True)
def _select_scan(row, yi, k, topv, topi):  # pragma: no cover - compiled
    """:func:`_select` by one scan in class order, inserting each score that
    beats the k-th so far."""
    j = 0
    for filled in range(k):  # the first k wrong classes, sorted
        if j == yi:
            j += 1
        _insert(topv, topi, filled, row[j], j)
        j += 1
    thr = topv[k - 1]
    n = row.shape[0]
    if n >= _BLOCKS_FROM:
        while j + _BLOCK <= n:  # a block whose largest score does not beat
            top = row[j]  # the k-th has nothing to insert
            for i in range(j + 1, j + _BLOCK):
                top = max(top, row[i])
            if top > thr:
                thr = _scan(row, yi, k, topv, topi, thr, j, j + _BLOCK)
            j += _BLOCK
    return _scan(row, yi, k, topv, topi, thr, j, n)


@jit(inline=True)
def _picking(n_classes):  # pragma: no cover - compiled
    """Work arrays of :func:`_select_bounded`: the candidates' classes, and
    4 bytes seen as an int32 and as a float32."""
    one_bits = np.empty(1, np.int32)
    return np.empty(n_classes, np.int64), one_bits, one_bits.view(np.float32)


def top_k(row, yi, k, bounded):
    """The top k of :func:`_select` by either way (for the tests), the top's
    size as the kernel's for this k."""
    return _top_k(row, yi, k, _size(k), bounded)


@jit
def _top_k(row, yi, k, size, bounded):  # pragma: no cover - compiled
    topv, topi = np.empty(_MAX_SIZE), np.empty(_MAX_SIZE, np.int64)
    if bounded:
        pick = _picking(row.shape[0])
        _select_bounded(row, row.view(np.int32), yi, k, size, topv, topi, pick)
    else:
        _select_scan(row, yi, k, topv, topi)
    return topv[:k].copy(), topi[:k].copy()


@jit(inline=True)
def _key(b):  # pragma: no cover - compiled
    """An integer in the order of the finite float32 whose bits are ``b``
    (-0 one below +0), and back."""
    b = np.int64(b)
    return b ^ ((b >> 31) & 0x7FFFFFFF)


@jit(inline=True)
def _bound(sbits, k, one_bits, one):  # pragma: no cover - compiled
    """A score that at least k wrong scores reach: the smallest of the largest
    scores of k + 1 parts of the row (at most one is the true class's). One
    vectorised pass over integer keys of the scores (in their order), whose
    maxima vectorise where those of floats do not; ``one_bits`` and ``one``
    are views of the same 4 bytes, to read the key's score back."""
    n = sbits.shape[0]
    bound = np.int64(1) << 40  # above every key
    for part in range(k + 1):
        seg = sbits[part * n // (k + 1) : (part + 1) * n // (k + 1)]
        top = -(np.int64(1) << 40)
        for j in range(seg.shape[0]):  # (from 0: no negative indices)
            top = max(top, _key(seg[j]))
        bound = min(bound, top)
    # The key is its own inverse; one_bits and one are the same memory, which
    # the compiled code reads back as such (numba marks no type-based aliasing).
    one_bits[0] = _key(bound)
    return one[0]


@jit(inline=True)
def _select_bounded(row, sbits, yi, k, size, topv, topi, pick):  # pragma: no cover
    """:func:`_select` among the scores that reach :func:`_bound` (about k + 4
    of them on random scores), listed in class order without branches, then
    inserted into a top of ``size`` slots (a constant: the slots below the
    k-th hold the next scores, unused)."""
    cand, one_bits, one = pick
    bound = _bound(sbits, k, one_bits, one)
    count = 0
    for j in range(row.shape[0]):
        cand[count] = j
        count += row[j] >= bound
    for t in range(size):
        topv[t] = -np.inf
        topi[t] = 0
    thr = -np.inf
    for c in range(count):
        j = cand[c]
        v = row[j]
        if v > thr and j != yi:
            _insert_fixed(topv, topi, size, v, j)
            thr = topv[k - 1]
    return thr


@jit(inline=True)
def _insert_fixed(topv, topi, size, v, j):  # pragma: no cover - compiled
    """Insert ``v`` (class ``j``) into the sorted top of ``size`` slots,
    without branches: each slot takes the one above it, ``v`` or itself
    (the first of equal scores stays first)."""
    for m in range(size - 1, 0, -1):
        above, here = topv[m - 1], topv[m]
        ia, ih = topi[m - 1], topi[m]
        up, into = v > above, v > here
        topi[m] = ia if up else (j if into else ih)
        topv[m] = above if up else (v if into else here)
    into = v > topv[0]
    topi[0] = j if into else topi[0]
    topv[0] = v if into else topv[0]


@jit(inline=True)
def _scan(row, yi, k, topv, topi, thr, start, stop):  # pragma: no cover
    """Insert what beats the k-th, ``thr``, among ``row[start:stop]``; returns
    the new k-th."""
    for i in range(start, stop):
        v = row[i]
        if v > thr and i != yi:
            _insert(topv, topi, k - 1, v, i)
            thr = topv[k - 1]
    return thr


@jit(inline=True)
def _lanes_apply(n_classes, size):  # pragma: no cover - compiled
    """Whether rows of ``n_classes`` select their top k by :func:`_select_lanes`."""
    return size <= 5 and _LANES_FROM <= n_classes < _LANES_BELOW


@jit(inline=True)
def _lane_step(top, cls, r, v, j):  # pragma: no cover - compiled
    """One slot of :func:`_select_lanes` in lane ``r``: the slot keeps the
    larger of its score and ``v`` (its own where equal: the first of equal
    scores first) and hands the other on, with its class."""
    t, tj = top[r], cls[r]
    up = v > t
    top[r] = v if up else t
    cls[r] = j if up else tj
    return (t if up else v), (tj if up else j)


@jit(inline=True)
def _select_lanes(s, y, i0, size, lanes):  # pragma: no cover - compiled
    """The ``size`` largest wrong scores of rows ``i0`` to ``i0 + _LANES - 1``
    of ``s``, in decreasing order (the first of equal scores first), in
    ``top[m, r]`` and their classes in ``cls[m, r]`` for the row ``i0 + r``.
    The rows are copied into the lanes of ``tr`` (a class per row of it), the
    true class held at -inf; each class then goes through ``size`` slots
    without branches, a vectorised pass over the lanes."""
    top, cls, yl, tr = lanes
    n_classes, n_lanes = s.shape[1], yl.shape[0]  # (a trip count that LLVM
    for r in range(n_lanes):  # vectorises, where it unrolls a constant one)
        yl[r] = np.int32(y[i0 + r])
        for j in range(n_classes):
            tr[j, r] = s[i0 + r, j]
    top[:] = -np.inf
    cls[:] = 0
    t0, t1, t2, t3, t4 = top[0], top[1], top[2], top[3], top[4]
    c0, c1, c2, c3, c4 = cls[0], cls[1], cls[2], cls[3], cls[4]
    for j in range(n_classes):
        jj = np.int32(j)
        column = tr[j]
        for r in range(n_lanes):
            v = np.float32(-np.inf) if yl[r] == jj else column[r]
            v, c = _lane_step(t0, c0, r, v, jj)
            if size > 1:  # a constant: unrolled
                v, c = _lane_step(t1, c1, r, v, c)
                v, c = _lane_step(t2, c2, r, v, c)
                v, c = _lane_step(t3, c3, r, v, c)
                _lane_step(t4, c4, r, v, c)


def top_k_lanes(s, y, k):
    """The top k of each row by :func:`_select_lanes` (for the tests; rows in
    full blocks of ``_LANES``)."""
    return _top_k_lanes(s, y, k, _size(k))


@jit
def _top_k_lanes(s, y, k, size):  # pragma: no cover - compiled
    n = s.shape[0]
    values, classes = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
    lanes = _lane_work(s.shape[1])
    for i0 in range(0, n - _LANES + 1, _LANES):
        _select_lanes(s, y, i0, size, lanes)
        for r in range(_LANES):
            for m in range(k):
                values[i0 + r, m] = lanes[0][m, r]
                classes[i0 + r, m] = lanes[1][m, r]
    return values, classes


@jit(inline=True)
def _lane_work(n_classes):  # pragma: no cover - compiled
    """Work arrays of :func:`_select_lanes` (the copy of the rows only where
    rows of ``n_classes`` take it)."""
    copies = n_classes if _LANES_FROM <= n_classes < _LANES_BELOW else 0
    return (
        np.empty((5, _LANES), np.float32),
        np.empty((5, _LANES), np.int32),
        np.empty(_LANES, np.int32),
        np.empty((copies, _LANES), np.float32),
    )


@jit(inline=True)
def _exp_sums(row, c, alpha, floor, k, x, bits, rest, p):  # pragma: no cover - compiled
    """``x_j = exp(alpha (s_j - c))`` for every class (held in ``[e^floor,
    1]``) and their power sums ``p[m] = sum_j x_j^m``, ``m = 1..k``: one
    vectorised pass for the powers up to 1 or 5, a second one for 6 to 10."""
    s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = 0.0
    _reduce(row, row.shape[0], c, alpha, floor, bits, rest)
    if k == 1:
        for j in range(row.shape[0]):
            v = _exp_scaled(rest[j], x[j])
            x[j] = v
            s1 += v
    else:
        for j in range(row.shape[0]):
            v = _exp_scaled(rest[j], x[j])
            x[j] = v
            v2 = v * v
            v4 = v2 * v2
            s1 += v
            s2 += v2
            s3 += v2 * v
            s4 += v4
            s5 += v4 * v
    if k > 5:  # the powers 6 to 10, in a second pass over x (in cache)
        for j in range(row.shape[0]):
            v = x[j]
            v2 = v * v
            v4 = v2 * v2
            v8 = v4 * v4
            s6 += v4 * v2
            s7 += v4 * v2 * v
            s8 += v8
            s9 += v8 * v
            s10 += v8 * v2
    sums = (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10)
    for m in range(k):
        p[m + 1] = sums[m]


@jit(inline=True)
def _remove(xy, k, size, p):  # pragma: no cover - compiled
    """Take the true class (``xy``) and the top k (each 1) out of the power
    sums ``p_1..p_size`` (never below 0)."""
    pw = xy
    for m in range(1, size + 1):
        p[m] = max(p[m] - (pw + k), 0.0)
        pw *= xy


@jit(inline=True)
def _newton(p, k, e):  # pragma: no cover - compiled
    """``e_0..e_k`` from the power sums ``p_1..p_k`` (Newton's identities)."""
    e[0] = 1.0
    for m in range(1, k + 1):
        acc = 0.0
        sign = 1.0
        for i in range(1, m + 1):
            acc += sign * e[m - i] * p[i]
            sign = -sign
        e[m] = acc * _INVERSE[m]


@jit(inline=True)
def _esp(u, k, e):  # pragma: no cover - compiled
    """``e_0..e_{k+1}`` of ``u_0..u_{k-1}`` by the product recurrence (no
    subtraction)."""
    e[0] = 1.0
    for m in range(1, k + 2):
        e[m] = 0.0
    for t in range(k):
        for m in range(k, 0, -1):
            e[m] += u[t] * e[m - 1]


@jit(inline=True)
def _row_at(
    row, sbits, yi, k, size, alpha, tau, margin, gscale, work, grow, with_grad, top
):  # pragma: no cover
    """The loss of one row; ``with_grad``: ``gscale`` times its gradient
    written into ``grow``. The algebra runs at ``size >= k`` (1, 5 or 10, a
    constant once inlined: unrolled loops, no trip counts to test); the top is
    padded with ``u = 0``, which leaves ``e(u)`` (then 0 beyond degree k),
    ``A``, ``B`` and the weights ``w`` exactly as at size k. ``top``: the top
    k is already in the work arrays (:func:`_select_lanes`)."""
    topv, topi, u, u_bits, u_rest, a, b, am, p, q, x, bits, rest, pick, _ = work
    if top:
        c = topv[k - 1]
    else:
        c = _select(row, sbits, yi, k, size, topv, topi, pick)
    # Held at e^(-700 / k), so that products of k of them stay normal floats
    # (no slow subnormal arithmetic), as in the fast route.
    floor = _EXP_FLOOR / k
    _exp_sums(row, c, alpha, floor, size, x, bits, rest, p)
    # The sums ran over every class: take the true class and the top out (a
    # top class has x = 1 exactly).
    _remove(x[yi], float(k), size, p)
    x[yi] = 0.0
    for t in range(k):
        x[topi[t]] = 0.0
    for t in range(k, size):
        topv[t] = c
    _exp_into(topv, size, c, -alpha, floor, u, u_bits, u_rest)  # exp(alpha (c - s_t))
    for t in range(k, size):
        u[t] = 0.0
    _newton(p, size, b)
    _esp(u, size, a)
    big_a = 0.0
    big_b = 0.0
    for m in range(size + 1):
        big_a += a[m] * b[m]
    for m in range(size):
        big_b += a[m + 1] * b[m]
    inv_a, inv_b = 1.0 / big_a, 1.0 / big_b
    loss, sigma = _softplus(big_a * inv_b, (c - row[yi]) / k + margin, tau)
    if not with_grad:
        return loss
    g = gscale * sigma / k
    for m in range(size):  # w_m, in am (free until the top's gradients)
        am[m] = g * (a[m + 1] * inv_a - a[m + 2] * inv_b)
    for i in range(size):  # sum_l w_l e_l(x without j) = sum_i q_i (-x_j)^i
        acc = 0.0
        for m in range(i, size):
            acc += am[m] * b[m - i]
        q[i] = acc
    _horner(x, q, size, grow)
    for t in range(k):  # e_m(u without u_t) by division: e_m = a_m - u_t e_{m-1}
        e_m = 1.0
        num_a = b[1]
        num_b = b[0]
        for m in range(1, size):
            e_m = (a[m] - u[t] * e_m) if m < k else 0.0  # 0 beyond degree k - 1
            num_a += b[m + 1] * e_m
            num_b += b[m] * e_m
        grow[topi[t]] = -g * u[t] * (num_a * inv_a - num_b * inv_b)
    grow[yi] = -g
    return loss


@jit(inline=True)
def _softplus(ratio, w_tau, tau):  # pragma: no cover - compiled
    """``tau softplus(z)`` and ``sigmoid(z)`` for ``z = log(ratio) + w``, ``w =
    w_tau / tau`` (``ratio = A / B > 0``), from one exponential and one
    logarithm: ``tau log1p(ratio e^w)`` where ``z <= 0``, else ``w_tau + tau
    log(ratio + e^-w)`` (``e^w`` or ``e^-w`` taken where it is at most 1; the
    loss finite even where ``w`` overflows, a tiny ``tau``)."""
    w = w_tau / tau
    if w <= 0.0:
        e = math.exp(w)
        re = ratio * e
        if re <= 1.0:
            return tau * math.log1p(re), re / (1.0 + re)
        return w_tau + tau * math.log(ratio + 1.0 / e), re / (1.0 + re)
    f = math.exp(-w)
    if ratio > f:
        return w_tau + tau * math.log(ratio + f), ratio / (ratio + f)
    return tau * math.log1p(ratio / f), ratio / (ratio + f)


@jit
def softplus(ratio, w_tau, tau):  # pragma: no cover - compiled
    """:func:`_softplus` (for the tests)."""
    return _softplus(ratio, w_tau, tau)


@jit(inline=True)
def _horner(x, q, k, out):  # pragma: no cover - compiled
    """``out_j = x_j sum_i q_i (-x_j)^i`` (``q`` zero beyond ``k - 1``; ``k``
    is the row algebra's size, 1, 5 or 10): one vectorised pass."""
    if k == 1:
        for j in range(x.shape[0]):
            out[j] = x[j] * q[0]
    elif k <= 5:
        for j in range(x.shape[0]):
            v = x[j]
            p = q[3] - v * q[4]
            p = q[2] - v * p
            p = q[1] - v * p
            out[j] = v * (q[0] - v * p)
    else:
        for j in range(x.shape[0]):
            v = x[j]
            p = q[8] - v * q[9]
            p = q[7] - v * p
            p = q[6] - v * p
            p = q[5] - v * p
            p = q[4] - v * p
            p = q[3] - v * p
            p = q[2] - v * p
            p = q[1] - v * p
            out[j] = v * (q[0] - v * p)


def svm_rows(
    s, y, k, margin, tau, gscale, loss, grad, with_grad, nan_rows=False
) -> float:
    """Per-sample losses into ``loss`` (float64) and, ``with_grad``, ``gscale``
    times their gradient into ``grad`` (of the shape of ``s``; else one row
    that is not written). Returns the total loss, or a negative status
    (:data:`BAD_LABEL`, :data:`NOT_FINITE`), checked before anything is
    written; with ``nan_rows``, a row with a bad label or score gets a NaN
    loss and gradient instead (the other rows theirs), and the total is
    NaN.

    The row algebra's size (1, 5 or 10) picks one of three compiled kernels,
    each compiled the first time it is needed: a user of one k compiles one
    third of the code."""
    kernel = _KERNELS[_size(k)]
    return kernel(s, y, k, (margin, tau, gscale), loss, grad, (with_grad, nan_rows))


def _size(k: int) -> int:
    """The size of the row algebra for ``k`` (1 to 10): 1, 5 or 10."""
    return 1 if k == 1 else 5 if k <= 5 else 10


# One kernel per size: an entry that checks the values and makes the work
# arrays, then the loop over the rows, without reference counts (a row takes
# views of a dozen arrays).
@jit
def _svm_rows_1(s, y, k, params, loss, grad, flags):  # pragma: no cover - compiled
    return _entry(s, y, k, params, loss, grad, flags, _rows_1)


@jit
def _svm_rows_5(s, y, k, params, loss, grad, flags):  # pragma: no cover - compiled
    return _entry(s, y, k, params, loss, grad, flags, _rows_5)


@jit
def _svm_rows_10(s, y, k, params, loss, grad, flags):  # pragma: no cover - compiled
    return _entry(s, y, k, params, loss, grad, flags, _rows_10)


@jit(refcounts=False)
def _rows_1(s, sbits, y, k, params, loss, grad, flags, work):  # pragma: no cover
    return _rows(s, sbits, y, k, 1, params, loss, grad, flags, work)


@jit(refcounts=False)
def _rows_5(s, sbits, y, k, params, loss, grad, flags, work):  # pragma: no cover
    return _rows(s, sbits, y, k, 5, params, loss, grad, flags, work)


@jit(refcounts=False)
def _rows_10(s, sbits, y, k, params, loss, grad, flags, work):  # pragma: no cover
    return _rows(s, sbits, y, k, 10, params, loss, grad, flags, work)


_KERNELS = {1: _svm_rows_1, 5: _svm_rows_5, 10: _svm_rows_10}


@jit(inline=True)
def _entry(s, y, k, params, loss, grad, flags, rows):  # pragma: no cover - compiled
    """The status of the values (unchecked with ``nan_rows``, the second
    flag), else the work arrays of a row made and ``rows`` run in them."""
    status = OK if flags[1] else _check(s, y)
    if status != OK:
        return status
    n_classes = s.shape[1]
    u = np.empty(_MAX_SIZE)
    x = np.empty(n_classes)
    work = (
        np.empty(_MAX_SIZE),  # the top k wrong scores, decreasing
        np.empty(_MAX_SIZE, np.int64),  # and their classes
        u,
        u.view(np.int64),
        np.empty(_MAX_SIZE),
        np.empty(_MAX_SIZE + 2),  # a = e(u)
        np.empty(_MAX_SIZE + 1),  # b = e(x)
        np.empty(_MAX_SIZE + 2),
        np.empty(_MAX_SIZE + 1),  # power sums
        np.zeros(_MAX_SIZE),  # Horner's coefficients
        x,
        x.view(np.int64),
        np.empty(n_classes),  # the exponentials' reduced arguments
        _picking(n_classes),
        _lane_work(n_classes),
    )
    return rows(s, s.view(np.int32), y, k, params, loss, grad, flags, work)


@jit(inline=True)
def _rows(s, sbits, y, k, size, params, loss, grad, flags, work):  # pragma: no cover
    """The loop over the rows, the row algebra at ``size`` (a constant)."""
    margin, tau, gscale = params
    with_grad, nan_rows = flags
    n, n_classes = s.shape
    alpha = 1.0 / (k * tau)
    total = 0.0
    topv, topi, lanes = work[0], work[1], work[-1]
    lanes_apply = _lanes_apply(n_classes, size)
    for i in range(n):
        grow = grad[i] if with_grad else grad[0]
        r = i % _LANES
        top = lanes_apply and i - r + _LANES <= n  # a full block of rows
        if top:
            if r == 0:
                _select_lanes(s, y, i, size, lanes)
            for m in range(k):
                topv[m] = lanes[0][m, r]
                topi[m] = lanes[1][m, r]
        if nan_rows and not (_label_ok(y[i], n_classes) and _finite(s[i])):
            loss[i] = np.nan
            if with_grad:
                grow[:] = np.nan
        else:
            loss[i] = _row_at(
                s[i],
                sbits[i],
                y[i],
                k,
                size,
                alpha,
                tau,
                margin,
                gscale,
                work,
                grow,
                with_grad,
                top,
            )
        total += loss[i]
    return total
