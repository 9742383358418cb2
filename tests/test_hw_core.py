"""The core against the golden model, in the Amaranth simulator: states, predictions, cycles."""

import gc
import warnings

import numpy as np
import pytest
import torch
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from eqprop import network
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.hw.core import Core
from eqprop.layout import param_shapes, parameter_words, parameters_from_words, skewed_banks, trace_address, trace_location, trace_ports, unskew
from eqprop.schedule import Write, cycle_count, sample_writes


def small_config(sizes, tied, lanes, T1=4) -> Config:
    rule = "cep" if tied else "cvf"
    return Config().replace(
        network={"sizes": sizes, "tied": tied, "init_gain": 2.0},
        learning={"rule": rule, "T1": T1, "lr": [0.01] * (len(sizes) - 1)},
        training={"arith": "fixed"},
        hardware={"lanes": lanes},
    )


#: In a test case's learning settings: W_0 updated at every nudged step (hardware.defer_input_updates off).
LITERAL = {"defer_input_updates": False}


def configured(cfg: Config, learn: dict, fixed: dict) -> Config:
    """``cfg`` with a test case's learning and fixed-point settings (LITERAL goes to the hardware section)."""
    learn = dict(learn)
    hardware = {"defer_input_updates": learn.pop("defer_input_updates")} if "defer_input_updates" in learn else {}
    return cfg.replace(learning=learn, fixed=fixed, hardware=hardware)


async def send(ctx, dut, x, label: int, train: bool):
    """Stream one sample's inputs, then its label and whether to learn it."""
    for value in x:
        ctx.set(dut.x.valid, 1)
        ctx.set(dut.x.payload, int(value))
        await ctx.tick()
    ctx.set(dut.x.valid, 0)
    ctx.set(dut.label.valid, 1)
    ctx.set(dut.label.payload, {"index": label, "train": int(train)})
    await ctx.tick()
    ctx.set(dut.label.valid, 0)


def test_skewed_layout_round_trips_and_spreads_rows_and_columns_over_banks():
    matrix = np.arange(7 * 5).reshape(7, 5)
    for lanes in (1, 2, 3, 4, 8):
        banks = skewed_banks(matrix, lanes)
        np.testing.assert_array_equal(unskew([b.tolist() for b in banks], 7, 5), matrix)
        for r in range(7):  # a row segment and a column segment each touch P different banks
            assert len({(r + c) % lanes for c in range(min(lanes, 5))}) == min(lanes, 5)


@pytest.mark.parametrize("sizes, lanes", [([6, 5, 4, 3], 1), ([6, 5, 4, 3], 2), ([6, 5, 4, 3], 3), ([6, 5, 4, 3], 5), ([6, 9, 3], 8)],
                         ids=["P1", "P2", "P3", "P5", "packed-P8"])  # packed: W_0 x striped over the banks
def test_trace_addresses_and_element_indices_are_inverse(sizes, lanes):
    cfg = small_config(sizes, len(sizes) == 3, lanes)
    sizes = {"w0x": sizes[1]} | {f"s{l}": n for l, n in enumerate(sizes) if l} | {k: int(np.prod(v)) for k, v in param_shapes(cfg.network).items()}
    held = {}
    for port in trace_ports(cfg):
        for address in range(port.depth):
            index = trace_location(cfg, port, address)
            if index < sizes[port.memory] and trace_address(cfg, port.memory, index) == (port.bank, address):
                held.setdefault(port.memory, set()).add(index)
    assert held == {memory: set(range(size)) for memory, size in sizes.items()}  # every element has a word, padding aside


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
            await send(ctx, dut, x, label=0, train=False)
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


