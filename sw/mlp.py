"""The backprop baseline: a feed-forward MLP of the same shape as the EP network.

Hidden layers use the EP network's activation and its forward parameters ``W_l``, ``b_{l+1}``;
the output layer is linear and trained with softmax cross-entropy, the plain way an MLP is
trained. (With the hard sigmoid and squared error at the output too, saturated output units stop
learning and backprop falls well short of EP, which ignores rho'.)
"""

from __future__ import annotations

import torch

from .config import NetworkConfig
from .network import Params, activation


def forward(net: NetworkConfig, params: Params, x: torch.Tensor) -> torch.Tensor:
    """The output logits."""
    rho = activation(net.activation)
    h = x
    for l in range(net.n_layers):
        h = h @ params[f"W{l}"].T + params[f"b{l + 1}"]
        if l < net.n_layers - 1:
            h = rho(h)
    return h


def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy against one-hot targets ``y``, batch mean."""
    return -(torch.log_softmax(logits, dim=1) * y).sum(1).mean()


def gradient(net: NetworkConfig, params: Params, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``dL/dtheta`` of the MLP by backprop."""
    with torch.enable_grad():
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        grads = torch.autograd.grad(loss(forward(net, leaves, x), y), list(leaves.values()))
    return dict(zip(leaves, grads))
