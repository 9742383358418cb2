"""The SoC's command engine with the core, in the Amaranth simulator, against the golden model."""

import numpy as np
import torch
from amaranth.sim import Simulator

from eqprop import network
from eqprop.boards.engine import HostLink
from eqprop.boards.registry import get_board
from eqprop.boards.requests import config_hash, info_bytes, word_bytes
from eqprop.boards.protocol import ANSWER, ERROR, Command, Error, Frame, Receiver
from eqprop.boards.requests import SampleResult, Stats, load_payload, load_payloads, read_payload, sample_payload, word_runs, words_of
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.layout import parameter_words
from eqprop.schedule import cycle_count


def small_config(fpga="generic") -> Config:
    return Config().replace(
        network={"sizes": [6, 5, 3], "tied": True, "init_gain": 2.0},
        learning={"rule": "cep", "T1": 4, "T2": 2, "lr": [0.1, 0.1], "nudging": "symmetric"},
        training={"arith": "fixed"},
        hardware={"lanes": 2, "fpga": fpga},
    )


def exchange_all(cfg: Config, requests: list[bytes]) -> list[Frame]:
    """Send each request's bytes, wait for its answer frame; return the answers."""
    dut = HostLink(cfg, timeout=200)
    answers, receiver = [], Receiver()

    async def host(ctx):
        ctx.set(dut.answers.ready, 1)
        for raw in requests:
            expected = len(answers) + 1
            for byte in raw:
                ctx.set(dut.requests.valid, 1)
                ctx.set(dut.requests.payload, byte)
                await ctx.tick().until(dut.requests.ready)
            ctx.set(dut.requests.valid, 0)
            while len(answers) < expected:
                await ctx.tick()
                if ctx.get(dut.answers.valid):
                    answers.extend(receiver.feed(bytes([ctx.get(dut.answers.payload)])))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.run()
    return answers


def load_requests(cfg, params, sequence=0):
    words = parameter_words(cfg, params)
    loads = [Frame(sequence, Command.LOAD, payload).encode() for payload in load_payloads(words, word_bytes(cfg))]
    return loads, word_runs(words)


def test_load_train_read_and_errors_through_the_link():
    cfg = small_config()
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(1), torch.float64))
    loads, runs = load_requests(cfg, golden.params)
    x = np.random.default_rng(0).integers(0, 256, 6)
    reads = [Frame(2, Command.READ, read_payload(m, b, 0, len(run))).encode() for (m, b), run in runs.items()]
    flipped = bytearray(Frame(5, Command.TRAIN, sample_payload(x, 1)).encode())
    flipped[9] ^= 0x04
    bad = [
        Frame(6, 0x42).encode(),  # unknown command
        Frame(7, Command.LOAD, load_payload(9, 0, 0, [1], word_bytes(cfg))).encode(),  # no memory 9
        Frame(8, Command.LOAD, load_payload(0, 0, 14, [1, 2], word_bytes(cfg))).encode(),  # past the end of W0's bank
        Frame(9, Command.TRAIN, sample_payload(x, 3)).encode(),  # label 3 of 3 classes
        Frame(10, Command.INFER, sample_payload(x[:5], 0)).encode(),  # one input short
        bytes(flipped),  # a corrupted TRAIN
    ]
    requests = [Frame(1, Command.INFO).encode(), *loads, Frame(3, Command.TRAIN, sample_payload(x, 1)).encode(), *bad, *reads,
                Frame(4, Command.STATS).encode()]
    answers = exchange_all(cfg, requests)

    info = answers[0]
    assert (info.sequence, info.command, info.payload) == (1, Command.INFO | ANSWER, info_bytes(cfg))
    assert int.from_bytes(info.payload[1:5], "big") == config_hash(cfg)
    assert all(a.command == Command.LOAD | ANSWER and a.payload == b"" for a in answers[1:1 + len(loads)])
    trained = SampleResult.parse(answers[1 + len(loads)].payload)
    assert trained.prediction == int(golden.free_phase(x.reshape(1, -1))[-1][0].argmax())
    golden.train_sample(x, 1)
    assert trained.cycles == cycle_count(cfg).total
    errors = answers[2 + len(loads):2 + len(loads) + len(bad)]
    assert [(a.sequence, a.command, a.payload) for a in errors] == [
        (6, ERROR, bytes([Error.COMMAND])), (7, ERROR, bytes([Error.ARGUMENT])), (8, ERROR, bytes([Error.ARGUMENT])),
        (9, ERROR, bytes([Error.ARGUMENT])), (10, ERROR, bytes([Error.LENGTH])), (5, ERROR, bytes([Error.CRC])),
    ]
    read_answers = answers[2 + len(loads) + len(bad):-1]
    got = {}
    for ((memory, bank), run), answer in zip(runs.items(), read_answers):
        for (address, _), value in zip(run, words_of(answer.payload, word_bytes(cfg))):
            got[memory, bank, address] = value
    expected = {(m, b, a): v for m, b, a, v in parameter_words(cfg, golden.params)}
    assert got == expected  # learned bit-exactly, and the refused requests changed nothing
    stats = Stats.parse(answers[-1].payload)
    assert (stats.samples, stats.cycles, stats.crc_errors, stats.other_errors) == (1, trained.cycles, 1, 5)
    assert stats.frames == len(answers) - 1


def test_the_soc_answers_over_its_uart_pins():
    from amaranth.hdl import Module

    from eqprop.boards.soc import Soc
    from eqprop.boards.uart import UartRx, UartTx

    cfg, divisor = small_config(), 4
    m = Module()
    m.submodules.soc = soc = Soc(cfg, divisor, timeout=400)
    m.submodules.host_tx = host_tx = UartTx(divisor)
    m.submodules.host_rx = host_rx = UartRx(divisor)
    m.d.comb += [soc.rx.eq(host_tx.tx), host_rx.rx.eq(soc.tx)]
    receiver, answers = Receiver(), []

    async def host(ctx):
        ctx.set(host_rx.data.ready, 1)
        for byte in b"\x00\xff" + Frame(3, Command.INFO).encode():  # garbage first
            ctx.set(host_tx.data.valid, 1)
            ctx.set(host_tx.data.payload, byte)
            await ctx.tick().until(host_tx.data.ready)
        ctx.set(host_tx.data.valid, 0)
        while not answers:
            await ctx.tick()
            if ctx.get(host_rx.data.valid):
                answers.extend(receiver.feed(bytes([ctx.get(host_rx.data.payload)])))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.run()
    assert answers == [Frame(3, Command.INFO | ANSWER, info_bytes(cfg))]


def test_the_config_hash_tells_chips_apart_by_what_they_are_built_from():
    cfg = get_board("icebreaker").default_config()
    assert config_hash(cfg.replace(learning={"T1": cfg.learning.T1 + 1})) != config_hash(cfg)
    assert config_hash(cfg.replace(training={"seed": cfg.training.seed + 1})) != config_hash(cfg)
    # a float-only field no chip configuration can set leaves it as it was before the field existed
    centred = cfg.replace(training={"arith": "float", "center_inputs": True})
    assert config_hash(centred) == config_hash(cfg.replace(training={"arith": "float"}))
