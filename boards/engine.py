"""The SoC's command engine: requests from the host link executed on the core, answers sent back.

:class:`HostLink` takes request bytes and gives answer bytes (the SoC puts a UART on each side);
between them are the :class:`~eqprop.boards.link.FrameReceiver`, this engine, the core and the
:class:`~eqprop.boards.link.FrameSender`. Commands and their payloads (big-endian):

* ``INFO``: answer ``version, config hash (4), P, L, n_0 .. n_L (2 each), T1 (2), T2 (2),
  phases, word bytes`` (what the host checks, and the inputs of the cycle formula);
* ``LOAD``: ``memory, bank, address (2), words``: parameter words (``word bytes`` each, two's
  complement) written from ``address`` on (memories, banks and addresses as
  :func:`eqprop.layout.parameter_words`); answer empty;
* ``READ``: ``memory, bank, address (2), count (2)``; answer the ``count`` words;
* ``TRAIN`` / ``INFER``: ``label, x_0 .. x_{n_0 - 1}`` (input integers, one byte each); answer
  ``prediction, cycles (4)``;
* ``STATS``: answer ``samples trained (4), cycles of the last sample (4), frames answered (4),
  CRC errors (2), other errors (2)``.

Every request is checked before anything changes: a broken frame, an unknown command, a payload
of the wrong length, a memory, bank, address range or label out of bounds is answered with an
``ERROR`` frame and its :class:`~eqprop.boards.protocol.Error` code, and leaves the weights as
they were.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.hw.core import Core
from eqprop.layout import parameter_depths

from .link import FrameReceiver, FrameSender
from .protocol import ANSWER, ERROR, MAX_PAYLOAD, Command, Error
from .requests import SampleResult, info_bytes, word_bytes

#: The longest fixed-size answer (INFO of a deep network is the longest).
REPLY_BYTES = 64


class HostLink(wiring.Component):
    """Request bytes in, answer bytes out, the core in between."""

    requests: In(stream.Signature(8))
    answers: Out(stream.Signature(8))

    def __init__(self, cfg: Config, timeout: int, primitives: bool = False) -> None:
        self.cfg = cfg
        self.core = Core(cfg, primitives=primitives)
        self.timeout = timeout
        info = info_bytes(cfg)
        if len(info) > REPLY_BYTES:
            raise ValueError(f"INFO of this network takes {len(info)} bytes, more than {REPLY_BYTES}")
        if self.cfg.fixed.input.width > 8:
            raise ValueError("inputs travel one byte each: fixed.input must be at most 8 bits wide")
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, core = self.cfg, self.core
        n, P, W = cfg.network.sizes, cfg.hardware.lanes, word_bytes(cfg)
        m.submodules.receiver = receiver = FrameReceiver(self.timeout)
        m.submodules.sender = sender = FrameSender()
        m.submodules.core = core
        wiring.connect(m, wiring.flipped(self.requests), receiver.bytes)
        wiring.connect(m, sender.bytes, wiring.flipped(self.answers))
        buffer = receiver.read_port()
        request = receiver.request.payload
        depths = parameter_depths(cfg)

        reply = Signal(8 * REPLY_BYTES)
        reply_length = Signal(range(MAX_PAYLOAD + 1))
        answer_command = Signal(8)
        index = Signal(range(MAX_PAYLOAD + 1))  # payload byte being read / answer byte being sent
        memory, bank, address, count = Signal(8), Signal(8), Signal(16), Signal(16)
        word = Signal(8 * W)
        word_byte = Signal(range(W + 1))
        label = Signal(8)
        samples, frames, last_cycles = Signal(32), Signal(32), Signal(32)
        crc_errors, other_errors = Signal(16), Signal(16)
        prediction = Signal(8)
        words_bytes = Signal(16)  # a LOAD's word bytes not yet counted
        header = [memory, bank, address[8:], address[:8], count[8:], count[:8]]

        def big_endian(*values):
            """Bytes in sending order, packed so that the first is the most significant."""
            return Cat(*reversed(values))

        def answer(command, payload, length):
            m.d.sync += [answer_command.eq(command), reply.eq(payload), reply_length.eq(length), index.eq(0)]
            m.next = "SEND"

        def refuse(code):
            if isinstance(code, Error):
                m.d.sync += other_errors.eq(other_errors + 1)
            else:  # the receiver's verdict
                with m.If(code == Error.CRC):
                    m.d.sync += crc_errors.eq(crc_errors + 1)
                with m.Else():
                    m.d.sync += other_errors.eq(other_errors + 1)
            answer(ERROR, code, 1)

        # the answer's header: the sender reads it while ``answer.valid``
        m.d.comb += [sender.answer.payload.sequence.eq(request.sequence), sender.answer.payload.command.eq(answer_command),
                     sender.answer.payload.length.eq(reply_length)]
        depth_of = Signal(16)
        m.d.comb += depth_of.eq(0)
        for i, depth in enumerate(depths):
            with m.If(memory == i):
                m.d.comb += depth_of.eq(depth)
        m.d.comb += buffer.addr.eq(index)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(receiver.request.valid):
                    m.d.sync += index.eq(0)
                    with m.If(request.error != 0):
                        refuse(request.error)
                    with m.Elif(request.command == Command.INFO):
                        answer(Command.INFO | ANSWER, int.from_bytes(info_bytes(cfg), "big"), len(info_bytes(cfg)))
                    with m.Elif(request.command == Command.STATS):
                        stats = big_endian(*[b for value in (samples, last_cycles, frames) for b in (value[24:], value[16:24], value[8:16], value[:8])],
                                           crc_errors[8:], crc_errors[:8], other_errors[8:], other_errors[:8])
                        answer(Command.STATS | ANSWER, stats, 16)
                    with m.Elif(request.command == Command.LOAD):
                        with m.If(request.length < 4 + W):
                            refuse(Error.LENGTH)
                        with m.Else():
                            m.d.sync += [words_bytes.eq(request.length - 4), count.eq(0)]
                            m.next = "LOAD_LENGTH"
                    with m.Elif(request.command == Command.READ):
                        with m.If(request.length != 6):
                            refuse(Error.LENGTH)
                        with m.Else():
                            m.next = "HEADER"
                    with m.Elif((request.command == Command.TRAIN) | (request.command == Command.INFER)):
                        with m.If(request.length != 1 + n[0]):
                            refuse(Error.LENGTH)
                        with m.Else():
                            m.next = "LABEL"
                    with m.Else():
                        refuse(Error.COMMAND)
            with m.State("LOAD_LENGTH"):  # count = words' bytes / W by subtraction, a word a cycle (no divider)
                with m.If(words_bytes >= W):
                    m.d.sync += [words_bytes.eq(words_bytes - W), count.eq(count + 1)]
                with m.Elif(words_bytes != 0):
                    refuse(Error.LENGTH)
                with m.Else():
                    m.next = "HEADER"
            with m.State("HEADER"):  # memory, bank, address (and count for READ), one byte a cycle
                last = Mux(request.command == Command.LOAD, 3, 5)
                with m.Switch(index - 1):
                    for i, field in enumerate(header):
                        with m.Case(i):
                            m.d.sync += field.eq(buffer.data)
                m.d.sync += index.eq(index + 1)
                with m.If(index == last + 1):
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If((memory >= len(depths)) | (bank >= P) | (count == 0) | (address + count > depth_of)
                          | ((request.command == Command.READ) & (count * W > MAX_PAYLOAD))):
                    refuse(Error.ARGUMENT)
                with m.Elif(request.command == Command.LOAD):
                    m.d.sync += [index.eq(4), word_byte.eq(0)]
                    m.next = "LOAD_BYTE"
                with m.Else():
                    m.d.sync += [answer_command.eq(Command.READ | ANSWER), reply_length.eq(count * W), index.eq(0)]
                    m.next = "READ_WORD"
            with m.State("LOAD_BYTE"):  # the buffer answers one cycle after index
                m.d.sync += index.eq(index + 1)
                m.next = "LOAD_SHIFT"
            with m.State("LOAD_SHIFT"):
                m.d.sync += [word.eq(Cat(buffer.data, word[:-8])), word_byte.eq(word_byte + 1)]
                with m.If(word_byte == W - 1):
                    m.next = "LOAD_WRITE"
                with m.Else():
                    m.next = "LOAD_BYTE"
            with m.State("LOAD_WRITE"):
                access = core.param.payload
                m.d.comb += [core.param.valid.eq(1), access.memory.eq(memory), access.bank.eq(bank), access.address.eq(address),
                             access.write.eq(1), access.data.eq(word)]
                with m.If(core.param.ready):
                    m.d.sync += [address.eq(address + 1), count.eq(count - 1), word_byte.eq(0)]
                    with m.If(count == 1):
                        answer(Command.LOAD | ANSWER, 0, 0)
                    with m.Else():
                        m.next = "LOAD_BYTE"
            with m.State("READ_WORD"):
                access = core.param.payload
                m.d.comb += [core.param.valid.eq(1), access.memory.eq(memory), access.bank.eq(bank), access.address.eq(address)]
                with m.If(core.param.ready):
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                m.d.comb += core.param_read.ready.eq(1)
                with m.If(core.param_read.valid):
                    m.d.sync += [word.eq(core.param_read.payload), word_byte.eq(0), address.eq(address + 1), count.eq(count - 1)]
                    m.next = "READ_SEND"
            with m.State("READ_SEND"):
                m.d.comb += [sender.answer.valid.eq(1), sender.data.valid.eq(1), sender.data.payload.eq(word[-8:])]
                with m.If(sender.data.ready):
                    m.d.sync += [word.eq(word << 8), word_byte.eq(word_byte + 1)]
                    with m.If(word_byte == W - 1):
                        with m.If(count == 0):
                            m.next = "READ_DONE"
                        with m.Else():
                            m.next = "READ_WORD"
            with m.State("READ_DONE"):
                m.d.comb += sender.answer.valid.eq(1)
                with m.If(sender.answer.ready):
                    m.d.comb += receiver.request.ready.eq(1)
                    m.d.sync += frames.eq(frames + 1)
                    m.next = "IDLE"
            with m.State("LABEL"):
                m.d.sync += index.eq(1)
                m.next = "LABEL_CHECK"
            with m.State("LABEL_CHECK"):
                with m.If(buffer.data >= n[-1]):
                    refuse(Error.ARGUMENT)
                with m.Else():
                    m.d.sync += [label.eq(buffer.data), index.eq(2)]
                    m.next = "X"
            with m.State("X"):  # x_i is at payload byte i + 1; the buffer answers one cycle late
                m.d.comb += [core.x.valid.eq(1), core.x.payload.eq(buffer.data)]
                with m.If(core.x.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n[0] + 1):
                        m.next = "SAMPLE"
                with m.Else():
                    m.d.comb += buffer.addr.eq(index - 1)
            with m.State("SAMPLE"):
                m.d.comb += [core.label.valid.eq(1), core.label.payload.index.eq(label),
                             core.label.payload.train.eq(request.command == Command.TRAIN)]
                with m.If(core.label.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += core.prediction.ready.eq(1)
                with m.If(core.prediction.valid):
                    m.d.sync += [prediction.eq(core.prediction.payload), last_cycles.eq(core.cycles)]
                    with m.If(request.command == Command.TRAIN):
                        m.d.sync += samples.eq(samples + 1)
                    m.next = "RESULT"
            with m.State("RESULT"):
                answer(request.command | ANSWER, big_endian(prediction, last_cycles[24:], last_cycles[16:24], last_cycles[8:16], last_cycles[:8]), SampleResult.BYTES)
            with m.State("SEND"):  # a fixed answer from ``reply``, most significant byte first
                position = Signal(range(REPLY_BYTES))  # the byte of ``reply`` to send, counted from the least significant
                m.d.comb += [position.eq(reply_length - 1 - index), sender.answer.valid.eq(1), sender.data.valid.eq(index < reply_length),
                             sender.data.payload.eq(reply.word_select(position, 8))]
                with m.If(sender.data.valid & sender.data.ready):
                    m.d.sync += index.eq(index + 1)
                with m.If(sender.answer.ready):
                    m.d.comb += receiver.request.ready.eq(1)
                    m.d.sync += frames.eq(frames + 1)
                    m.next = "IDLE"
        return m
