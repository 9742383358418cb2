import numpy as np
import pytest

from eqprop.errors import ConfigError
from eqprop.lfsr import MAXIMAL_TAPS, Lfsr


@pytest.mark.parametrize("width", sorted(MAXIMAL_TAPS))
def test_vectorized_sequence_equals_bit_serial_clocking(width):
    lfsr = Lfsr(width, MAXIMAL_TAPS[width], seed=0x5A5 % (1 << width) or 1)
    state, serial = lfsr.seed, []
    for _ in range(1500):
        state = lfsr.step(state)
        serial.append(state)
    np.testing.assert_array_equal(lfsr.states(1000), serial[:1000])
    np.testing.assert_array_equal(lfsr.states(700, start=800), serial[800:1500])
    assert lfsr.state_after(1234) == serial[1233]


@pytest.mark.parametrize("width", [8, 16])
def test_maximal_taps_have_full_period(width):
    lfsr = Lfsr(width, MAXIMAL_TAPS[width], seed=1)
    period = (1 << width) - 1
    states = lfsr.states(period)
    assert len(np.unique(states)) == period and 0 not in states
    assert int(states[-1]) == lfsr.seed


def test_low_bits_are_roughly_uniform():
    words = Lfsr().states(1 << 15) & np.uint64(0xF)
    counts = np.bincount(words.astype(np.int64), minlength=16)
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"width": 1}, "width"), ({"width": 16, "taps": 0x00FF}, "top bit"), ({"seed": 0}, "non-zero"), ({"width": 8, "taps": 0xB8, "seed": 256}, "8-bit")],
)
def test_bad_lfsr_configuration_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Lfsr(**kwargs)


@pytest.mark.parametrize("width", [8, 16, 24])
def test_draws_are_states_one_width_of_clocks_apart(width):
    lfsr = Lfsr(width, MAXIMAL_TAPS[width], seed=0x3C % (1 << width))
    draws = lfsr.draws(start=5, count=300)  # tabulated for 8 and 16 bits, jumped for 24
    expected = [lfsr.state_after((5 + i + 1) * width) for i in range(0, 300, 37)]
    np.testing.assert_array_equal(draws[::37], expected)
    assert draws.dtype == np.int64
