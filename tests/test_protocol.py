"""The host link's framing: encoding, CRC, and a receiver that survives garbage, cuts and flipped bits."""

import numpy as np
import pytest
from amaranth.lib.crc.catalog import CRC16_CCITT_FALSE

from eqprop.boards.protocol import SOF, Command, Frame, Receiver, crc16


def bitwise_crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE bit by bit, as the protocol defines it: polynomial 0x1021, initial 0xFFFF, MSB first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_crc_is_ccitt_false_and_frames_round_trip():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE
    rng = np.random.default_rng(5)
    for length in (0, 1, 2, 7, 64, 1031):
        data = rng.integers(0, 256, length).astype(np.uint8).tobytes()
        assert crc16(data) == bitwise_crc16(data) == CRC16_CCITT_FALSE(data_width=8).compute(data)
    frame = Frame(7, Command.LOAD, bytes(range(256)) * 3)
    encoded = frame.encode()
    assert encoded[0] == SOF and encoded[1:5] == bytes([3, 0, 0xFC, 0xFF]) and len(encoded) == 7 + 768 + 2
    assert Receiver().feed(encoded) == [frame]
    receiver = Receiver()  # byte by byte, as a UART delivers them
    assert [f for byte in encoded for f in receiver.feed(bytes([byte]))] == [frame]
    with pytest.raises(ValueError):
        Frame(1, Command.LOAD, bytes(1025))


def test_receiver_recovers_every_intact_frame_between_garbage_cuts_and_flipped_bits():
    rng = np.random.default_rng(0)
    stream, intact = bytearray(), []
    for i in range(2000):
        frame = Frame(i % 256, int(rng.integers(1, 7)), rng.integers(0, 256, int(rng.integers(0, 40))).astype(np.uint8).tobytes())
        encoded = bytearray(frame.encode())
        damage = rng.integers(4)
        if damage == 0:
            stream += rng.integers(0, 256, int(rng.integers(1, 30))).astype(np.uint8).tobytes()  # garbage before it
            intact.append(frame)
        elif damage == 1:
            stream += encoded[: int(rng.integers(1, len(encoded)))]  # cut short
            continue
        elif damage == 2:
            encoded[int(rng.integers(1, len(encoded)))] ^= 1 << int(rng.integers(8))  # one flipped bit
            stream += encoded
            continue
        else:
            intact.append(frame)
        stream += encoded
    receiver, got = Receiver(), []
    for start in range(0, len(stream), 97):
        got += receiver.feed(bytes(stream[start:start + 97]))
    assert [f for f in got if f in intact] == intact  # every intact frame, in order
    assert len(got) - len(intact) <= 1  # garbage that happens to hold a valid frame: 2^-16 a try
    assert receiver.dropped > 0
