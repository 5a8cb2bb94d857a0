"""numpy's float64 summation order, compiled: one implementation for every kernel that must agree
with a numpy sum bit for bit (the feasibility core's RU totals, the state encoder, the decoder).

``np.add.reduce`` of a contiguous float64 run sums blocks of at most 128 terms with eight running
partial sums (``block_sum``) and, above 128 terms, the two halves apart (the first half rounded down
to a multiple of 8) before adding them (``pairwise_sum``). A compiled kernel that sums in another
order can differ from numpy's in the last bit, and then a budget comparison or an encoded byte
differs from the numpy reference. ``pairwise_sum`` runs the halving on an explicit stack: numba's
on-disk cache does not reload recursive functions safely. Tested against ``np.add.reduce`` at every
length around the block sizes (``tests/test_core_array_path.py``, ``tests/test_learning_encoding.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, error_model="numpy")


@njit(**_JIT)
def block_sum(a, lo, n):
    """numpy's sum of a[lo:lo + n] for n <= 128: eight running sums, combined pairwise, then the rest
    in order (fewer than 8 terms: in order)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i, m = 8, n - n % 8
    while i < m:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(**_JIT)
def pairwise_sum(a, lo, n):
    """numpy's sum of the float64 run a[lo:lo + n], any n >= 0, bit for bit."""
    if n <= 128:
        return block_sum(a, lo, n)
    # frames of the halving: (start, length, phase 0 = not split yet / 1 = left half pending /
    # 2 = right half pending with the left's sum kept); 64 levels cover any length
    st_lo, st_n = np.empty(64, np.int64), np.empty(64, np.int64)
    st_phase, st_left = np.zeros(64, np.int64), np.empty(64)
    depth, val, have = 0, 0.0, False
    st_lo[0], st_n[0] = lo, n
    while True:
        at, size = st_lo[depth], st_n[depth]
        half = size // 2 - (size // 2) % 8
        if have:  # a half of this frame is summed
            if st_phase[depth] == 1:
                st_left[depth], st_phase[depth], have = val, 2, False
                depth += 1
                st_lo[depth], st_n[depth], st_phase[depth] = at + half, size - half, 0
                continue
            val = st_left[depth] + val
        elif size <= 128:
            val, have = block_sum(a, at, size), True
        else:
            st_phase[depth] = 1
            depth += 1
            st_lo[depth], st_n[depth], st_phase[depth] = at, half, 0
            continue
        if depth == 0:
            return val
        depth -= 1
