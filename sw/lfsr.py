"""The LFSR behind stochastic rounding, reproduced exactly in Python.

A Galois LFSR of ``width`` bits with feedback mask ``taps``: each clock, the state shifts right
by one and, when the bit shifted out was 1, is XORed with ``taps``. The hardware reads the state
after each clock. Because the map is linear over GF(2), :meth:`Lfsr.states` produces any stretch
of the sequence vectorized (jumping ahead by repeated squaring of the transition), so the golden
model can draw one random word per weight update without a Python loop per update.

Random words for stochastic rounding are :meth:`Lfsr.draws`: draw k is the state after
``(k + 1) * width`` clocks. Consecutive states of a Galois LFSR are shifted copies of each other;
``width`` clocks apart every bit has been replaced, so neighbouring weights get unrelated bits.
The hardware advances its LFSR by ``width`` clocks per draw (a fixed XOR network).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ConfigError

#: Feedback masks of maximal-length (period 2^w - 1) Galois LFSRs, by width.
MAXIMAL_TAPS = {8: 0xB8, 16: 0xB400, 24: 0xE10000, 32: 0xA3000000}
#: Widths up to which a maximal LFSR's whole period is tabulated for fast draws.
TABLE_MAX_WIDTH = 16


@dataclass(frozen=True)
class Lfsr:
    width: int = 16
    taps: int = MAXIMAL_TAPS[16]
    seed: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 2 <= self.width <= 32:
            raise ConfigError(f"lfsr.width must be 2 to 32 bits, got {self.width!r}")
        top = 1 << (self.width - 1)
        if not isinstance(self.taps, int) or not top <= self.taps < (1 << self.width):
            raise ConfigError(f"lfsr.taps must be a {self.width}-bit feedback mask with its top bit set, got {self.taps!r}")
        if not isinstance(self.seed, int) or not 0 < self.seed < (1 << self.width):
            raise ConfigError(f"lfsr.seed must be a non-zero {self.width}-bit value (zero locks the LFSR), got {self.seed!r}")

    def step(self, state: int) -> int:
        """One clock, bit-serial: the reference the vectorized path is tested against."""
        out = state & 1
        state >>= 1
        return state ^ self.taps if out else state

    def _apply(self, columns: np.ndarray, states: np.ndarray) -> np.ndarray:
        """The linear map with these columns (images of the unit states) applied to every state."""
        result = np.zeros_like(states)
        for bit in range(self.width):
            result ^= np.where((states >> np.uint64(bit)) & np.uint64(1), columns[bit], np.uint64(0))
        return result

    def _unit_columns(self) -> np.ndarray:
        return np.array([self.step(1 << bit) for bit in range(self.width)], dtype=np.uint64)

    def _square(self, columns: np.ndarray) -> np.ndarray:
        return self._apply(columns, columns)

    def power_columns(self, clocks: int) -> np.ndarray:
        """Columns of the transition applied ``clocks`` times: column b is the image of state bit b (the HDL builds its XOR network from these)."""
        result = np.array([1 << bit for bit in range(self.width)], dtype=np.uint64)
        columns = self._unit_columns()
        while clocks:
            if clocks & 1:
                result = self._apply(columns, result)
            columns, clocks = self._square(columns), clocks >> 1
        return result

    def state_after(self, clocks: int) -> int:
        """The state after ``clocks`` clocks from the seed."""
        return int(self._apply(self.power_columns(clocks), np.array([self.seed], dtype=np.uint64))[0])

    def states(self, count: int, start: int = 0, stride: int = 1) -> np.ndarray:
        """The states after clocks ``(start + i + 1) * stride``, i = 0..count-1 (uint64), vectorized by doubling."""
        out = np.array([self.state_after((start + 1) * stride)], dtype=np.uint64)
        columns = self.power_columns(stride)  # one stride; squared as the stretch doubles
        while len(out) < count:
            out = np.concatenate([out, self._apply(columns, out)])
            columns = self._square(columns)
        return out[:count]

    def draws(self, start: int, count: int) -> np.ndarray:
        """Random words ``start .. start + count - 1`` for stochastic rounding (int64)."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        if self.width <= TABLE_MAX_WIDTH and MAXIMAL_TAPS.get(self.width) == self.taps:
            table = _period_table(self.width, self.taps, self.seed)
            clocks = (np.arange(start + 1, start + count + 1, dtype=np.int64) * self.width) % len(table)
            return table[clocks]
        return self.states(count, start, stride=self.width).astype(np.int64)


@lru_cache(maxsize=4)
def _period_table(width: int, taps: int, seed: int) -> np.ndarray:
    """State after k clocks at index k, over one full period of a maximal LFSR."""
    lfsr = Lfsr(width, taps, seed)
    period = (1 << width) - 1
    return np.concatenate([[seed], lfsr.states(period - 1)]).astype(np.int64)
