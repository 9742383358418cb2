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

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqprop.config import Config
from eqprop.hw.arith import times_constant
from eqprop.hw.core import Core
from eqprop.layout import parameter_depths

from .link import FrameReceiver, FrameSender
from .protocol import ANSWER, ERROR, MAX_PAYLOAD, Command, Error
from .requests import SampleResult, Stats, info_bytes, word_bytes

#: The longest INFO answer (a deep network's) the engine accepts.
INFO_BYTES = 64


def bytes_of(value: Signal) -> list:
    """A register's bytes, most significant first."""
    return [value[i:i + 8] for i in reversed(range(0, len(value), 8))]


class _Registers:
    """The engine's registers, which its states share."""

    def __init__(self, word_bytes: int) -> None:
        self.reply_length = Signal(range(MAX_PAYLOAD + 1))
        self.reply_info = Signal()  # the fixed answer being sent is INFO's (from its ROM)
        self.error = Signal(8)  # the code of the ERROR being sent
        self.answer_command = Signal(8)
        self.index = Signal(range(MAX_PAYLOAD + 1))  # payload byte being read / answer byte being sent
        self.memory = Signal(8)
        self.bank = Signal(8)
        self.address = Signal(16)
        self.count = Signal(16)
        self.word = Signal(8 * word_bytes)
        self.word_byte = Signal(range(word_bytes + 1))
        self.words_bytes = Signal(16)  # a LOAD's word bytes not yet counted
        self.label = Signal(8)
        self.prediction = Signal(8)
        self.samples = Signal(32)
        self.frames = Signal(32)
        self.last_cycles = Signal(32)
        self.crc_errors = Signal(16)
        self.other_errors = Signal(16)
        # Every other fixed answer is sent straight from the registers that hold it (none changes
        # while one is sent): its bytes in one table, each answer a span of it. No payload is
        # copied into a wide reply register (on the iCEBreaker that register and its loads took
        # 110 flip-flops and 59 logic cells more), and INFO's constant bytes are a small ROM.
        spans = {"error": [self.error], "result": [self.prediction, *bytes_of(self.last_cycles)],
                 "stats": [*bytes_of(self.samples), *bytes_of(self.last_cycles), *bytes_of(self.frames),
                           *bytes_of(self.crc_errors), *bytes_of(self.other_errors)]}
        assert (len(spans["result"]), len(spans["stats"])) == (SampleResult.BYTES, Stats.BYTES)  # what the host parses
        self.answer_bytes, self.answer_span = [], {}
        for name, fields in spans.items():
            self.answer_span[name] = (len(self.answer_bytes), len(fields))
            self.answer_bytes += fields
        self.answer_from = Signal(range(len(self.answer_bytes)))  # the sent answer's first byte in the table


