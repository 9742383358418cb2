"""The core's units alone, each against the piece of the golden model it computes, in the Amaranth simulator."""

import itertools
import math

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from eqprop import network
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.hw.devices import presynaptic_operand
from eqprop.hw.mac import MacLanes
from eqprop.hw.neuron import NeuronUnit
from eqprop.hw.update import Rounding, UpdateLanes
from eqprop.layout import skewed_banks, unskew
from eqprop.config import phase_count
from eqprop.hw.param_port import ParameterPort
from eqprop.hw.sequencer import Sequencer
from eqprop.program import Part, PassKind, Program, mac_latency, neuron_stages, packing, sample_passes
from eqprop.schedule import cycle_count


def golden_for(sizes, lanes, seed=1, **hardware) -> GoldenModel:
    cfg = Config().replace(
        network={"sizes": sizes, "init_gain": 2.0}, learning={"lr": [0.2] * (len(sizes) - 1), "beta": 0.5},
        training={"arith": "fixed"}, hardware={"lanes": lanes, **hardware},
    )
    return GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(seed), torch.float64))


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
def test_mac_lanes_give_the_golden_input_drive_row_by_row(lanes):
    golden = golden_for([13, 6, 3], lanes)
    cfg, fx, arith = golden.arith.cfg, golden.arith.cfg.fixed, golden.arith
    rng = np.random.default_rng(lanes)
    x = rng.integers(0, fx.input.max_int + 1, 13)
    pre_width, pre_frac = presynaptic_operand(cfg)
    dut = MacLanes(lanes, arith.weight_store, fx.weight, pre_width, pre_frac, fx.accumulator)
    banks, per_row = skewed_banks(golden.params["W0"], lanes), math.ceil(13 / lanes)
    drives = []

    async def bench(ctx):
        for r in range(6):
            for k in range(per_row):
                columns = [k * lanes + t for t in range(lanes)]
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, k == 0)
                ctx.set(dut.last, k == per_row - 1)
                ctx.set(dut.rotate, r % lanes)
                ctx.set(dut.mask, sum(1 << t for t, c in enumerate(columns) if c < 13))
                for b in range(lanes):
                    ctx.set(dut.weights[b], int(banks[b][r * per_row + k]))
                for t, c in enumerate(columns):  # idle lanes get junk: the mask must keep it out
                    ctx.set(dut.pres[t], int(x[c]) << (pre_frac - fx.input.n) if c < 13 else int(rng.integers(-999, 999)))
                await ctx.tick()
                if ctx.get(dut.done):
                    drives.append(ctx.get(dut.drive))
        ctx.set(dut.valid, 0)
        for _ in range(mac_latency(lanes)):
            await ctx.tick()
            if ctx.get(dut.done):
                drives.append(ctx.get(dut.drive))

    run(dut, bench)
    assert drives == golden.input_drive(x.reshape(1, -1))[0].tolist()


