"""From a configuration (and optionally trained weights) to Verilog, and the config JSON beside it."""

from __future__ import annotations

import numpy as np
from amaranth.back import rtlil, verilog

from eqprop.config import Config

from .core import Core, check_buildable
from .wishbone import WishboneCore

TOP = "eqprop_core"
WISHBONE_TOP = "eqprop_wishbone"


def core_verilog(cfg: Config, params: dict[str, np.ndarray] | None = None) -> str:
    """Verilog of the core for ``cfg``; ``params`` (the golden model's stored integers) initialize its memories.

    On an FPGA with SPRAM (``hardware.fpga``) the weights are SB_SPRAM256KA instances: the Verilog
    then needs the vendor's simulation model (:func:`eqprop.sim.runner.cosim` adds Yosys's)."""
    return verilog.convert(_core(cfg, params), name=TOP, emit_src=False)


def core_rtlil(cfg: Config) -> str:
    """The core for ``cfg`` in Yosys's RTLIL, as a board build synthesizes it: its block-RAM collisions
    undefined (:func:`eqprop.hw.core.undefined_collisions` names them for Yosys, module :data:`TOP`)."""
    return rtlil.convert(_core(cfg, None, collisions="undefined"), name=TOP, emit_src=False)


def _core(cfg: Config, params: dict[str, np.ndarray] | None, collisions: str = "checked") -> Core:
    cfg = cfg.replace(training={"arith": "fixed"})  # the chip computes in fixed point: check its formats
    check_buildable(cfg)  # before the Core exists, so a refusal leaves no half-built elaboratable behind
    return Core(cfg, params, primitives=True, collisions=collisions)


def wishbone_verilog(cfg: Config, params: dict[str, np.ndarray] | None = None) -> tuple[str, WishboneCore]:
    """Verilog of the core behind its Wishbone slave (:class:`eqprop.hw.wishbone.WishboneCore`), and the
    component (its ``regmap`` and ``metadata`` describe the Verilog's bus)."""
    cfg = cfg.replace(training={"arith": "fixed"})
    check_buildable(cfg)
    slave = WishboneCore(cfg, params, primitives=True)
    return verilog.convert(slave, name=WISHBONE_TOP, emit_src=False), slave
