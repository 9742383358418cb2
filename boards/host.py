"""The host driver: one API over the link, to a real board (serial port) or the simulated one.

:class:`BoardLink` sends requests (:mod:`eqprop.boards.protocol`) and waits for the answer with
the same sequence number; an answer that does not come within ``timeout`` seconds is asked for
again, up to ``retries`` times. A board that answers with another protocol version or
configuration hash is refused, and so is every answer whose length or content is not what the
request asks for (a prediction that is no class, a READ answer of fewer words). Transports only move bytes: :class:`SerialTransport` (pyserial)
and :class:`eqprop.sim.board.SimulatedTransport` (the SoC's Verilog under cocotb).
"""

from __future__ import annotations

import time

import numpy as np

from eqprop.config import Config
from eqprop.errors import EqpropError
from eqprop.layout import param_shapes, parameter_words, parameters_from_words

from .protocol import ANSWER, ERROR, MAX_PAYLOAD, Command, Error, Frame, Receiver
from .requests import PROTOCOL_VERSION, SampleResult, config_hash, info_bytes, word_bytes, Stats, load_payloads, read_payload, sample_payload, word_runs, words_of


class LinkError(EqpropError):
    """The board did not answer, answered with an error, or is not the board the configuration describes."""


class SerialTransport:
    """A USB-serial port, or any of pyserial's URLs (``socket://host:port``, ``rfc2217://``, ``loop://``)."""

    def __init__(self, port: str, baud: int) -> None:
        try:
            import serial
        except ImportError:
            raise LinkError("the serial transport needs pyserial: pip install pyserial") from None
        try:
            self.port = serial.serial_for_url(port, baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as error:
            raise LinkError(f"cannot open {port}: {error}") from None

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, timeout: float) -> bytes:
        self.port.timeout = timeout
        return self.port.read(max(1, self.port.in_waiting))

    def close(self) -> None:
        self.port.close()


class BoardLink:
    """Requests to a board running the SoC for ``cfg``."""

    def __init__(self, transport, cfg: Config, timeout: float = 2.0, retries: int = 3) -> None:
        if retries < 0:
            raise ValueError(f"retries counts tries after the first, at least 0, got {retries}")
        self.transport, self.cfg, self.timeout, self.retries = transport, cfg, timeout, retries
        self.receiver = Receiver()
        self.sequence = 0
        self.retried = 0

    def request(self, command: int, payload: bytes, answer_bytes: int | None) -> bytes:
        """The answer's payload, of ``answer_bytes`` bytes (``None``: any); retried on silence,
        :class:`LinkError` on an error answer, an answer of another length or after the retries."""
        self.sequence = (self.sequence + 1) % 256
        frame = Frame(self.sequence, command, payload).encode()
        for attempt in range(self.retries + 1):
            self.retried += attempt > 0
            self.transport.write(frame)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                for answer in self.receiver.feed(self.transport.read(min(0.05, max(0.0, deadline - time.monotonic())))):
                    if answer.sequence != self.sequence:
                        continue  # a late answer to an earlier attempt
                    if answer.command == ERROR:
                        code = Error(answer.payload[0]) if answer.payload and answer.payload[0] in Error._value2member_map_ else answer.payload
                        raise LinkError(f"the board refused {Command(command).name}: {getattr(code, 'name', code)}")
                    if answer.command != command | ANSWER:
                        raise LinkError(f"the board answered {Command(command).name} with command {answer.command:#04x}")
                    if answer_bytes is not None and len(answer.payload) != answer_bytes:
                        raise LinkError(f"the board answered {Command(command).name} with {len(answer.payload)} bytes, not {answer_bytes}")
                    return answer.payload
        raise LinkError(f"no answer to {Command(command).name} after {self.retries + 1} tries of {self.timeout:g} s")

    def check(self) -> None:
        """Refuse a board that runs another protocol version or configuration."""
        info = self.request(Command.INFO, b"", None)
        if not info or info[0] != PROTOCOL_VERSION:
            raise LinkError(f"the board speaks protocol version {info[0] if info else '?'}, this host {PROTOCOL_VERSION}")
        theirs = int.from_bytes(info[1:5], "big")
        if theirs != config_hash(self.cfg) or info != info_bytes(self.cfg):
            raise LinkError(f"the board runs configuration {theirs:08x}, not this one ({config_hash(self.cfg):08x}): build and flash it first")

    def load(self, params: dict[str, np.ndarray]) -> None:
        for payload in load_payloads(parameter_words(self.cfg, params), word_bytes(self.cfg)):
            self.request(Command.LOAD, payload, 0)

    def read(self) -> dict[str, np.ndarray]:
        W = word_bytes(self.cfg)
        per_frame = MAX_PAYLOAD // W
        zeros = {name: np.zeros(shape, dtype=np.int64) for name, shape in param_shapes(self.cfg.network).items()}
        words = {}
        for (memory, bank), run in word_runs(parameter_words(self.cfg, zeros)).items():
            for start in range(0, len(run), per_frame):
                count = min(per_frame, len(run) - start)
                values = words_of(self.request(Command.READ, read_payload(memory, bank, run[start][0], count), count * W), W)
                words.update({(memory, bank, run[start + i][0]): v for i, v in enumerate(values)})
        return parameters_from_words(self.cfg, lambda memory, bank, address: words[memory, bank, address])

    def train(self, x: np.ndarray, label: int) -> SampleResult:
        return self._sample_result(Command.TRAIN, sample_payload(x, label))

    def infer(self, x: np.ndarray) -> SampleResult:
        return self._sample_result(Command.INFER, sample_payload(x, 0))

    def _sample_result(self, command: Command, payload: bytes) -> SampleResult:
        result = SampleResult.parse(self.request(command, payload, SampleResult.BYTES))
        classes = self.cfg.network.sizes[-1]
        if result.prediction >= classes:
            raise LinkError(f"the board answered {command.name} with prediction {result.prediction}; the network has {classes} classes")
        return result

    def stats(self) -> Stats:
        return Stats.parse(self.request(Command.STATS, b"", Stats.BYTES))

