"""The boards eqprop builds for, on top of ``amaranth-boards``: clock, UART, FPGA budget, default network.

Each board runs the SoC (:mod:`eqprop.boards.soc`) from its oscillator, divided where the core
does not close timing at the oscillator's rate (the iCE40's PLL cannot go below 16 MHz), and talks
to the host through the USB-serial bridge wired to its UART pins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from eqprop.config import Config
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
    #: The oscillator, and what the SoC's clock divides it by.
    oscillator_hz: int
    clock_divide: int
    baud: int
    #: The network a bare ``eqprop build --board NAME`` builds: a preset and hardware options.
    preset: str = "digits-cep"
    hardware: dict = field(default_factory=dict)
    #: Programmers ``eqprop flash`` tries, in order.
    programmers: tuple[str, ...] = ("openFPGALoader",)

    @property
    def clock_hz(self) -> int:
        """The SoC's clock."""
        return self.oscillator_hz // self.clock_divide

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

    def default_config(self) -> Config:
        from eqprop import presets

        return presets.get(self.preset).replace(training={"arith": "fixed"}, hardware={"fpga": self.fpga, **self.hardware})


BOARDS = {
    # iCE40UP5K, 12 MHz oscillator, FT2232H. Literal input updates: deferring them takes three more
    # SB_MAC16 (the tracking of W_0 x) than the eight the UP5K has beside the lanes and the link.
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40up5k", 12_000_000, 2, 1_000_000,
                        hardware={"lanes": 1, "defer_input_updates": False}, programmers=("iceprog", "openFPGALoader")),
    # ECP5 LFE5U-85F, 25 MHz oscillator halved (P = 2 closes at about 17 MHz), FT231X
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85f", 25_000_000, 2, 1_000_000,
                       hardware={"lanes": 2}),
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise ConfigError(f"unknown board {name!r}: choose {', '.join(BOARDS)}")
    return BOARDS[name]
