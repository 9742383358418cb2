"""Training of the float reference model, with the metrics the EP literature reports.

:func:`train` runs any rule of :data:`eqprop.config.RULES` on a :class:`~eqprop.data.Dataset`
and records, per epoch: loss, train/test accuracy, free-phase convergence, cosine between the
rule's update and the BPTT gradient per weight matrix, the angle between ``W_l`` and ``B_l^T``
and the Jacobian symmetry. Nothing here writes files; see :mod:`eqprop.checkpoint`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import homeostasis, mlp
from .config import EP_RULES, Config
from .data import Dataset, load_dataset
from .errors import ConfigError, DataError, EqpropError
from .gradients import bptt_gradient, implicit_gradient, weight_angles, weight_cosines
from .learning import apply_update, nudged_phases
from .network import Params, convergence, free_phase, init_params, loss

EVAL_CHUNK = 4096


@dataclass
class TrainResult:
    config: Config
    params: Params
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1]


def torch_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"training.device {name!r} is not a torch device (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device {name!r}: this torch has no usable CUDA device")
    return device


def check_fits(cfg: Config, data: Dataset) -> None:
    """Refuse a network whose input or output size does not match the data set."""
    sizes = cfg.network.sizes
    if sizes[0] != data.n_features:
        raise DataError(f"network input size {sizes[0]} does not match dataset {data.name} ({data.n_features} features)")
    if sizes[-1] != data.n_classes:
        raise DataError(f"network output size {sizes[-1]} does not match dataset {data.name} ({data.n_classes} classes)")


def one_hot(labels: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n).to(dtype)


@torch.no_grad()
def evaluate(cfg: Config, params: Params, x: torch.Tensor, labels: torch.Tensor) -> dict:
    """Loss (the rule's own cost), accuracy and, for recurrent rules, mean free-phase convergence on a split."""
    n_out = cfg.network.sizes[-1]
    total_loss = correct = conv = 0.0
    for i in range(0, len(x), EVAL_CHUNK):
        xb, lb = x[i : i + EVAL_CHUNK], labels[i : i + EVAL_CHUNK]
        yb = one_hot(lb, n_out, x.dtype)
        if cfg.learning.rule == "mlp":
            out = mlp.forward(cfg.network, params, xb)
            batch_loss = mlp.loss(out, yb)
        else:
            s = free_phase(cfg.network, params, xb, cfg.learning.T1)
            out = s[-1]
            batch_loss = loss(out, yb)
            conv += float(convergence(cfg.network, params, s).sum())
        total_loss += float(batch_loss) * len(xb)
        correct += float((out.argmax(1) == lb).sum())
    result = {"loss": total_loss / len(x), "accuracy": correct / len(x)}
    if cfg.learning.rule != "mlp":
        result["free_convergence"] = conv / len(x)
    return result


def rule_direction(cfg: Config, params: Params, x, y, generator, lr=None) -> dict[str, torch.Tensor]:
    """One learning step of the configured rule (in place when ``lr`` is given); returns its direction."""
    net, learn = cfg.network, cfg.learning
    if learn.rule in EP_RULES:
        s_free = free_phase(net, params, x, learn.T1)
        return nudged_phases(net, learn, params, s_free, y, generator, lr)
    if learn.rule == "bptt":
        grad = bptt_gradient(net, params, x, y, learn.T1)
    elif learn.rule == "rbp":
        grad = implicit_gradient(net, params, x, y, learn.T1)
    else:
        grad = mlp.gradient(net, params, x, y)
    direction = {k: -g for k, g in grad.items()}
    if lr is not None:
        apply_update(params, direction, lr)
    return direction


@torch.no_grad()
def diagnostics(cfg: Config, params: Params, x_probe, y_probe, generator) -> dict:
    """Gradient alignment with BPTT, W/B^T angles and Jacobian symmetry at the current weights."""
    if cfg.learning.rule == "mlp":
        return {}
    net = cfg.network
    result: dict = {"weight_angle_deg": weight_angles(net, params)}
    if len(x_probe) and cfg.learning.rule in EP_RULES:
        estimate = rule_direction(cfg, params, x_probe, y_probe, generator)
        reference = bptt_gradient(net, params, x_probe, y_probe, cfg.learning.T1)
        cosines = weight_cosines(estimate, reference)
        result["gradient_cosine"] = cosines
        result["gradient_cosine_mean"] = float(np.mean(list(cosines.values())))
    if net.n_layers >= 2 and len(x_probe):
        s = free_phase(net, params, x_probe[:1], cfg.learning.T1)
        result["jacobian_symmetry"] = homeostasis.symmetry_ratio(homeostasis.state_jacobian(net, params, s))
    return result


def train(
    cfg: Config,
    data: Dataset | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train per ``cfg`` and return the weights and per-epoch metrics (epoch 0 = before training)."""
    cfg.validate()
    net, learn, tr = cfg.network, cfg.learning, cfg.training
    if data is None:
        data = load_dataset(tr.dataset, tr.seed, tr.data_dir)
    check_fits(cfg, data)
    device = torch_device(tr.device)
    dtype = getattr(torch, tr.dtype)
    generator = torch.Generator().manual_seed(tr.seed)
    params = init_params(net, generator, dtype, device)

    as_tensor = lambda a: torch.as_tensor(a).to(device)  # noqa: E731
    x_tr, l_tr = as_tensor(data.x_train).to(dtype), as_tensor(data.y_train)
    x_te, l_te = as_tensor(data.x_test).to(dtype), as_tensor(data.y_test)
    y_tr = one_hot(l_tr, net.sizes[-1], dtype)
    probe = torch.randperm(len(x_tr), generator=generator)[: tr.probe_samples].to(device)
    x_probe, y_probe = x_tr[probe], y_tr[probe]

    result = TrainResult(cfg, params)

    def record(epoch: int, seconds: float, samples: int) -> None:
        train_m, test_m = evaluate(cfg, params, x_tr, l_tr), evaluate(cfg, params, x_te, l_te)
        row = {
            "epoch": epoch,
            "train_loss": train_m["loss"],
            "train_accuracy": train_m["accuracy"],
            "test_loss": test_m["loss"],
            "test_accuracy": test_m["accuracy"],
            "train_seconds": seconds,
            "samples_per_second": samples / seconds if seconds > 0 else None,
        }
        if "free_convergence" in test_m:
            row["free_convergence"] = test_m["free_convergence"]
        # Diagnostics draw from their own generator, so measuring does not change the training run.
        row.update(diagnostics(cfg, params, x_probe, y_probe, torch.Generator().manual_seed(tr.seed + epoch)))
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)

    record(0, 0.0, 0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tr.epochs * len(x_tr), unit="sample", desc=f"{learn.rule} {data.name}", leave=False)
    seen = 0
    with torch.no_grad():
        for epoch in range(1, tr.epochs + 1):
            order = torch.randperm(len(x_tr), generator=generator).to(device)
            start = time.perf_counter()
            for i in range(0, len(order), tr.batch_size):
                idx = order[i : i + tr.batch_size]
                x, y = x_tr[idx], y_tr[idx]
                rule_direction(cfg, params, x, y, generator, lr=learn.lr)
                if learn.homeostasis != "off":
                    passes = (seen + len(idx)) // learn.homeostasis_period - seen // learn.homeostasis_period
                    if passes:
                        homeostasis.apply_homeostasis(net, learn, params, x, passes, generator)
                seen += len(idx)
                if bar is not None:
                    bar.update(len(idx))
            seconds = time.perf_counter() - start
            if not all(bool(torch.isfinite(p).all()) for p in params.values()):
                raise EqpropError(f"training diverged in epoch {epoch} (non-finite weights): lower the learning rates or beta")
            record(epoch, seconds, len(x_tr))
            if bar is not None:
                bar.set_postfix(test_acc=f"{result.final['test_accuracy']:.3f}")
    if bar is not None:
        bar.close()
    return result