@pytest.mark.parametrize("negative", [False, True])
def test_the_neuron_unit_steps_the_nudged_output_and_tracks_the_deferred_input_layer(negative):
    golden = golden_for([6, 5, 3], 1)
    arith, fx = golden.arith, golden.arith.cfg.fixed
    rng = np.random.default_rng(int(negative))
    states = [np.zeros((1, 6), dtype=np.int64)] + [rng.integers(0, arith.one + 1, (1, n)) for n in (5, 3)]
    x = rng.integers(0, fx.input.max_int + 1, (1, 6))
    w0x, label, sign = golden.input_drive(x), 2, -1 if negative else 1
    y = np.zeros((1, 3), dtype=np.int64)
    y[0, label] = arith.one
    new = golden.step(states, w0x, sign * arith.beta, y)
    drives = {1: golden._dot(states[2], golden._mac["W1"].T, fx.state.n), 2: golden._dot(states[1], golden._mac["W1"], fx.state.n)}
    pending = rng.integers(-500, 500, 5)
    f = sign * golden._input_factor(new[1][0], states[1][0])
    norm = int((x * x).sum())
    dut = NeuronUnit(arith)
    rows = [(l, i) for l in (1, 2) for i in range(states[l].shape[1])]
    out = []

    async def bench(ctx):
        ctx.set(dut.nudged, 1)
        ctx.set(dut.negative, negative)
        ctx.set(dut.label, label)
        ctx.set(dut.norm, norm)
        for cycle in range(len(rows) + neuron_stages(arith.cfg)):
            if cycle < len(rows):
                l, i = rows[cycle]
                fields = {"valid": 1, "layer": l, "row": i, "drive": int(drives[l][0, i]), "bias": int(golden.params[f"b{l}"][i]),
                          "w0x": int(w0x[0, i]) if l == 1 else 0, "old": int(states[l][0, i]), "pending": int(pending[i]) if l == 1 else 0}
            else:
                fields = {"valid": 0}
            for name, value in fields.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            if ctx.get(dut.state_valid):
                out.append((ctx.get(dut.out_layer), ctx.get(dut.out_row), ctx.get(dut.state), ctx.get(dut.factors.u), ctx.get(dut.factors.v),
                            ctx.get(dut.out_w0x) if ctx.get(dut.w0x_valid) else None, ctx.get(dut.out_pending) if ctx.get(dut.pending_valid) else None))

    run(dut, bench)
    assert [(l, i) for l, i, *_ in out] == rows
    for l, i, state, u, v, tracked, new_pending in out:
        assert state == new[l][0, i]
        assert (u, v) == (golden._row_factor(arith.rates[l - 1], new[l][0, i]), golden._row_factor(arith.rates[l - 1], states[l][0, i]))
        if l == 1:  # F += f, W_0 x += f ||x||^2
            assert new_pending == pending[i] + f[i]
            step = (f[i] * norm + (1 << (fx.update.n + 2 * fx.input.n - fx.accumulator.n - 1))) >> (fx.update.n + 2 * fx.input.n - fx.accumulator.n)
            assert tracked == w0x[0, i] + step
        else:
            assert tracked is None and new_pending is None


@pytest.mark.parametrize("lanes, negative, stages", [(1, False, 4), (3, True, 5), (4, False, 5)])
def test_update_lanes_apply_the_golden_c_ep_increments_to_a_weight_matrix(lanes, negative, stages):
    golden = golden_for([7, 5, 3], lanes)
    arith, fx = golden.arith, golden.arith.cfg.fixed
    rng = np.random.default_rng(lanes)
    old = [np.zeros((1, 7), dtype=np.int64)] + [rng.integers(0, arith.one + 1, (1, n)) for n in (5, 3)]
    new = [old[0]] + [rng.integers(0, arith.one + 1, (1, n)) for n in (5, 3)]
    start = golden.params["W1"].copy()
    sign = -1 if negative else 1
    golden._update(new, old, sign)
    u, v = (golden._row_factor(arith.rates[1], s[2][0]) for s in (new, old))
    rounding = Rounding(fx.update.n + fx.state.n, arith.weight_store)
    dut = UpdateLanes(lanes, arith.weight_store.width, fx.state.width, fx.update.width, [rounding], 0, False, fx.lfsr.width, stages)
    banks, per_row = skewed_banks(start, lanes), math.ceil(5 / lanes)
    written = [list(bank) for bank in banks]
    beats = [(r, k) for r in range(3) for k in range(per_row)]

    async def bench(ctx):
        for cycle in range(len(beats) + stages):
            if cycle < len(beats):
                r, k = beats[cycle]
                columns = [k * lanes + t for t in range(lanes)]
                ctx.set(dut.valid, 1)
                ctx.set(dut.negate, negative)
                ctx.set(dut.rotate, r % lanes)
                ctx.set(dut.mask, sum(1 << t for t, c in enumerate(columns) if c < 5))
                ctx.set(dut.fa, int(u[r]))
                ctx.set(dut.fb, int(v[r]))
                for b in range(lanes):
                    ctx.set(dut.stored[b], int(banks[b][r * per_row + k]))
                for t, c in enumerate(columns):
                    ctx.set(dut.pre_a[t], int(new[1][0, c]) if c < 5 else 0)
                    ctx.set(dut.pre_b[t], int(old[1][0, c]) if c < 5 else 0)
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if cycle >= stages - 1 and cycle - (stages - 1) < len(beats):
                r, k = beats[cycle - (stages - 1)]
                for b in range(lanes):
                    if ctx.get(dut.write[b]):
                        written[b][r * per_row + k] = ctx.get(dut.words[b])

    run(dut, bench)
    np.testing.assert_array_equal(unskew(written, 3, 5), golden.params["W1"])
    assert not np.array_equal(golden.params["W1"], start)


