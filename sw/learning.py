"""EP learning rules: the update directions and the nudged phases that produce them.

Tied (EP, C-EP): ``dPhi/dW_l = s_{l+1} s_l^T`` and ``dPhi/db_l = s_l``; an update is a difference
of these between two states. Untied (VF, C-VF): post-synaptic change times pre-synaptic
activity. Plain rules update once after each nudged phase; continual rules (C-EP, C-VF) update at
every nudged step with the weights they just changed, which is what the hardware does.

Every direction approximates ``-dL/dtheta``; it is applied as ``theta += lr_l * direction``.
Continual rules that learn keep each phase's weight changes as factors (:mod:`eqprop.factored`)
unless the literal per-step form is asked for; both give the same weights.
"""

from __future__ import annotations

import torch

from .config import CONTINUAL_RULES, LearningConfig, NetworkConfig
from .factored import FactoredWeight
from .network import Params, States, layer_of, relax, step


def rule_delta(net: NetworkConfig, new: States, old: States, coef: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rule's update between two states, each sample weighted by ``coef`` (shape ``(batch,)``), batch mean.

    Tied: ``coef (s_{l+1}' s_l'^T - s_{l+1} s_l^T)``. Untied: ``coef (s_{l+1}' - s_{l+1}) s_l^T`` for
    ``W_l`` and ``coef (s_l' - s_l) s_{l+1}^T`` for ``B_l``. Biases: ``coef (s_l' - s_l)`` in both.
    """
    c = coef.reshape(-1, 1)
    batch = c.shape[0]
    delta: dict[str, torch.Tensor] = {}
    for l in range(net.n_layers):
        if net.tied:
            delta[f"W{l}"] = ((c * new[l + 1]).T @ new[l] - (c * old[l + 1]).T @ old[l]) / batch
        else:
            delta[f"W{l}"] = (c * (new[l + 1] - old[l + 1])).T @ old[l] / batch
            if l >= 1:
                delta[f"B{l}"] = (c * (new[l] - old[l])).T @ old[l + 1] / batch
        delta[f"b{l + 1}"] = (c * (new[l + 1] - old[l + 1])).sum(0) / batch
    return delta


def nudges(learn: LearningConfig, batch: int, generator: torch.Generator, like: torch.Tensor) -> list[torch.Tensor]:
    """The signed nudge of each nudged phase, as ``(batch, 1)`` tensors.

    One-sided: ``[+beta]``. Symmetric: ``[+beta, -beta]``, both started from ``s*``.
    Random sign: ``[+-beta]`` with the sign drawn per sample.
    """
    beta = like.new_full((batch, 1), learn.beta)
    if learn.nudging == "one-sided":
        return [beta]
    if learn.nudging == "symmetric":
        return [beta, -beta]
    signs = torch.randint(0, 2, (batch, 1), generator=generator).to(like) * 2 - 1
    return [beta * signs]


def apply_update(params: Params, direction: dict[str, torch.Tensor], lr: list[float]) -> None:
    """``theta += lr_l * direction`` in place."""
    for name, d in direction.items():
        params[name].add_(d, alpha=lr[layer_of(name)])


def nudged_phases(
    net: NetworkConfig,
    learn: LearningConfig,
    params: Params,
    s_free: States,
    y: torch.Tensor,
    generator: torch.Generator,
    lr: list[float] | None = None,
    factored: bool = True,
) -> dict[str, torch.Tensor]:
    """Run the nudged phase(s) from ``s*`` and return the summed update direction.

    With ``lr`` the weights learn in place: after each phase (EP, VF) or at every nudged step
    (C-EP, C-VF; as factors written once per phase when ``factored``, else step by step). Without
    it the weights stay fixed and the direction is the rule's gradient estimate. Each phase with
    nudge ``beta_p`` is scaled ``1 / (n_phases beta_p)``, so symmetric nudging gives
    ``(1/2beta)(dPhi(s^+b) - dPhi(s^-b))`` and continual updates telescope to it.
    """
    continual = learn.rule in CONTINUAL_RULES
    phases = nudges(learn, y.shape[0], generator, y)
    total: dict[str, torch.Tensor] | None = None

    def accumulate(d: dict[str, torch.Tensor]) -> None:
        nonlocal total
        total = d if total is None else {k: total[k] + d[k] for k in total}

    factored_weights = _factored_weights(params, s_free[0], lr) if continual and lr is not None and factored else None
    for beta_p in phases:
        coef = 1.0 / (len(phases) * beta_p.reshape(-1))
        if factored_weights is not None:
            accumulate(_factored_continual_phase(net, learn, params, factored_weights, s_free, y, beta_p, coef, lr))
            continue
        if not continual:
            accumulate(rule_delta(net, relax(net, params, s_free, learn.T2, y, beta_p), s_free, coef))
            continue
        s = s_free
        for _ in range(learn.T2):
            s_next = step(net, params, s, y, beta_p)
            d = rule_delta(net, s_next, s, coef)
            accumulate(d)
            if lr is not None:
                apply_update(params, d, lr)
            s = s_next
    if lr is not None and not continual:
        apply_update(params, total, lr)
    return total


def _factored_weights(params: Params, x: torch.Tensor, lr: list[float]) -> dict[str, FactoredWeight]:
    """Every weight matrix as a :class:`FactoredWeight`, for all the nudged phases of a batch."""
    return {
        name: FactoredWeight(t, lr[layer_of(name)], clamped=x if name == "W0" else None)
        for name, t in params.items()
        if name[0] in "WB"
    }


def _factored_continual_phase(
    net: NetworkConfig,
    learn: LearningConfig,
    params: Params,
    weights: dict[str, FactoredWeight],
    s_free: States,
    y: torch.Tensor,
    beta: torch.Tensor,
    coef: torch.Tensor,
    lr: list[float],
) -> dict[str, torch.Tensor]:
    """One nudged phase of C-EP or C-VF with the weights' changes kept as factors; returns its direction.

    The factors are those of :func:`rule_delta` (batch-mean states weighted by ``coef``). The
    biases' increments telescope in both rules, so each step's bias is that of the phase's start
    plus ``lr c^T (s(t) - s(0))``: one product per layer, written back when the phase ends.
    """
    c = coef / coef.shape[0]
    c_rows = c.reshape(-1, 1)  # weighs each sample's state
    view = {**params, **weights}
    if net.tied:
        for l in range(net.n_layers):
            weights[f"W{l}"].telescope(c_rows * s_free[l + 1], s_free[l])
    start = {l: s_free[l].T @ c for l in range(1, net.n_layers + 1)}
    bias_base = {l: params[f"b{l}"] - lr[l - 1] * start[l] for l in start}
    s = s_free
    for _ in range(learn.T2):
        s_next = step(net, view, s, y, beta)
        for l in range(net.n_layers):
            if net.tied:
                weights[f"W{l}"].telescope(c_rows * s_next[l + 1], s_next[l])
            else:
                weights[f"W{l}"].append(c_rows * (s_next[l + 1] - s[l + 1]), s[l])
                if l >= 1:
                    weights[f"B{l}"].append(c_rows * (s_next[l] - s[l]), s[l + 1])
            view[f"b{l + 1}"] = torch.addmv(bias_base[l + 1], s_next[l + 1].T, c, alpha=lr[l])
        s = s_next
    direction = {name: w.end_phase() for name, w in weights.items()}
    for l in start:
        params[f"b{l}"].copy_(view[f"b{l}"])
        direction[f"b{l}"] = s[l].T @ c - start[l]
    return direction
