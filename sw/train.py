"""Training of the float reference model, with the metrics the EP literature reports.

:func:`train` runs any rule of :data:`eqprop.config.RULES` on a :class:`~eqprop.data.Dataset`
and records, per epoch: loss, train/test accuracy, free-phase convergence, cosine between the
rule's update and the BPTT gradient per weight matrix, the angle between ``W_l`` and ``B_l^T``
and the Jacobian symmetry. Nothing here writes files; see :mod:`eqprop.checkpoint`.
"""

from __future__ import annotations

import math
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
    #: Float tensors, or the stored integers (numpy) when ``training.arith`` is ``fixed``.
    params: Params | dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1]


#: Torch device types the float model trains on (``meta`` and the like hold no values).
TRAINING_DEVICES = ("cpu", "cuda", "mps")


def torch_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"training.device {name!r} is not a torch device (try cpu or cuda)") from None
    if device.type not in TRAINING_DEVICES:
        raise ConfigError(f"training.device {name!r}: the model trains on {', '.join(TRAINING_DEVICES)}, not {device.type}")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}[device.type]
    if not available or (device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"training.device {name!r}: this torch has no such usable device")
    return device


def model_data(cfg: Config, data: Dataset | None = None) -> Dataset:
    """The inputs the configuration's model sees: ``data`` (default: the configuration's data set),
    centred when ``training.center_inputs`` says so."""
    tr = cfg.training
    if data is None:
        data = load_dataset(tr.dataset, tr.seed, tr.data_dir)
    return data.centred() if tr.center_inputs else data


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


def evaluate_arrays(cfg: Config, arrays: dict, x, labels) -> dict:
    """Loss and accuracy of checkpoint arrays on a split: the float model, or the golden model
    when ``cfg.training.arith`` is ``fixed`` (the arrays are then its stored integers)."""
    if cfg.training.arith == "fixed":
        from .golden import Arith, GoldenModel, evaluate_fixed, quantize_inputs

        model = GoldenModel(Arith.from_config(cfg), arrays)
        return evaluate_fixed(model, quantize_inputs(model.arith, x), np.asarray(labels))
    dtype = getattr(torch, cfg.training.dtype)
    params = {k: torch.as_tensor(v).to(dtype) for k, v in arrays.items()}
    return evaluate(cfg, params, torch.as_tensor(x).to(dtype), torch.as_tensor(labels))


def lr_factor(cfg: Config, epoch: int) -> float:
    """The factor on ``learning.lr`` in ``epoch`` (1-based) under ``training.lr_schedule``."""
    if cfg.training.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / cfg.training.epochs))
    return 1.0


def rule_direction(cfg: Config, params: Params, x, y, generator, lr=None) -> dict[str, torch.Tensor]:
    """One learning step of the configured rule (in place when ``lr`` is given); returns its direction."""
    net, learn = cfg.network, cfg.learning
    if learn.rule in EP_RULES:
        s_free = free_phase(net, params, x, learn.T1)
        return nudged_phases(net, learn, params, s_free, y, generator, lr, factored=cfg.training.continual == "factored")
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
    """Train per ``cfg`` and return the weights and per-epoch metrics (epoch 0 = before training).

    ``training.arith = "fixed"`` trains the golden model (:mod:`eqprop.golden`) one sample at a
    time, as the chip does; the result's ``params`` are then the stored integers.
    """
    cfg.validate()
    tr = cfg.training
    data = model_data(cfg, data)
    check_fits(cfg, data)
    learner = (_FixedLearner if tr.arith == "fixed" else _FloatLearner)(cfg, data)
    result = TrainResult(cfg, learner.params)

    def record(epoch: int, seconds: float, samples: int) -> None:
        row = {"epoch": epoch, "train_seconds": seconds, "samples_per_second": samples / seconds if seconds > 0 else None}
        row.update(learner.measure(epoch))
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)

    record(0, 0.0, 0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tr.epochs * learner.n_train, unit="sample", desc=f"{cfg.learning.rule} {tr.arith} {data.name}", leave=False)
    for epoch in range(1, tr.epochs + 1):
        order = learner.shuffle()
        factor = lr_factor(cfg, epoch)
        start = time.perf_counter()
        for i in range(0, len(order), learner.batch_size):
            idx = order[i : i + learner.batch_size]
            learner.learn(idx, factor)
            if bar is not None:
                bar.update(len(idx))
        seconds = time.perf_counter() - start
        learner.check(epoch)
        record(epoch, seconds, learner.n_train)
        if bar is not None:
            bar.set_postfix(test_acc=f"{result.final['test_accuracy']:.3f}")
    if bar is not None:
        bar.close()
    return result


