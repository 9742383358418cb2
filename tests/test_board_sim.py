"""The simulated board (the SoC's Verilog under cocotb/Verilator) behind the host driver."""

import numpy as np
import pytest
import torch

from eqprop import network
from eqprop.boards.host import BoardLink, LinkError
from eqprop.boards.protocol import Command, Frame, crc16
from eqprop.boards.requests import load_payload
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.layout import parameter_words

CFG = Config().replace(
    network={"sizes": [6, 5, 3], "tied": True, "init_gain": 2.0},
    learning={"rule": "cep", "T1": 4, "T2": 2, "lr": [0.1, 0.1], "nudging": "symmetric"},
    training={"arith": "fixed"},
    hardware={"lanes": 1, "fpga": "ice40up5k"},  # the SoC as the iCEBreaker runs it, SPRAM model included
)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from eqprop.sim.board import SimulatedTransport

    transport = SimulatedTransport(CFG, divisor=6, timeout_cycles=3000, build_root=tmp_path_factory.mktemp("board"))
    yield transport
    transport.close()


def golden_model():
    return GoldenModel.from_float(CFG, network.init_params(CFG.network, torch.Generator().manual_seed(1), torch.float64))


def weights_crc(link: BoardLink) -> int:
    words = parameter_words(CFG, link.read())
    return crc16(b"".join((v & 0xFFFFFF).to_bytes(3, "big") for *_, v in words))


def test_the_simulated_board_learns_like_the_golden_model(board):
    golden = golden_model()
    link = BoardLink(board, CFG, timeout=30)
    link.check()
    link.load(golden.params)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, label = rng.integers(0, 256, 6), int(rng.integers(3))
        result = link.train(x, label)
        assert result.prediction == int(golden.free_phase(x.reshape(1, -1))[-1][0].argmax())
        golden.train_sample(x, label)
    got = link.read()
    for name, value in golden.params.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert link.stats().samples == 3


def test_fuzzed_frames_are_refused_and_change_no_weight(board):
    # the check waits for the simulated UART to drain about 100 KB of garbage first: a minute of wall
    # time on a busy machine, so it may ask up to eleven times
    link = BoardLink(board, CFG, timeout=30, retries=10)
    link.load(golden_model().params)
    before = weights_crc(link)
    errors_before = link.stats()
    rng = np.random.default_rng(5)
    valid_load = Frame(9, Command.LOAD, load_payload(0, 0, 0, [123456] * 4, 3)).encode()
    sent = 0
    for i in range(10_000):
        kind = i % 3
        frame = bytearray(valid_load)
        if kind == 0:  # random bytes, SOFs among them
            frame = bytearray(rng.integers(0, 256, int(rng.integers(1, 24))).astype(np.uint8).tobytes())
        elif kind == 1:  # cut short
            frame = frame[: int(rng.integers(1, len(frame)))]
        else:  # one flipped bit
            frame[int(rng.integers(1, len(frame)))] ^= 1 << int(rng.integers(8))
        board.write(bytes(frame))
        sent += len(frame)
    link.check()  # answers again once the garbage has passed (retried if a reply is lost in it)
    assert weights_crc(link) == before
    after = link.stats()
    assert after.crc_errors + after.other_errors > errors_before.crc_errors + errors_before.other_errors
    assert after.samples == errors_before.samples


def test_another_configuration_on_the_board_is_refused(board):
    other = CFG.replace(learning={"T1": 5})
    with pytest.raises(LinkError, match="runs configuration .* not this one"):
        BoardLink(board, other, timeout=30).check()


class Silent:
    """A transport whose board never answers."""

    def __init__(self):
        self.writes = 0

    def write(self, data):
        self.writes += 1

    def read(self, timeout):
        return b""


def test_an_unanswered_request_is_retried_a_bounded_number_of_times():
    silent = Silent()
    with pytest.raises(LinkError, match="no answer to INFO after 3 tries"):
        BoardLink(silent, CFG, timeout=0.05, retries=2).check()
    assert silent.writes == 3
