"""The SoC's clock domain on a board: the oscillator itself, divided down, or multiplied by a PLL.

:func:`soc_domain` adds the ``soc`` domain to a board's top module. A clock that divides the
oscillator evenly comes from a counter; any other from the FPGA's PLL, whose dividers
:func:`ecp5_pll_dividers` (the ECP5's EHXPLLL, fed by the platform's clock) and
:func:`ice40_pll_dividers` find (the iCE40's SB_PLL40_PAD, which takes the oscillator's pin itself:
the pin is requested raw, so the platform puts no buffer on it and makes no ``sync`` domain). The
domain is held in reset until the PLL locks (on the iCE40 also until its block RAMs are ready).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib.cdc import FFSynchronizer

from eqprop.errors import ConfigError

#: EHXPLLL limits (Lattice TN1263): the phase detector's input, the VCO, the output.
ECP5_PFD_HZ = (3_125_000, 400_000_000)
ECP5_VCO_HZ = (400_000_000, 800_000_000)


@dataclass(frozen=True)
class Ecp5Pll:
    clki_div: int
    clkfb_div: int
    clkop_div: int


def ecp5_pll_dividers(input_hz: int, output_hz: int) -> Ecp5Pll:
    """Dividers of an EHXPLLL with feedback from CLKOP that make exactly ``output_hz`` from ``input_hz``."""
    for clki_div in range(1, 129):
        pfd = input_hz / clki_div
        if not ECP5_PFD_HZ[0] <= pfd <= ECP5_PFD_HZ[1]:
            continue
        for clkfb_div in range(1, 81):
            if input_hz * clkfb_div != output_hz * clki_div:
                continue
            for clkop_div in range(1, 129):
                if ECP5_VCO_HZ[0] <= output_hz * clkop_div <= ECP5_VCO_HZ[1]:
                    return Ecp5Pll(clki_div, clkfb_div, clkop_div)
    raise ConfigError(f"the ECP5 PLL cannot make {output_hz / 1e6:g} MHz from {input_hz / 1e6:g} MHz exactly")


#: SB_PLL40 limits (Lattice FPGA-TN-02052, the iCE40 sysCLOCK PLL guide): the phase detector's input, the VCO.
ICE40_PFD_HZ = (10_000_000, 133_000_000)
ICE40_VCO_HZ = (533_000_000, 1_066_000_000)
#: The loop filter's setting by the phase detector's input (the upper bounds, in Hz, of settings 1, 2, ...; as icepll chooses it).
ICE40_FILTER_RANGES = (17_000_000, 26_000_000, 44_000_000, 66_000_000, 101_000_000)
#: iCE40 block RAMs read as zero for a while after configuration (Amaranth's iCE40 platform waits as long).
ICE40_RAM_READY_S = 15e-6


@dataclass(frozen=True)
class Ice40Pll:
    divr: int
    divf: int
    divq: int
    filter_range: int


def ice40_pll_dividers(input_hz: int, output_hz: int) -> Ice40Pll:
    """Dividers of an SB_PLL40 in simple feedback mode that make exactly ``output_hz`` from ``input_hz``:
    ``output = input (DIVF + 1) / ((DIVR + 1) 2^DIVQ)``."""
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not ICE40_PFD_HZ[0] <= pfd <= ICE40_PFD_HZ[1]:
            continue
        for divq in range(1, 7):
            vco = output_hz * 2**divq
            feedback, remainder = divmod(vco * (divr + 1), input_hz)
            if ICE40_VCO_HZ[0] <= vco <= ICE40_VCO_HZ[1] and remainder == 0 and 1 <= feedback <= 128:
                filter_range = 1 + sum(pfd >= bound for bound in ICE40_FILTER_RANGES)
                return Ice40Pll(divr, feedback - 1, divq, filter_range)
    raise ConfigError(f"the iCE40 PLL cannot make {output_hz / 1e6:g} MHz from {input_hz / 1e6:g} MHz exactly")


def soc_domain(m: Module, platform, fpga: str, input_hz: int, output_hz: int) -> None:
    """Add the ``soc`` clock domain at ``output_hz`` (from the platform's ``sync`` clock at ``input_hz``,
    or on the iCE40 through the PLL from the oscillator's pin)."""
    m.domains.soc = ClockDomain("soc")
    reset = ResetSignal("sync", allow_reset_less=True)
    if output_hz == input_hz:
        m.d.comb += [ClockSignal("soc").eq(ClockSignal("sync")), ResetSignal("soc").eq(reset)]
        return
    if input_hz % output_hz == 0:  # a counter: the divided clock, reset with the platform's power-on reset
        divide = input_hz // output_hz
        count, divided = Signal(range(divide)), Signal()
        m.d.sync += [count.eq(Mux(count == divide - 1, 0, count + 1)), divided.eq(count < divide // 2)]
        m.d.comb += [ClockSignal("soc").eq(divided), ResetSignal("soc").eq(reset)]
        platform.add_clock_constraint(divided, output_hz)
        return
    if fpga == "ice40up5k":
        _ice40_pll(m, platform, input_hz, output_hz)
        return
    if fpga != "ecp5-85f":
        raise ConfigError(f"the {fpga}'s clock can only be the oscillator's ({input_hz / 1e6:g} MHz) divided by an integer")
    dividers = ecp5_pll_dividers(input_hz, output_hz)
    clock, locked = Signal(name="pll_clock"), Signal(name="pll_locked")
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{input_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{output_hz / 1e6:g}",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=dividers.clkop_div,
        p_CLKOP_CPHASE=dividers.clkop_div - 1, p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=dividers.clkfb_div, p_CLKI_DIV=dividers.clki_div,
        i_CLKI=ClockSignal("sync"), i_CLKFB=clock, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_CLKOP=clock, o_LOCK=locked,
    )
    m.d.comb += [ClockSignal("soc").eq(clock), ResetSignal("soc").eq(~locked | reset)]
    platform.add_clock_constraint(clock, output_hz)


def _ice40_pll(m: Module, platform, input_hz: int, output_hz: int) -> None:
    dividers = ice40_pll_dividers(input_hz, output_hz)
    pin = platform.request(platform.default_clk, dir="-")
    clock, locked = Signal(name="pll_clock"), Signal(name="pll_locked")
    m.submodules.pll = Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH="SIMPLE", p_DIVR=dividers.divr, p_DIVF=dividers.divf, p_DIVQ=dividers.divq,
        p_FILTER_RANGE=dividers.filter_range,
        i_PACKAGEPIN=pin.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clock, o_LOCK=locked,
    )
    # held in reset from configuration until the block RAMs are ready, counted on the PLL's clock
    # once locked (the counter itself has no reset: its domain is the one it releases; LOCK is
    # brought into it through two flip-flops)
    m.domains.soc_power_on = ClockDomain("soc_power_on", reset_less=True)
    locked_here = Signal()
    m.submodules.lock_synchronizer = FFSynchronizer(locked, locked_here, o_domain="soc_power_on")
    wait = Signal(range(int(ICE40_RAM_READY_S * output_hz) + 2))
    ready = wait == int(ICE40_RAM_READY_S * output_hz) + 1
    m.d.soc_power_on += wait.eq(Mux(~locked_here, 0, Mux(ready, wait, wait + 1)))
    m.d.comb += [ClockSignal("soc_power_on").eq(clock), ClockSignal("soc").eq(clock), ResetSignal("soc").eq(~ready)]
    platform.add_clock_constraint(clock, output_hz)
