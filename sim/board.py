"""The simulated board: the SoC's Verilog under cocotb and Verilator, its UART pins driven and read
by cocotb, bytes passed to the host driver over a local TCP socket.

:class:`SimulatedTransport` has the serial transport's interface, so ``eqprop board train --sim``
runs the same host code as a real board. The Verilog is the one a board build synthesizes (the
SoC with SB_SPRAM256KA instances on an iCE40, simulated with Yosys's model); the clock period is
10 ns of simulated time whatever the board's, and the UART runs at the board's divisor.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

from amaranth.back import verilog

from eqprop.config import Config
from eqprop.errors import SimulationError
from eqprop.outputs import check_work_folder

from .runner import _ports_only_verilator, _verilator_make_flags, prepare_simulator, primitive_models

TOP = "eqprop_soc"
PORT_ENV, DIVISOR_ENV = "EQPROP_BOARD_PORT", "EQPROP_BOARD_DIVISOR"


def soc_verilog(cfg: Config, divisor: int, timeout: int) -> str:
    from eqprop.boards.soc import Soc

    return verilog.convert(Soc(cfg, divisor, timeout, primitives=True), name=TOP, emit_src=False)


class SimulatedTransport:
    """Bytes to and from the simulated SoC; the simulation runs in a thread until :meth:`close`."""

    def __init__(self, cfg: Config, divisor: int, timeout_cycles: int, build_root: str | Path = "build/board-sim") -> None:
        prepare_simulator("verilator")
        text = soc_verilog(cfg, divisor, timeout_cycles)
        root = check_work_folder(build_root, "simulated board's build folder").resolve()  # its path goes into Makefiles
        self.build_dir = root / f"verilator-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        (self.build_dir / f"{TOP}.v").write_text(text)
        models = primitive_models(text)
        for name, model in models.items():
            (self.build_dir / name).write_text(model)
        control = ["`verilator_config"] + [f'public_flat_{access} -module "{TOP}" -var "{port}"'
                                           for port, access in (("clk", "rw"), ("rst", "rw"), ("rx", "rw"), ("tx", "rd"))]
        (self.build_dir / "ports.vlt").write_text("\n".join(control) + "\n")
        runner = _ports_only_verilator()
        try:
            with _verilator_make_flags():
                runner.build(
                    sources=[self.build_dir / "ports.vlt", *(self.build_dir / name for name in models), self.build_dir / f"{TOP}.v"],
                    hdl_toplevel=TOP, build_dir=self.build_dir, build_args=["-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal"],
                    timescale=("1ns", "1ps"), log_file=self.build_dir / "build.log",
                )
        except (RuntimeError, SystemExit) as error:
            raise SimulationError(f"verilator could not build the SoC ({error}); see {self.build_dir / 'build.log'}") from None
        self.server = socket.create_server(("127.0.0.1", 0))
        port = self.server.getsockname()[1]
        env = {PORT_ENV: str(port), DIVISOR_ENV: str(divisor)}
        self.thread = threading.Thread(target=self._run, args=(runner, env), daemon=True)
        self.thread.start()
        self.server.settimeout(120)
        try:
            self.connection, _ = self.server.accept()
        except TimeoutError:
            raise SimulationError(f"the simulated board did not start; see {self.build_dir / 'test.log'}") from None

    def _run(self, runner, env) -> None:
        try:
            runner.test(test_module="eqprop.sim.board_bench", hdl_toplevel=TOP, build_dir=self.build_dir, test_dir=self.build_dir,
                        extra_env=env, timescale=("1ns", "1ps"), log_file=self.build_dir / "test.log")
        except SystemExit:
            pass

    def write(self, data: bytes) -> None:
        self.connection.sendall(data)

    def read(self, timeout: float) -> bytes:
        self.connection.settimeout(max(timeout, 1e-3))
        try:
            return self.connection.recv(65536)
        except TimeoutError:
            return b""

    def close(self) -> None:
        self.connection.close()  # the bench sees the host leave and ends the simulation
        self.server.close()
        self.thread.join(timeout=60)

