"""Checks that the theory of EP holds in this code, as numbers the tests assert and the bench reports.

The *theorem setting* is the one where the C-EP paper's Theorem 1 makes EP equal BPTT: tied
weights, dynamics that are exactly ``s <- dPhi/ds`` (identity activation: ``Phi`` is quadratic)
and a free phase converged to its fixed point. The hard-sigmoid dynamics of the hardware only
approximately follow a primitive function; :func:`ep_bptt_cosines` reports both.
"""

from __future__ import annotations


import numpy as np
import torch

from .config import LearningConfig, NetworkConfig
from .gradients import bptt_gradient, cauchy_estimate, implicit_gradient, weight_cosines
from .homeostasis import asymmetry_loss, probe_loss, local_rule_, reciprocal_names, state_jacobian
from .learning import nudged_phases
from .network import Params, free_phase, init_params

DTYPE = torch.float64


def small_problem(
    activation: str = "identity", tied: bool = True, sizes=(6, 10, 8, 4), batch: int = 8, seed: int = 0, radius: float = 0.4
) -> tuple[NetworkConfig, Params, torch.Tensor, torch.Tensor]:
    """A small float64 network, inputs in [0, 1] and one-hot targets.

    The recurrent weights are scaled so that the state-to-state Jacobian has spectral norm
    ``radius`` < 1: the free dynamics contracts and converges geometrically.
    """
    net = NetworkConfig(sizes=list(sizes), tied=tied, activation=activation, untied_init="independent")
    g = torch.Generator().manual_seed(seed)
    params = init_params(net, g, DTYPE)
    x = torch.rand(batch, sizes[0], generator=g, dtype=DTYPE)
    params = {k: v * 2 for k, v in params.items()}
    for name in params:
        if name[0] == "b":
            params[name] = (torch.rand(params[name].shape, generator=g, dtype=DTYPE) - 0.5) * 0.5
    s = [x] + [torch.zeros(batch, n, dtype=DTYPE) for n in sizes[1:]]
    norm = float(torch.linalg.matrix_norm(state_jacobian(net, params, s), ord=2))
    for name in params:
        if name[0] in "WB" and name != "W0":
            params[name] = params[name] * (radius / norm)
    y = torch.nn.functional.one_hot(torch.randint(0, sizes[-1], (batch,), generator=g), sizes[-1]).to(DTYPE)
    return net, params, x, y


def _learning(rule: str, nudging: str, beta: float, T1: int, T2: int, n_layers: int, lr: float = 1e-3) -> LearningConfig:
    return LearningConfig(rule=rule, nudging=nudging, beta=beta, T1=T1, T2=T2, lr=[lr] * n_layers)


def ep_estimate(net, params, x, y, rule="ep", nudging="one-sided", beta=1e-4, T1=200, T2=200, lr=None) -> dict[str, torch.Tensor]:
    """The rule's update direction; with ``lr`` a continual rule changes (a copy of) the weights as it goes."""
    learn = _learning(rule, nudging, beta, T1, T2, net.n_layers)
    s_free = free_phase(net, params, x, T1)
    work = {k: v.clone() for k, v in params.items()}
    return nudged_phases(net, learn, work, s_free, y, torch.Generator().manual_seed(0), None if lr is None else [lr] * net.n_layers)


def ep_bptt_cosines(activation: str = "identity", rule: str = "cep", beta: float = 1e-4, seed: int = 0, T1: int = 200, T2: int = 200) -> dict[str, float]:
    """Per weight matrix, cosine between the EP/C-EP estimate and ``-dL/dtheta`` by BPTT over the free phase."""
    net, params, x, y = small_problem(activation, tied=rule in ("ep", "cep"), seed=seed)
    direction = ep_estimate(net, params, x, y, rule=rule, beta=beta, T1=T1, T2=T2)
    return weight_cosines(direction, bptt_gradient(net, params, x, y, T1))


def continual_vs_plain(lr: float, seed: int = 0, beta: float = 0.05) -> float:
    """Relative distance between the summed C-EP per-step updates (weights learning at rate ``lr``) and the EP update."""
    net, params, x, y = small_problem("hardsigmoid", seed=seed)
    plain = ep_estimate(net, params, x, y, rule="ep", beta=beta, T2=30)
    continual = ep_estimate(net, params, x, y, rule="cep", beta=beta, T2=30, lr=lr)
    return _relative_error(continual, plain)


def _relative_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    num = sum(float(((a[k] - b[k]) ** 2).sum()) for k in b)
    den = sum(float((b[k] ** 2).sum()) for k in b)
    return float(np.sqrt(num / den))


def exact_direction(net, params, x, y, T1: int = 200) -> dict[str, torch.Tensor]:
    """``-dL/dtheta`` at the fixed point (implicit gradient), the quantity EP estimates in the theorem setting."""
    return {k: -v for k, v in implicit_gradient(net, params, x, y, T1).items()}


def nudging_bias(beta: float, seed: int = 0) -> dict[str, float]:
    """Relative error to the exact gradient of the one-sided and symmetric EP estimates at a finite ``beta``."""
    net, params, x, y = small_problem("identity", seed=seed)
    truth = exact_direction(net, params, x, y)
    return {
        nudging: _relative_error(ep_estimate(net, params, x, y, rule="ep", nudging=nudging, beta=beta), truth)
        for nudging in ("one-sided", "symmetric")
    }


def cauchy_errors(points: list[int], beta: float = 0.3, seed: int = 0) -> dict[int, float]:
    """Relative error to the exact gradient of the Cauchy estimator with N points, at a finite ``|beta|``."""
    net, params, x, y = small_problem("identity", seed=seed)
    truth = exact_direction(net, params, x, y)
    return {n: _relative_error(cauchy_estimate(net, params, x, y, beta, n, 200, 200), truth) for n in points}


def homeostasis_agreement(probes: int = 400, seed: int = 0, coef: float = 0.1) -> dict[str, float]:
    """How the local rule and the probe estimator compare with autograd of ``1/2 ||J - J^T||^2``.

    ``local_rule_error``: relative distance between the local rule's step and ``-(coef/2) grad``.
    ``probe_error``: the same for the mean probe-estimator gradient over ``probes`` probes.
    ``probe_loss_error``: relative error of the probe estimate of the loss itself.
    """
    net, params, x, y = small_problem("hardsigmoid", tied=False, seed=seed)
    names = reciprocal_names(net)
    leaves = {k: v.clone().requires_grad_(k in names) for k, v in params.items()}
    s = [x[:1]] + [torch.zeros(1, n, dtype=DTYPE) for n in net.sizes[1:]]
    exact_loss = asymmetry_loss(state_jacobian(net, leaves, s, create_graph=True))
    exact = dict(zip(names, torch.autograd.grad(exact_loss, [leaves[k] for k in names])))

    stepped = {k: v.clone() for k, v in params.items()}
    local_rule_(net, stepped, coef)
    local_step = {k: stepped[k] - params[k] for k in names}
    expected_step = {k: -0.5 * coef * exact[k] for k in names}

    estimate = probe_loss(net, leaves, s, probes, torch.Generator().manual_seed(seed))
    probe_grad = dict(zip(names, torch.autograd.grad(estimate, [leaves[k] for k in names])))
    return {
        "local_rule_error": _relative_error(local_step, expected_step),
        "probe_error": _relative_error(probe_grad, exact),
        "probe_loss_error": abs(float(estimate.detach()) - float(exact_loss.detach())) / float(exact_loss.detach()),
    }
