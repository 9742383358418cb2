"""FPGA devices the core is built for, and the check that a configuration fits one before any HDL is built.

A device says how wide its multipliers (DSP blocks) are, how many it has, its block RAMs (count
and the depth x width shapes one block can take) and its single-port SPRAMs. On the iCE40UP5K the
weight matrices W_l live in its four SPRAMs (:mod:`eqprop.hw.memories`); everything else, and
everywhere else, in block RAM. The core's multiplier operands are the ``weight`` x presynaptic value products of the
dot products, and the ``update`` x state products of the weight updates and the learning factors
(a layer's rate times a state); products by beta and lambda are shifts and adds, not DSPs. Wider
operands would need several DSPs per product, a fallback the core does not build: such formats
are refused. Block RAM is counted in bits (every memory outside SPRAM, padding included, the state
memories twice for their two read ports): a lower bound of what the RAM blocks must hold, since
Yosys packs small memories into logic and shares blocks as it sees fit (:func:`eqprop.hw.estimate.ram_cells`
counts the blocks and LUT RAM cells as Yosys maps them). A device's :class:`Toolchain` says how
``eqprop synth`` and ``eqprop build`` run the tools for it and read their reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.golden import Arith
from eqprop.layout import bank_depth, neuron_banks, param_shapes
from eqprop.program import Program, pipeline, single_port_conflicts

from .memories import spram_count


@dataclass(frozen=True)
class Toolchain:
    """How Yosys, nextpnr and the bitstream packer build for a device, and how their reports name its cells."""

    #: Yosys's synthesis command and the options eqprop adds to it (Amaranth's ``synth_opts`` in a board build).
    synth_command: str
    synth_options: str
    #: Amaranth's variable -> the tool it names (its YoWASP script has the ``yowasp-`` prefix).
    tools: dict
    #: A board build's resource kinds -> nextpnr's cell type (its ``--report`` JSON).
    pnr_cells: dict
    #: ``eqprop synth``'s kinds -> the prefixes of Yosys's cell names (``stat -json``).
    synth_cells: dict
    bitstream_suffix: str
    #: nextpnr's report counts flip-flops inside the logic cells (the iCE40): a build counts them
    #: from Yosys's ``stat -json`` instead (``synth_cells["FF"]``).
    flip_flops_in_logic_cells: bool = False


@dataclass(frozen=True)
class Device:
    name: str
    #: Operand width of one DSP multiplier (signed).
    dsp_width: int
    dsps: int
    ram_blocks: int
    block_bits: int
    ram_kind: str
    #: Logic cells (iCE40: LUT4 + FF cells; ECP5: LUT4s), as nextpnr counts them available.
    logic_cells: int
    #: SB_SPRAM256KA blocks (16384 x 16) that hold the weight matrices W_l.
    sprams: int = 0
    #: Yosys (``mul2dsp``) leaves a partial product narrower than this in logic.
    dsp_min_product: int = 0
    toolchain: Toolchain | None = field(default=None, hash=False)  # its tables are dicts

    def dsp_blocks(self, a_bits: int, b_bits: int) -> int:
        """DSP blocks Yosys maps an ``a_bits`` x ``b_bits`` product to: each operand cut into
        ``dsp_width``-bit pieces, one block per pair of pieces at least 2 bits wide whose product is
        at least ``dsp_min_product`` bits (measured: on the iCE40 16 x 16 takes one, 18 x 18 three,
        23 x 18 three; on the ECP5 18 x 18 one, 23 x 18 two)."""
        def pieces(bits: int) -> list[int]:
            return [self.dsp_width] * (bits // self.dsp_width) + ([bits % self.dsp_width] if bits % self.dsp_width else [])
        return sum(1 for a in pieces(a_bits) for b in pieces(b_bits) if a >= 2 and b >= 2 and a + b >= self.dsp_min_product)


DEVICES = {  # one entry per name in eqprop.config.FPGAS
    "generic": None,
    # 8 SB_MAC16 (16 x 16); 30 EBR of 4 Kbit; 5280 logic cells; 4 SPRAM of 256 Kbit.
    # synth_ice40 -dsp: the multipliers map onto the SB_MAC16 blocks.
    "ice40up5k": Device("ice40up5k", 16, 8, 30, 4096, "EBR (SB_RAM40_4K)", 5280, sprams=4, dsp_min_product=11, toolchain=Toolchain(
        "synth_ice40", "-dsp", {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40", "ICEPACK": "icepack"},
        pnr_cells={"LUT": "ICESTORM_LC", "RAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM", "DSP": "ICESTORM_DSP"},
        synth_cells={"LUT": ("SB_LUT4",), "carry": ("SB_CARRY",), "FF": ("SB_DFF",), "block RAM": ("SB_RAM40_4K",),
                     "SPRAM": ("SB_SPRAM256KA",), "DSP": ("SB_MAC16",)},
        bitstream_suffix="bin", flip_flops_in_logic_cells=True)),
    # 156 MULT18X18D; 208 DP16KD of 18 Kbit; 83640 LUT4s.
    "ecp5-85f": Device("ecp5-85f", 18, 156, 208, 18432, "DP16KD", 83640, toolchain=Toolchain(
        "synth_ecp5", "", {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"},
        pnr_cells={"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "RAM": "DP16KD", "DSP": "MULT18X18D"},
        synth_cells={"LUT": ("LUT4",), "carry": ("CCU2C",), "FF": ("TRELLIS_FF",), "block RAM": ("DP16KD",),
                     "LUT RAM": ("TRELLIS_DPR16X4",), "DSP": ("MULT18X18D",)},
        bitstream_suffix="bit")),
}


def spram_matrices(cfg: Config) -> list[str]:
    """The weight matrices the core keeps in SPRAM on ``hardware.fpga`` (B_l never: the homeostasis
    pass, and the continual update where the network narrows, write it column by column, which a
    parity-split single-port store cannot follow)."""
    device = DEVICES[cfg.hardware.fpga]
    if device is None or not device.sprams:
        return []
    return [name for name in param_shapes(cfg.network) if name[0] == "W"]


def presynaptic_operand(cfg: Config) -> tuple[int, int]:
    """``(signed width, fraction bits)`` of the MAC lanes' presynaptic operand: inputs and states
    aligned to the larger of their fraction bits (an exact shift, so no product rounds otherwise)."""
    fx = cfg.fixed
    frac = max(fx.state.n, fx.input.n)
    return max(fx.state.width + frac - fx.state.n, fx.input.width + 1 + frac - fx.input.n), frac


def multiplier_operands(cfg: Config) -> dict[str, int]:
    """Signed operand widths of the products that map onto DSPs."""
    fx = cfg.fixed
    signed = lambda fmt: fmt.width + (0 if fmt.signed else 1)  # noqa: E731
    return {
        "fixed.weight": signed(fx.weight),
        "fixed.state and fixed.input (aligned to one fraction)": presynaptic_operand(cfg)[0],
        "fixed.update": signed(fx.update),
    }


def memories(cfg: Config) -> list[tuple[str, int, int]]:
    """``(name, depth, width)`` of every block-RAM memory of the core (one entry per bank and read port)."""
    arith, fx, P = Arith.from_config(cfg), cfg.fixed, cfg.hardware.lanes
    n, L = cfg.network.sizes, cfg.network.n_layers
    striped = lambda length: bank_depth((length,), P)  # noqa: E731
    in_spram = spram_matrices(cfg)
    out = []
    for name, shape in param_shapes(cfg.network).items():
        if name[0] == "b":
            out += [(name, striped(shape[0]), arith.bias_store.width)] * P
        elif name not in in_spram:
            out += [(name, bank_depth(shape, P), arith.weight_store.width)] * P
    for l in range(1, L + 1):
        out += [(f"s{l}", striped(n[l]), fx.state.width)] * (3 * 2 * P)  # three buffers, two read ports
        factors = 2 if cfg.network.tied or l < L else 1
        out += [(f"factors{l}", striped(n[l]), fx.update.width)] * (factors * P)
    banks = neuron_banks(cfg)
    out += [("w0x", bank_depth((n[1],), banks), fx.accumulator.width)] * banks + [("x", striped(n[0]), fx.input.width)] * P
    if cfg.hardware.defer_input_updates:  # the W_0 updates deferred to the sample's end, one per hidden neuron
        out += [("pending", bank_depth((n[1],), banks), fx.update.width)] * banks
    return out


def spram_segments(cfg: Config) -> dict[str, int]:
    """Words per bank of each SPRAM-backed matrix, in the order one parity store per bank holds them
    (:class:`eqprop.hw.memories.ParityStore`)."""
    shapes, P = param_shapes(cfg.network), cfg.hardware.lanes
    return {name: bank_depth(shapes[name], P) for name in spram_matrices(cfg)}


def spram_blocks(cfg: Config) -> int:
    """SPRAMs that the SPRAM-backed weights take: one parity store per bank."""
    segments = spram_segments(cfg)
    if not segments:
        return 0
    return cfg.hardware.lanes * spram_count(sum(segments.values()), Arith.from_config(cfg).weight_store.width)


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
    sprams = spram_blocks(cfg)
    if sprams > device.sprams:
        raise ConfigError(
            f"the weights {', '.join(spram_matrices(cfg))} need {sprams} SPRAMs ({cfg.hardware.lanes} banks of "
            f"{Arith.from_config(cfg).weight_store.width}-bit words, each split over two by address parity); {device.name} has "
            f"{device.sprams}: use fewer lanes, narrower weights or fewer learn_bits"
        )
    bits, budget = sum(depth * width for _, depth, width in memories(cfg)), device.ram_blocks * device.block_bits
    if bits > budget:
        raise ConfigError(
            f"the network needs at least {bits / 1024:.0f} Kbit of {device.ram_kind} (weights with learn_bits, states, "
            f"factors); {device.name} has {budget / 1024:.0f} Kbit"
        )
    segments = spram_segments(cfg)
    conflicts = single_port_conflicts(Program.of(cfg), segments) if segments else []
    if conflicts:
        writer, reader = conflicts[0]
        latency = pipeline(cfg).weight_write_latency
        raise ConfigError(
            f"on the {device.name} the weights share single-port SPRAM, and {reader} would read it while {writer}'s last "
            f"words are still being written: choose lanes or layer sizes that give the bias update between them an even "
            f"number of beats or at least {latency}"
        )
    needed = multipliers(cfg)
    if needed > device.dsps:
        raise ConfigError(
            f"{cfg.hardware.lanes} lanes need {needed} DSP blocks; {device.name} has {device.dsps} DSPs: use fewer lanes"
        )


def update_factor_width(cfg: Config) -> int:
    """Bits of the update lanes' one factor per beat: a row's learning factor (the ``update``
    format) or, where an update walks ``B_l`` by column (:func:`eqprop.program.feedback_by_column`),
    the column's state."""
    fx = cfg.fixed
    by_column = any(part.column for part in Program.of(cfg).update.parts)
    return max(fx.update.width, fx.state.width) if by_column else fx.update.width


