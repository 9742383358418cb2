"""The boards eqprop builds for, on top of ``amaranth-boards``: clock, UART, FPGA budget, default network.

Each board runs the SoC (:mod:`eqprop.boards.soc`) at its ``clock_hz``, made from its oscillator
by :mod:`eqprop.boards.clocks` (divided by a counter, or multiplied by the FPGA's PLL), and talks to the host through the
USB-serial bridge wired to its UART pins.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field

from eqprop.config import Config, HardwareConfig
from eqprop.errors import ConfigError


#: Frames stop after this much silence between bytes (seconds).
FRAME_TIMEOUT_S = 0.05


@dataclass(frozen=True)
class Board:
    name: str
    #: ``module:class`` of the amaranth-boards platform.
    platform: str
    #: ``hardware.fpga``: the budget the network is checked against.
    fpga: str
    #: The oscillator, and the SoC's clock made from it (eqprop.boards.clocks: the same, divided, or by a PLL).
    oscillator_hz: int
    clock_hz: int
    baud: int
    #: The network a bare ``eqprop build --board NAME`` builds: a preset and hardware options.
    preset: str = "digits-cep"
    hardware: dict = field(default_factory=dict)
    #: Programmers ``eqprop flash`` tries, in order.
    programmers: tuple[str, ...] = ("openFPGALoader",)

    @property
    def frame_timeout_cycles(self) -> int:
        """The SoC's frame timeout in its clock cycles."""
        return int(FRAME_TIMEOUT_S * self.clock_hz)

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self.clock_hz // self.baud

    def create_platform(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)()

    def configure(self, cfg: Config) -> Config:
        """``cfg`` on this board. A configuration written for this FPGA keeps its hardware options;
        any other (``generic``, or another FPGA's) takes the board's, the defaults where it sets none."""
        if cfg.hardware.fpga == self.fpga:
            return cfg
        return cfg.replace(hardware={**dataclasses.asdict(HardwareConfig()), **self.hardware, "fpga": self.fpga})

    def default_config(self) -> Config:
        from eqprop import presets

        return self.configure(presets.get(self.preset)).replace(training={"arith": "fixed"})


BOARDS = {
    # iCE40UP5K, the SoC at 18 MHz from the 12 MHz oscillator through the PLL (it closes at about 19), FT2232H.
    # Literal input updates: deferring them fits the UP5K's eight SB_MAC16 exactly, but the SoC then took
    # 5,351 logic cells of its 5,280 (nextpnr, an earlier core; about 4,430 with literal ones).
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40up5k", 12_000_000, 18_000_000, 1_000_000,
                        hardware={"lanes": 1, "defer_input_updates": False}, programmers=("iceprog", "openFPGALoader")),
    # ECP5 LFE5U-85F, the SoC at 50 MHz from the 25 MHz oscillator through the PLL, 8 lanes, FT231X.
    # (8 lanes close at about 65 MHz and route in 12 to 17 minutes; before ||x||^2 was registered, they
    # closed at about 55 MHz on the oscillator but did not finish routing at 50 MHz within 40 minutes.)
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85f", 25_000_000, 50_000_000, 1_000_000,
                       hardware={"lanes": 8}),
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise ConfigError(f"unknown board {name!r}: choose {', '.join(BOARDS)}")
    return BOARDS[name]


def board_for(fpga: str) -> Board:
    """The board with ``fpga`` (``hardware.fpga``): its clock and default network."""
    for board in BOARDS.values():
        if board.fpga == fpga:
            return board
    raise ConfigError(f"no board has the FPGA {fpga!r}: choose {', '.join(board.fpga for board in BOARDS.values())}")
