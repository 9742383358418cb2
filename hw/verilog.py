"""From a configuration (and optionally trained weights) to Verilog, and the config JSON beside it."""

from __future__ import annotations

import numpy as np
from amaranth.back import verilog

from eqprop.config import Config

from .core import Core, check_buildable
from .wishbone import WishboneCore

TOP = "eqprop_core"
WISHBONE_TOP = "eqprop_wishbone"


def core_verilog(cfg: Config, params: dict[str, np.ndarray] | None = None) -> str:
    """Verilog of the core for ``cfg``; ``params`` (the golden model's stored integers) initialize its memories.

    On an FPGA with SPRAM (``hardware.fpga``) the weights are SB_SPRAM256KA instances: the Verilog
    then needs the vendor's simulation model (:func:`eqprop.sim.runner.cosim` adds Yosys's)."""
    cfg = cfg.replace(training={"arith": "fixed"})  # the chip computes in fixed point: check its formats
    check_buildable(cfg)  # before the Core exists, so a refusal leaves no half-built elaboratable behind
    core = Core(cfg, params, primitives=True)
    return verilog.convert(core, name=TOP, emit_src=False)


def wishbone_verilog(cfg: Config, params: dict[str, np.ndarray] | None = None) -> tuple[str, WishboneCore]:
    """Verilog of the core behind its Wishbone slave (:class:`eqprop.hw.wishbone.WishboneCore`), and the
    component (its ``regmap`` and ``metadata`` describe the Verilog's bus)."""
    cfg = cfg.replace(training={"arith": "fixed"})
    check_buildable(cfg)
    slave = WishboneCore(cfg, params, primitives=True)
    return verilog.convert(slave, name=WISHBONE_TOP, emit_src=False), slave
