"""The SoC side of the host link: frames (:mod:`eqprop.boards.protocol`) in and out over byte streams.

:class:`FrameReceiver` parses bytes from the UART into a request: its sequence number, command and
payload (in a buffer memory the command engine reads), or a reason it was refused. Garbage before
a SOF, and a SOF whose length and complement disagree, are skipped silently; a frame whose CRC
does not match, that declares more than :data:`~eqprop.boards.protocol.MAX_PAYLOAD` bytes, or
that stops for longer than ``timeout`` cycles between bytes is reported as an error (the engine
answers with an error frame). :class:`FrameSender` sends an answer: header, the payload bytes the
engine streams in, the CRC.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib.crc.catalog import CRC16_CCITT_FALSE
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import MAX_PAYLOAD, SOF, Error


#: What the receiver hands the command engine.
REQUEST = data.StructLayout({"sequence": 8, "command": 8, "length": range(MAX_PAYLOAD + 1), "error": 8})


class FrameReceiver(wiring.Component):
    """Bytes in; one request at a time out, held until the engine takes it (``request.ready``).

    ``request.payload`` has ``sequence``, ``command``, ``length`` and ``error`` (0, or an
    :class:`~eqprop.boards.protocol.Error` code); the payload bytes are in ``buffer`` (read it
    with :meth:`read_port`). While a request waits, no bytes are taken.
    """

    def __init__(self, timeout: int) -> None:
        if timeout < 1:
            raise ValueError(f"the inter-byte timeout must be at least one cycle, got {timeout}")
        self.timeout = timeout
        self.buffer = Memory(shape=8, depth=MAX_PAYLOAD, init=[])
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "request": Out(stream.Signature(REQUEST)),
        })

    def read_port(self):
        return self.buffer.read_port()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.buffer = self.buffer
        write = self.buffer.write_port()
        request = self.request.payload
        byte = self.bytes.payload
        length, complement = Signal(16), Signal(16)
        count = Signal(range(MAX_PAYLOAD + 1))
        # CRC-16/CCITT-FALSE (eqprop.boards.protocol.crc16 on the host) over every byte between SOF and the CRC
        m.submodules.crc = crc = CRC16_CCITT_FALSE(data_width=8).create()
        received = Signal(16)
        idle = Signal(range(self.timeout + 1))
        take = self.bytes.valid & self.bytes.ready

        def fail(code):
            m.d.sync += [request.error.eq(code), self.request.valid.eq(1)]
            m.next = "WAIT"

        with m.If(self.request.valid & self.request.ready):
            m.d.sync += self.request.valid.eq(0)
        with m.FSM():
            with m.State("SOF"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(take & (byte == SOF)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [count.eq(0), idle.eq(0), request.error.eq(0), request.sequence.eq(0), request.command.eq(0)]
                    m.next = "LENGTH_HIGH"
            for state, target, after in (
                ("LENGTH_HIGH", length, "LENGTH_LOW"),
                ("LENGTH_LOW", length, "COMPLEMENT_HIGH"),
                ("COMPLEMENT_HIGH", complement, "COMPLEMENT_LOW"),
                ("COMPLEMENT_LOW", complement, "SEQUENCE"),
                ("SEQUENCE", None, "COMMAND"),
                ("COMMAND", None, "PAYLOAD"),
                ("PAYLOAD", None, "CRC_HIGH"),
                ("CRC_HIGH", received, "CRC_LOW"),
                ("CRC_LOW", received, "CHECK"),
            ):
                with m.State(state):
                    m.d.comb += self.bytes.ready.eq(1)
                    with m.If(take):
                        m.d.sync += idle.eq(0)
                        if state not in ("CRC_HIGH", "CRC_LOW"):
                            m.d.comb += [crc.data.eq(byte), crc.valid.eq(1)]
                        if target is not None:
                            m.d.sync += target.eq(Cat(byte, target[:8]))
                        if state == "SEQUENCE":
                            m.d.sync += request.sequence.eq(byte)
                        if state == "COMMAND":
                            m.d.sync += request.command.eq(byte)
                        if state == "COMPLEMENT_LOW":
                            with m.If(Cat(byte, complement[:8]) != (length ^ 0xFFFF)):
                                m.next = "SOF"  # not a frame: skip it
                            with m.Elif(length > MAX_PAYLOAD):
                                fail(Error.LENGTH)
                            with m.Else():
                                m.next = after
                        elif state == "COMMAND":
                            m.next = after
                            with m.If(length == 0):
                                m.next = "CRC_HIGH"
                        elif state == "PAYLOAD":
                            m.d.comb += [write.addr.eq(count), write.data.eq(byte), write.en.eq(1)]
                            m.d.sync += count.eq(count + 1)
                            with m.If(count + 1 == length):
                                m.next = after
                        else:
                            m.next = after
                    with m.Elif(idle == self.timeout):
                        fail(Error.TIMEOUT)
                    with m.Else():
                        m.d.sync += idle.eq(idle + 1)
            with m.State("CHECK"):
                m.d.sync += request.length.eq(length)
                with m.If(received != crc.crc):
                    fail(Error.CRC)
                with m.Else():
                    m.d.sync += self.request.valid.eq(1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.request.valid | self.request.ready):
                    m.next = "SOF"
        return m


#: What the command engine asks the sender to send: the header fields of an answer.
ANSWER = data.StructLayout({"sequence": 8, "command": 8, "length": range(MAX_PAYLOAD + 1)})


class FrameSender(wiring.Component):
    """One answer at a time: its header from ``answer``, then ``length`` bytes from ``data``, then the CRC.

    ``answer`` is taken (``ready``) when the frame's last byte has gone out.
    """

    answer: In(stream.Signature(ANSWER))
    data: In(stream.Signature(8))
    bytes: Out(stream.Signature(8))

    def elaborate(self, platform) -> Module:
        m = Module()
        header = self.answer.payload
        m.submodules.crc = crc = CRC16_CCITT_FALSE(data_width=8).create()  # over everything after SOF
        count = Signal(range(MAX_PAYLOAD + 1))
        step = Signal(range(7))
        length = Cat(header.length, Const(0, 16 - len(header.length)))
        fields = [Const(SOF, 8), length[8:], length[:8], ~length[8:], ~length[:8], header.sequence, header.command]
        sent = self.bytes.valid & self.bytes.ready
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.answer.valid):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [step.eq(0), count.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                byte = Signal(8)
                m.d.comb += self.bytes.valid.eq(1)
                for i, field in enumerate(fields):
                    with m.If(step == i):
                        m.d.comb += byte.eq(field)
                m.d.comb += self.bytes.payload.eq(byte)
                with m.If(sent):
                    m.d.sync += step.eq(step + 1)
                    m.d.comb += [crc.data.eq(byte), crc.valid.eq(step != 0)]
                    with m.If(step == len(fields) - 1):
                        m.next = "PAYLOAD"
                        with m.If(header.length == 0):
                            m.next = "CRC_HIGH"
            with m.State("PAYLOAD"):
                m.d.comb += [self.bytes.valid.eq(self.data.valid), self.bytes.payload.eq(self.data.payload), self.data.ready.eq(self.bytes.ready)]
                with m.If(sent):
                    m.d.comb += [crc.data.eq(self.data.payload), crc.valid.eq(1)]
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == header.length):
                        m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                m.d.comb += [self.bytes.valid.eq(1), self.bytes.payload.eq(crc.crc[8:])]
                with m.If(sent):
                    m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                m.d.comb += [self.bytes.valid.eq(1), self.bytes.payload.eq(crc.crc[:8])]
                with m.If(sent):
                    m.d.comb += self.answer.ready.eq(1)
                    m.next = "IDLE"
        return m
