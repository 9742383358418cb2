"""Jacobian homeostasis (Laborieux & Zenke): pull the network's Jacobian towards symmetry.

J is the Jacobian of the vector field's drive (the argument of rho) with respect to the activated
dynamic state ``(s_1, ..., s_L)``; its off-diagonal blocks are ``W_l`` and ``B_l``. The homeostatic
loss is ``L_h = 1/2 ||J - J^T||_F^2``. The paper's estimator uses Gaussian probes,
``||J e||^2 - e^T J^2 e`` (expectation ``L_h``), differentiated by autograd. For dense layered
nets ``L_h = sum_l ||W_l - B_l^T||^2``, whose gradient step of size ``lambda/2`` is the local rule
``W_l -= lambda (W_l - B_l^T)``, ``B_l -= lambda (B_l - W_l^T)`` the hardware applies.
"""

from __future__ import annotations

import torch

from .config import LearningConfig, NetworkConfig
from .network import Params, States, drive, free_phase


def _drive_of_flat_state(net: NetworkConfig, params: Params, x: torch.Tensor):
    """The map from the flattened dynamic state of one sample to the flattened drives."""
    sizes = net.sizes[1:]

    def f(flat: torch.Tensor) -> torch.Tensor:
        s = [x] + [part.unsqueeze(0) for part in torch.split(flat, sizes)]
        return torch.cat([drive(net, params, s, l)[0] for l in range(1, net.n_layers + 1)])

    return f


def state_jacobian(net: NetworkConfig, params: Params, s: States, create_graph: bool = False) -> torch.Tensor:
    """J (N x N, N = n_1 + ... + n_L) at the first sample of ``s``, by autograd."""
    f = _drive_of_flat_state(net, params, s[0][:1])
    flat = torch.cat([t[0] for t in s[1:]]).detach()
    return torch.autograd.functional.jacobian(f, flat, create_graph=create_graph)


def asymmetry_loss(J: torch.Tensor) -> torch.Tensor:
    """``1/2 ||J - J^T||_F^2``."""
    return 0.5 * ((J - J.T) ** 2).sum()


def symmetry_ratio(J: torch.Tensor) -> float:
    """``||J_sym|| / (||J_sym|| + ||J_anti||)``: 1 for a symmetric Jacobian, 0 for an antisymmetric one."""
    sym = torch.linalg.matrix_norm(0.5 * (J + J.T))
    anti = torch.linalg.matrix_norm(0.5 * (J - J.T))
    return float(sym / (sym + anti))


def probe_loss(net: NetworkConfig, params: Params, s: States, probes: int, generator: torch.Generator) -> torch.Tensor:
    """The paper's stochastic estimate of ``L_h``: mean over Gaussian probes of ``||J e||^2 - e^T J^2 e``."""
    f = _drive_of_flat_state(net, params, s[0][:1])
    flat = torch.cat([t[0] for t in s[1:]]).detach()
    total = flat.new_zeros(())
    for _ in range(probes):
        e = torch.randn(flat.shape, generator=generator, dtype=flat.dtype).to(flat.device)
        _, Je = torch.autograd.functional.jvp(f, flat, e, create_graph=True)
        _, JJe = torch.autograd.functional.jvp(f, flat, Je, create_graph=True)
        total = total + (Je @ Je) - (e @ JJe)
    return total / probes


def reciprocal_names(net: NetworkConfig) -> list[str]:
    """The parameters homeostasis acts on: every ``W_l`` and ``B_l`` of a reciprocal pair."""
    return [f"{kind}{l}" for l in range(1, net.n_layers) for kind in "WB"]


def local_rule_(net: NetworkConfig, params: Params, coef: float) -> None:
    """The local pairwise rule, in place: ``W_l -= coef (W_l - B_l^T)``, ``B_l -= coef (B_l - W_l^T)``."""
    for l in range(1, net.n_layers):
        gap = params[f"W{l}"] - params[f"B{l}"].T
        params[f"W{l}"].sub_(coef * gap)
        params[f"B{l}"].add_(coef * gap.T)


def probe_rule_(
    net: NetworkConfig, params: Params, s: States, coef: float, probes: int, generator: torch.Generator
) -> None:
    """A step of size ``coef/2`` down the autograd gradient of the probe estimate, in place."""
    names = reciprocal_names(net)
    with torch.enable_grad():
        leaves = {k: (v.detach().requires_grad_(True) if k in names else v) for k, v in params.items()}
        grads = torch.autograd.grad(probe_loss(net, leaves, s, probes, generator), [leaves[k] for k in names])
    with torch.no_grad():
        for name, g in zip(names, grads):
            params[name].sub_(0.5 * coef * g)


def apply_homeostasis(
    net: NetworkConfig, learn: LearningConfig, params: Params, x: torch.Tensor, passes: int, generator: torch.Generator
) -> None:
    """``passes`` homeostasis passes with the configured estimator; the probe estimator's J is taken
    at the free fixed point of the first sample of ``x``."""
    if learn.homeostasis == "local":
        for _ in range(passes):
            local_rule_(net, params, learn.homeostasis_coef)
    elif learn.homeostasis == "probe":
        s_free = free_phase(net, params, x[:1], learn.T1)
        for _ in range(passes):
            probe_rule_(net, params, s_free, learn.homeostasis_coef, learn.homeostasis_probes, generator)
