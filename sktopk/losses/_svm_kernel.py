"""The smooth top-k SVM loss and its gradient in one compiled pass (numba).

The same maths as the fast route (:mod:`._svm_fast`), for each row: with ``c``
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
``exp`` do not vectorise. Rows go in blocks of up to 32 (:func:`_block`):
with a few hundred classes at most, a block selects its rows' top k
together, a row in each lane of a vectorised pass (:func:`_select_lanes`);
each row's exponentials and power sums follow; then the algebra of all the
block's rows at once, a row per lane of vectorised loops over the rows
(:func:`_algebra`; the loss and its sigmoid from one exponential and one
logarithm, :func:`_softplus`); then each row's gradient.
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

# Rows are computed in blocks of up to _LANES, the algebra of a block's rows
# at once (a row per lane; measured at 256 x 100, k = 5: 0.81x the kernel's
# time row by row), while their exponentials fit in _BLOCK_VALUES float64 (in
# cache; one row at a time from 8192 classes on). Blocks of rows with
# _LANES_FROM to _LANES_BELOW classes and an algebra of size 1 or 5 select
# their top k together, the rows in the lanes of one vectorised, branch-free
# insertion (:func:`_select_lanes`; measured, the whole kernel at 256 x 100,
# k = 5: 0.79x its time with the other selections on AVX-512, 0.86x on AVX2
# since its slots are integer keys; no gain from 256 classes on, nor at size
# 10).
_LANES = 32
_LANES_FROM = 24
_LANES_BELOW = 256
_BLOCK_VALUES = 8192

# The key of the true class in _select_lanes: below every score's (-inf's
# is -2139095040).
_BELOW_KEYS = np.int32(-(2**31))

# What svm_rows returns for bad values (the total loss is >= 0).
OK, BAD_LABEL, NOT_FINITE = 0.0, -1.0, -2.0


@jit(inline=True)
def _clamped(v, c, alpha, floor):  # pragma: no cover - compiled
    """``alpha (v - c)`` held in ``[floor, 0]``."""
    return min(max(alpha * (v - c), floor), 0.0)


@jit(inline=True)
def _reduce(values, c, alpha, floor, bits, rest):  # pragma: no cover - compiled
    """The first pass of :func:`_exp_into`: of every ``t = alpha (v - c)``
    (held in ``[floor, 0]``), ``2^-m`` (``m = round(-t / ln 2)``) written as
    the bits of a float64 (``bits``, an int64 view of the output) and the rest
    ``r = t + m ln 2``, in ``[-ln 2 / 2, ln 2 / 2]``."""
    for j in range(values.shape[0]):
        bits[j], rest[j] = _reduced(values[j], c, alpha, floor)


@jit(inline=True)
def _reduced(v, c, alpha, floor):  # pragma: no cover - compiled
    """:func:`_reduce` of one value: the bits of ``2^-m`` and ``r``."""
    t = _clamped(v, c, alpha, floor)
    # t <= 0: truncation rounds. Through int32 (m <= 1010): conversions
    # between float64 and int64 have no vector instruction before AVX-512,
    # which left this pass scalar on AVX2 (measured there: 2.5x slower).
    m32 = np.int32(0.5 - t * _LOG2E)
    mf = np.float64(m32)
    return (1023 - np.int64(m32)) << 52, t + mf * _LN2_HI + mf * _LN2_LO


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
def _exp_into(values, c, alpha, floor, out, bits, rest):  # pragma: no cover
    """``out_j = exp(t_j)``, ``t_j = alpha (values_j - c)`` held in ``[floor,
    0]``: two vectorised passes (no gather, no call to the C library);
    ``rest`` is scratch space of the size of ``values``."""
    _reduce(values, c, alpha, floor, bits, rest)
    for j in range(values.shape[0]):
        out[j] = _exp_scaled(rest[j], out[j])


@jit
def exp_into(values, c, alpha, floor, out):  # pragma: no cover - compiled
    """:func:`_exp_into` (for the tests)."""
    _exp_into(values, c, alpha, floor, out, out.view(np.int64), np.empty_like(out))


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
    """An integer in the order of the finite float32 whose bits are ``b``,
    -0 and +0 both 0 (equal, as the scores are); :func:`_score_bits` turns
    it back into the bits of the score (+0 for both zeros)."""
    m = b >> 31  # -1 for a negative score, else 0
    return (b ^ (m & 0x7FFFFFFF)) - m


@jit(inline=True)
def _score_bits(key):  # pragma: no cover - compiled
    """The bits of the float32 whose :func:`_key` is ``key``."""
    m = key >> 31
    return (key + m) ^ (m & 0x7FFFFFFF)


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
    # one_bits and one are the same memory, which the compiled code reads
    # back as such (numba marks no type-based aliasing).
    one_bits[0] = _score_bits(bound)
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
    larger of its key and ``v`` (its own where equal: the first of equal
    scores first) and hands the other on, with its class. Integer maxima and
    minima, where a float slot written as ``v if up else t`` became a masked
    store on AVX2 (microcoded on some processors: the whole kernel 2.9x
    slower at 256 x 200, k = 5)."""
    t, tj = top[r], cls[r]
    up = v > t
    top[r] = max(v, t)
    cls[r] = j if up else tj
    return min(v, t), (tj if up else j)


