"""The backprop baseline: a feed-forward MLP of the same shape and activation as the EP network.

It uses the EP network's forward parameters ``W_l``, ``b_{l+1}`` and the same cost, so the two
are compared on equal terms.
"""

from __future__ import annotations

import torch

from .config import NetworkConfig
from .network import Params, activation, loss


def forward(net: NetworkConfig, params: Params, x: torch.Tensor) -> torch.Tensor:
    rho = activation(net.activation)
    h = x
    for l in range(net.n_layers):
        h = rho(h @ params[f"W{l}"].T + params[f"b{l + 1}"])
    return h


def gradient(net: NetworkConfig, params: Params, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``dL/dtheta`` of the MLP by backprop."""
    with torch.enable_grad():
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        grads = torch.autograd.grad(loss(forward(net, leaves, x), y), list(leaves.values()))
    return dict(zip(leaves, grads))