def program_beats(cfg: Config, train: bool, homeostasis: bool) -> list[tuple]:
    """Every beat of a sample by the pass program: (cycle, part, row, segment), cycle 0 the first beat."""
    beats = []
    for slot in sample_passes(cfg, train, homeostasis):
        cycle = slot.start
        for group in slot.pass_.groups:
            for rows in group.parts[0].slot_rows():  # a packed beat shows its first row
                for part in group.parts:
                    for segment in range(part.beats):
                        beats.append((cycle, part.name, rows[0], segment))
                        cycle += 1
    return beats


@pytest.mark.parametrize(
    "sizes, lanes, rule, learn, hardware",
    [
        ([6, 5, 3], 2, "cep", {"nudging": "symmetric"}, {}),
        ([7, 4, 3, 2], 3, "cvf", {"nudging": "random-sign", "homeostasis": "local", "homeostasis_coef": 0.1, "homeostasis_period": 1}, {}),
        ([5, 4, 3], 1, "cep", {"nudging": "one-sided"}, {"defer_input_updates": False}),
        ([6, 11, 3], 8, "cep", {"nudging": "symmetric"}, {}),  # packed: two rows of 3 per beat, a short last block
    ],
    ids=["cep-symmetric-P2", "cvf-random-sign-homeostasis-P3", "cep-literal-P1", "cep-packed-P8"],
)
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
def test_sequencer_walks_the_pass_program_beat_by_beat(sizes, lanes, rule, learn, hardware, train):
    cfg = Config().replace(
        network={"sizes": sizes, "tied": rule == "cep"}, learning={"rule": rule, "T1": 3, "T2": 2, "lr": [0.01] * (len(sizes) - 1), **learn},
        training={"arith": "fixed"}, hardware={"lanes": lanes, **hardware},
    )
    dut, parts = Sequencer(cfg), Program.of(cfg).parts()
    homeostasis = train and cfg.learning.homeostasis == "local"
    seen, signs, cycles, signs_seen = [], [], [], set()

    async def bench(ctx):
        ctx.set(dut.sign_bit, 1)
        assert ctx.get(dut.loading)
        ctx.set(dut.loaded, 1)
        await ctx.tick()
        ctx.set(dut.loaded, 0)
        ctx.set(dut.label.valid, 1)
        ctx.set(dut.label.payload, {"index": 1, "train": int(train)})
        await ctx.tick().until(dut.label.ready)
        ctx.set(dut.label.valid, 0)
        cycle = 0
        while not ctx.get(dut.done):
            if ctx.get(dut.issue):
                beat = ctx.get(dut.beat)
                seen.append((cycle, parts[beat.part].name, beat.row, beat.segment))
                if ctx.get(dut.nudged):
                    signs_seen.add((ctx.get(dut.nudge_phase), ctx.get(dut.negative)))
            if ctx.get(dut.draw):
                signs.append(cycle)
            await ctx.tick()
            cycle += 1
        cycles.extend([cycle, ctx.get(dut.cycles)])
        ctx.set(dut.ack, 1)
        await ctx.tick()
        assert ctx.get(dut.loading)

    run(dut, bench)
    expected = program_beats(cfg, train, homeostasis)
    assert seen == expected
    slots = sample_passes(cfg, train, homeostasis)
    assert cycles == [slots[-1].start + slots[-1].cycles] * 2  # the last write landed included
    count = cycle_count(cfg)
    assert cycles[0] == (count.inference if not train else count.total - count.phases.get("homeostasis", 0) + count.homeostasis_pass)
    nudging, phases = cfg.learning.nudging, phase_count(cfg.learning.nudging)
    assert len(signs) == (phases if train and nudging == "random-sign" else 0)
    # symmetric: +beta then -beta; random sign: the bit drawn (1 here: -beta); one-sided: +beta
    expected_signs = {(p, int(nudging == "random-sign" or (nudging == "symmetric" and p == 1))) for p in range(phases)}
    assert signs_seen == (expected_signs if train else set())