class _FloatLearner:
    """The PyTorch reference model, in batches."""

    def __init__(self, cfg: Config, data: Dataset) -> None:
        self.cfg = cfg
        net, tr = cfg.network, cfg.training
        device = torch_device(tr.device)
        dtype = getattr(torch, tr.dtype)
        self.generator = torch.Generator().manual_seed(tr.seed)
        self.params = init_params(net, self.generator, dtype, device)
        as_tensor = lambda a: torch.as_tensor(a).to(device)  # noqa: E731
        self.x_tr, self.l_tr = as_tensor(data.x_train).to(dtype), as_tensor(data.y_train)
        self.x_te, self.l_te = as_tensor(data.x_test).to(dtype), as_tensor(data.y_test)
        self.y_tr = one_hot(self.l_tr, net.sizes[-1], dtype)
        probe = torch.randperm(len(self.x_tr), generator=self.generator)[: tr.probe_samples].to(device)
        self.x_probe, self.y_probe = self.x_tr[probe], self.y_tr[probe]
        self.n_train, self.batch_size, self.seen = len(self.x_tr), tr.batch_size, 0

    def shuffle(self) -> torch.Tensor:
        return torch.randperm(self.n_train, generator=self.generator).to(self.x_tr.device)

    @torch.no_grad()
    def learn(self, idx: torch.Tensor, lr_factor: float) -> None:
        cfg, learn = self.cfg, self.cfg.learning
        x, y = self.x_tr[idx], self.y_tr[idx]
        rule_direction(cfg, self.params, x, y, self.generator, lr=[lr * lr_factor for lr in learn.lr])
        if learn.homeostasis != "off":
            period = learn.homeostasis_period
            passes = (self.seen + len(idx)) // period - self.seen // period
            if passes:
                homeostasis.apply_homeostasis(cfg.network, learn, self.params, x, passes, self.generator)
        self.seen += len(idx)

    def check(self, epoch: int) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in self.params.values()):
            raise EqpropError(f"training diverged in epoch {epoch} (non-finite weights): lower the learning rates or beta")

    def measure(self, epoch: int) -> dict:
        cfg = self.cfg
        train_m = evaluate(cfg, self.params, self.x_tr, self.l_tr)
        test_m = evaluate(cfg, self.params, self.x_te, self.l_te)
        row = {
            "train_loss": train_m["loss"],
            "train_accuracy": train_m["accuracy"],
            "test_loss": test_m["loss"],
            "test_accuracy": test_m["accuracy"],
        }
        if "free_convergence" in test_m:
            row["free_convergence"] = test_m["free_convergence"]
        # Diagnostics draw from their own generator, so measuring does not change the training run.
        row.update(diagnostics(cfg, self.params, self.x_probe, self.y_probe, torch.Generator().manual_seed(cfg.training.seed + epoch)))
        return row


class _FixedLearner:
    """The golden model, one sample at a time: the chip's arithmetic and schedule.

    It starts from the float model's initial weights for the same seed, quantized, and visits the
    samples in the same order as the float model with the same seed and batch size 1.
    """

    batch_size = 1

    def __init__(self, cfg: Config, data: Dataset) -> None:
        from .golden import GoldenModel, quantize_inputs

        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(cfg.training.seed)
        self.model = GoldenModel.from_float(cfg, init_params(cfg.network, self.generator, torch.float64))
        self.params = self.model.params  # updated in place as the model learns
        self.x_tr, self.l_tr = quantize_inputs(self.model.arith, data.x_train), np.asarray(data.y_train)
        self.x_te, self.l_te = quantize_inputs(self.model.arith, data.x_test), np.asarray(data.y_test)
        self.n_train = len(self.x_tr)

    def shuffle(self) -> np.ndarray:
        return torch.randperm(self.n_train, generator=self.generator).numpy()

    def learn(self, idx: np.ndarray, lr_factor: float) -> None:
        """The chip's rates are constants (``lr_factor`` is 1: the configuration refuses a schedule)."""
        for i in idx:
            self.model.train_sample(self.x_tr[i], int(self.l_tr[i]))

    def check(self, epoch: int) -> None:
        """Integers cannot diverge: they saturate."""

    def measure(self, epoch: int) -> dict:
        from .golden import evaluate_fixed

        row = {}
        for split, x, labels in (("train", self.x_tr, self.l_tr), ("test", self.x_te, self.l_te)):
            row.update({f"{split}_{k}": v for k, v in evaluate_fixed(self.model, x, labels).items()})
        return row
