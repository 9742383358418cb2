"""From a configuration (and optionally trained weights) to Verilog, and the config JSON beside it."""

from __future__ import annotations

import numpy as np
from amaranth.back import verilog

from eqprop.config import Config

from .core import Core, check_buildable

TOP = "eqprop_core"


def core_verilog(cfg: Config, params: dict[str, np.ndarray] | None = None) -> str:
    """Verilog of the core for ``cfg``; ``params`` (the golden model's stored integers) initialize its memories."""
    cfg = cfg.replace(training={"arith": "fixed"})  # the chip computes in fixed point: check its formats
    check_buildable(cfg)  # before the Core exists, so a refusal leaves no half-built elaboratable behind
    core = Core(cfg, params)
    return verilog.convert(core, name=TOP, emit_src=False)