def test_parameter_port_passes_requests_between_samples_and_answers_each_read_once():
    cfg = Config().replace(network={"sizes": [6, 5, 3]}, training={"arith": "fixed"}, hardware={"lanes": 2})
    dut = ParameterPort(cfg)
    log = []

    async def bench(ctx):
        ctx.set(dut.param.valid, 1)
        ctx.set(dut.param.payload, {"memory": 1, "bank": 1, "address": 3, "write": 0})
        ctx.set(dut.param_read.ready, 0)
        assert not ctx.get(dut.param.ready) and not ctx.get(dut.access.valid)  # during a sample: nothing passes
        ctx.set(dut.enable, 1)
        assert ctx.get(dut.access.valid) and ctx.get(dut.access.payload.address) == 3
        await ctx.tick()
        ctx.set(dut.param.payload, {"memory": 0, "bank": 0, "address": 4, "write": 1, "data": -7})
        assert ctx.get(dut.reply_from.memory) == 1 and ctx.get(dut.reply_from.bank) == 1
        ctx.set(dut.word, 1234)  # the memories answer the cycle after the request
        for _ in range(3):  # the reply waits to be taken, and the next request with it
            assert not ctx.get(dut.param.ready)
            await ctx.tick()
            ctx.set(dut.word, 99)
            log.append((ctx.get(dut.param_read.valid), ctx.get(dut.param_read.payload)))
        ctx.set(dut.param_read.ready, 1)
        await ctx.tick()
        ctx.set(dut.param_read.ready, 0)
        assert not ctx.get(dut.param_read.valid)
        assert ctx.get(dut.param.ready) and ctx.get(dut.access.valid) and ctx.get(dut.access.payload.data) == -7

    run(dut, bench)
    assert log == [(1, 1234)] * 3


def test_a_packed_beat_holds_every_row_once_each_in_its_own_lanes_and_banks():
    """Row r + i * length of a beat for row r: its synapse c in bank (r + i * length + c) mod P of
    the skewed layout, which the beat's one rotation (by r) brings to lane i * length + c."""
    for lanes, length, rows in itertools.product((4, 8, 32, 64), (1, 2, 3, 10, 16), (1, 5, 10, 128)):
        packed = packing(PassKind.RELAXATION, 1, 2, length, lanes)
        assert (packed > 1) == (2 * length <= lanes)
        part = Part(PassKind.RELAXATION, "relax_l1_bwd", 1, "W1", True, 2, length, rows, 1, packed=packed)
        slot_rows = part.slot_rows()
        assert sorted(slot_rows[slot_rows >= 0].tolist()) == list(range(rows))
        assert part.slots == len(slot_rows) >= math.ceil(rows / packed)
        if packed == 1:
            continue
        for beat in slot_rows:
            lanes_of = [((row + c - beat[0]) % lanes) for row in beat[beat >= 0] for c in range(length)]
            assert lanes_of == list(range(len(lanes_of)))  # lane i * length + c, every bank once
