"""Diffusion-QL's fast inference path: the whole decision's network work in one compiled call.

The same arithmetic as ``diffusion_ql.Diffusion.sample`` followed by the target critics' min-Q
choice, compiled with numba (``cache=True``: the first process on a machine compiles, 41 s of CPU
measured under load; later ones load the machine code from ``__pycache__``). One call per decision
does it all: the per-UE encoder and the context, the trunk for all N steps together (the step
embeddings' share of its first layer is computed at load), the N head steps for all candidates
(one (C n, E) matrix per product: the candidates share every weight read), the shares
(``Config.share_map``) and, with more than one candidate, both target critics when the choice is
theirs (``select: critic``). At the Table I size
a numpy version cost more in calls than in arithmetic (about 20 calls per step); compiled, what is
left is arithmetic.

Arranged so that little is computed per step:

- the head's input without the noisy-action terms is per UE and step (UE embedding, step code, the
  pool term's constant: the pool reads shares = (x + 1) / 2, i.e. 0.5 x + 0.5 per UE);
- the per-slice sums of the noisy shares go through the head's pool projection as one (n, 2, E)
  matrix built per decision from the n real UEs' slices;
- with d_i = -sqrt(1 - abar_i) / sqrt(abar_i), x0^ = clip(x / sqrt(abar_i) + d_i eps, -1, 1), and
  c1_i > 0, the last layer of step i is stored times c1_i d_i, so c1_i x0^ = clip(c1_i x / sqrt(abar_i)
  + that layer's output, -c1_i, c1_i); then x <- c1_i x0^ + c2_i x + sigma_i z;
- Mish, x tanh(log1p(e^x)), is x t / (t + 2) with t = e^x (e^x + 2) (the same function: tanh of
  log(1 + n) is ((1 + n)^2 - 1) / ((1 + n)^2 + 1)), e^x by a range reduction to |r| <= ln2 / 2 and a
  degree-7 polynomial, so the loops vectorise (float32, fused multiply-adds, within 1e-6 of torch's
  Mish, ``_mish``);
- only the n real UEs are touched; matrix products run in float32 with the weights as loaded.

Results equal the PyTorch loop's within float32 rounding: ``tests/test_diffusion_ql.py`` checks
1e-4 on the shares and the same critic's choice; ``benchmarks/bench_diffusion.py`` reports the
largest difference and the share of states with the same decoded allocation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, types
from numba.extending import intrinsic

from .diffusion_ql import CANONICAL_FLOOR, SHARE_MAPS, step_embedding

F32 = np.float32
_LOG2E = F32(1.0 / math.log(2.0))
_LN2_HI, _LN2_LO = F32(0.693359375), F32(math.log(2.0) - 0.693359375)  # ln 2 in two parts (Cody-Waite)
_ROUND = F32(1.5 * 2**23)  # adding then subtracting it rounds a float32 of |y| < 2^22 to an integer
_INV3, _INV4, _INV5, _INV6, _INV7 = (F32(1.0 / math.factorial(i)) for i in range(3, 8))
_ONE, _TWO, _HALF = F32(1.0), F32(2.0), F32(0.5)
_E_LO, _E_HI = F32(-87.0), F32(20.0)  # e^x is taken of x clamped here: beyond 20, t / (t + 2) is 1
_FLOOR = F32(CANONICAL_FLOOR)
_JIT = dict(cache=True, error_model="numpy")  # numpy's error model: a division does not test for 0


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits`` (a register move; vectorises)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return sig, codegen


@njit(fastmath={"contract"}, **_JIT)
def _mish(x, out):
    """out = Mish(x) on 1-D float32 arrays of one size, in one vectorised pass (products and sums
    contracted to fused multiply-adds where the CPU has them: a third fewer instructions; the result
    differs from the unfused one by at most 2.4e-7)."""
    for j in range(x.size):
        xj = x[j]
        v = min(max(xj, _E_LO), _E_HI)
        k = (v * _LOG2E + _ROUND) - _ROUND  # nearest integer to v / ln 2
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = _ONE + r * (_ONE + r * (_HALF + r * (_INV3 + r * (_INV4 + r * (_INV5 + r * (_INV6 + r * _INV7))))))
        n = p * _f32_from_bits((np.int32(k) + np.int32(127)) << 23)  # e^x = e^r 2^k
        t = n * (n + _TWO)
        out[j] = xj * (t / (t + _TWO))


@njit(**_JIT)
def _mish2d(x, out):
    """``_mish`` of a C-contiguous 2-D float32 array into ``out`` (same shape)."""
    _mish(x.reshape(x.size), out.reshape(out.size))


@njit(**_JIT)
def _linear(x, w, b, relu):
    """x (R, I) @ w (I, O) + b (O,), then ReLU if ``relu``."""
    y = np.dot(x, w)
    for r in range(y.shape[0]):
        for o in range(y.shape[1]):
            v = y[r, o] + b[o]
            y[r, o] = max(v, F32(0.0)) if relu else v
    return y


@njit(**_JIT)
def _encode(ue, glob, phi1, b1, phi2, b2, n_slices, max_ues):
    """Per-UE embeddings (n, E) of the real UEs' rows ue (n, F), their slices (n,), slice counts (S,)
    and the context (C,) = globals, per-slice mean embeddings, counts / max_ues."""
    n, e = ue.shape[0], phi2.shape[1]
    h = _linear(_linear(ue, phi1, b1, True), phi2, b2, True)
    count = np.zeros(n_slices, F32)
    pooled = np.zeros((n_slices, e), F32)
    slice_of = np.zeros(n, np.int64)
    for v in range(n):
        for s in range(n_slices):
            o = ue[v, 1 + s]
            if o != 0:
                slice_of[v] = s
                count[s] += o
                for j in range(e):
                    pooled[s, j] += o * h[v, j]
    g = glob.size
    context = np.empty(g + n_slices * (e + 1), F32)
    context[:g] = glob
    for s in range(n_slices):
        c = max(count[s], _ONE)
        for j in range(e):
            context[g + s * e + j] = pooled[s, j] / c
        context[g + n_slices * e + s] = count[s] / F32(max_ues)
    return h, slice_of, count, context


@njit(**_JIT)
def _trunk(context, w_ctx, step_part_t, trunk_t):
    """Trunk output (N, H) for all steps, computed transposed (one (H, H + 1) x (H + 1, N) product per
    layer: the BLAS kernels run a third faster with the hidden units as rows than with the N = 20
    steps as rows): step_part_t (H, N) holds the steps' share of the first layer plus its bias;
    trunk_t (layers - 1, H, H + 1) the residual layers transposed with their biases as last column."""
    hid, n_steps = step_part_t.shape
    y0 = np.dot(context.reshape(1, context.size), w_ctx)
    z = np.ones((hid + 1, n_steps), F32)  # last row: ones, for the biases
    y = np.empty((hid, n_steps), F32)
    for j in range(hid):
        for i in range(n_steps):
            y[j, i] = step_part_t[j, i] + y0[0, j]
    act = np.empty((hid, n_steps), F32)
    _mish2d(y, act)
    z[:hid] = act
    for layer in range(trunk_t.shape[0]):
        np.dot(trunk_t[layer], z, y)
        _mish2d(y, act)
        z[:hid] += act
    return np.ascontiguousarray(z[:hid].T)


@njit(**_JIT)
def _chain(x, zs, emb, const, pool_w, w_x, w2, b2, w3, b3, x_coef, c1, c2):
    """The reverse chain in place on x (C, n, 2): zs (N, C, n, 2) sigma_i z of the k-th step; per
    UE and step the head input's constant part emb (n, E) + const (N, E); pool_w (n, 2, E); the head
    w_x (2, E), w2 (E, E), b2 (E,), and per step the scaled last layer w3 (N, E, 2), b3 (N, 2)."""
    c_n, n, _ = x.shape
    n_steps, e = const.shape
    rows = c_n * n
    if rows == 0:
        return
    pre = np.empty((rows, e), F32)
    act = np.empty((rows, e), F32)
    pool = np.empty(e, F32)
    for k in range(n_steps):
        i = n_steps - 1 - k
        for c in range(c_n):
            pool[:] = 0.0
            for v in range(n):
                a0, a1 = x[c, v, 0], x[c, v, 1]
                for j in range(e):
                    pool[j] += a0 * pool_w[v, 0, j] + a1 * pool_w[v, 1, j]
            for v in range(n):
                a0, a1, r = x[c, v, 0], x[c, v, 1], c * n + v
                for j in range(e):
                    pre[r, j] = emb[v, j] + const[i, j] + pool[j] + a0 * w_x[0, j] + a1 * w_x[1, j]
        _mish2d(pre, act)
        h = np.dot(act, w2)
        for r in range(rows):
            for j in range(e):
                h[r, j] += b2[j]
        _mish2d(h, act)
        out = np.dot(act, w3[i])
        lim = c1[i]
        for c in range(c_n):
            for v in range(n):
                for d in range(2):
                    xo = x[c, v, d]
                    x0 = min(max(out[c * n + v, d] + b3[i, d] + x_coef[i] * xo, -lim), lim)  # c1_i x0^
                    x[c, v, d] = x0 + c2[i] * xo + zs[k, c, v, d]


@njit(**_JIT)
def _sample(ue, glob, noise, phi1, b1, phi2, b2, n_slices, max_ues, w_ctx, step_part, trunk, code_w, code_b,
            w_ue, w_pool_half, w_x, w2, b2h, w3, b3, x_coef, c1, c2, sigma, share_map):
    """Actions (C, 2 max_ues): shares of the chain's x0 from noise (N + 1, C, n, 2), by ``share_map``
    (an index into ``diffusion_ql.SHARE_MAPS``: 0 canonical, 1 absolute, 2 sqrt)."""
    n = ue.shape[0]
    h, slice_of, count, context = _encode(ue, glob, phi1, b1, phi2, b2, n_slices, max_ues)
    z = _trunk(context, w_ctx, step_part, trunk)
    const = np.dot(z, code_w)
    n_steps, e = const.shape
    offset = np.zeros(e, F32)  # the pool term's constant 0.5 per UE: counts times the projection
    for s in range(n_slices):
        for d in range(2):
            for j in range(e):
                offset[j] += count[s] * w_pool_half[2 * s + d, j]
    for i in range(n_steps):
        for j in range(e):
            const[i, j] += code_b[j] + offset[j]
    emb = np.dot(h, w_ue) if n else np.zeros((0, e), F32)
    pool_w = np.empty((n, 2, e), F32)
    for v in range(n):
        for d in range(2):
            pool_w[v, d, :] = w_pool_half[2 * slice_of[v] + d]
    c_n = noise.shape[1]
    x = noise[0].copy()
    zs = np.empty((n_steps, c_n, n, 2), F32)
    for k in range(n_steps):
        zs[k] = noise[k + 1] * sigma[n_steps - 1 - k]
    _chain(x, zs, emb, const, pool_w, w_x, w2, b2h, w3, b3, x_coef, c1, c2)
    actions = np.zeros((c_n, 2 * max_ues), F32)
    for c in range(c_n):
        for d in range(2):
            top = F32(0.0)
            for v in range(n):
                a = (x[c, v, d] + _ONE) * _HALF
                if share_map == 2:
                    a = a * a
                actions[c, d * max_ues + v] = a
                top = max(top, a)
            if share_map == 0:
                top = max(top, _FLOOR)
                for v in range(n):
                    actions[c, d * max_ues + v] /= top
    return actions


@njit(**_JIT)
def _dense(x, w, b, act):
    """x (R, I) @ w (I, O) + b, then Mish if ``act``."""
    y = np.dot(x, w)
    for r in range(y.shape[0]):
        for o in range(y.shape[1]):
            y[r, o] += b[o]
    if act:
        out = np.empty_like(y)
        _mish2d(y, out)
        return out
    return y


@njit(**_JIT)
def _q_values(ue, glob, actions, max_ues, n_slices, psi_w, psi_b, q_w, q_b):
    """(C,) one critic's Q of each candidate's shares (actions (C, 2 max_ues)) for the real UEs' rows
    ue (n, F): per-UE MLP psi (Mish after each layer), per-slice sums / max_ues, globals, share totals."""
    c_n = actions.shape[0]
    n, f = ue.shape
    inp = np.empty((c_n * n, f + 2), F32)
    for c in range(c_n):
        for v in range(n):
            inp[c * n + v, :f] = ue[v]
            inp[c * n + v, f] = actions[c, v]
            inp[c * n + v, f + 1] = actions[c, max_ues + v]
    h = inp
    for layer in range(len(psi_w)):
        h = _dense(h, psi_w[layer], psi_b[layer], True)
    e, g = h.shape[1], glob.size
    q = np.zeros((c_n, n_slices * e + g + 2 * n_slices), F32)
    for c in range(c_n):
        for v in range(n):
            for s in range(n_slices):
                o = ue[v, 1 + s]
                if o != 0:
                    for j in range(e):
                        q[c, s * e + j] += o * h[c * n + v, j]
                    q[c, n_slices * e + g + 2 * s] += o * actions[c, v]
                    q[c, n_slices * e + g + 2 * s + 1] += o * actions[c, max_ues + v]
        for j in range(n_slices * e):
            q[c, j] /= F32(max_ues)
        q[c, n_slices * e:n_slices * e + g] = glob
    last = len(q_w) - 1
    for layer in range(last + 1):
        q = _dense(q, q_w[layer], q_b[layer], layer < last)
    return q[:, 0].copy()


def _lin(layer) -> tuple[np.ndarray, np.ndarray | None]:
    w = np.ascontiguousarray(layer.weight.detach().cpu().numpy().T, dtype=F32)
    b = None if layer.bias is None else np.ascontiguousarray(layer.bias.detach().cpu().numpy(), dtype=F32)
    return w, b


def _with_bias(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """(in + 1, out): the weights with the bias as the last row (for inputs ending in a column of ones)."""
    return np.ascontiguousarray(np.vstack([w, np.zeros((1, w.shape[1]), F32) if b is None else b[None, :]]), dtype=F32)


class FastSampler:
    """Compiled copy of an actor (``Diffusion``) and critic (``Critic``) for decisions (see the module docstring)."""

    def __init__(self, actor, critic, share_map: str = "canonical"):
        net, spec = actor.net, actor.net.spec
        self.spec, self.n_steps = spec, actor.n_steps
        (p1, b1), (p2, b2) = [_lin(m) for m in net.encoder.phi if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            emb = net.step_mlp(step_embedding(torch.arange(self.n_steps), net.embed_dim))
        w_in, b_in = _lin(net.trunk_in)
        n_ctx = net.encoder.out_dim
        hid = w_in.shape[1]
        trunk = np.stack([_with_bias(*_lin(m)) for m in net.trunk]) if len(net.trunk) else np.zeros((0, hid + 1, hid), F32)
        code_w, code_b = _lin(net.head_code)
        lins = [m for m in net.head if isinstance(m, torch.nn.Linear)]
        w2, b2h = _lin(lins[0])
        w3, b3 = _lin(lins[1])
        coef = {k: getattr(actor, k).cpu().numpy().astype(np.float64) for k in
                ("sqrt_abar", "sqrt_1m_abar", "c1", "c2", "sigma")}
        scale = coef["c1"] * -coef["sqrt_1m_abar"] / coef["sqrt_abar"]  # c1_i d_i per step
        self._weights = (
            p1, b1, p2, b2, spec.n_slices, spec.max_ues,
            np.ascontiguousarray(w_in[:n_ctx]),
            np.ascontiguousarray((emb.numpy().astype(F32) @ w_in[n_ctx:] + b_in).T),  # (H, N)
            np.ascontiguousarray(trunk.transpose(0, 2, 1), dtype=F32), code_w, code_b,  # (layers - 1, H, H + 1)
            _lin(net.head_ue)[0], np.ascontiguousarray(0.5 * _lin(net.head_pool)[0], dtype=F32),  # pool reads (x + 1) / 2
            _lin(net.head_x)[0], w2, b2h,
            np.ascontiguousarray(np.stack([w3 * F32(f) for f in scale]), dtype=F32),  # (N, E, 2)
            np.ascontiguousarray(np.stack([b3 * F32(f) for f in scale]), dtype=F32),
            (coef["c1"] / coef["sqrt_abar"]).astype(F32), coef["c1"].astype(F32),
            coef["c2"].astype(F32), coef["sigma"].astype(F32), SHARE_MAPS.index(share_map))
        self.critics = []
        for q in (critic.q1, critic.q2):
            psi = [_lin(m) for m in q.psi if isinstance(m, torch.nn.Linear)]
            head = [_lin(m) for m in q.q if isinstance(m, torch.nn.Linear)]
            self.critics.append(tuple(tuple(a[i] for a in layers) for layers in (psi, head) for i in (0, 1)))

    def sample(self, x: np.ndarray, n: int, noise: np.ndarray, critics: bool = True) -> tuple[np.ndarray, int]:
        """noise (N + 1, C, n, 2) -> actions (C, 2 U_max) and the index of the best by min-Q (0 without
        ``critics``: the caller chooses otherwise and the critics are not run)."""
        spec = self.spec
        f = spec.n_ue_features
        ue = np.ascontiguousarray(x[: spec.max_ues * f].reshape(spec.max_ues, f)[:n], dtype=F32)
        glob = np.ascontiguousarray(x[spec.max_ues * f:], dtype=F32)
        noise = np.ascontiguousarray(noise, dtype=F32)
        actions = _sample(ue, glob, noise, *self._weights)
        c, m = noise.shape[1], spec.max_ues
        best = int(np.argmax(self.min_q(ue, glob, actions))) if c > 1 and critics else 0
        return actions, best

    def min_q(self, ue: np.ndarray, glob: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(C,) min over the two target critics of Q(s, candidate) for actions (C, 2 U_max)."""
        spec = self.spec
        q1, q2 = (_q_values(ue, glob, actions, spec.max_ues, spec.n_slices, *w) for w in self.critics)
        return np.minimum(q1, q2)