def products(cfg: Config) -> list[tuple[str, int, int, int]]:
    """The core's multiplications that Yosys maps to DSP blocks: ``(what, how many, operand bits,
    operand bits)``. Per lane the dot product's and the update's two (one untied); per neuron
    unit (:attr:`eqprop.program.Program.neuron_units`) two learning factors (a layer's rate times
    a state, or a change of state) and ``f ||x||^2`` with deferred input updates. (``||x||^2`` is summed from shifted partial products, and
    products by constants, beta, eta/beta and lambda among them, are shifts and adds.)"""
    fx, P, tied = cfg.fixed, cfg.hardware.lanes, cfg.network.tied
    arith = Arith.from_config(cfg)
    pre_bits = presynaptic_operand(cfg)[0]
    update_pre_bits = max(fx.state.width, fx.input.width + 1, fx.update.width)
    units = Program.of(cfg).neuron_units
    out = [("dot product", P, fx.weight.width, pre_bits), ("update", (2 if tied else 1) * P, update_factor_width(cfg), update_pre_bits),
           ("learning factor", 2 * units, max(arith.rates).bit_length(), fx.state.width + (0 if tied else 1))]
    if cfg.hardware.defer_input_updates:
        out.append(("f ||x||^2", units, fx.update.width + 2, arith.norm_bound.bit_length()))
    return out


def multipliers(cfg: Config) -> int:
    """DSP blocks the core takes on ``hardware.fpga`` (one per product where the FPGA is generic),
    as Yosys maps them: checked against its cell counts on both FPGAs."""
    device = DEVICES[cfg.hardware.fpga]
    return sum(count * (device.dsp_blocks(a, b) if device else 1) for _, count, a, b in products(cfg))
