"""A UART (8 data bits, no parity, one stop bit) with stream interfaces, for the SoC's host link.

``divisor`` is clock cycles per bit (the board's clock over its baud rate). The receiver samples
each bit in its middle after a start bit that is still low half a bit in; a byte whose stop bit
is low is dropped (a framing error; reception resumes once the line is high again).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class _UartComponent(wiring.Component):
    """A UART half: ``divisor`` clock cycles per bit, at least 4 (the receiver samples mid-bit)."""

    def __init__(self, divisor: int) -> None:
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"a UART needs at least 4 clock cycles per bit, got {divisor!r}")
        self.divisor = divisor
        super().__init__()


class UartTx(_UartComponent):
    """Sends each byte of its ``data`` stream on ``tx`` (idle high)."""

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform) -> Module:
        m = Module()
        shift = Signal(10)  # start bit, 8 data bits (LSB first), stop bit
        bits = Signal(range(11))
        timer = Signal(range(self.divisor))
        with m.If(bits == 0):
            m.d.comb += self.data.ready.eq(1)
            with m.If(self.data.valid):
                m.d.sync += [shift.eq(Cat(0, self.data.payload, 1)), bits.eq(10), timer.eq(self.divisor - 1), self.tx.eq(0)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [bits.eq(bits - 1), timer.eq(self.divisor - 1), shift.eq(shift >> 1), self.tx.eq(shift[1] | (bits == 1))]
        return m


class UartRx(_UartComponent):
    """Puts each byte received on ``rx`` into its ``data`` stream (a byte not taken before the next one ends is lost)."""

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    #: Pulses for one cycle when a byte's stop bit was low.
    framing_error: Out(1)

    def elaborate(self, platform) -> Module:
        m = Module()
        line = Signal(init=1)
        synced = Signal(init=1)
        m.d.sync += [synced.eq(self.rx), line.eq(synced)]  # two flip-flops against metastability
        timer = Signal(range(self.divisor + self.divisor // 2))
        bits = Signal(range(10))
        shift = Signal(8)
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(bits + 1), shift.eq(Cat(shift[1:], line))]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(line):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):  # after a framing error, wait for the line to go idle
                with m.If(line):
                    m.next = "IDLE"
        return m
