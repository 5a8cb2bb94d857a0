"""Diffusion-QL's fast inference path: the actor's reverse chain and the critics' choice in numpy.

The same arithmetic as ``diffusion_ql.Diffusion.sample`` followed by the target critics' min-Q
choice, arranged so that a decision is few small numpy calls (at the Table I size a call costs more
in Python than in arithmetic, so the count of calls is what is cut):

- what does not depend on the noisy action is computed once per decision: the per-UE encoder, the
  context and the trunk, the trunk for all N steps together (the step embeddings' share of its
  first layer is computed at load), and per step the head's input from the UE embeddings and the
  step code (one (N, n, E) array);
- the per-slice sums of the noisy shares and their head projection are one product with a
  (2n, E) matrix built per decision from the slices of the n real UEs;
- biases ride in the products (a column of ones in the activations, a row of biases in the
  weights), and so do the per-step scalars of the update: with d_i = -sqrt(1 - abar_i)/sqrt(abar_i),
  x0^ = clip(x / sqrt(abar_i) + d_i eps, -1, 1) and c1_i > 0, the last layer's weights of step i
  are c1_i d_i W (bias c1_i d_i b) and c1_i x0^ = clip(c1_i x / sqrt(abar_i) + that product,
  -c1_i, c1_i): one clip, then x <- c1_i x0^ + c2_i x + sigma_i z;
- Mish is x tanh(log1p(e^x)), four ufunc calls, exact (e^x = inf gives x, as Mish does);
- only the n real UEs are touched; all candidates go through each call together; every
  intermediate lives in a buffer allocated once per (candidates, UEs).

Results equal the PyTorch loop's within float32 rounding (``tests/test_diffusion_ql.py`` checks
1e-4 on the shares and the same critic's choice); ``benchmarks/bench_diffusion.py`` times both.
"""

from __future__ import annotations

import numpy as np
import torch

from .diffusion_ql import CANONICAL_FLOOR, step_embedding

F32 = np.float32


def _lin(layer) -> tuple[np.ndarray, np.ndarray | None]:
    w = layer.weight.detach().cpu().numpy().T.astype(F32).copy()
    b = None if layer.bias is None else layer.bias.detach().cpu().numpy().astype(F32).copy()
    return w, b