@jit(inline=True)
def _select_lanes(sbits, yb, i0, n_lanes, size, lanes):  # pragma: no cover
    """The ``size`` largest wrong scores of rows ``i0`` to ``i0 + n_lanes - 1``
    of the scores whose float32 bits are ``sbits`` (at most ``_LANES``; their
    true classes ``yb[:n_lanes]``), in decreasing order (the first of equal
    scores first), in ``scores[m, r]`` (``lanes[3]``) and their classes in
    ``cls[m, r]`` for the row ``i0 + r``. The rows' keys (:func:`_key`) are
    copied into the lanes of ``tr`` (a class per row of it), the true class's
    held below every score's; each class then goes through ``size`` slots
    without branches, a vectorised pass over the lanes (a trip count that
    LLVM vectorises, where it unrolls a constant one); the top's keys are
    turned back into scores in place."""
    top, cls, tr = lanes[0], lanes[1], lanes[2]
    n_classes = sbits.shape[1]
    for r in range(n_lanes):
        for j in range(n_classes):
            tr[j, r] = _key(sbits[i0 + r, j])
        tr[yb[r], r] = _BELOW_KEYS
    top[:] = _BELOW_KEYS
    cls[:] = 0
    t0, t1, t2, t3, t4 = top[0], top[1], top[2], top[3], top[4]
    c0, c1, c2, c3, c4 = cls[0], cls[1], cls[2], cls[3], cls[4]
    for j in range(n_classes):
        jj = np.int32(j)
        column = tr[j]
        for r in range(n_lanes):
            v = column[r]
            v, c = _lane_step(t0, c0, r, v, jj)
            if size > 1:  # a constant: unrolled
                v, c = _lane_step(t1, c1, r, v, c)
                v, c = _lane_step(t2, c2, r, v, c)
                v, c = _lane_step(t3, c3, r, v, c)
                _lane_step(t4, c4, r, v, c)
    for m in range(size):
        for r in range(n_lanes):
            top[m, r] = _score_bits(top[m, r])


def top_k_lanes(s, y, k):
    """The top k of each row by :func:`_select_lanes` (for the tests), where
    the kernel takes it (else a ValueError: its buffers are not made for it)."""
    if not _lanes_apply(s.shape[1], _size(k)):
        raise ValueError(f"no lanes' selection for k = {k} of {s.shape[1]} classes")
    return _top_k_lanes(s, y, k, _size(k))


@jit
def _top_k_lanes(s, y, k, size):  # pragma: no cover - compiled
    n = s.shape[0]
    values, classes = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
    lanes = _lane_work(s.shape[1], size)
    for i0 in range(0, n, _LANES):
        n_lanes = min(_LANES, n - i0)
        _select_lanes(s.view(np.int32), y[i0:], i0, n_lanes, size, lanes)
        for r in range(n_lanes):
            for m in range(k):
                values[i0 + r, m] = lanes[3][m, r]
                classes[i0 + r, m] = lanes[1][m, r]
    return values, classes


@jit(inline=True)
def _lane_work(n_classes, size):  # pragma: no cover - compiled
    """Work arrays of :func:`_select_lanes`: the top's keys, their classes,
    the copy of the rows' keys (only where rows of ``n_classes`` take it) and
    the top's keys seen as float32 (the scores, once turned back)."""
    copies = n_classes if _lanes_apply(n_classes, size) else 0
    top = np.empty((5, _LANES), np.int32)
    cls = np.empty((5, _LANES), np.int32)
    return top, cls, np.empty((copies, _LANES), np.int32), top.view(np.float32)


