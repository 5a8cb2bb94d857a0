"""Diffusion-QL's fast inference path: the actor's reverse chain and the critics' choice in numpy.

The same arithmetic as ``diffusion_ql.Diffusion.sample`` followed by the target critics' min-Q
choice, arranged so that one decision costs few small calls:

- the per-UE encoder, the context and the trunk run once per decision, the trunk for all N steps
  together (the step embedding's part of the trunk's first layer is computed at load);
- only the per-UE head runs N times, on the real UEs only (padding rows are never touched) and
  on all candidates at once;
- weights are float32 arrays laid out for ``x @ W``; biases are added in place.

The result equals the PyTorch loop's within float32 rounding (``tests/test_diffusion_ql.py``
checks 1e-4 on the shares); ``benchmarks/bench_diffusion.py`` times both.
"""

from __future__ import annotations

import numpy as np
import torch

from .diffusion_ql import CANONICAL_FLOOR, step_embedding


def _lin(layer) -> tuple[np.ndarray, np.ndarray | None]:
    w = layer.weight.detach().cpu().numpy().T.astype(np.float32).copy()
    b = None if layer.bias is None else layer.bias.detach().cpu().numpy().astype(np.float32).copy()
    return w, b


#: Above this, mish(x) = x to float32 precision (and exp would overflow further up).
MISH_LINEAR_FROM = 20.0


def mish(x: np.ndarray, buf: np.ndarray | None = None) -> np.ndarray:
    """x tanh(softplus(x)) in place, as x u(u + 2) / (u(u + 2) + 2) with u = e^x: seven fast ufunc
    calls (numpy's float32 logaddexp is not vectorised and costs ten times more)."""
    u = np.minimum(x, MISH_LINEAR_FROM, out=buf)
    np.exp(u, out=u)
    t = u + 2.0
    u *= t
    np.add(u, 2.0, out=t)
    u /= t
    x *= u
    return x


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


class FastSampler:
    """Numpy copy of an actor (``Diffusion``) and critic (``Critic``) for decisions (see the module docstring)."""

    def __init__(self, actor, critic):
        net, spec = actor.net, actor.net.spec
        self.spec, self.n_steps = spec, actor.n_steps
        self.s_slices = spec.n_slices
        phi = [m for m in net.encoder.phi if isinstance(m, torch.nn.Linear)]
        self.phi = [_lin(m) for m in phi]
        with torch.no_grad():
            emb = net.step_mlp(step_embedding(torch.arange(self.n_steps), net.embed_dim))
        w_in, b_in = _lin(net.trunk_in)
        n_ctx = net.encoder.out_dim
        self.w_ctx = w_in[:n_ctx]
        self.step_part = (emb.numpy().astype(np.float32) @ w_in[n_ctx:]) + b_in  # (N, H)
        self.trunk = [_lin(m) for m in net.trunk]
        self.code = _lin(net.head_code)
        self.w_ue = _lin(net.head_ue)[0]
        self.w_x = _lin(net.head_x)[0]
        self.w_pool = _lin(net.head_pool)[0]
        self.w_pool_half = 0.5 * self.w_pool
        lins = [m for m in net.head if isinstance(m, torch.nn.Linear)]
        self.h2, self.h3 = _lin(lins[0]), _lin(lins[1])
        coef = {k: getattr(actor, k).cpu().numpy().astype(np.float32) for k in ("sqrt_1m_abar", "c1", "c2", "sigma")}
        self.s1, self.c1, self.c2, self.sigma = coef["sqrt_1m_abar"], coef["c1"], coef["c2"], coef["sigma"]
        self.inv_s0 = (1.0 / actor.sqrt_abar.cpu().numpy()).astype(np.float32)
        self.b_coef = -self.s1 * self.inv_s0
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
            relu(h)
        count = onehot.sum(axis=0)
        pooled = (onehot.T @ h) / np.maximum(count, 1.0)[:, None]
        context = np.concatenate([glob, pooled.ravel(), count / spec.max_ues]).astype(np.float32)
        return ue, onehot, h, context

    def _buffers(self, c: int, n: int) -> dict:
        key = (c, n)
        if key not in self._bufs:
            e = self.w_x.shape[1]
            f32 = np.float32
            self._bufs[key] = {"pre": np.empty((c, n, e), f32), "h": np.empty((c, n, e), f32),
                               "act": np.empty((c, n, e), f32), "eps": np.empty((c, n, 2), f32),
                               "tmp": np.empty((c, n, 2), f32), "pool": np.empty((c, self.s_slices, 2), f32),
                               "row": np.empty((c, e), f32)}
        return self._bufs[key]

    def sample(self, x: np.ndarray, n: int, noise: np.ndarray) -> tuple[np.ndarray, int]:
        """noise (N + 1, C, n, 2) -> actions (C, 2 U_max) and the index of the best by min-Q."""
        ue, onehot, emb, context = self._encode(x, n)
        z = context @ self.w_ctx + self.step_part  # (N, H): the trunk for every step at once
        mish(z)
        for w, b in self.trunk:
            y = z @ w
            y += b
            z += mish(y)
        # per-step constant of the head: step code + the pool term's share offset (shares = (x + 1) / 2)
        const = z @ self.code[0]
        const += self.code[1] + 0.5 * (onehot.sum(axis=0).repeat(2) @ self.w_pool)
        ue_proj = emb @ self.w_ue  # (n, E)
        (w2, b2), (w3, b3) = self.h2, self.h3
        c = noise.shape[1]
        buf = self._buffers(c, n)
        pre, h, act, eps, tmp, pool, row = (buf[k] for k in ("pre", "h", "act", "eps", "tmp", "pool", "row"))
        onehot_t = np.ascontiguousarray(onehot.T)
        xt = noise[0].copy()  # (C, n, 2)
        z_scaled = noise[1:] * self.sigma[::-1, None, None, None]  # sigma_i z for the k-th step
        for k, i in enumerate(range(self.n_steps - 1, -1, -1)):
            np.matmul(onehot_t, xt, out=pool)  # per-slice sums of x (C, S, 2)
            np.matmul(pool.reshape(c, -1), self.w_pool_half, out=row)
            row += const[i]
            np.matmul(xt, self.w_x, out=pre)
            pre += ue_proj
            pre += row[:, None, :]
            np.matmul(mish(pre, act), w2, out=h)
            h += b2
            np.matmul(mish(h, act), w3, out=eps)
            eps += b3
            eps *= self.b_coef[i]  # x0^ = clip(x / sqrt(abar) - sqrt(1 - abar) / sqrt(abar) eps)
            np.multiply(xt, self.inv_s0[i], out=tmp)
            eps += tmp
            np.clip(eps, -1.0, 1.0, out=eps)
            eps *= self.c1[i]
            xt *= self.c2[i]
            xt += eps
            xt += z_scaled[k]
        m = self.spec.max_ues
        actions = np.zeros((c, 2, m), dtype=np.float32)
        shares = (xt + 1.0) * 0.5  # canonical form: each column over its largest entry
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
                mish(h)
            pooled = (onehot.T @ h).reshape(c, -1) / spec.max_ues
            q = np.concatenate([pooled, np.broadcast_to(glob, (c, glob.size)), totals], axis=1)
            for j, (w, b) in enumerate(head):
                q = q @ w
                q += b
                if j < len(head) - 1:
                    mish(q)
            out = q[:, 0] if out is None else np.minimum(out, q[:, 0])
        return out
