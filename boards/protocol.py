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


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``: ``binascii.crc_hqx`` (polynomial 0x1021, not reflected) from 0xFFFF."""
    return binascii.crc_hqx(data, crc)


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


class Receiver:
    """Turns a byte stream into frames, skipping garbage and dropping broken frames.

    ``feed`` takes bytes as they arrive and returns the complete, valid frames among them; a
    partial frame waits for more bytes. ``dropped`` counts the SOFs that began no valid frame.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(SOF)
            if start < 0:
                self.buffer.clear()
                return frames
            del self.buffer[:start]
            if len(self.buffer) < 5:  # SOF and the checked length
                return frames
            length = int.from_bytes(self.buffer[1:3], "big")
            if int.from_bytes(self.buffer[3:5], "big") != length ^ 0xFFFF or length > MAX_PAYLOAD:
                self.dropped += 1
                del self.buffer[:1]
                continue
            end = HEADER + length + TRAILER
            if len(self.buffer) < end:
                return frames
            body, crc = bytes(self.buffer[1:HEADER + length]), int.from_bytes(self.buffer[HEADER + length:end], "big")
            if crc16(body) == crc:
                frames.append(Frame(body[4], body[5], body[6:]))
                del self.buffer[:end]
            else:
                self.dropped += 1
                del self.buffer[:1]  # resynchronize on the next SOF after this one
