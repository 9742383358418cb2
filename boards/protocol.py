"""The host link's framing: what the board's SoC and the host driver exchange over the UART.

A frame is ``SOF | length | ~length | sequence | command | payload | crc``:

* ``SOF`` (0xA5) starts a frame; bytes before it are skipped, so a receiver resynchronizes on
  the next SOF after garbage or a broken frame;
* ``length`` (two bytes, big-endian) counts the payload bytes, at most :data:`MAX_PAYLOAD` (an
  MNIST sample and its label fit); its complement follows it, so that a damaged length is
  caught at once instead of misframing what follows (a CRC over a misframed span passes one
  time in 65536);
* ``sequence`` (one byte) is chosen by the host and echoed in the answer, so that a late answer
  to a retried request is told apart;
* ``command`` (one byte): a request's :class:`Command`, or in an answer the command with bit 7
  set, or :data:`ERROR` with an :class:`Error` code as its payload;
* ``crc``: CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF) over everything between SOF
  and the CRC, big-endian.

A frame whose CRC does not match (a flipped bit, or one cut short and run into the next frame's
bytes) is dropped; the receiver looks for the next SOF from the byte after the broken frame's SOF.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass

SOF = 0xA5
MAX_PAYLOAD = 1024
#: The command byte of an error answer.
ERROR = 0xFF
#: Bit set in the command byte of an answer.
ANSWER = 0x80
#: SOF, length, its complement, sequence, command before the payload; two CRC bytes after it.
HEADER, TRAILER = 7, 2


class Command(enum.IntEnum):
    INFO = 0x01
    LOAD = 0x02
    READ = 0x03
    TRAIN = 0x04
    INFER = 0x05
    STATS = 0x06


class Error(enum.IntEnum):
    CRC = 0x01
    LENGTH = 0x02
    COMMAND = 0x03
    ARGUMENT = 0x04
    TIMEOUT = 0x05


def _crc_step_bitwise(crc: int, byte: int) -> int:
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
    return crc & 0xFFFF


#: CRC after one byte: ``_CRC_TABLE[(crc >> 8) ^ byte] ^ (crc << 8)``, the table-driven form of the loop above.
_CRC_TABLE = [_crc_step_bitwise(0, b) for b in range(256)]


def _crc_step(crc: int, byte: int) -> int:
    return ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``: ``binascii.crc_hqx`` (polynomial 0x1021, not reflected) from 0xFFFF."""
    return binascii.crc_hqx(data, crc)


def _zero_shifts(longest: int) -> list[list[int]]:
    """For each n up to ``longest``, the CRC register after n zero bytes from each single-bit register.

    A CRC step is linear over GF(2), so the register after n zero bytes from any register x is the
    XOR of these columns for x's set bits.
    """
    columns, out = [1 << b for b in range(16)], []
    for _ in range(longest + 1):
        out.append(columns)
        columns = [_crc_step(c, 0) for c in columns]
    return out


@dataclass(frozen=True)
class Frame:
    sequence: int
    command: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.sequence <= 0xFF or not 0 <= self.command <= 0xFF:
            raise ValueError(f"sequence and command are bytes, got {self.sequence}, {self.command}")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, got {len(self.payload)}")

    def encode(self) -> bytes:
        length = len(self.payload).to_bytes(2, "big")
        body = length + bytes(b ^ 0xFF for b in length) + bytes([self.sequence, self.command]) + self.payload
        return bytes([SOF]) + body + crc16(body).to_bytes(2, "big")


#: Columns of the zero-byte shifts over the longest CRC span of a frame (everything between SOF and CRC).
_SHIFTS = _zero_shifts(HEADER - 1 + MAX_PAYLOAD)


class Receiver:
    """Turns a byte stream into frames, skipping garbage and dropping broken frames.

    ``feed`` takes bytes as they arrive and returns the complete, valid frames among them; a
    partial frame waits for more bytes. ``dropped`` counts the SOFs that began no valid frame.

    The work per byte is bounded, whatever arrives: the receiver keeps the CRC register after
    every prefix of its buffer (one table step per byte), so the CRC of any candidate frame, which
    is affine in those registers, costs 16 XORs however long it is. Garbage made of valid-looking
    headers (``A5 04 00 FB FF`` repeated) thus costs no CRC over the same bytes again and again.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        #: ``registers[k]``: the CRC register after ``buffer[:k]`` from an arbitrary start (only differences are used).
        self.registers = [0xFFFF]
        self.dropped = 0

    def feed(self, data: bytes) -> list[Frame]:
        register = self.registers[-1]
        for byte in data:
            register = _crc_step(register, byte)
            self.registers.append(register)
        self.buffer += data
        frames, start = [], 0
        while True:
            start = self.buffer.find(SOF, start)
            if start < 0:
                start = len(self.buffer)
                break
            if len(self.buffer) - start < 5:  # SOF and the checked length
                break
            length = int.from_bytes(self.buffer[start + 1:start + 3], "big")
            if int.from_bytes(self.buffer[start + 3:start + 5], "big") != length ^ 0xFFFF or length > MAX_PAYLOAD:
                self.dropped += 1
                start += 1
                continue
            body_end = start + HEADER + length
            if len(self.buffer) < body_end + TRAILER:
                break
            if self._crc(start + 1, body_end) == int.from_bytes(self.buffer[body_end:body_end + TRAILER], "big"):
                frames.append(Frame(self.buffer[start + 5], self.buffer[start + 6], bytes(self.buffer[start + HEADER:body_end])))
                start = body_end + TRAILER
            else:
                self.dropped += 1
                start += 1  # resynchronize on the next SOF after this one
        del self.buffer[:start]
        del self.registers[:start]
        return frames

    def _crc(self, begin: int, end: int) -> int:
        """CRC-16/CCITT-FALSE of ``buffer[begin:end]`` from the prefix registers."""
        x, shifted = self.registers[begin] ^ 0xFFFF, 0
        for bit, column in enumerate(_SHIFTS[end - begin]):
            if x >> bit & 1:
                shifted ^= column
        return self.registers[end] ^ shifted
