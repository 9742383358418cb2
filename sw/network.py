"""The layered convergent network: parameters and the prototypical discrete dynamics.

State convention: ``s`` is a list ``[s_0, s_1, ..., s_L]`` of ``(batch, n_l)`` tensors, where
``s_0 = x`` is the clamped input and ``s_L`` the output. Parameters live in a plain dict whose
names are the checkpoint's array names:

* ``W{l}``, shape ``(n_{l+1}, n_l)``: forward weights from layer l to layer l+1, l = 0..L-1;
* ``b{l}``, shape ``(n_l,)``: bias of layer l, l = 1..L;
* ``B{l}``, shape ``(n_l, n_{l+1})``: backward weights from layer l+1 to layer l, l = 1..L-1,
  present only for untied networks (tied networks use ``W{l}^T``).

All functions are pure in the parameters, so autograd (BPTT, implicit gradients, homeostasis
probes) can differentiate through them, and they take complex states and nudges for the
holomorphic estimator.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .config import NetworkConfig
from .factored import FactoredWeight

Params = dict[str, torch.Tensor]
States = list[torch.Tensor]


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """rho: ``hardsigmoid`` = clamp(., 0, 1) (the hardware's), ``sigmoid``, or ``identity``."""
    if name == "hardsigmoid":
        return lambda u: u.clamp(0.0, 1.0)
    if name == "sigmoid":
        return torch.sigmoid
    if name == "identity":
        return lambda u: u
    raise ValueError(f"unknown activation {name!r}")


def layer_of(name: str) -> int:
    """The weight layer whose learning rate a parameter uses: ``W_l``, ``B_l`` -> l, ``b_l`` -> l-1."""
    l = int(name[1:])
    return l - 1 if name[0] == "b" else l


def init_params(net: NetworkConfig, generator: torch.Generator, dtype=torch.float32, device="cpu") -> Params:
    """Uniform ``+-gain/sqrt(fan_in)`` weights, zero biases; untied ``B_l`` per ``net.untied_init``."""
    params: Params = {}
    n = net.sizes
    for l in range(net.n_layers):
        bound = net.init_gain / math.sqrt(n[l])
        params[f"W{l}"] = (torch.rand(n[l + 1], n[l], generator=generator, dtype=torch.float64) * 2 - 1) * bound
        params[f"b{l + 1}"] = torch.zeros(n[l + 1], dtype=torch.float64)
    if not net.tied:
        for l in range(1, net.n_layers):
            if net.untied_init == "transpose":
                params[f"B{l}"] = params[f"W{l}"].T.clone()
            else:
                bound = net.init_gain / math.sqrt(n[l + 1] if net.untied_init == "independent" else n[l])
                params[f"B{l}"] = (torch.rand(n[l], n[l + 1], generator=generator, dtype=torch.float64) * 2 - 1) * bound
    return {k: v.to(dtype=dtype, device=device).contiguous() for k, v in params.items()}


def _times_transpose(weight, q: torch.Tensor) -> torch.Tensor:
    """``q weight^T`` for a tensor or a :class:`~eqprop.factored.FactoredWeight`."""
    return q @ weight.T if torch.is_tensor(weight) else weight.times_transpose(q)


def _times(weight, q: torch.Tensor) -> torch.Tensor:
    """``q weight`` for a tensor or a :class:`~eqprop.factored.FactoredWeight` (tied backward weights)."""
    return q @ weight if torch.is_tensor(weight) else weight.times(q)


def drive(net: NetworkConfig, params: Params, s: States, l: int) -> torch.Tensor:
    """Pre-activation of layer l: ``W_{l-1} s_{l-1} + B_l s_{l+1} + b_l`` (no B term at the output).

    Weights may be :class:`~eqprop.factored.FactoredWeight`s (a pending update, a cached input).
    """
    u = _times_transpose(params[f"W{l - 1}"], s[l - 1]) + params[f"b{l}"]
    if l < net.n_layers:
        B = params.get(f"B{l}")
        u = u + (_times(params[f"W{l}"], s[l + 1]) if B is None else _times_transpose(B, s[l + 1]))
    return u


def zero_states(net: NetworkConfig, x: torch.Tensor) -> States:
    """States start at 0; ``s_0`` is the clamped input."""
    return [x] + [x.new_zeros(x.shape[0], n) for n in net.sizes[1:]]


def step(net: NetworkConfig, params: Params, s: States, y: torch.Tensor | None = None, beta=0.0) -> States:
    """One synchronous step of the prototypical dynamics.

    Hidden: ``s_l <- rho(drive_l)``; output: ``s_L <- rho(drive_L) + beta (y - s_L)`` with the nudge
    outside rho. ``beta`` is a number or a ``(batch, 1)`` tensor (random-sign nudging, complex nudges).
    """
    rho = activation(net.activation)
    L = net.n_layers
    new = [s[0]] + [rho(drive(net, params, s, l)) for l in range(1, L + 1)]
    if y is not None and (torch.is_tensor(beta) or beta != 0):
        new[L] = new[L] + beta * (y - s[L])
    return new


def relax(net: NetworkConfig, params: Params, s: States, steps: int, y: torch.Tensor | None = None, beta=0.0) -> States:
    """Run ``steps`` steps of the dynamics from ``s``; ``W_0 s_0`` (the clamped input) is computed once."""
    params = {**params, "W0": FactoredWeight(params["W0"], 0.0, clamped=s[0])}
    for _ in range(steps):
        s = step(net, params, s, y, beta)
    return s


def free_phase(net: NetworkConfig, params: Params, x: torch.Tensor, steps: int) -> States:
    """The free phase from zero states; returns ``s*`` (after ``steps`` steps)."""
    return relax(net, params, zero_states(net, x), steps)


def convergence(net: NetworkConfig, params: Params, s: States) -> torch.Tensor:
    """Per-sample norm of the next free step from ``s``: how far from a fixed point ``s`` is."""
    nxt = step(net, params, s)
    return torch.sqrt(sum(((a - b) ** 2).sum(1) for a, b in zip(nxt[1:], s[1:])))


def loss(s_out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The cost ``1/2 ||s_L - y||^2``, averaged over the batch."""
    return 0.5 * ((s_out - y) ** 2).sum(1).mean()
