"""RowAdam: Adam over tensors whose first dimension indexes subjects, each row with its own
learning rate and its own step count (a batched refinement's per-subject schedules).

The update is torch.optim.Adam's (no weight decay, no amsgrad, betas (0.9, 0.999), eps 1e-8):
    m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2;  t <- t + 1
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
A row that is not updated at a step (torch.optim.Adam skips a parameter whose grad is None, e.g.
a subject's frozen log-scales) keeps its moments and its step count, exactly as torch's does.
Tested against torch.optim.Adam run on each row alone (tests/refine/test_batched.py).
"""

from __future__ import annotations

import torch


class RowAdam:
    def __init__(self, params: dict[str, torch.Tensor], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.betas, self.eps = betas, eps
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.count = {n: torch.zeros(p.shape[0], dtype=torch.int64) for n, p in params.items()}  # on the CPU

    @torch.no_grad()
    def step(self, lrs: dict[str, torch.Tensor], update: dict[str, torch.Tensor] | None = None) -> None:
        """lrs[name]: (S,) learning rates; update[name]: (S,) bool rows to update (default all)."""
        b1, b2 = self.betas
        for name, p in self.params.items():
            if p.grad is None:
                continue
            rows = None if update is None or bool(update[name].all()) else update[name]
            if rows is not None and not bool(rows.any()):
                continue
            g, m, v = p.grad, self.m[name], self.v[name]
            if rows is None:
                self.count[name] += 1
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(self._step_size(name, lrs[name], p.dim()) * m / self._denominator(name, v, p.dim()))
                continue
            idx = rows.cpu().nonzero()[:, 0]
            self.count[name][idx] += 1
            idx_p = idx.to(p.device)
            gi, mi, vi = g[idx_p], m[idx_p], v[idx_p]
            mi.lerp_(gi, 1 - b1)
            vi.mul_(b2).addcmul_(gi, gi, value=1 - b2)
            m[idx_p], v[idx_p] = mi, vi
            step_size = self._step_size(name, lrs[name], p.dim())[idx_p]
            p[idx_p] = p[idx_p] - step_size * mi / self._denominator(name, vi, p.dim(), idx)

    def _step_size(self, name: str, lr: torch.Tensor, dims: int) -> torch.Tensor:
        t = self.count[name].double()
        size = lr.double().cpu() / (1 - self.betas[0] ** t)
        p = self.params[name]
        return size.to(p.device, p.dtype).view(-1, *([1] * (dims - 1)))

    def _denominator(self, name: str, v: torch.Tensor, dims: int, idx: torch.Tensor | None = None) -> torch.Tensor:
        t = self.count[name].double() if idx is None else self.count[name][idx].double()
        root = torch.sqrt(1 - self.betas[1] ** t).to(v.device, v.dtype).view(-1, *([1] * (dims - 1)))
        return v.sqrt() / root + self.eps

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices) of every moment and count (the caller re-slices the params)."""
        for name in self.m:
            on = rows.to(self.m[name].device)
            self.m[name], self.v[name] = self.m[name][on].clone(), self.v[name][on].clone()
            self.count[name] = self.count[name][rows.cpu()].clone()

    def row_state(self, i: int) -> dict:
        return {n: {"m": self.m[n][i].cpu().clone(), "v": self.v[n][i].cpu().clone(), "count": int(self.count[n][i])}
                for n in self.m}

    def load_row(self, i: int, state: dict) -> None:
        for n, s in state.items():
            self.m[n][i], self.v[n][i] = s["m"].to(self.m[n].device), s["v"].to(self.v[n].device)
            self.count[n][i] = s["count"]
