"""The LFSR behind stochastic rounding, reproduced exactly in Python.

A Galois LFSR of ``width`` bits with feedback mask ``taps``: each clock, the state shifts right
by one and, when the bit shifted out was 1, is XORed with ``taps``. The hardware reads the state
after each clock. Because the map is linear over GF(2), :meth:`Lfsr.states` produces any stretch
of the sequence vectorized (jumping ahead by repeated squaring of the transition), so the golden
model can draw one random word per weight update without a Python loop per update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

#: Feedback masks of maximal-length (period 2^w - 1) Galois LFSRs, by width.
MAXIMAL_TAPS = {8: 0xB8, 16: 0xB400, 24: 0xE10000, 32: 0xA3000000}


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

    def state_after(self, clocks: int) -> int:
        """The state after ``clocks`` clocks from the seed."""
        columns, state = self._unit_columns(), np.array([self.seed], dtype=np.uint64)
        while clocks:
            if clocks & 1:
                state = self._apply(columns, state)
            columns, clocks = self._square(columns), clocks >> 1
        return int(state[0])

    def states(self, count: int, start: int = 0) -> np.ndarray:
        """The states after clocks ``start + 1 .. start + count`` (uint64), vectorized by doubling."""
        out = np.array([self.state_after(start + 1)], dtype=np.uint64)
        columns = self._unit_columns()  # one clock; squared as the stretch doubles
        while len(out) < count:
            out = np.concatenate([out, self._apply(columns, out)])
            columns = self._square(columns)
        return out[:count]
