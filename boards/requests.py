"""Payloads of the host link's requests and answers (the layouts :mod:`eqprop.boards.engine` documents)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from eqprop.config import Config, fields_json, phase_count
from eqprop.golden import Arith

from .protocol import MAX_PAYLOAD

PROTOCOL_VERSION = 1
#: Training fields a chip's configuration always has at one value (``Config.validate`` refuses
#: another with ``arith`` fixed): they tell no two chips apart and are left out of the hash.
FLOAT_ONLY_TRAINING_FIELDS = ("center_inputs",)


def config_hash(cfg: Config) -> int:
    """Four bytes that change with anything in the configuration (the host refuses another)."""
    fields = cfg.to_dict()
    for name in FLOAT_ONLY_TRAINING_FIELDS:
        del fields["training"][name]
    return int.from_bytes(hashlib.sha256(fields_json(fields).encode()).digest()[:4], "big")


def word_bytes(cfg: Config) -> int:
    """Bytes of one parameter word on the link."""
    arith = Arith.from_config(cfg)
    return math.ceil(max(arith.weight_store.width, arith.bias_store.width) / 8)


def info_bytes(cfg: Config) -> bytes:
    n, learn = cfg.network.sizes, cfg.learning
    out = bytes([PROTOCOL_VERSION]) + config_hash(cfg).to_bytes(4, "big") + bytes([cfg.hardware.lanes, len(n) - 1])
    out += b"".join(size.to_bytes(2, "big") for size in n) + learn.T1.to_bytes(2, "big") + learn.T2.to_bytes(2, "big")
    return out + bytes([phase_count(learn.nudging), word_bytes(cfg)])


def load_payload(memory: int, bank: int, address: int, words: list[int], word_bytes: int) -> bytes:
    head = bytes([memory, bank]) + address.to_bytes(2, "big")
    return head + b"".join((w & ((1 << 8 * word_bytes) - 1)).to_bytes(word_bytes, "big") for w in words)


def word_runs(words) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Parameter words (:func:`eqprop.layout.parameter_words`) grouped by (memory, bank), in address order."""
    runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for memory, bank, address, value in words:
        runs.setdefault((memory, bank), []).append((address, value))
    return runs


def load_payloads(words, word_bytes: int) -> list[bytes]:
    """LOAD payloads that write ``words``, each as many consecutive words of one bank as a frame holds."""
    per_frame = (MAX_PAYLOAD - 4) // word_bytes
    out = []
    for (memory, bank), run in word_runs(words).items():
        for start in range(0, len(run), per_frame):
            chunk = run[start:start + per_frame]
            out.append(load_payload(memory, bank, chunk[0][0], [v for _, v in chunk], word_bytes))
    return out


def read_payload(memory: int, bank: int, address: int, count: int) -> bytes:
    return bytes([memory, bank]) + address.to_bytes(2, "big") + count.to_bytes(2, "big")


def words_of(payload: bytes, word_bytes: int) -> list[int]:
    """Two's-complement words of a READ answer."""
    out = []
    for i in range(0, len(payload), word_bytes):
        value = int.from_bytes(payload[i:i + word_bytes], "big")
        out.append(value - (1 << 8 * word_bytes) if value >> (8 * word_bytes - 1) else value)
    return out


def sample_payload(x: np.ndarray, label: int) -> bytes:
    return bytes([label]) + bytes(int(v) for v in x)


@dataclass(frozen=True)
class SampleResult:
    prediction: int
    cycles: int

    #: The answer's payload: the prediction and the cycle counter (4 bytes).
    BYTES = 5

    @classmethod
    def parse(cls, payload: bytes) -> "SampleResult":
        return cls(payload[0], int.from_bytes(payload[1:5], "big"))


@dataclass(frozen=True)
class Stats:
    samples: int
    cycles: int
    frames: int
    crc_errors: int
    other_errors: int

    #: The answer's payload: three 4-byte counters and two 2-byte ones.
    BYTES = 16

    @classmethod
    def parse(cls, payload: bytes) -> "Stats":
        big = lambda a, b: int.from_bytes(payload[a:b], "big")  # noqa: E731
        return cls(big(0, 4), big(4, 8), big(8, 12), big(12, 14), big(14, 16))