@pytest.mark.parametrize(
    "sizes, tied, learn, fixed, lanes, train",
    [
        ([5, 4, 3], True, {}, {}, 2, False),
        ([6, 5, 4, 3], False, {}, {}, 3, False),
        ([5, 4, 3], True, {"nudging": "symmetric"}, {}, 2, True),
        ([6, 5, 4, 3], False, {"nudging": "random-sign", "homeostasis": "local", "homeostasis_coef": 0.1, "homeostasis_period": 1},
         {"stochastic_rounding": True, "learn_bits": 4}, 3, True),
        ([5, 4, 3], True, {"nudging": "symmetric", **LITERAL}, {}, 2, True),
        ([6, 5, 4, 3], False, {"nudging": "random-sign", **LITERAL}, {"stochastic_rounding": True, "learn_bits": 4}, 3, True),
        # packed beats (eqprop.program.packing): two layer-1 rows of 3 per beat, the last block's
        # beats half empty; four untied B_1 rows of 2, read by row (and updated by column)
        ([6, 9, 3], True, {"nudging": "symmetric"}, {}, 8, True),
        ([6, 10, 2], False, {"nudging": "random-sign", "homeostasis": "local", "homeostasis_coef": 0.1, "homeostasis_period": 1},
         {"stochastic_rounding": True, "learn_bits": 4}, 8, True),
    ],
    ids=["inference-tied-P2", "inference-untied-P3", "training-cep-symmetric-P2", "training-cvf-random-sign-stochastic-homeostasis-P3",
         "training-cep-literal-input-updates-P2", "training-cvf-literal-input-updates-stochastic-P3", "training-cep-packed-P8",
         "training-cvf-packed-stochastic-homeostasis-P8"],
)
def test_every_write_lands_in_the_cycle_the_schedule_gives(sizes, tied, learn, fixed, lanes, train):
    """The cycle-by-cycle contract: memory, buffer, address, value and cycle of every write."""
    cfg = configured(small_config(sizes, tied, lanes), {"T2": 2, "lr": [0.1] * (len(sizes) - 1), **learn}, fixed)
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(5), torch.float64))
    x = np.random.default_rng(9).integers(0, cfg.fixed.input.max_int + 1, sizes[0])
    dut = Core(cfg, golden.params)
    seen = []

    async def bench(ctx):
        await send(ctx, dut, x, label=1, train=train)
        while not ctx.get(dut.prediction.valid):
            for port in dut.traced:
                signals = getattr(dut.trace, port.name)
                if ctx.get(signals.en):
                    index = trace_location(cfg, port, ctx.get(signals.addr))
                    seen.append(Write(ctx.get(dut.cycles), port.memory, port.buffer, index, ctx.get(signals.data)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expected = sample_writes(golden, x, label=1, train=train)
    assert any(w.memory[0] in "WBb" for w in expected) == train
    assert sorted(seen, key=lambda w: (w.cycle, w.memory, w.buffer, w.index)) == expected


HOMEOSTASIS = {"homeostasis": "local", "homeostasis_coef": 0.1, "homeostasis_period": 2}
STOCHASTIC = {"stochastic_rounding": True, "learn_bits": 4}


@pytest.mark.parametrize(
    "sizes, tied, learn, fixed, lanes",
    [
        ([5, 4, 3], True, {"nudging": "symmetric"}, {}, 1),
        ([6, 5, 3], True, {"nudging": "one-sided"}, {}, 2),
        ([6, 5, 4, 3], False, {"nudging": "one-sided"}, {}, 3),
        ([5, 4, 3], False, {"nudging": "symmetric"}, {}, 2),
        ([7, 3, 2], True, {"nudging": "symmetric"}, {}, 4),
        ([6, 5, 4, 3], False, {"nudging": "symmetric", **HOMEOSTASIS}, {}, 2),
        ([5, 4, 3], False, {"nudging": "random-sign", **HOMEOSTASIS}, STOCHASTIC, 3),
        ([6, 5, 3], True, {"nudging": "random-sign"}, STOCHASTIC, 1),
        ([6, 5, 3], True, {"nudging": "symmetric", **LITERAL}, STOCHASTIC, 2),
        ([6, 5, 4, 3], False, {"nudging": "one-sided", **LITERAL}, {}, 3),
        ([6, 9, 3], True, {"nudging": "symmetric", **LITERAL}, {}, 8),
        # B_1 (3 x 5) has fewer rows than columns: updated row by row (eqprop.program.feedback_by_column)
        ([4, 3, 5], False, {"nudging": "symmetric", **HOMEOSTASIS}, STOCHASTIC, 2),
    ],
    ids=["cep-symmetric-P1", "cep-one-sided-P2", "cvf-deep-P3", "cvf-symmetric-P2", "narrow-P4",
         "cvf-homeostasis-P2", "cvf-random-sign-stochastic-homeostasis-P3", "cep-random-sign-stochastic-P1",
         "cep-literal-input-updates-stochastic-P2", "cvf-literal-input-updates-P3", "cep-literal-packed-P8",
         "cvf-feedback-by-row-stochastic-homeostasis-P2"],
)
def test_learning_matches_the_golden_model_weight_for_weight(sizes, tied, learn, fixed, lanes):
    cfg = configured(small_config(sizes, tied, lanes), {"T2": 3, "lr": [0.1] * (len(sizes) - 1), **learn}, fixed)
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(4), torch.float64))
    dut = Core(cfg, golden.params)
    rng = np.random.default_rng(lanes + 10)
    samples = [(rng.integers(0, cfg.fixed.input.max_int + 1, sizes[0]), int(rng.integers(sizes[-1]))) for _ in range(3)]
    start = {k: v.copy() for k, v in golden.params.items()}
    results = []

    async def bench(ctx):
        for x, label in samples:
            await send(ctx, dut, x, label, train=True)
            await ctx.tick().until(dut.prediction.valid)
            results.append((ctx.get(dut.prediction.payload), ctx.get(dut.cycles)))
            ctx.set(dut.prediction.ready, 1)
            await ctx.tick()
            ctx.set(dut.prediction.ready, 0)
        results.append(dut.weight_arrays(lambda data, address: ctx.get(data[address])))

    collisions = []

    async def watch(ctx):
        """Counts the cycles in which a word read from block RAM collided with its memory's write."""
        async for _, _, *flags in ctx.tick().sample(*dut.collision_flags):
            collisions.append(any(flags))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    # the core never uses such a word: the simulation inverts it (Core's collisions="checked"), and it occurs
    assert sum(collisions) > 0
    count = cycle_count(cfg)
    for (x, label), (prediction, cycles) in zip(samples, results):
        assert prediction == int(golden.free_phase(x.reshape(1, -1))[-1][0].argmax())  # predicts before learning
        golden.train_sample(x, label)
        due = count.homeostasis_pass if cfg.learning.homeostasis == "local" and golden.samples % cfg.learning.homeostasis_period == 0 else 0
        assert cycles == count.total - count.phases["homeostasis"] + due
    weights = results[-1]
    assert any(not np.array_equal(golden.params[k], start[k]) for k in start)  # learning happened
    for name, value in golden.params.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