@jit(inline=True)
def _exp_sums(row, c, alpha, floor, k, x, bits, rest, p):  # pragma: no cover - compiled
    """``x_j = exp(alpha (s_j - c))`` for every class (held in ``[e^floor,
    1]``) and their power sums ``p[m] = sum_j x_j^m``, ``m = 1..k``: one
    vectorised pass for the powers up to 1 or 5, a second one for 6 to 10."""
    s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = 0.0
    _reduce(row, c, alpha, floor, bits, rest)
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
def _block(
    s, sbits, y, i0, n_lanes, k, size, params, loss, grad, flags, work
):  # pragma: no cover - compiled
    """The rows ``i0`` to ``i0 + n_lanes - 1``: each row's top k and
    exponentials, then the algebra of all of them at once, a row per lane
    (:func:`_algebra`), then each row's gradient. Returns their total loss.
    With ``nan_rows``, a row with a bad label or score is computed with the
    label 0 (no index out of range) and given NaN."""
    with_grad, nan_rows = flags
    blk, xs, q = work[2], work[4], work[5]
    yb, good, ti = blk[0], blk[1], blk[3]
    n_classes = s.shape[1]
    for r in range(n_lanes):
        i = i0 + r
        good[r] = not nan_rows or (_label_ok(y[i], n_classes) and _finite(s[i]))
        yb[r] = y[i] if good[r] else 0
    # Held at e^(-700 / k), so that products of k of them stay normal floats
    # (no slow subnormal arithmetic), as in the fast route.
    scale = (1.0 / (k * params[1]), _EXP_FLOOR / k)  # alpha and the floor
    _select_block(s, sbits, i0, n_lanes, k, size, work)
    _block_exps(s, i0, n_lanes, k, size, scale, work)
    _algebra(n_lanes, k, size, params, scale, with_grad, blk, work[3])
    ls, gv, coef, top_grad = blk[7], blk[8], work[3][5], work[3][6]
    total = 0.0
    for r in range(n_lanes):
        i = i0 + r
        grow = grad[i] if with_grad else grad[0]
        loss[i] = ls[r] if good[r] else np.nan
        total += loss[i]
        if not with_grad:
            continue
        if not good[r]:
            grow[:] = np.nan
            continue
        for m in range(size):
            q[m] = coef[m, r]
        _horner(xs[0][r], q, size, grow)
        for t in range(k):
            grow[ti[t, r]] = top_grad[t, r]
        grow[yb[r]] = -gv[r]
    return total


@jit(inline=True)
def _select_block(s, sbits, i0, n_lanes, k, size, work):  # pragma: no cover
    """The top k of the block's rows, values in ``tv[t, r]`` (float64) and
    classes in ``ti[t, r]``: together (:func:`_select_lanes`) where rows of
    this size take it, else row by row (:func:`_select`)."""
    topv, topi, pick, lanes = work[0][0], work[0][1], work[0][2], work[1]
    yb, tv, ti = work[2][0], work[2][2], work[2][3]
    if _lanes_apply(s.shape[1], size):
        _select_lanes(sbits, yb, i0, n_lanes, size, lanes)
        top, cls = lanes[3], lanes[1]
        for t in range(k):
            for r in range(n_lanes):
                tv[t, r] = top[t, r]
                ti[t, r] = cls[t, r]
        return
    for r in range(n_lanes):
        i = i0 + r
        _select(s[i], sbits[i], yb[r], k, size, topv, topi, pick)
        for t in range(k):
            tv[t, r] = topv[t]
            ti[t, r] = topi[t]


@jit(inline=True)
def _block_exps(s, i0, n_lanes, k, size, scale, work):  # pragma: no cover
    """Each row's ``x_j = exp(alpha (s_j - c))`` (in ``xs[r]``) and power
    sums (in ``ps[m, r]``), the true class's ``x`` and score kept apart and
    the true class and the top set to 0 in ``x``."""
    yb, tv, ti, cv, xy, sy = work[2][0], work[2][2], work[2][3], *work[2][4:7]
    x_rows, x_bits, rest, p = work[4]
    ps = work[3][0]
    alpha, floor = scale
    for r in range(n_lanes):
        c = tv[k - 1, r]
        cv[r] = c
        x = x_rows[r]
        _exp_sums(s[i0 + r], c, alpha, floor, size, x, x_bits[r], rest, p)
        for m in range(1, size + 1):
            ps[m, r] = p[m]
        yi = yb[r]
        xy[r] = x[yi]
        sy[r] = s[i0 + r, yi]
        x[yi] = 0.0
        for t in range(k):
            x[ti[t, r]] = 0.0


