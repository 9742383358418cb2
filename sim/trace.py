"""What the core's ``trace`` output must show for a sample, as per-port hashes and as writes.

The co-simulation harness (:mod:`eqprop.sim.harness`) folds every write of every traced port into
a 64-bit hash per port and per sample, ``h = ((h K + cycle) K + address) K + data`` modulo 2^64
with ``data`` as the port's unsigned bits. :func:`expected_hashes` computes the same from the
golden model's writes (:func:`eqprop.schedule.sample_trace`), vectorized: ``K`` is odd, so one
changed, missing or extra word, or one write in another cycle, always changes the hash. A sample
whose hashes differ is replayed write by write (:func:`first_difference`) to name the first
divergent write.
"""

from __future__ import annotations

import numpy as np

from eqprop.config import Config
from eqprop.layout import TracePort, trace_address, trace_ports
from eqprop.schedule import Write, WriteTrace, locate

#: The hash multiplier (odd, so multiplying by it is invertible modulo 2^64).
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def _powers(count: int) -> np.ndarray:
    """``K^(count-1), ..., K, 1`` modulo 2^64."""
    powers = np.full(count, HASH_MULTIPLIER, dtype=np.uint64)
    if count:
        powers[0] = 1
    with np.errstate(over="ignore"):
        return np.multiply.accumulate(powers)[::-1]


def stream_hash(words: np.ndarray) -> int:
    """The hash of one port's ``(cycle, address, data)`` rows, in order."""
    flat = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        return int((flat * _powers(len(flat))).sum(dtype=np.uint64))


def port_streams(cfg: Config, trace: WriteTrace) -> dict[str, np.ndarray]:
    """Every traced port's writes as ``(cycle, address, data)`` rows in cycle order (ports without writes: empty)."""
    streams = {}
    banks, addresses = np.zeros(len(trace), dtype=np.int64), np.zeros(len(trace), dtype=np.int64)
    for memory in trace.memories:
        rows = trace.of(memory)
        bank, address = trace_address(cfg, memory, trace.index[rows])
        banks[rows], addresses[rows] = bank, address
    for port in trace_ports(cfg):
        rows = np.flatnonzero(trace.of(port.memory) & (trace.buffer == port.buffer) & (banks == port.bank))
        rows = rows[np.argsort(trace.cycle[rows], kind="stable")]
        data = trace.value[rows] & ((1 << port.width) - 1)
        streams[port.name] = np.stack([trace.cycle[rows], addresses[rows], data], axis=1).astype(np.uint64)
    return streams


def expected_hashes(cfg: Config, trace: WriteTrace) -> dict[str, int]:
    return {name: stream_hash(words) for name, words in port_streams(cfg, trace).items()}


def signed_value(port: TracePort, bits: int) -> int:
    return bits - (1 << port.width) if bits >> (port.width - 1) else bits


def describe(cfg: Config, write: Write) -> str:
    """Where a write goes, in the words of the network: layer and neuron, or synapse."""
    if write.memory == "w0x":
        return f"W_0 x of layer-1 neuron {write.index}"
    if write.memory[0] == "s":
        return f"state of layer {write.memory[1:]} neuron {write.index} (buffer {write.buffer})"
    if write.memory[0] == "b":
        return f"bias {write.memory}[{write.index}]"
    cols = {"W": cfg.network.sizes[int(write.memory[1:])], "B": cfg.network.sizes[int(write.memory[1:]) + 1]}[write.memory[0]]
    r, c = divmod(write.index, cols)
    return f"synapse {write.memory}[{r}, {c}]"


def first_difference(cfg: Config, expected: list[Write], seen: list[Write]) -> str | None:
    """The first write (by cycle) where ``seen`` departs from ``expected``, reported in full; None when equal."""
    key = lambda w: (w.cycle, w.memory, w.buffer, w.index)  # noqa: E731
    expected, seen = sorted(expected, key=key), sorted(seen, key=key)
    for i in range(max(len(expected), len(seen))):
        want = expected[i] if i < len(expected) else None
        got = seen[i] if i < len(seen) else None
        if want == got:
            continue
        first = min((w for w in (want, got) if w is not None), key=key)
        where = f"cycle {first.cycle} ({locate(cfg, first.cycle)})"
        if want is None or (got is not None and key(got) < key(want)):
            return f"{where}: unexpected write of {got.value} to {describe(cfg, got)}"
        if got is None or key(want) < key(got):
            return f"{where}: missing write of {want.value} to {describe(cfg, want)}"
        return f"{where}: {describe(cfg, want)} expected {want.value}, got {got.value}"
    return None
