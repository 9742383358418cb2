"""FPGA devices the core is built for, and the check that a configuration fits one before any HDL is built.

A device says how wide its multipliers (DSP blocks) are, how many it has, and how many bits of
block RAM. The core's multiplier operands are the ``weight`` x presynaptic value products of the
dot products and the ``W_0 x`` refresh, and the ``update`` x state products of the weight updates;
multiplications by the constants (beta, eta/beta, lambda) are shifts and adds, not DSPs. Wider
operands would need several DSPs per product, a fallback the core does not build: such formats
are refused. Memory is counted in bits (every memory of the core, padding included), a lower bound
of what the device's RAM blocks must hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.golden import Arith
from eqprop.network import param_shapes


@dataclass(frozen=True)
class Device:
    name: str
    #: Operand width of one DSP multiplier (signed).
    dsp_width: int
    dsps: int
    #: Block RAM the core can use, in bits.
    ram_bits: int
    ram_kind: str


DEVICES = {  # one entry per name in eqprop.config.FPGAS
    "generic": None,
    # 8 SB_MAC16 (16 x 16); 30 EBR of 4 Kbit. Its 4 SPRAMs (1 Mbit) are not used by the core yet.
    "ice40up5k": Device("ice40up5k", 16, 8, 30 * 4096, "EBR (SB_RAM40_4K)"),
    # 156 MULT18X18D; 208 DP16KD of 18 Kbit.
    "ecp5-85f": Device("ecp5-85f", 18, 156, 208 * 18432, "DP16KD"),
}


def multiplier_operands(cfg: Config) -> dict[str, int]:
    """Signed operand widths of the products that map onto DSPs."""
    fx = cfg.fixed
    signed = lambda fmt: fmt.width + (0 if fmt.signed else 1)  # noqa: E731
    return {
        "fixed.weight": signed(fx.weight),
        "fixed.state": signed(fx.state),
        "fixed.input": signed(fx.input),
        "fixed.update": signed(fx.update),
    }


def memory_bits(cfg: Config) -> int:
    """Bits of every memory of the core: weights and biases (stored widths), states, factors, W_0 x, x."""
    arith, fx, P = Arith.from_config(cfg), cfg.fixed, cfg.hardware.lanes
    n, L = cfg.network.sizes, cfg.network.n_layers
    striped = lambda length, width: P * max(1, math.ceil(length / P)) * width  # noqa: E731
    bits = 0
    for name, shape in param_shapes(cfg.network).items():
        if name[0] == "b":
            bits += striped(shape[0], arith.bias_store.width)
        else:
            bits += P * shape[0] * math.ceil(shape[1] / P) * arith.weight_store.width
    bits += sum(3 * striped(n[l], fx.state.width) for l in range(1, L + 1))
    factors_per_layer = lambda l: 2 if cfg.network.tied else (2 if l < L else 1)  # noqa: E731
    bits += sum(factors_per_layer(l) * striped(n[l], fx.update.width) for l in range(1, L + 1))
    bits += n[1] * fx.accumulator.width + striped(n[0], fx.input.width)
    return bits


def check_device(cfg: Config) -> None:
    """Refuse a configuration its ``hardware.fpga`` cannot hold, naming the budget it exceeds."""
    device = DEVICES[cfg.hardware.fpga]
    if device is None:
        return
    for name, width in multiplier_operands(cfg).items():
        if width > device.dsp_width:
            raise ConfigError(
                f"{name} makes {width}-bit multiplier operands; {device.name}'s DSPs take {device.dsp_width} "
                f"(the core has no multi-DSP fallback): narrow the format"
            )
    bits = memory_bits(cfg)
    if bits > device.ram_bits:
        raise ConfigError(
            f"the network needs at least {bits / 1024:.0f} Kbit of memory (weights with learn_bits, states, "
            f"factors); {device.name} has {device.ram_bits / 1024:.0f} Kbit of {device.ram_kind}"
        )
    # per lane: the dot product, two update products (one untied), and the W_0 x refresh
    per_lane = 4 if cfg.network.tied else 3
    if per_lane * cfg.hardware.lanes > device.dsps:
        raise ConfigError(
            f"{cfg.hardware.lanes} lanes need about {per_lane * cfg.hardware.lanes} multipliers; "
            f"{device.name} has {device.dsps} DSPs: use fewer lanes"
        )
