"""Fixed-point number formats and the scalar semantics of the hardware datapath.

A :class:`Format` is described in the vocabulary of the ``fixedpoint`` package: ``signed``,
``m`` integer bits (including the sign bit when signed), ``n`` fraction bits, a ``rounding`` mode
(``convergent``, ``nearest``, ``down``, ``in``, ``out``, ``up``) and an ``overflow`` mode. Overflow
always saturates (``clamp``); wrapping is refused.

Values are held as integers (``int64`` numpy arrays) counting units of ``2^-n``. The operations
below are what a datapath does with such integers: an arithmetic right shift with rounding
(:func:`shift_round`), saturation (:func:`saturate`), and their composition (:func:`requantize`),
vectorized over whole arrays. ``tests/test_fixed.py`` checks them against ``fixedpoint.FixedPoint``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

ROUNDING_MODES = ("convergent", "nearest", "down", "in", "out", "up")
OVERFLOW_MODES = ("clamp",)
#: Widest multiplier operand: the product of two must still fit the int64 the golden model computes in.
MAX_WIDTH = 31
#: Widest format of any kind (accumulators sum products in int64).
MAX_FORMAT_WIDTH = 62


@dataclass(frozen=True)
class Format:
    """A fixed-point format: ``signed``, ``m`` integer bits (sign included), ``n`` fraction bits."""

    signed: bool
    m: int
    n: int
    rounding: str = "nearest"
    overflow: str = "clamp"

    def __post_init__(self) -> None:
        self.validate("format")

    def validate(self, name: str) -> "Format":
        """Raise :class:`ConfigError` naming ``name`` when the format is malformed."""
        if not isinstance(self.signed, bool):
            raise ConfigError(f"{name}.signed must be true or false, got {self.signed!r}")
        for field in ("m", "n"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}.{field} must be a non-negative integer, got {value!r}")
        if self.signed and self.m < 1:
            raise ConfigError(f"{name}: a signed format needs m >= 1 (m counts the sign bit)")
        if not 1 <= self.width <= MAX_FORMAT_WIDTH:
            raise ConfigError(f"{name} is {self.width} bits wide; formats are 1 to {MAX_FORMAT_WIDTH} bits")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"{name}.rounding must be one of {', '.join(ROUNDING_MODES)}; got {self.rounding!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"{name}.overflow must be 'clamp' (overflow always saturates), got {self.overflow!r}")
        return self

    @property
    def width(self) -> int:
        return self.m + self.n

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.n

    @property
    def min_value(self) -> float:
        return self.min_int * self.resolution

    @property
    def max_value(self) -> float:
        return self.max_int * self.resolution

    def holds(self, lo: float, hi: float) -> bool:
        """Whether every value in ``[lo, hi]`` is inside the format's range."""
        return self.min_value <= lo and hi <= self.max_value

    def quantize(self, values) -> np.ndarray:
        """Floats to integers of this format: round with the format's mode, then saturate."""
        scaled = np.asarray(values, dtype=np.float64) * (1 << self.n)
        if not np.isfinite(scaled).all():
            raise ConfigError("cannot quantize NaN or infinite values")
        return saturate(_round_float(scaled, self.rounding), self)

    def to_float(self, ints) -> np.ndarray:
        return np.asarray(ints, dtype=np.float64) * self.resolution

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data, name: str = "format") -> "Format":
        if not isinstance(data, dict):
            raise ConfigError(f"{name} must be an object with signed, m, n, rounding, overflow")
        unknown = set(data) - {"signed", "m", "n", "rounding", "overflow"}
        if unknown:
            raise ConfigError(f"unknown field(s) in {name}: {', '.join(sorted(unknown))}")
        missing = {"signed", "m", "n"} - set(data)
        if missing:
            raise ConfigError(f"{name} lacks {', '.join(sorted(missing))}")
        fmt = object.__new__(cls)
        for key, value in {"rounding": "nearest", "overflow": "clamp", **data}.items():
            object.__setattr__(fmt, key, value)
        return fmt.validate(name)

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}Q{self.m}.{self.n}"


def _round_float(scaled: np.ndarray, mode: str) -> np.ndarray:
    """Round already-scaled floats to integers (float64 holds them exactly up to 2^53)."""
    floor = np.floor(scaled)
    frac = scaled - floor
    if mode == "down":
        out = floor
    elif mode == "up":
        out = np.ceil(scaled)
    elif mode == "in":
        out = np.trunc(scaled)
    elif mode == "nearest":
        out = np.floor(scaled + 0.5)
    elif mode == "out":
        out = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    elif mode == "convergent":
        out = np.where(frac == 0.5, floor + (floor % 2), np.floor(scaled + 0.5))
    else:
        raise ConfigError(f"unknown rounding mode {mode!r}")
    return out.astype(np.int64)


def shift_round(values, shift: int, mode: str) -> np.ndarray:
    """``values * 2^-shift`` rounded to an integer with ``mode``, as shifters and adders do it.

    ``shift <= 0`` is an exact left shift. The arithmetic is in int64, or in Python integers for
    an object array (products wider than 63 bits).
    """
    v = np.asarray(values)
    if v.dtype != object:
        v = v.astype(np.int64)
    if shift <= 0:
        return v << -shift
    half = 1 << (shift - 1)
    if mode == "down":
        return v >> shift
    if mode == "up":
        return -((-v) >> shift)
    if mode == "in":
        return np.where(v >= 0, v >> shift, -((-v) >> shift))
    if mode == "nearest":
        return (v + half) >> shift
    if mode == "out":
        return np.where(v >= 0, (v + half) >> shift, -((-v + half) >> shift))
    if mode == "convergent":
        q = v >> shift
        r = v - (q << shift)
        return q + ((r > half) | ((r == half) & ((q & 1) == 1))).astype(np.int64)
    raise ConfigError(f"unknown rounding mode {mode!r}")


def saturate(values, fmt: Format) -> np.ndarray:
    """Clamp integers to the range of ``fmt`` (overflow never wraps). (``np.minimum(np.maximum())``
    rather than ``np.clip``: half the time on the golden model's small arrays.)"""
    return np.minimum(np.maximum(np.asarray(values, dtype=np.int64), fmt.min_int), fmt.max_int)


def requantize(values, frac_bits: int, fmt: Format, rounding: str | None = None) -> np.ndarray:
    """Integers with ``frac_bits`` fraction bits into ``fmt``: shift with rounding, then saturate."""
    return saturate(shift_round(values, frac_bits - fmt.n, rounding or fmt.rounding), fmt)


def multiply(a, fa: Format, b, fb: Format, out: Format) -> np.ndarray:
    """The product of two fixed-point integers, exact in ``fa.n + fb.n`` fraction bits, into ``out``."""
    return requantize(np.asarray(a, np.int64) * np.asarray(b, np.int64), fa.n + fb.n, out)


def bits_for(value: float) -> int:
    """Integer bits (sign included) a signed format needs to hold ``+-value``."""
    if value <= 0:
        return 1
    return max(1, math.floor(math.log2(value)) + 2)
