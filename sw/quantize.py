"""From a float checkpoint to the chip's integers: calibrate formats, convert, measure.

Calibration keeps each format's width (from the configuration's ``fixed`` section) and spends it
where the checkpoint needs it: weights and biases get the fewest integer bits that hold their
largest magnitude, the rest go to fraction bits. States need no calibration (rho bounds them),
and the accumulator is then sized to the worst-case drive (:func:`fit_accumulator`).
"""

from __future__ import annotations

import numpy as np

from .config import Config
from .data import Dataset
from .errors import ConfigError
from .fixed import Format, bits_for
from .golden import GoldenModel, worst_drives
from .train import evaluate_arrays


def with_format(fmt: Format, m: int | None = None, n: int | None = None) -> dict:
    data = fmt.to_dict()
    data.update({k: v for k, v in (("m", m), ("n", n)) if v is not None})
    return data


def fit_accumulator(cfg: Config) -> Config:
    """``cfg`` with an accumulator that holds every product exactly and the worst-case drive."""
    fx = cfg.fixed
    n = fx.weight.n + max(fx.state.n, fx.input.n)
    worst = max(drive for _, drive in worst_drives(cfg))
    return cfg.replace(fixed={"accumulator": with_format(fx.accumulator, m=bits_for(worst + 2.0 ** -n), n=n)})


def resize(cfg: Config, sizes: list[int] | None = None, weight_bits: int | None = None, state_bits: int | None = None) -> Config:
    """``cfg`` with new layer sizes and/or weight and state widths (integer bits kept), the
    accumulator refitted to them. The fixed-point formats are checked once, on the result, so a
    fixed-point configuration can grow without passing through an accumulator too small for it."""
    arith = cfg.training.arith
    work = cfg.replace(training={"arith": "float"}, **({"network": {"sizes": sizes}} if sizes is not None else {}))
    changes = {}
    for name, bits in (("weight", weight_bits), ("state", state_bits)):
        if bits is None:
            continue
        fmt = getattr(work.fixed, name)
        if bits <= fmt.m:
            raise ConfigError(f"{name} width {bits} leaves no fraction bits beside the {fmt.m} integer bits of {fmt}")
        changes[name] = with_format(fmt, n=bits - fmt.m)
    fitted = fit_accumulator(work.replace(fixed=changes) if changes else work)
    return fitted.replace(training={"arith": arith})


def calibrate(cfg: Config, params: dict[str, np.ndarray]) -> Config:
    """Formats for ``params`` (float arrays): integer bits from their ranges, widths from ``cfg``."""
    fx = cfg.fixed
    weights = max(float(np.abs(v).max()) for k, v in params.items() if k[0] != "b")
    biases = max(float(np.abs(v).max()) for k, v in params.items() if k[0] == "b")
    changes = {}
    for name, largest in (("weight", weights), ("bias", biases)):
        fmt = getattr(fx, name)
        m = bits_for(largest)
        if m >= fmt.width:
            raise ConfigError(f"the checkpoint's {name}s reach {largest:.4g}: {fmt.width}-bit fixed.{name} has no fraction bits left")
        changes[name] = with_format(fmt, m=m, n=fmt.width - m)
    return fit_accumulator(cfg.replace(fixed=changes))


def quantize_checkpoint(cfg: Config, params: dict[str, np.ndarray], data: Dataset, calibrated: bool = True) -> tuple[Config, GoldenModel, dict]:
    """Convert a float checkpoint; returns the fixed configuration, the golden model and a report
    of float and integer accuracies on both splits."""
    fixed_cfg = calibrate(cfg, params) if calibrated else cfg
    fixed_cfg = fixed_cfg.replace(training={"arith": "fixed"})
    model = GoldenModel.from_float(fixed_cfg, params)
    report: dict = {"formats": {k: str(v) for k, v in fixed_cfg.fixed.formats().items()}, "learn_bits": fixed_cfg.fixed.learn_bits}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        report[f"float_{split}_accuracy"] = evaluate_arrays(cfg, params, x, y)["accuracy"]
        report[f"fixed_{split}_accuracy"] = evaluate_arrays(fixed_cfg, model.params, x, y)["accuracy"]
    report["test_accuracy_loss"] = report["float_test_accuracy"] - report["fixed_test_accuracy"]
    return fixed_cfg, model, report
