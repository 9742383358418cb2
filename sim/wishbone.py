"""A cocotb Wishbone B4 pipelined master, and a job that trains the core through its Wishbone slave.

:func:`write` and :func:`read` are one bus transfer each (plain async functions on a top whose
ports are ``bus__cyc`` ... as ``eqprop verilog --bus wishbone`` writes them). :func:`run_job`
(:func:`train_through_the_bus` is its cocotb test) loads the parameters word by word, checks
``CONFIG_HASH``, trains or infers each sample (inputs, ``COMMAND``, ``STATUS`` polled until done),
tries a label that is not a class, and reads every parameter word back; the results go to a JSON
file that the caller compares with the golden model. :func:`simulate` builds and runs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from eqprop.config import Config
from eqprop.errors import SimulationError
from eqprop.regmap import REGISTER, register_map

JOB_ENV = "EQPROP_WISHBONE_JOB"
CLOCK_NS = 10
#: Cycles a transfer may wait for its acknowledge (a parameter access waits for a running sample).
ACK_TIMEOUT = 1_000_000


async def _transfer(dut, address: int, value: int | None) -> int:
    """One transfer: ``stb`` held until the slave stops stalling, then wait for ``ack``; the read data."""
    dut.bus__cyc.value, dut.bus__stb.value, dut.bus__adr.value = 1, 1, address
    dut.bus__we.value, dut.bus__sel.value, dut.bus__dat_w.value = int(value is not None), 1, value or 0
    for _ in range(ACK_TIMEOUT):
        await ReadOnly()
        accepted = not int(dut.bus__stall.value)
        await RisingEdge(dut.clk)
        if accepted:
            dut.bus__stb.value = 0
            break
    for _ in range(ACK_TIMEOUT):
        await ReadOnly()
        if int(dut.bus__ack.value):
            data = int(dut.bus__dat_r.value)
            await RisingEdge(dut.clk)
            dut.bus__cyc.value = 0
            return data
        await RisingEdge(dut.clk)
    raise SimulationError(f"no acknowledge for address {address:#x} in {ACK_TIMEOUT} cycles")


async def write(dut, address: int, value: int) -> None:
    """Write the 32-bit ``value`` at word ``address``."""
    await _transfer(dut, address, value & 0xFFFF_FFFF)


async def read(dut, address: int) -> int:
    """The 32-bit word at word ``address``."""
    return await _transfer(dut, address, None)


def _signed(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


async def run_job(dut, job: dict) -> dict:
    cfg = Config.from_dict(job["config"])
    regmap = register_map(cfg)
    status = {f.name: f for f in REGISTER["STATUS"].fields}
    train_bit = next(f for f in REGISTER["COMMAND"].fields if f.name == "train").lsb

    def flag(word: int, name: str) -> bool:
        return bool(word >> status[name].lsb & 1)

    result = {"config_hash": await read(dut, regmap.register("CONFIG_HASH")), "samples": []}
    for memory, bank, address, value in job["words"]:
        await write(dut, regmap.parameter_address(memory, bank, address), value)
    inputs = regmap.window("inputs")
    for x, label, train in zip(job["x"], job["labels"], job["train"]):
        for i, value in enumerate(x):
            await write(dut, inputs + i, value)
        await write(dut, regmap.register("COMMAND"), label | train << train_bit)
        word = await read(dut, regmap.register("STATUS"))
        while flag(word, "busy"):
            word = await read(dut, regmap.register("STATUS"))
        result["samples"].append({
            "done": flag(word, "done"), "error": flag(word, "error"),
            "prediction": await read(dut, regmap.register("PREDICTION")), "cycles": await read(dut, regmap.register("CYCLES")),
        })
    await write(dut, regmap.register("COMMAND"), cfg.network.sizes[-1])  # not a class: refused
    word = await read(dut, regmap.register("STATUS"))
    result["refused"] = {"busy": flag(word, "busy"), "done": flag(word, "done"), "error": flag(word, "error")}
    result["trained"] = await read(dut, regmap.register("SAMPLES"))
    result["words"] = [[m, b, a, _signed(await read(dut, regmap.parameter_address(m, b, a)))] for m, b, a, _ in job["words"]]
    return result


@cocotb.test()
async def train_through_the_bus(dut):
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.bus__cyc.value = dut.bus__stb.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    Path(job["result"]).write_text(json.dumps(await run_job(dut, job)))


def simulate(verilog_text: str, job: dict, build_dir: Path, top: str) -> dict:
    """Build ``verilog_text`` (the slave's Verilog, top ``top``) with Icarus and run the job; its result."""
    from cocotb_tools.runner import get_runner

    from .runner import prepare_simulator

    prepare_simulator("icarus")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{top}.v").write_text(verilog_text)
    job = job | {"result": str(build_dir / "result.json")}
    (build_dir / "job.json").write_text(json.dumps(job))
    runner = get_runner("icarus")
    # -g2005: Yosys's Verilog settles its `always @*` blocks on Verilog-2005 time-zero events (eqprop.sim.runner)
    runner.build(sources=[build_dir / f"{top}.v"], hdl_toplevel=top, build_dir=build_dir, build_args=["-g2005"],
                 timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    try:
        runner.test(test_module="eqprop.sim.wishbone", hdl_toplevel=top, build_dir=build_dir, test_dir=build_dir,
                    extra_env={JOB_ENV: str(build_dir / "job.json")}, timescale=("1ns", "1ps"), log_file=build_dir / "test.log")
    except SystemExit:  # the runner exits when the test fails; the missing result says so
        pass
    result = build_dir / "result.json"
    if not result.exists():
        raise SimulationError(f"the Wishbone simulation ended without a result; see {build_dir / 'test.log'}")
    return json.loads(result.read_text())