@jit(inline=True)
def _algebra(n_lanes, k, size, params, scale, with_grad, blk, alg):  # pragma: no cover
    """The algebra of the block's rows, a row per lane: every loop runs over
    the lanes (vectorised), at the constant ``size`` (1, 5 or 10) over the
    degrees. The top is padded with ``u = 0``, which leaves ``e(u)`` (then 0
    beyond degree k), ``A``, ``B`` and the weights ``w`` exactly as at size
    k. Writes the losses and ``g = gscale sigma / k``, and with ``with_grad``
    Horner's coefficients and the top k's gradients (``scale``: ``alpha`` and
    the exponentials' floor, as in :func:`_block`)."""
    margin, tau, gscale = params
    alpha, floor = scale
    tv, cv, xy, sy, ls, gv = blk[2], blk[4], blk[5], blk[6], blk[7], blk[8]
    ps, u, a, b, ratio, inv_a, inv_b = alg[:4] + alg[7:10]
    _remove_lanes(n_lanes, k, size, xy, ps, alg[10])
    _newton_lanes(n_lanes, size, ps, b)
    _top_exps(n_lanes, k, size, alpha, floor, tv, cv, u, alg[11])
    _esp_lanes(n_lanes, size, u, a)
    for r in range(n_lanes):
        big_a = 0.0
        for m in range(size + 1):
            big_a += a[m, r] * b[m, r]
        big_b = 0.0
        for m in range(size):
            big_b += a[m + 1, r] * b[m, r]
        inv_a[r], inv_b[r] = 1.0 / big_a, 1.0 / big_b
        ratio[r] = big_a * inv_b[r]
    for r in range(n_lanes):  # the C library's log and exp: not vectorised
        ls[r], sigma = _softplus(ratio[r], (cv[r] - sy[r]) / k + margin, tau)
        gv[r] = gscale * sigma / k
    if with_grad:
        _gradient_lanes(n_lanes, k, size, gv, alg)


@jit(inline=True)
def _remove_lanes(n_lanes, k, size, xy, ps, pw):  # pragma: no cover - compiled
    """Take the true class (``xy``) and the top k (each 1: a top class has x
    = 1 exactly) out of the power sums ``ps[1..size]`` (never below 0)."""
    for r in range(n_lanes):
        pw[r] = xy[r]
    for m in range(1, size + 1):
        for r in range(n_lanes):
            ps[m, r] = max(ps[m, r] - (pw[r] + k), 0.0)
            pw[r] *= xy[r]


@jit(inline=True)
def _newton_lanes(n_lanes, size, ps, e):  # pragma: no cover - compiled
    """``e_0..e_size`` from the power sums (Newton's identities)."""
    for r in range(n_lanes):
        e[0, r] = 1.0
    for m in range(1, size + 1):
        for r in range(n_lanes):
            e[m, r] = 0.0
        sign = 1.0
        for i in range(1, m + 1):
            for r in range(n_lanes):
                e[m, r] += sign * e[m - i, r] * ps[i, r]
            sign = -sign
        for r in range(n_lanes):
            e[m, r] *= _INVERSE[m]


@jit(inline=True)
def _top_exps(n_lanes, k, size, alpha, floor, tv, cv, u, rest):  # pragma: no cover
    """``u_t = exp(alpha (c - s_t))`` for the top k (held in ``[e^floor, 1]``),
    0 for the padding: :func:`_exp_into`'s two passes over the lanes."""
    bits = u.view(np.int64)
    for t in range(k):
        for r in range(n_lanes):
            bits[t, r], rest[t, r] = _reduced(cv[r], tv[t, r], alpha, floor)
        for r in range(n_lanes):
            u[t, r] = _exp_scaled(rest[t, r], u[t, r])
    for t in range(k, size):
        for r in range(n_lanes):
            u[t, r] = 0.0


@jit(inline=True)
def _esp_lanes(n_lanes, size, u, e):  # pragma: no cover - compiled
    """``e_0..e_{size+1}`` of ``u_0..u_{size-1}`` by the product recurrence
    (no subtraction)."""
    for r in range(n_lanes):
        e[0, r] = 1.0
    for m in range(1, size + 2):
        for r in range(n_lanes):
            e[m, r] = 0.0
    for t in range(size):
        for m in range(size, 0, -1):
            for r in range(n_lanes):
                e[m, r] += u[t, r] * e[m - 1, r]