@pytest.mark.parametrize(
    "sizes, tied, lanes, hardware, learn, fixed",
    [
        ([6, 5, 4, 3], False, 2, {"fpga": "generic"}, {"nudging": "symmetric", **HOMEOSTASIS}, {}),
        ([6, 5, 3], True, 1, {"fpga": "ice40up5k"}, {"nudging": "symmetric"}, {}),  # W_l in SPRAM parity stores
        # 16-bit stored weights: one SPRAM per parity half, so two banks fit the four; 14-bit learning
        # factors, so that f ||x||^2 takes two SB_MAC16 (not three) and the core the UP5K's eight
        ([6, 5, 3], False, 2, {"fpga": "ice40up5k"}, {"nudging": "random-sign", **HOMEOSTASIS},
         {"learn_bits": 0, "update": {"signed": True, "m": 1, "n": 13}}),
        # literal input updates: b_1's two beats between W_0's and W_1's walks keep their parities
        # apart (three would not: the device check refuses that, eqprop.program.single_port_conflicts)
        ([6, 4, 3], True, 2, {"fpga": "ice40up5k", "defer_input_updates": False}, {"nudging": "symmetric"},
         {"learn_bits": 0, "update": {"signed": True, "m": 1, "n": 13}}),
    ],
    ids=["block-ram-untied-P2", "spram-tied-P1", "spram-untied-homeostasis-P2", "spram-literal-P2"],
)
def test_param_port_loads_and_reads_back_the_weights_around_learning(sizes, tied, lanes, hardware, learn, fixed):
    fpga = hardware["fpga"]
    cfg = small_config(sizes, tied, lanes).replace(
        learning={"T2": 2, "lr": [0.1] * (len(sizes) - 1), **learn}, hardware=hardware, fixed=fixed
    )
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(8), torch.float64))
    dut = Core(cfg)  # zero weights: everything comes through the port
    assert len(dut.weight_stores) == (lanes if fpga == "ice40up5k" else 0)
    x = np.random.default_rng(2).integers(0, cfg.fixed.input.max_int + 1, 6)
    read_back, conflicts = {}, []

    async def watch(ctx):  # a single-port RAM asked for a read and a write in one cycle
        async for _, _, *flags in ctx.tick().sample(*[store.conflict for store in dut.weight_stores]):
            conflicts.extend(flag for flag in flags if flag)

    async def access(ctx, memory, bank, address, write=False, value=0):
        ctx.set(dut.param.valid, 1)
        ctx.set(dut.param.payload, {"memory": memory, "bank": bank, "address": address, "write": int(write), "data": value})
        await ctx.tick().until(dut.param.ready)
        ctx.set(dut.param.valid, 0)
        if write:
            return None
        ctx.set(dut.param_read.ready, 1)
        (word,) = await ctx.tick().sample(dut.param_read.payload).until(dut.param_read.valid)
        ctx.set(dut.param_read.ready, 0)
        return word

    async def bench(ctx):
        for memory, bank, address, value in parameter_words(cfg, golden.params):
            await access(ctx, memory, bank, address, write=True, value=value)
        for _ in range(2):
            await send(ctx, dut, x, label=1, train=True)
            await ctx.tick().until(dut.prediction.valid)
            ctx.set(dut.prediction.ready, 1)
            await ctx.tick()
            ctx.set(dut.prediction.ready, 0)
        for memory, bank, address, _ in parameter_words(cfg, golden.params):
            read_back[memory, bank, address] = await access(ctx, memory, bank, address)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(watch)
    sim.run()
    assert not conflicts
    for _ in range(2):
        golden.train_sample(x, 1)
    got = parameters_from_words(cfg, lambda memory, bank, address: read_back[memory, bank, address])
    for name, value in golden.params.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_the_core_refuses_an_unknown_collision_mode():
    with warnings.catch_warnings():  # the refused core, never elaborated, is collected here
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="collisions must be one of checked, undefined, not 'old'"):
            Core(small_config([5, 4, 3], True, 2), collisions="old")
        gc.collect()
