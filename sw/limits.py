"""The largest inputs eqprop accepts, checked before anything is allocated or computed.

Each limit is far above what the toolchain is used for (MNIST is 784 inputs, the boards hold a
few hundred units, the presets run tens of steps) and low enough that a mistyped or hostile
value is refused at once, with a message naming the limit, instead of filling the memory or
running for hours. The README lists them.
"""

from __future__ import annotations

from .errors import EqpropError

#: Weight layers of a network (``len(network.sizes) - 1``).
MAX_LAYERS = 16
#: Units of one layer.
MAX_UNITS = 16_384
#: Weights of a whole network (every ``W_l``, and every ``B_l`` when untied).
MAX_WEIGHTS = 1 << 24
#: Free- and nudged-phase steps (``learning.T1``, ``learning.T2``; the host link sends them in 16 bits).
MAX_STEPS = 10_000
#: MAC lanes P (the host link sends P in one byte).
MAX_LANES = 128
#: Epochs, batch size, homeostasis period and probes, alignment probe samples.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_PERIOD = 1 << 20
MAX_PROBES = 1_024
MAX_PROBE_SAMPLES = 1 << 20
#: Extra fraction bits of stored weights and biases (a stored number is at most 62 bits wide anyway).
MAX_LEARN_BITS = 48
#: Seeds are NumPy's: below 2**32.
MAX_SEED = (1 << 32) - 1
#: Bytes of a configuration file.
MAX_CONFIG_BYTES = 1 << 20
#: Nesting of a configuration's JSON (it has two levels; Python's parser recurses).
MAX_JSON_DEPTH = 32
#: Bytes of a checkpoint file, and of its entries once inflated (all together).
MAX_CHECKPOINT_BYTES = 512 << 20
#: Entries of a checkpoint archive (format, version, arith, config, formats and the parameters).
MAX_CHECKPOINT_ENTRIES = 4 + 1 + 3 * MAX_LAYERS
#: Bytes of one IDX file once inflated (MNIST's training images are 47 MB).
MAX_IDX_BYTES = 256 << 20
#: Samples a command streams or co-simulates, and seeds or random configurations it runs.
MAX_SAMPLES = 1_000_000
MAX_RUNS = 10_000
#: Tries of an unanswered request on the host link, and worker processes of the bench.
MAX_RETRIES = 100
MAX_JOBS = 256


class LimitError(EqpropError):
    """An input larger than eqprop accepts."""


def check_at_most(what: str, value: int, name: str) -> None:
    """Refuse ``value`` above the limit called ``name`` here; the message names it."""
    limit = globals()[name]
    if value > limit:
        raise LimitError(f"{what} is {value:,}, more than the limit {limit:,} (eqprop.limits.{name})")


def read_file(path, what: str, name: str, error: type[EqpropError] = EqpropError) -> bytes:
    """The bytes of the file ``path`` (``what`` names it in messages), refused past the limit called
    ``name`` without reading more than one byte past it; ``error`` for a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read(globals()[name] + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    check_at_most(f"{what} {path}'s size in bytes", len(raw), name)
    return raw
