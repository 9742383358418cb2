"""Reference gradients the EP estimates are measured against, and how they are compared.

* :func:`bptt_gradient`: backprop through time through the free phase from zero states.
* :func:`implicit_gradient`: the exact gradient at the free fixed point by recurrent backprop
  (Almeida-Pineda), ``dL/dtheta = lambda^T dF/dtheta`` with ``lambda = (I - dF/ds^T)^-1 dL/ds``.
* :func:`cauchy_estimate`: the holomorphic (Cauchy) N-point EP estimator with complex nudges
  ``beta_k = |beta| e^{2 pi i k / N}`` (float only, needs a holomorphic activation).

All return ``dict[name, tensor]`` keyed like the parameters. Gradients are ``dL/dtheta``;
EP directions approximate ``-dL/dtheta``.
"""

from __future__ import annotations

import math

import torch

from .config import NetworkConfig
from .errors import ConfigError
from .learning import rule_delta
from .network import Params, free_phase, loss, relax, step


def _leaves(params: Params) -> Params:
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}


def bptt_gradient(net: NetworkConfig, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int) -> dict[str, torch.Tensor]:
    """``dL/dtheta`` of the loss at the end of a ``steps``-step free phase, by BPTT."""
    with torch.enable_grad():
        leaves = _leaves(params)
        s = free_phase(net, leaves, x, steps)
        grads = torch.autograd.grad(loss(s[-1], y), list(leaves.values()), allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(leaves[k])).detach() for k, g in zip(leaves, grads)}


def implicit_gradient(
    net: NetworkConfig,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> dict[str, torch.Tensor]:
    """``dL/dtheta`` at the fixed point reached after ``steps`` free steps, by recurrent backprop.

    The adjoint ``lambda = dL/ds + (dF/ds)^T lambda`` is iterated to a relative change below ``tol``
    (it converges whenever the free dynamics does, being its linearization).
    """
    with torch.no_grad():
        s_star = free_phase(net, params, x, steps)
    with torch.enable_grad():
        leaves = _leaves(params)
        state = [s_star[0]] + [t.detach().requires_grad_(True) for t in s_star[1:]]
        out = step(net, leaves, state)[1:]
        dl_ds = [torch.zeros_like(t) for t in state[1:]]
        dl_ds[-1] = (s_star[-1] - y) / y.shape[0]
        lam = dl_ds
        for _ in range(max_iter):
            back = torch.autograd.grad(out, state[1:], grad_outputs=lam, retain_graph=True)
            new = [g + b for g, b in zip(dl_ds, back)]
            change = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(new, lam)))
            size = math.sqrt(sum(float((a**2).sum()) for a in new))
            lam = new
            if change <= tol * max(size, 1e-30):
                break
        grads = torch.autograd.grad(out, list(leaves.values()), grad_outputs=lam, allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(leaves[k])).detach() for k, g in zip(leaves, grads)}


def cauchy_estimate(
    net: NetworkConfig,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    beta: float,
    points: int,
    T1: int,
    T2: int,
) -> dict[str, torch.Tensor]:
    """The holomorphic EP estimate ``Re (1/N) sum_k dPhi(s^{beta_k}) / beta_k``, ``beta_k = |beta| e^{2 pi i k/N}``.

    By Cauchy's formula this converges to ``d/dbeta dPhi(s^beta)`` at 0 as N grows, whatever
    the size of the finite nudge. It approximates ``-dL/dtheta`` like the EP directions.
    """
    if net.activation == "hardsigmoid":
        raise ConfigError("the Cauchy estimator needs a holomorphic activation: use network.activation 'sigmoid' or 'identity'")
    if points < 2:
        raise ConfigError(f"the Cauchy estimator needs at least 2 points, got {points}")
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    cparams = {k: v.to(cdtype) for k, v in params.items()}
    s_star = free_phase(net, cparams, x.to(cdtype), T1)
    yc = y.to(cdtype)
    total = None
    for k in range(points):
        beta_k = beta * complex(math.cos(2 * math.pi * k / points), math.sin(2 * math.pi * k / points))
        s_k = relax(net, cparams, s_star, T2, yc, beta_k)
        coef = torch.full((x.shape[0],), 1.0 / (points * beta_k), dtype=cdtype, device=x.device)
        d = rule_delta(net, s_k, s_star, coef)
        total = d if total is None else {n: total[n] + d[n] for n in total}
    return {n: v.real.to(x.dtype) for n, v in total.items()}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors taken as flat vectors (0 when either is zero)."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    norm = float(a.norm() * b.norm())
    return float(a @ b) / norm if norm > 0 else 0.0


def weight_cosines(direction: dict[str, torch.Tensor], gradient: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per weight matrix, the cosine between an update direction and ``-gradient``."""
    return {k: cosine(direction[k], -gradient[k]) for k in direction if k[0] in "WB"}


def weight_angles(net: NetworkConfig, params: Params) -> dict[str, float]:
    """Per reciprocal pair, the angle in degrees between ``W_l`` and ``B_l^T`` (0 when tied)."""
    angles = {}
    for l in range(1, net.n_layers):
        if net.tied:
            angles[f"W{l}"] = 0.0
        else:
            c = max(-1.0, min(1.0, cosine(params[f"W{l}"], params[f"B{l}"].T)))
            angles[f"W{l}"] = math.degrees(math.acos(c))
    return angles
