"""The SoC a board runs: the core behind the host link, on a UART's two pins.

``divisor`` is the board's clock cycles per UART bit; ``timeout`` (cycles) ends a frame that
stopped arriving. The same SoC runs on a board and, as Verilog, in the simulated board.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eqprop.config import Config

from .engine import HostLink
from .uart import UartRx, UartTx


class Soc(wiring.Component):
    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, cfg: Config, divisor: int, timeout: int, primitives: bool = False, collisions: str = "checked") -> None:
        self.cfg, self.divisor = cfg, divisor
        self.link = HostLink(cfg, timeout, primitives, collisions)
        self.uart_rx, self.uart_tx = UartRx(divisor), UartTx(divisor)
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.uart_rx, m.submodules.uart_tx, m.submodules.link = self.uart_rx, self.uart_tx, self.link
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx)]
        wiring.connect(m, self.uart_rx.data, self.link.requests)
        wiring.connect(m, self.link.answers, self.uart_tx.data)
        return m


class WishbonePins(wiring.Component):
    """The core behind its Wishbone slave (:class:`eqprop.hw.wishbone.WishboneCore`) alone, on the same two
    pins as :class:`Soc`: what a standalone build of the slave places, routes and times (``eqprop build
    --bus wishbone``). An SoC's master would drive the bus; here a shift register that ``rx`` feeds
    drives every master signal and the slave's answers are folded into one registered bit on ``tx``,
    so synthesis keeps all of the slave and its bus without a pin for each bit."""

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, cfg: Config, primitives: bool = False, collisions: str = "checked") -> None:
        from eqprop.hw.wishbone import WishboneCore

        self.slave = WishboneCore(cfg, primitives=primitives, collisions=collisions)
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.slave = self.slave
        bus = self.slave.bus
        master = Cat(bus.cyc, bus.stb, bus.we, bus.sel, bus.adr, bus.dat_w)
        shifted = Signal(len(master))
        m.d.sync += [shifted.eq(Cat(self.rx, shifted[:-1])), self.tx.eq(Cat(bus.dat_r, bus.ack, bus.stall).xor())]
        m.d.comb += master.eq(shifted)
        return m
