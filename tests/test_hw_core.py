"""The core against the golden model, in the Amaranth simulator: states, predictions, cycles."""

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from eqprop import network
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.hw.core import Core, skewed_banks, unskew
from eqprop.schedule import Write, cycle_count, inference_writes


def small_config(sizes, tied, lanes, T1=4) -> Config:
    rule = "cep" if tied else "cvf"
    return Config().replace(
        network={"sizes": sizes, "tied": tied, "init_gain": 2.0},
        learning={"rule": rule, "T1": T1, "lr": [0.01] * (len(sizes) - 1)},
        training={"arith": "fixed"},
        hardware={"lanes": lanes},
    )


def test_skewed_layout_round_trips_and_spreads_rows_and_columns_over_banks():
    matrix = np.arange(7 * 5).reshape(7, 5)
    for lanes in (1, 2, 3, 4, 8):
        banks = skewed_banks(matrix, lanes)
        np.testing.assert_array_equal(unskew([b.tolist() for b in banks], 7, 5), matrix)
        for r in range(7):  # a row segment and a column segment each touch P different banks
            assert len({(r + c) % lanes for c in range(min(lanes, 5))}) == min(lanes, 5)


@pytest.mark.parametrize(
    "sizes, tied, lanes",
    [([5, 4, 3], True, 1), ([5, 4, 3], True, 2), ([6, 5, 4, 3], False, 3), ([7, 3, 2], True, 4), ([4, 3], True, 2)],
    ids=["tied-P1", "tied-P2", "untied-deep-P3", "narrow-layers-P4", "no-hidden-P2"],
)
def test_inference_matches_the_golden_model_in_the_predicted_cycles(sizes, tied, lanes):
    cfg = small_config(sizes, tied, lanes)
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(3), torch.float64))
    rng = np.random.default_rng(lanes)
    samples = rng.integers(0, cfg.fixed.input.max_int + 1, (3, sizes[0]))
    dut = Core(cfg, golden.params)
    expected_cycles = cycle_count(cfg).inference
    results = []

    async def bench(ctx):
        for x in samples:
            for value in x:
                ctx.set(dut.x.valid, 1)
                ctx.set(dut.x.payload, int(value))
                await ctx.tick()
            ctx.set(dut.x.valid, 0)
            await ctx.tick().until(dut.prediction.valid)
            prediction, cycles = ctx.get(dut.prediction.payload), ctx.get(dut.cycles)
            ctx.set(dut.prediction.ready, 1)
            await ctx.tick()
            ctx.set(dut.prediction.ready, 0)
            states = {}
            for l in range(1, len(sizes)):
                buffer = cfg.learning.T1 % 2  # the buffer the last step wrote
                banks = dut.states[(l, buffer)]
                states[l] = [ctx.get(banks[j % lanes].data[j // lanes]) for j in range(sizes[l])]
            results.append((prediction, cycles, states))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for x, (prediction, cycles, states) in zip(samples, results):
        expected = golden.free_phase(x.reshape(1, -1))
        for l in range(1, len(sizes)):
            assert states[l] == expected[l][0].tolist(), l
        assert prediction == int(expected[-1][0].argmax())
        assert cycles == expected_cycles


@pytest.mark.parametrize("sizes, tied, lanes", [([5, 4, 3], True, 2), ([6, 5, 4, 3], False, 3)], ids=["tied-P2", "untied-P3"])
def test_every_write_lands_in_the_cycle_the_schedule_gives(sizes, tied, lanes):
    """The cycle-by-cycle contract: memory, buffer, address, value and cycle of every write."""
    cfg = small_config(sizes, tied, lanes)
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(5), torch.float64))
    x = np.random.default_rng(9).integers(0, cfg.fixed.input.max_int + 1, sizes[0])
    dut = Core(cfg, golden.params)
    seen = []

    async def bench(ctx):
        for value in x:
            ctx.set(dut.x.valid, 1)
            ctx.set(dut.x.payload, int(value))
            await ctx.tick()
        ctx.set(dut.x.valid, 0)
        while not ctx.get(dut.prediction.valid):
            for (memory, buffer), ports in dut.write_ports.items():
                for bank, port in enumerate(ports):
                    if ctx.get(port.en):
                        index = ctx.get(port.addr) * (lanes if memory != "w0x" else 1) + (bank if memory != "w0x" else 0)
                        seen.append(Write(ctx.get(dut.cycles), memory, buffer, index, ctx.get(port.data)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == inference_writes(golden, x)
