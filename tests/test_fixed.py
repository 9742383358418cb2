"""Scalar fixed-point semantics against the ``fixedpoint`` package on thousands of random operands, and against
``apytypes`` (a second, vectorized oracle) on hundreds of thousands."""

import apytypes
import numpy as np
import pytest
from fixedpoint import FixedPoint

from eqprop.errors import ConfigError
from eqprop.fixed import ROUNDING_MODES, Format, multiply, requantize, saturate

N = 2000


def reference(value: float, fmt: Format, mode: str) -> int:
    """``value`` (exactly representable) resized by fixedpoint into ``fmt`` with ``mode``, as an integer."""
    x = FixedPoint(value, signed=True, m=40, n=20, overflow="clamp", overflow_alert="ignore", mismatch_alert="ignore")
    x.resize(fmt.m, fmt.n, rounding=mode, overflow="clamp", alert="ignore")
    if not fmt.signed and float(x) < 0:  # fixedpoint has no signed -> unsigned resize: clamp as the hardware does
        return 0
    return round(float(x) * 2**fmt.n)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_requantize_matches_fixedpoint(mode):
    rng = np.random.default_rng(abs(hash(mode)) % 2**32)
    for _ in range(N):
        src_n = int(rng.integers(0, 16))
        value = int(rng.integers(-(2**24), 2**24))
        fmt = Format(signed=True, m=int(rng.integers(2, 12)), n=int(rng.integers(0, src_n + 1)), rounding=mode)
        got = int(requantize(np.array([value]), src_n, fmt)[0])
        assert got == reference(value / 2**src_n, fmt, mode), (value, src_n, fmt)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_products_match_fixedpoint(mode):
    rng = np.random.default_rng(7 + ROUNDING_MODES.index(mode))
    fa, fb = Format(True, 2, 14), Format(True, 3, 13)
    out = Format(True, 5, 11, rounding=mode)
    a = rng.integers(fa.min_int, fa.max_int + 1, N)
    b = rng.integers(fb.min_int, fb.max_int + 1, N)
    got = multiply(a, fa, b, fb, out)
    for ai, bi, gi in zip(a, b, got):
        pa = FixedPoint(int(ai) / 2**fa.n, signed=True, m=fa.m, n=fa.n)
        pb = FixedPoint(int(bi) / 2**fb.n, signed=True, m=fb.m, n=fb.n)
        product = pa * pb  # exact, m = fa.m + fb.m, n = fa.n + fb.n
        product.resize(out.m, out.n, rounding=mode, overflow="clamp", alert="ignore")
        assert int(gi) == round(float(product) * 2**out.n), (ai, bi)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("signed", [True, False])
def test_quantize_floats_matches_fixedpoint(mode, signed):
    rng = np.random.default_rng(3)
    fmt = Format(signed=signed, m=3, n=9, rounding=mode)
    values = np.concatenate([rng.uniform(-6, 6, N), (rng.integers(-3000, 3000, 200) + 0.5) / 2**9])  # ties too
    got = fmt.quantize(values)
    for v, g in zip(values, got):
        x = FixedPoint(float(v), signed=signed, m=fmt.m, n=fmt.n, rounding=mode, overflow="clamp", overflow_alert="ignore")
        assert int(g) == round(float(x) * 2**fmt.n), v


def test_saturation_never_wraps():
    fmt = Format(signed=True, m=2, n=6)
    assert list(saturate([10**6, -(10**6), 5], fmt)) == [fmt.max_int, fmt.min_int, 5]
    assert fmt.max_value == pytest.approx(2 - 2**-6) and fmt.min_value == -2
    unsigned = Format(signed=False, m=1, n=7)
    assert list(unsigned.quantize([-0.3, 2.5, 1.5, 0.5])) == [0, 255, 192, 64]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"signed": True, "m": 0, "n": 8}, "needs m >= 1"),
        ({"signed": True, "m": 40, "n": 30}, "70 bits wide"),
        ({"signed": True, "m": 2, "n": -1}, "format.n"),
        ({"signed": True, "m": 2, "n": 8, "rounding": "stochastic"}, "rounding must be one of"),
        ({"signed": True, "m": 2, "n": 8, "overflow": "wrap"}, "always saturates"),
    ],
)
def test_bad_formats_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Format(**kwargs)
    with pytest.raises(ConfigError, match=message):
        Format.from_dict(kwargs)


def test_quantize_refuses_nan():
    with pytest.raises(ConfigError, match="NaN"):
        Format(True, 2, 8).quantize([0.0, float("nan")])