@jit(inline=True)
def _gradient_lanes(n_lanes, k, size, gv, alg):  # pragma: no cover - compiled
    """Horner's coefficients ``q_i`` of the rest's gradient, ``sum_l w_l
    e_l(x without j) = sum_i q_i (-x_j)^i`` with ``w_m = g (a_{m+1} / A -
    a_{m+2} / B)``, and the top k's gradients, from ``e_m(u without u_t)``
    by division (``e_m = a_m - u_t e_{m-1}``)."""
    u, a, b, w, q, top_grad, inv_a, inv_b = alg[1:7] + alg[8:10]
    for m in range(size):
        for r in range(n_lanes):
            w[m, r] = gv[r] * (a[m + 1, r] * inv_a[r] - a[m + 2, r] * inv_b[r])
    for i in range(size):
        for r in range(n_lanes):
            q[i, r] = 0.0
        for m in range(i, size):
            for r in range(n_lanes):
                q[i, r] += w[m, r] * b[m - i, r]
    for t in range(k):
        for r in range(n_lanes):
            e_m = 1.0
            num_a = b[1, r]
            num_b = b[0, r]
            for m in range(1, size):
                e_m = (a[m, r] - u[t, r] * e_m) if m < k else 0.0  # 0 beyond k - 1
                num_a += b[m + 1, r] * e_m
                num_b += b[m, r] * e_m
            top_grad[t, r] = -gv[r] * u[t, r] * (num_a * inv_a[r] - num_b * inv_b[r])


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
    is the algebra's size, 1, 5 or 10): one vectorised pass."""
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

    The algebra's size (1, 5 or 10) picks one of three compiled kernels,
    each compiled the first time it is needed: a user of one k compiles one
    third of the code."""
    kernel = _KERNELS[_size(k)]
    return kernel(s, y, k, (margin, tau, gscale), loss, grad, (with_grad, nan_rows))


def _size(k: int) -> int:
    """The size of the algebra for ``k`` (1 to 10): 1, 5 or 10."""
    return 1 if k == 1 else 5 if k <= 5 else 10


_size_of = jit(_size, inline=True)  # the same, in compiled code


# One kernel per size: an entry that checks the values and makes the work
# arrays, then the loop over the blocks of rows, without reference counts (a
# block takes views of a few dozen arrays).
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
    flag), else the work arrays made and ``rows`` run in them."""
    status = OK if flags[1] else _check(s, y)
    if status != OK:
        return status
    n, n_classes = s.shape
    lanes = max(1, min(n, _block_rows(n_classes)))  # (n = 0: no block)
    size = _size_of(k)
    x_rows = np.empty((lanes, n_classes))
    f = np.empty((103, lanes))  # every float of a block (two allocations
    ints = np.empty((_MAX_SIZE + 2, lanes), np.int64)  # cost less than twenty)
    work = (
        (  # a row's selection: the top, its classes, the bounded one's arrays
            np.empty(_MAX_SIZE),
            np.empty(_MAX_SIZE, np.int64),
            _picking(n_classes),
        ),
        _lane_work(n_classes, size),
        (  # per row of a block
            ints[0],  # the labels (0 for a bad row)
            ints[1],  # 1 where the row's values are good
            f[:10],  # the top k wrong scores
            ints[2:],  # and their classes
            f[10],  # c, the k-th
            f[11],  # the true class's x
            f[12],  # and score
            f[13],  # the losses
            f[14],  # g = gscale sigma / k
        ),
        (  # the algebra, per degree and row
            f[15:26],  # power sums
            f[26:36],  # u, the top's exponentials
            f[36:48],  # a = e(u)
            f[48:59],  # b = e(x)
            f[59:69],  # w
            f[69:79],  # Horner's coefficients
            f[79:89],  # the top's gradients
            f[89],  # A / B
            f[90],  # 1 / A
            f[91],  # 1 / B
            f[92],  # powers of the true class's x
            f[93:103],  # reduced arguments of u
        ),
        (x_rows, x_rows.view(np.int64), np.empty(n_classes), np.empty(_MAX_SIZE + 1)),
        np.zeros(_MAX_SIZE),  # a row's Horner's coefficients
    )
    return rows(s, s.view(np.int32), y, k, params, loss, grad, flags, work)


@jit(inline=True)
def _block_rows(n_classes):  # pragma: no cover - compiled
    """Rows per block: up to ``_LANES``, their exponentials within
    ``_BLOCK_VALUES`` float64 (in cache)."""
    return max(1, min(_LANES, _BLOCK_VALUES // n_classes))


@jit(inline=True)
def _rows(s, sbits, y, k, size, params, loss, grad, flags, work):  # pragma: no cover
    """The loop over the blocks of rows, the algebra at ``size`` (a constant)."""
    n = s.shape[0]
    lanes = work[2][0].shape[0]
    total = 0.0
    for i0 in range(0, n, lanes):
        n_lanes = min(lanes, n - i0)
        total += _block(
            s, sbits, y, i0, n_lanes, k, size, params, loss, grad, flags, work
        )
    return total
