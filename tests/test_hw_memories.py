"""The parity-split single-port weight store against a plain model, in the Amaranth simulator."""

import numpy as np
from amaranth.hdl import signed
from amaranth.sim import Simulator

from eqprop.config import Config
from eqprop.hw.devices import spram_segments
from eqprop.hw.memories import ParityStore, spram_count
from eqprop.program import Program, pipeline, single_port_conflicts


def test_a_read_modify_write_walk_keeps_every_word_without_conflicts_and_a_same_half_pair_is_flagged():
    depths = {"A": 7, "B": 12}
    store = ParityStore(depths, signed(20), primitive=False)
    rng = np.random.default_rng(0)
    model = {name: [0] * depth for name, depth in depths.items()}
    log = {"reads": [], "after": [], "conflicts": []}

    async def bench(ctx):
        # load every word, then walk each segment as an update pass does: read a, write a - 1
        for name, depth in depths.items():
            port = store.segment_ports(name).write
            for address in range(depth):
                value = int(rng.integers(-2**19, 2**19))
                ctx.set(port.addr, address), ctx.set(port.data, value), ctx.set(port.en, 1)
                model[name][address] = value
                await ctx.tick()
            ctx.set(port.en, 0)
        for name, depth in depths.items():
            ports = store.segment_ports(name)
            previous = None
            for address in range(depth + 1):
                ctx.set(ports.read.en, address < depth)
                ctx.set(ports.read.addr, min(address, depth - 1))
                if previous is not None:  # the word read last cycle, plus one, written back
                    ctx.set(ports.write.addr, address - 1), ctx.set(ports.write.data, previous + 1), ctx.set(ports.write.en, 1)
                log["conflicts"].append(ctx.get(store.conflict))
                await ctx.tick()
                ctx.set(ports.write.en, 0)
                previous = ctx.get(ports.read.data) if address < depth else None
                if previous is not None:
                    log["reads"].append((name, address, previous))
            ctx.set(ports.read.en, 0)
        for name, depth in depths.items():  # every write-back landed
            port = store.segment_ports(name).read
            for address in range(depth):
                ctx.set(port.addr, address), ctx.set(port.en, 1)
                await ctx.tick()
                log["after"].append((name, address, ctx.get(port.data)))
            ctx.set(port.en, 0)
        # a read and a write of the same parity in one cycle is a conflict
        a = store.segment_ports("A")
        ctx.set(a.read.addr, 2), ctx.set(a.read.en, 1), ctx.set(a.write.addr, 4), ctx.set(a.write.en, 1)
        assert ctx.get(store.conflict) == 1

    sim = Simulator(store)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not any(log["conflicts"])
    assert sorted(log["reads"]) == sorted((name, a, v) for name, words in model.items() for a, v in enumerate(words))
    assert sorted(log["after"]) == sorted((name, a, v + 1) for name, words in model.items() for a, v in enumerate(words))


def test_spram_count_rounds_width_and_depth_up_per_parity_half():
    assert spram_count(9472, 24) == 4  # the default digits network's W_0 and W_1 at P = 1
    assert spram_count(9472, 16) == 2
    assert spram_count(2 * 16384 + 2, 16) == 4


def test_the_program_finds_the_passes_whose_walks_would_meet_in_one_parity_half():
    """W_0's and W_1's walks share the store, b_1's beats between them: an even number of them, or
    at least the write latency, keeps a read and a write of one cycle in different halves."""
    up5k = {"fpga": "ice40up5k", "lanes": 2, "defer_input_updates": False}
    latency = pipeline(Config().replace(hardware=up5k)).weight_write_latency
    assert latency % 2 == 1
    for hidden in range(1, 2 * latency + 2):  # b_1 takes ceil(hidden / 2) beats at two lanes
        cfg = Config().replace(network={"sizes": [6, hidden, 3]}, hardware=up5k)
        between = -(-hidden // 2)
        expected = [("update_W0", "update_W1")] if between % 2 and between < latency else []
        assert single_port_conflicts(Program.of(cfg), spram_segments(cfg)) == expected, hidden
        deferred = cfg.replace(hardware={"defer_input_updates": True})  # W_0 leaves the update pass
        assert single_port_conflicts(Program.of(deferred), spram_segments(deferred)) == []
        assert spram_segments(cfg.replace(hardware={"fpga": "generic"})) == {}  # block RAM has two ports: nothing to check