def _signed(bits: int, width: int) -> int:
    return bits - (1 << width) if bits >> (width - 1) else bits


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_wide_datapath_values_round_and_saturate_like_fixedpoint(mode):
    """The golden model's accumulators and update products: up to 57 bits, shifts up to 35."""
    rng = np.random.default_rng(100 + ROUNDING_MODES.index(mode))
    width = 57
    for _ in range(N):
        out_n, shift = int(rng.integers(0, 21)), int(rng.integers(1, 36))
        src_n = out_n + shift
        value = int(rng.integers(-(2 ** (width - 1)), 2 ** (width - 1)))
        out = Format(True, int(rng.integers(2, 30)), out_n, rounding=mode)
        x = FixedPoint(hex(value & ((1 << width) - 1)), signed=True, m=width - src_n, n=src_n)
        x.resize(out.m, out.n, rounding=mode, overflow="clamp", alert="ignore")
        assert int(requantize(np.array([value]), src_n, out)[0]) == _signed(x.bits, out.width), (value, src_n, out)


# apytypes: a second, independent oracle (C++ and vectorized), so it checks far more values than fixedpoint's loops.
APY_ROUNDING = {"convergent": "TIES_EVEN", "nearest": "TIES_POS", "down": "TO_NEG", "up": "TO_POS", "in": "TO_ZERO", "out": "TIES_AWAY"}
GROUPS, PER_GROUP = 200, 1000  # 200,000 values per rounding mode in each test below


def apy_resize(values: np.ndarray, width: int, frac_bits: int, out: Format) -> np.ndarray:
    """Signed ``width``-bit integers with ``frac_bits`` fraction bits, resized by apytypes into ``out``
    (its rounding, saturating), as integers of ``out``."""
    x = apytypes.APyFixedArray([int(v) & ((1 << width) - 1) for v in values.tolist()], bits=width, frac_bits=frac_bits)
    y = x.cast(out.m, out.n, quantization=getattr(apytypes.QuantizationMode, APY_ROUNDING[out.rounding]), overflow=apytypes.OverflowMode.SAT)
    bits = np.array(y.to_bits(), dtype=object)
    return np.array([_signed(int(b), out.width) for b in bits], dtype=np.int64)


def test_apytypes_rounding_names_cover_every_mode():
    assert set(APY_ROUNDING) == set(ROUNDING_MODES)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("width, max_shift", [(25, 16), (57, 35)])  # states and weights; accumulators and update products
def test_requantize_matches_apytypes_on_hundreds_of_thousands_of_values(mode, width, max_shift):
    rng = np.random.default_rng([width, ROUNDING_MODES.index(mode)])
    for _ in range(GROUPS):
        out_n, shift = int(rng.integers(0, 21)), int(rng.integers(0, max_shift + 1))
        src_n = out_n + shift
        out = Format(True, int(rng.integers(2, min(30, width + out_n - src_n + 2))), out_n, rounding=mode)
        values = rng.integers(-(2 ** (width - 1)), 2 ** (width - 1), PER_GROUP)
        values[:4] = [-(2 ** (width - 1)), 2 ** (width - 1) - 1, 0, -1]  # the ends of the range saturate
        np.testing.assert_array_equal(requantize(values, src_n, out), apy_resize(values, width, src_n, out), err_msg=f"{src_n} -> {out}")


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_products_match_apytypes(mode):
    rng = np.random.default_rng(11 + ROUNDING_MODES.index(mode))
    for _ in range(GROUPS // 4):
        fa = Format(True, int(rng.integers(1, 6)), int(rng.integers(4, 16)))
        fb = Format(True, int(rng.integers(1, 6)), int(rng.integers(4, 16)))
        out = Format(True, int(rng.integers(2, 9)), int(rng.integers(0, fa.n + fb.n + 1)), rounding=mode)
        a = rng.integers(fa.min_int, fa.max_int + 1, 4 * PER_GROUP)
        b = rng.integers(fb.min_int, fb.max_int + 1, 4 * PER_GROUP)
        pa = apytypes.APyFixedArray([int(v) & ((1 << fa.width) - 1) for v in a.tolist()], int_bits=fa.m, frac_bits=fa.n)
        pb = apytypes.APyFixedArray([int(v) & ((1 << fb.width) - 1) for v in b.tolist()], int_bits=fb.m, frac_bits=fb.n)
        product = (pa * pb).cast(out.m, out.n, quantization=getattr(apytypes.QuantizationMode, APY_ROUNDING[mode]),
                                 overflow=apytypes.OverflowMode.SAT)  # the product itself is exact
        want = [_signed(int(bits), out.width) for bits in product.to_bits()]
        np.testing.assert_array_equal(multiply(a, fa, b, fb, out), want, err_msg=f"{fa} x {fb} -> {out}")