class HostLink(wiring.Component):
    """Request bytes in, answer bytes out, the core in between."""

    requests: In(stream.Signature(8))
    answers: Out(stream.Signature(8))

    def __init__(self, cfg: Config, timeout: int, primitives: bool = False, collisions: str = "checked") -> None:
        self.cfg = cfg
        self.core = Core(cfg, primitives=primitives, collisions=collisions)
        self.timeout = timeout
        info = info_bytes(cfg)
        if len(info) > INFO_BYTES:
            raise ValueError(f"INFO of this network takes {len(info)} bytes, more than {INFO_BYTES}")
        if self.cfg.fixed.input.width > 8:
            raise ValueError("inputs travel one byte each: fixed.input must be at most 8 bits wide")
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, core = self.cfg, self.core
        n, W = cfg.network.sizes, word_bytes(cfg)
        m.submodules.receiver = receiver = FrameReceiver(self.timeout)
        m.submodules.sender = sender = FrameSender()
        m.submodules.core = core
        wiring.connect(m, wiring.flipped(self.requests), receiver.bytes)
        wiring.connect(m, sender.bytes, wiring.flipped(self.answers))
        buffer = receiver.read_port()
        request = receiver.request.payload
        r = _Registers(W)
        info = info_bytes(cfg)
        m.submodules.info = info_rom = Memory(shape=8, depth=len(info), init=list(info))
        info_read = info_rom.read_port()  # answers a cycle late: SEND addresses the byte it sends next
        # the answer's header: the sender reads it while ``answer.valid``
        m.d.comb += [sender.answer.payload.sequence.eq(request.sequence), sender.answer.payload.command.eq(r.answer_command),
                     sender.answer.payload.length.eq(r.reply_length), buffer.addr.eq(r.index)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(receiver.request.valid):
                    m.d.sync += r.index.eq(0)
                    with m.If(request.error != 0):
                        self._refuse(m, r, request.error)
                    with m.Elif(request.command == Command.INFO):
                        m.d.sync += [r.answer_command.eq(Command.INFO | ANSWER), r.reply_info.eq(1), r.reply_length.eq(len(info))]
                        m.next = "SEND"
                    with m.Elif(request.command == Command.STATS):
                        self._answer(m, r, Command.STATS | ANSWER, "stats")
                    with m.Elif(request.command == Command.LOAD):
                        with m.If(request.length < 4 + W):
                            self._refuse(m, r, Error.LENGTH)
                        with m.Else():
                            m.d.sync += [r.words_bytes.eq(request.length - 4), r.count.eq(0)]
                            m.next = "LOAD_LENGTH"
                    with m.Elif(request.command == Command.READ):
                        with m.If(request.length != 6):
                            self._refuse(m, r, Error.LENGTH)
                        with m.Else():
                            m.next = "HEADER"
                    with m.Elif((request.command == Command.TRAIN) | (request.command == Command.INFER)):
                        with m.If(request.length != 1 + n[0]):
                            self._refuse(m, r, Error.LENGTH)
                        with m.Else():
                            m.next = "LABEL"
                    with m.Else():
                        self._refuse(m, r, Error.COMMAND)
            self._parameter_states(m, r, receiver, sender, buffer)
            self._sample_states(m, r, buffer, request)
            with m.State("SEND"):  # a fixed answer, byte ``index`` from the INFO ROM or the answer table
                # (indexed with the sum cut to the table's width: a sent byte lies in it, and the
                # table's decoder compares 5 bits instead of 12, 56 LUT4s less on the iCEBreaker)
                sent = sender.data.valid & sender.data.ready
                m.d.comb += [sender.answer.valid.eq(1), sender.data.valid.eq(r.index < r.reply_length), info_read.addr.eq(r.index + sent),
                             sender.data.payload.eq(Mux(r.reply_info, info_read.data, Array(r.answer_bytes)[(r.answer_from + r.index)[:len(r.answer_from)]]))]
                with m.If(sent):
                    m.d.sync += r.index.eq(r.index + 1)
                with m.If(sender.answer.ready):
                    m.d.comb += receiver.request.ready.eq(1)
                    m.d.sync += [r.frames.eq(r.frames + 1), r.reply_info.eq(0)]
                    m.next = "IDLE"
        return m

    @staticmethod
    def _answer(m: Module, r: "_Registers", command, span: str | None) -> None:
        """Answer with the answer table's ``span`` (``None``: an empty payload), sent in the SEND state."""
        start, length = r.answer_span[span] if span else (0, 0)
        m.d.sync += [r.answer_command.eq(command), r.answer_from.eq(start), r.reply_length.eq(length), r.index.eq(0)]
        m.next = "SEND"

    def _refuse(self, m: Module, r: "_Registers", code) -> None:
        """Answer ERROR with ``code`` (an :class:`Error`, or the receiver's verdict), counted."""
        if isinstance(code, Error):
            m.d.sync += r.other_errors.eq(r.other_errors + 1)
        else:
            with m.If(code == Error.CRC):
                m.d.sync += r.crc_errors.eq(r.crc_errors + 1)
            with m.Else():
                m.d.sync += r.other_errors.eq(r.other_errors + 1)
        m.d.sync += r.error.eq(code)
        self._answer(m, r, ERROR, "error")

    def _parameter_states(self, m: Module, r: "_Registers", receiver, sender, buffer) -> None:
        """LOAD and READ: the header (memory, bank, address, count) checked, then words a byte at a time."""
        cfg, core, request = self.cfg, self.core, receiver.request.payload
        P, W, depths = cfg.hardware.lanes, word_bytes(cfg), parameter_depths(cfg)
        header = [r.memory, r.bank, r.address[8:], r.address[:8], r.count[8:], r.count[:8]]
        depth_of = Array(depths)[r.memory]  # the named memory's depth (CHECK refuses a memory out of range first)
        with m.State("LOAD_LENGTH"):  # count = words' bytes / W by subtraction, a word a cycle (no divider)
            with m.If(r.words_bytes >= W):
                m.d.sync += [r.words_bytes.eq(r.words_bytes - W), r.count.eq(r.count + 1)]
            with m.Elif(r.words_bytes != 0):
                self._refuse(m, r, Error.LENGTH)
            with m.Else():
                m.next = "HEADER"
        with m.State("HEADER"):  # memory, bank, address (and count for READ), one byte a cycle
            last = Mux(request.command == Command.LOAD, 3, 5)
            with m.Switch(r.index - 1):
                for i, field in enumerate(header):
                    with m.Case(i):
                        m.d.sync += field.eq(buffer.data)
            m.d.sync += r.index.eq(r.index + 1)
            with m.If(r.index == last + 1):
                m.next = "CHECK"
        with m.State("CHECK"):
            with m.If((r.memory >= len(depths)) | (r.bank >= P) | (r.count == 0) | (r.address + r.count > depth_of)
                      | ((request.command == Command.READ) & (times_constant(r.count, W) > MAX_PAYLOAD))):
                self._refuse(m, r, Error.ARGUMENT)
            with m.Elif(request.command == Command.LOAD):
                m.d.sync += [r.index.eq(4), r.word_byte.eq(0)]
                m.next = "LOAD_BYTE"
            with m.Else():
                m.d.sync += [r.answer_command.eq(Command.READ | ANSWER), r.reply_length.eq(times_constant(r.count, W)), r.index.eq(0)]
                m.next = "READ_WORD"
        with m.State("LOAD_BYTE"):  # the buffer answers one cycle after index
            m.d.sync += r.index.eq(r.index + 1)
            m.next = "LOAD_SHIFT"
        with m.State("LOAD_SHIFT"):
            m.d.sync += [r.word.eq(Cat(buffer.data, r.word[:-8])), r.word_byte.eq(r.word_byte + 1)]
            with m.If(r.word_byte == W - 1):
                m.next = "LOAD_WRITE"
            with m.Else():
                m.next = "LOAD_BYTE"
        with m.State("LOAD_WRITE"):
            access = core.param.payload
            m.d.comb += [core.param.valid.eq(1), access.memory.eq(r.memory), access.bank.eq(r.bank), access.address.eq(r.address),
                         access.write.eq(1), access.data.eq(r.word)]
            with m.If(core.param.ready):
                m.d.sync += [r.address.eq(r.address + 1), r.count.eq(r.count - 1), r.word_byte.eq(0)]
                with m.If(r.count == 1):
                    self._answer(m, r, Command.LOAD | ANSWER, None)
                with m.Else():
                    m.next = "LOAD_BYTE"
        with m.State("READ_WORD"):
            access = core.param.payload
            m.d.comb += [core.param.valid.eq(1), access.memory.eq(r.memory), access.bank.eq(r.bank), access.address.eq(r.address)]
            with m.If(core.param.ready):
                m.next = "READ_WAIT"
        with m.State("READ_WAIT"):
            m.d.comb += core.param_read.ready.eq(1)
            with m.If(core.param_read.valid):
                m.d.sync += [r.word.eq(core.param_read.payload), r.word_byte.eq(0), r.address.eq(r.address + 1), r.count.eq(r.count - 1)]
                m.next = "READ_SEND"
        with m.State("READ_SEND"):
            m.d.comb += [sender.answer.valid.eq(1), sender.data.valid.eq(1), sender.data.payload.eq(r.word[-8:])]
            with m.If(sender.data.ready):
                m.d.sync += [r.word.eq(r.word << 8), r.word_byte.eq(r.word_byte + 1)]
                with m.If(r.word_byte == W - 1):
                    with m.If(r.count == 0):
                        m.next = "READ_DONE"
                    with m.Else():
                        m.next = "READ_WORD"
        with m.State("READ_DONE"):
            m.d.comb += sender.answer.valid.eq(1)
            with m.If(sender.answer.ready):
                m.d.comb += receiver.request.ready.eq(1)
                m.d.sync += r.frames.eq(r.frames + 1)
                m.next = "IDLE"

    def _sample_states(self, m: Module, r: "_Registers", buffer, request) -> None:
        """TRAIN and INFER: the label checked, the inputs streamed to the core, the sample run, its result answered."""
        core, n = self.core, self.cfg.network.sizes
        with m.State("LABEL"):
            m.d.sync += r.index.eq(1)
            m.next = "LABEL_CHECK"
        with m.State("LABEL_CHECK"):
            with m.If(buffer.data >= n[-1]):
                self._refuse(m, r, Error.ARGUMENT)
            with m.Else():
                m.d.sync += [r.label.eq(buffer.data), r.index.eq(2)]
                m.next = "X"
        with m.State("X"):  # x_i is at payload byte i + 1; the buffer answers one cycle late
            m.d.comb += [core.x.valid.eq(1), core.x.payload.eq(buffer.data)]
            with m.If(core.x.ready):
                m.d.sync += r.index.eq(r.index + 1)
                with m.If(r.index == n[0] + 1):
                    m.next = "SAMPLE"
            with m.Else():
                m.d.comb += buffer.addr.eq(r.index - 1)
        with m.State("SAMPLE"):
            m.d.comb += [core.label.valid.eq(1), core.label.payload.index.eq(r.label),
                         core.label.payload.train.eq(request.command == Command.TRAIN)]
            with m.If(core.label.ready):
                m.next = "RUN"
        with m.State("RUN"):
            m.d.comb += core.prediction.ready.eq(1)
            with m.If(core.prediction.valid):
                m.d.sync += [r.prediction.eq(core.prediction.payload), r.last_cycles.eq(core.cycles)]
                with m.If(request.command == Command.TRAIN):
                    m.d.sync += r.samples.eq(r.samples + 1)
                m.next = "RESULT"
        with m.State("RESULT"):
            self._answer(m, r, request.command | ANSWER, "result")