def _with_bias(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """(in + 1, out): the weights with the bias as the last row (for inputs ending in a column of ones)."""
    return np.ascontiguousarray(np.vstack([w, np.zeros((1, w.shape[1]), F32) if b is None else b[None, :]]), dtype=F32)


def mish(x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """out = x tanh(softplus(x)) with softplus = log1p(e^x) (x may be overwritten only via ``tmp``)."""
    np.exp(x, out=tmp)
    np.log1p(tmp, out=tmp)
    np.tanh(tmp, out=tmp)
    return np.multiply(x, tmp, out=out)


class _Buffers:
    """Every intermediate of one decision with C candidates and n real UEs (allocated once)."""

    def __init__(self, c: int, n: int, e: int):
        self.x = np.empty((c, n, 2), F32)  # the noisy action x_i (of all candidates)
        self.x_flat, self.x_rows = self.x.reshape(c, 2 * n), self.x.reshape(c * n, 2)
        self.pool = np.empty((c, e), F32)
        self.pre = np.empty((c, n, e), F32)
        self.pre_rows = self.pre.reshape(c * n, e)
        self.act = np.ones((c * n, e + 1), F32)  # activations and a column of ones (the bias)
        self.act_e = self.act[:, :e]
        self.h = np.empty((c * n, e), F32)
        self.tmp = np.empty((c * n, e), F32)
        self.out = np.empty((c * n, 2), F32)
        self.out3 = self.out.reshape(c, n, 2)
        self.xs = np.empty((c, n, 2), F32)


class FastSampler:
    """Numpy copy of an actor (``Diffusion``) and critic (``Critic``) for decisions (see the module docstring)."""

    def __init__(self, actor, critic):
        net, spec = actor.net, actor.net.spec
        self.spec, self.n_steps = spec, actor.n_steps
        self.s_slices = spec.n_slices
        self.phi = [_lin(m) for m in net.encoder.phi if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            emb = net.step_mlp(step_embedding(torch.arange(self.n_steps), net.embed_dim))
        w_in, b_in = _lin(net.trunk_in)
        n_ctx = net.encoder.out_dim
        self.w_ctx = np.ascontiguousarray(w_in[:n_ctx])
        self.step_part = (emb.numpy().astype(F32) @ w_in[n_ctx:]) + b_in  # (N, H)
        self.trunk = [_with_bias(*_lin(m)) for m in net.trunk]  # (H + 1, H) each
        self.code = _lin(net.head_code)
        self.w_ue = _lin(net.head_ue)[0]
        self.w_x = _lin(net.head_x)[0]
        self.w_pool_half = 0.5 * _lin(net.head_pool)[0]  # (2S, E): the pool reads shares (x + 1) / 2
        lins = [m for m in net.head if isinstance(m, torch.nn.Linear)]
        self.w2 = _with_bias(*_lin(lins[0]))  # (E + 1, E)
        w3, b3 = _lin(lins[1])
        coef = {k: getattr(actor, k).cpu().numpy().astype(np.float64) for k in
                ("sqrt_abar", "sqrt_1m_abar", "c1", "c2", "sigma")}
        d = -coef["sqrt_1m_abar"] / coef["sqrt_abar"]
        c1 = coef["c1"]
        # per step i: the last layer scaled by c1_i d_i, the x term's factor c1_i / sqrt(abar_i), clip bound c1_i
        self.w3 = np.stack([_with_bias(w3 * F32(c1[i] * d[i]), b3 * F32(c1[i] * d[i])) for i in range(self.n_steps)])
        self.x_coef = (c1 / coef["sqrt_abar"]).astype(F32)
        self.c1 = c1.astype(F32)
        self.c2 = coef["c2"].astype(F32)
        self.sigma = coef["sigma"].astype(F32)
        self._bufs: dict = {}
        self.critics = []
        for q in (critic.q1, critic.q2):
            psi = [_lin(m) for m in q.psi if isinstance(m, torch.nn.Linear)]
            head = [_lin(m) for m in q.q if isinstance(m, torch.nn.Linear)]
            self.critics.append((psi, head))

    def _encode(self, x: np.ndarray, n: int):
        spec = self.spec
        f = spec.n_ue_features
        ue = x[: spec.max_ues * f].reshape(spec.max_ues, f)[:n]
        glob = x[spec.max_ues * f:]
        onehot = ue[:, 1:1 + spec.n_slices]
        h = ue
        for w, b in self.phi:
            h = h @ w
            h += b
            np.maximum(h, 0.0, out=h)
        count = onehot.sum(axis=0)
        pooled = (onehot.T @ h) / np.maximum(count, 1.0)[:, None]
        context = np.concatenate([glob, pooled.ravel(), count / spec.max_ues]).astype(F32)
        return ue, onehot, h, context

    def _trunk(self, context: np.ndarray) -> np.ndarray:
        """Step codes' trunk output (N, H) for all steps at once."""
        n_steps, hid = self.step_part.shape
        z = np.ones((n_steps, hid + 1), F32)  # the last column: ones, for the biases
        zv = z[:, :hid]
        y, tmp = np.empty((n_steps, hid), F32), np.empty((n_steps, hid), F32)
        np.dot(context, self.w_ctx, out=y[0])
        np.add(self.step_part, y[0], out=y)
        mish(y, zv, tmp)
        for w in self.trunk:
            np.dot(z, w, out=y)
            zv += mish(y, y, tmp)
        return zv

    def _buffers(self, c: int, n: int) -> _Buffers:
        key = (c, n)
        if key not in self._bufs:
            self._bufs[key] = _Buffers(c, n, self.w_x.shape[1])
        return self._bufs[key]

    def sample(self, x: np.ndarray, n: int, noise: np.ndarray) -> tuple[np.ndarray, int]:
        """noise (N + 1, C, n, 2) -> actions (C, 2 U_max) and the index of the best by min-Q."""
        ue, onehot, emb, context = self._encode(x, n)
        z = self._trunk(context)
        # per step i, the head's input without the x terms: UE embedding part + step code + the
        # pool term's offset (the pool reads shares = (x + 1) / 2, i.e. 0.5 x + 0.5 per UE)
        const = z @ self.code[0]
        const += self.code[1] + onehot.sum(axis=0).repeat(2) @ self.w_pool_half
        base = (emb @ self.w_ue)[None, :, :] + const[:, None, :]  # (N, n, E)
        # (2n, E): row (v, d) projects x[v, d] onto the pool term through v's slice
        slice_of = np.argmax(onehot, axis=1) if n else np.zeros(0, dtype=np.int64)
        pool_w = np.ascontiguousarray(self.w_pool_half[(2 * slice_of[:, None] + np.arange(2)).ravel()])
        c = noise.shape[1]
        b = self._buffers(c, n)
        xt, pre, act, act_e, h, tmp, out, out3 = b.x, b.pre, b.act, b.act_e, b.h, b.tmp, b.out, b.out3
        xt[...] = noise[0]
        zs = noise[1:] * self.sigma[::-1, None, None, None]  # sigma_i z for the k-th step
        w2, w3, w_x = self.w2, self.w3, self.w_x
        for k, i in enumerate(range(self.n_steps - 1, -1, -1)):
            np.dot(b.x_flat, pool_w, out=b.pool)
            np.dot(b.x_rows, w_x, out=b.pre_rows)
            pre += base[i]
            pre += b.pool[:, None, :]
            mish(b.pre_rows, act_e, tmp)
            np.dot(act, w2, out=h)
            mish(h, act_e, tmp)
            np.dot(act, w3[i], out=out)
            np.multiply(xt, self.x_coef[i], out=b.xs)
            out3 += b.xs
            np.clip(out3, -self.c1[i], self.c1[i], out=out3)  # c1_i x0^
            xt *= self.c2[i]
            xt += out3
            xt += zs[k]
        m = self.spec.max_ues
        actions = np.zeros((c, 2, m), dtype=F32)
        shares = (xt + 1.0) * 0.5  # canonical form: each column over its largest entry
        if n:
            shares /= np.maximum(shares.max(axis=1, keepdims=True), CANONICAL_FLOOR)
        actions[:, :, :n] = shares.transpose(0, 2, 1)
        actions = actions.reshape(c, 2 * m)
        best = 0 if c == 1 else int(np.argmax(self.min_q(ue, onehot, x, actions[:, :n], actions[:, m:m + n])))
        return actions, best

    def min_q(self, ue, onehot, x, prb, power) -> np.ndarray:
        """(C,) min over the two target critics of Q(s, candidate)."""
        spec = self.spec
        glob = x[spec.max_ues * spec.n_ue_features:]
        c, n = prb.shape
        shares = np.stack([prb, power], axis=2)  # (C, n, 2)
        inp = np.concatenate([np.broadcast_to(ue, (c, n, ue.shape[1])), shares], axis=2)
        totals = (onehot.T @ shares).reshape(c, -1)
        out = None
        for psi, head in self.critics:
            h = inp
            for w, b in psi:
                h = h @ w
                h += b
                h = mish(h, h, np.empty_like(h))
            pooled = (onehot.T @ h).reshape(c, -1) / spec.max_ues
            q = np.concatenate([pooled, np.broadcast_to(glob, (c, glob.size)), totals], axis=1)
            for j, (w, b) in enumerate(head):
                q = q @ w
                q += b
                if j < len(head) - 1:
                    q = mish(q, q, np.empty_like(q))
            out = q[:, 0] if out is None else np.minimum(out, q[:, 0])
        return out
