"""The SoC's clock domain on a board: the oscillator itself, divided down, or multiplied by a PLL.

:func:`soc_domain` adds the ``soc`` domain to a board's top module. A clock that divides the
oscillator evenly comes from a counter; a faster one from the FPGA's PLL, whose dividers
:func:`ecp5_pll_dividers` finds (the ECP5's EHXPLLL; the iCE40UP5K's only PLL sits behind the pin
its boards put the oscillator on, which Amaranth's platform already claims, so no iCE40 board
multiplies its clock here). The domain is held in reset until the PLL locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal

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


def soc_domain(m: Module, platform, fpga: str, input_hz: int, output_hz: int) -> None:
    """Add the ``soc`` clock domain at ``output_hz`` (from the platform's ``sync`` clock at ``input_hz``)."""
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
