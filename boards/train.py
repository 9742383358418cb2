"""Training on a board through the link (``eqprop board train``), real or simulated.

The host loads the configuration's seeded initial weights, measures accuracy on test samples
(inference on the board), streams training samples one by one while the board learns, measures
again, reads the weights back and compares them with the golden model trained on the same
samples. Samples per second are measured on the link (wall time of the TRAIN requests); beside
them stand the two bounds of the board itself: its clock over the cycles a sample took (compute)
and its UART's baud rate over the bits of one TRAIN request and answer (link).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from eqprop.checkpoint import CHECKPOINT_NAME
from eqprop.config import Config
from eqprop.golden import Arith, GoldenModel
from eqprop.outputs import OutputKind

from .host import BoardLink, SerialTransport
from .protocol import HEADER, TRAILER
from .registry import Board
from .requests import SampleResult, sample_payload

#: The run folder of ``eqprop board train --out``: the weights read back, their configuration, the report.
BOARD_RUN = OutputKind("board training run", (CHECKPOINT_NAME, "config.json", "board.json"))
#: UART 8N1: a start bit, eight data bits and a stop bit per byte.
BITS_PER_BYTE = 10
#: Seconds the host waits for an answer: from a board, and from the simulated one, whose time runs far slower.
ANSWER_TIMEOUT_S = {"board": 2.0, "simulated": 120.0}


def open_link(board: Board, cfg: Config, port: str | None = None, build_root: str | Path = "build/board-sim", retries: int = 3) -> BoardLink:
    """The host link to the board on serial ``port``, or without one to the simulated board: the SoC's
    Verilog under cocotb/Verilator, built in ``build_root``. Close its ``transport`` when done."""
    if port is not None:
        return BoardLink(SerialTransport(port, board.baud), cfg, timeout=ANSWER_TIMEOUT_S["board"], retries=retries)
    from eqprop.sim.board import SimulatedTransport

    transport = SimulatedTransport(cfg, board.divisor, board.frame_timeout_cycles, build_root=build_root)
    return BoardLink(transport, cfg, timeout=ANSWER_TIMEOUT_S["simulated"], retries=retries)


def train_exchange_bytes(cfg: Config) -> int:
    """Bytes on the wire for one TRAIN request and its answer."""
    request = len(sample_payload(np.zeros(cfg.network.sizes[0], dtype=np.int64), 0))
    return 2 * (HEADER + TRAILER) + request + SampleResult.BYTES


def board_rates(board: Board, cfg: Config, cycles_per_sample: float) -> dict[str, float]:
    """Training samples per second the board's clock allows, its link allows, and both in turn (the
    host waits for each answer before it sends the next sample)."""
    compute = board.clock_hz / cycles_per_sample
    link = board.baud / (BITS_PER_BYTE * train_exchange_bytes(cfg))
    return {"compute_samples_per_s": compute, "link_bound_samples_per_s": link, "board_samples_per_s": 1 / (1 / compute + 1 / link)}


def board_train(board: Board, cfg: Config, link: BoardLink, params: dict, train_x, train_y, test_x, test_y,
                simulated: bool, progress=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Train ``train_x`` (input integers) on the board; returns the report and the weights read back."""
    golden = GoldenModel(Arith.from_config(cfg), params)
    link.check()
    link.load(params)

    def accuracy() -> float:
        hits = sum(link.infer(x).prediction == int(y) for x, y in zip(test_x, test_y))
        return 100.0 * hits / len(test_y)

    before = accuracy()
    cycles, started = [], time.perf_counter()
    for i, (x, y) in enumerate(zip(train_x, train_y)):
        cycles.append(link.train(x, int(y)).cycles)
        golden.train_sample(x, int(y))
        if progress:
            progress(i + 1)
    seconds = time.perf_counter() - started
    after = accuracy()
    weights = link.read()
    mismatched = [name for name, value in golden.params.items() if not np.array_equal(weights[name], value)]
    per_sample = float(np.mean(cycles))
    report = {
        "board": board.name, "simulated": simulated, "samples": len(train_y), "test_samples": len(test_y),
        "accuracy_before": before, "accuracy_after": after,
        "link_samples_per_s": len(train_y) / seconds, "cycles_per_sample": per_sample,
        **board_rates(board, cfg, per_sample),
        "weights_equal_golden": not mismatched, "mismatched": mismatched, "retries": link.retried,
    }
    return report, weights
