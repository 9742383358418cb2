"""The cocotb testbench of a co-simulation (run by :mod:`eqprop.sim.runner`, not imported by hand).

A plain async function on the :class:`eqprop.sim.harness.TraceHashHarness` top. Drivers for the
core's streams and its ``param`` port; per sample it asks the golden model for every write
(:func:`eqprop.schedule.sample_trace`), and checks the harness's per-port hashes, the prediction
and the cycle counter. In the sample named ``detail_sample`` it follows the ``writing`` vector
clock by clock instead and stops at the first divergent write. At the end the weights are read
back through the ``param`` port and compared with the golden model's. The job (configuration,
initial parameters, samples) comes from the files named by ``$EQPROP_COSIM_JOB``; the outcome goes
to the job's result file.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from eqprop.config import Config
from eqprop.golden import Arith, GoldenModel
from eqprop.hw.core import core_signature
from eqprop.layout import param_shapes, parameter_words, parameters_from_words, trace_location, trace_ports
from eqprop.schedule import Write, WriteTrace, cycle_count, sample_trace

from .trace import expected_hashes, first_difference, signed_value

JOB_ENV = "EQPROP_COSIM_JOB"
CLOCK_NS = 10


class Mismatch(Exception):
    """The design departed from the golden model; the message says where, ``ports`` which traced
    memory banks (:class:`eqprop.layout.TracePort` names) wrote differently, if any did."""

    def __init__(self, report: str, ports: list[str] = ()) -> None:
        super().__init__(report)
        self.ports = list(ports)


class Bench:
    def __init__(self, dut, cfg: Config) -> None:
        self.dut, self.cfg = dut, cfg
        self.ports = trace_ports(cfg)
        members = core_signature(cfg).members
        self.param_layout = members["param"].signature.members["payload"].shape
        self.label_layout = members["label"].signature.members["payload"].shape

    async def put(self, stream: str, value: int) -> None:
        """One stream transfer: hold valid and the payload until the core is ready."""
        dut = self.dut
        getattr(dut, f"{stream}__payload").value = value
        getattr(dut, f"{stream}__valid").value = 1
        while True:
            await ReadOnly()
            accepted = int(getattr(dut, f"{stream}__ready").value)
            await RisingEdge(dut.clk)
            if accepted:
                break
        getattr(dut, f"{stream}__valid").value = 0

    async def param(self, memory: int, bank: int, address: int, write: bool = False, value: int = 0) -> int | None:
        fields = {"memory": memory, "bank": bank, "address": address, "write": int(write), "data": value}
        await self.put("param", self.param_layout.const(fields).as_value().value)
        if write:
            return None
        while True:
            await ReadOnly()
            if int(self.dut.param_read__valid.value):
                word = self.dut.param_read__payload.value.to_signed()
                await RisingEdge(self.dut.clk)  # the harness takes the word
                return word
            await RisingEdge(self.dut.clk)

    async def load(self, params: dict[str, np.ndarray]) -> None:
        for memory, bank, address, value in parameter_words(self.cfg, params):
            await self.param(memory, bank, address, write=True, value=value)

    async def read_back(self) -> dict[str, np.ndarray]:
        words = {}
        for memory, bank, address, _ in parameter_words(self.cfg, {k: np.zeros(s) for k, s in param_shapes(self.cfg.network).items()}):
            words[memory, bank, address] = await self.param(memory, bank, address)
        return parameters_from_words(self.cfg, lambda memory, bank, address: words[memory, bank, address])

    async def send(self, x: np.ndarray, label: int) -> None:
        for value in x:
            await self.put("x", int(value))
        await self.put("label", self.label_layout.const({"index": label, "train": 1}).as_value().value)

    async def watch(self, expected: list[Write], limit: int) -> None:
        """Follow the trace clock by clock until the prediction; raise at the first divergent write."""
        dut, by_cycle = self.dut, defaultdict(list)
        for w in expected:
            by_cycle[w.cycle].append(w)
        for _ in range(limit):
            await ReadOnly()
            if int(dut.prediction__valid.value):
                return
            mask, cycle = int(dut.writing.value), int(dut.cycles.value)
            seen = []
            for i, port in enumerate(self.ports):
                if mask >> i & 1:
                    address = int(getattr(dut, f"trace__{port.name}__addr").value)
                    value = signed_value(port, int(getattr(dut, f"trace__{port.name}__data").value))
                    seen.append(Write(cycle, port.memory, port.buffer, trace_location(self.cfg, port, address), value))
            if seen or by_cycle.get(cycle):
                want = by_cycle.pop(cycle, [])
                report = first_difference(self.cfg, want, seen)
                if report:
                    differing = {(w.memory, w.buffer) for w in set(want) ^ set(seen)}
                    raise Mismatch(report, [port.name for port in self.ports if (port.memory, port.buffer) in differing])
            await RisingEdge(dut.clk)
        raise Mismatch(f"no prediction after {limit} cycles")

    def check_hashes(self, expected: WriteTrace) -> None:
        want = expected_hashes(self.cfg, expected)
        differing = [port.name for port in self.ports if int(getattr(self.dut, f"hashes__{port.name}").value) != want[port.name]]
        if differing:
            raise Mismatch(f"the writes to memory bank {differing[0]} differ from the golden model's", differing)


@cocotb.test()
async def cosim(dut):
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    cfg = Config.from_dict(job["config"])
    arrays = np.load(job["arrays"])
    golden = GoldenModel(Arith.from_config(cfg), {name: arrays[name] for name in param_shapes(cfg.network)})
    xs, labels = arrays["x"], arrays["labels"]
    bench = Bench(dut, cfg)
    count = cycle_count(cfg)
    result = {"samples": 0, "cycles_checked": 0, "writes_checked": 0, "mismatch": None, "golden_s": 0.0}
    started = time.perf_counter()

    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start()  # in C: Python wakes only when the bench waits
    sample = None
    try:
        for name in ("x", "label", "param"):
            getattr(dut, f"{name}__valid").value = 0
        await RisingEdge(dut.clk)
        await bench.load(golden.params)
        for sample, (x, label) in enumerate(zip(xs, labels)):
            label, golden_started = int(label), time.perf_counter()
            prediction = int(golden.free_phase(x.reshape(1, -1))[-1][0].argmax())
            trace = sample_trace(golden, x, label, train=True)
            result["golden_s"] += time.perf_counter() - golden_started
            due = count.homeostasis_pass if cfg.learning.homeostasis == "local" and golden.samples % cfg.learning.homeostasis_period == 0 else 0
            cycles = int(count.total - count.phases["homeostasis"]) + due
            limit = 2 * cycles + 100
            await bench.send(x, label)
            if sample == job.get("detail_sample"):
                await bench.watch(trace.writes(), limit)
            else:
                try:
                    await with_timeout(RisingEdge(dut.prediction__valid), limit * CLOCK_NS, "ns")
                except SimTimeoutError:
                    raise Mismatch(f"no prediction within {limit} cycles") from None
                await ReadOnly()
            got_prediction, got_cycles = int(dut.prediction__payload.value), int(dut.cycles.value)
            bench.check_hashes(trace)
            if got_cycles != cycles:
                raise Mismatch(f"the cycle counter reads {got_cycles} at the end of the sample, expected {cycles}")
            if got_prediction != prediction:
                raise Mismatch(f"predicted class {got_prediction}, expected {prediction}")
            await RisingEdge(dut.clk)  # the prediction is taken
            result["samples"] += 1
            result["cycles_checked"] += cycles
            result["writes_checked"] += len(trace)
        sample = None
        got = await bench.read_back()
        np.savez(job["weights"], **got)
        for name, value in golden.params.items():
            if not np.array_equal(got[name], value):
                where = tuple(np.argwhere(got[name] != value)[0])
                raise Mismatch(f"read back through the param port, {name}{list(where)} is {got[name][where]}, expected {value[where]}")
    except Mismatch as mismatch:
        result["mismatch"] = {"sample": sample, "report": str(mismatch), "ports": mismatch.ports}
    except ValueError as error:  # an X or Z where a value was due
        result["mismatch"] = {"sample": sample, "report": f"unreadable output ({error})", "ports": []}
    finally:
        result["wall_s"] = time.perf_counter() - started
        result["sim_cycles"] = int(get_sim_time("ns")) // CLOCK_NS
        Path(job["result"]).write_text(json.dumps(result))
    assert result["mismatch"] is None, result["mismatch"]["report"]
