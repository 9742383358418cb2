"""Co-simulation: the core's Verilog under cocotb (Verilator and Icarus) against the golden model."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from eqprop import network
from eqprop.config import Config
from eqprop.errors import SimulationError
from eqprop.golden import Arith, GoldenModel
from eqprop.hw.verilog import core_verilog
from eqprop.schedule import sample_trace
from eqprop.sim.random_configs import random_job
from eqprop.sim.runner import check_design, cosim, prepare_simulator
from eqprop.sim.trace import HASH_MULTIPLIER, expected_hashes, port_streams, stream_hash

from test_cli import run


def small_job(lanes=2, tied=True, samples=2, **learning):
    cfg = Config().replace(
        network={"sizes": [6, 5, 3], "tied": tied, "init_gain": 2.0},
        learning={"rule": "cep" if tied else "cvf", "lr": [0.1, 0.1], "T1": 4, "T2": 2, **learning},
        training={"arith": "fixed"},
        hardware={"lanes": lanes},
    )
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(3), torch.float64))
    rng = np.random.default_rng(0)
    return cfg, golden.params, rng.integers(0, 256, (samples, 6)), rng.integers(0, 3, samples)


def test_stream_hash_is_the_fold_the_harness_computes():
    words = np.random.default_rng(1).integers(0, 2**40, (50, 3)).astype(np.uint64)
    h = 0
    for value in words.reshape(-1).tolist():
        h = (h * HASH_MULTIPLIER + value) % 2**64
    assert stream_hash(words) == h
    changed = words.copy()
    changed[17, 2] ^= 1
    assert stream_hash(changed) != h


def test_port_streams_hold_every_write_once_in_cycle_order():
    cfg, params, x, labels = small_job(lanes=2, tied=False, nudging="symmetric")
    golden = GoldenModel(Arith.from_config(cfg), params)
    trace = sample_trace(golden, x[0], int(labels[0]), train=True)
    streams = port_streams(cfg, trace)
    assert sum(len(words) for words in streams.values()) == len(trace)
    for words in streams.values():
        assert np.all(np.diff(words[:, 0].astype(np.int64)) > 0)  # a port writes once per cycle at most
    assert len(expected_hashes(cfg, trace)) == len(streams)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_a_small_core_passes_under_both_simulators(sim, tmp_path):
    cfg, params, x, labels = small_job(lanes=2, nudging="symmetric")
    result = cosim(cfg, params, x, labels, sim=sim, build_root=tmp_path)
    assert result.passed, result.summary()
    assert result.samples == 2 and result.writes_checked > 100 and result.sim_cycles > result.cycles_checked
    assert result.summary().startswith(f"PASS: 2 samples passed, {result.cycles_checked} cycles")


def test_an_ice40_design_with_weights_in_spram_passes_with_yosys_model_of_it(tmp_path):
    cfg, params, x, labels = small_job(lanes=1, nudging="symmetric")
    cfg = cfg.replace(hardware={"fpga": "ice40up5k"})
    result = cosim(cfg, params, x, labels, sim="icarus", build_root=tmp_path)
    assert result.passed, result.summary()
    assert any(path.name == "SB_SPRAM256KA.v" for path in tmp_path.glob("icarus-*/*.v"))


def test_a_design_built_with_another_rounding_is_caught_at_its_first_divergent_write(tmp_path):
    """The bench can fail: the Verilog rounds states down where the configuration says nearest."""
    cfg, params, x, labels = small_job(lanes=1)
    wrong = cfg.replace(fixed={"state": {**cfg.fixed.state.to_dict(), "rounding": "down"}})
    verilog = tmp_path / "core.v"
    verilog.write_text(core_verilog(wrong))
    result = cosim(cfg, params, x, labels, sim="verilator", verilog=verilog, build_root=tmp_path / "build", waves="fst")
    assert not result.passed
    report = result.mismatch["report"]
    assert result.mismatch["sample"] == 0 and result.samples == 0
    match = re.fullmatch(r"cycle \d+ \(free phase, step \d of 4\): state of layer (\d) neuron \d \(buffer (\d)\) expected -?\d+, got -?\d+", report)
    assert match, report
    assert result.waves.endswith(".fst") and Path(result.waves).stat().st_size > 0  # FST when asked for, the rerun too
    # the GTKWave save file beside the waveform opens on the failing state memory's banks
    layer, buffer = match.groups()
    assert result.mismatch["ports"] and all(port.startswith(f"s{layer}_buf{buffer}_") for port in result.mismatch["ports"])
    assert Path(result.gtkw) == Path(result.waves).with_suffix(".gtkw") and f"gtkwave {result.gtkw}" in result.summary()
    assert f"eqprop_cosim.trace__{result.mismatch['ports'][0]}__data[15:0]" in gtkw_traces(Path(result.gtkw))
    assert Path(result.results_xml).name == "results.xml" and "failure" in Path(result.results_xml).read_text()


def gtkw_traces(path: Path) -> set[str]:
    """The signals a GTKWave save file shows, and the dump file it names."""
    lines = path.read_text().splitlines()
    assert any(line.startswith("[dumpfile]") for line in lines)
    return {line for line in lines if line and line[0] not in "[@*-"}


def vcd_signals(path: Path) -> set[str]:
    """Every signal of a VCD file as GTKWave names it: scopes joined by dots, vectors with their range."""
    scope, names = [], set()
    with path.open() as file:
        for line in file:
            words = line.split()
            if words[:1] == ["$scope"]:
                scope.append(words[2])
            elif words[:1] == ["$upscope"]:
                scope.pop()
            elif words[:1] == ["$var"]:
                names.add(".".join([*scope, words[4]]) + (words[5] if words[5] != "$end" else ""))
            elif words[:1] == ["$enddefinitions"]:
                return names
    return names


def test_a_design_that_learns_at_another_rate_is_caught_in_its_first_update(tmp_path):
    cfg, params, x, labels = small_job(lanes=3, tied=False, nudging="one-sided")
    wrong = cfg.replace(learning={"lr": [0.1, 0.05]})
    verilog = tmp_path / "core.v"
    verilog.write_text(core_verilog(wrong))
    result = cosim(cfg, params, x, labels, sim="icarus", verilog=verilog, build_root=tmp_path / "build")
    assert not result.passed
    assert "weight update" in result.mismatch["report"] or "relaxation" in result.mismatch["report"]
    # the rerun's VCD, and a GTKWave save file naming the failing memory's signals as the VCD names them
    traces = gtkw_traces(Path(result.gtkw))
    assert "eqprop_cosim.cycles[31:0]" in traces and any(f"__{result.mismatch['ports'][0]}__" in trace for trace in traces)
    assert traces <= vcd_signals(Path(result.waves))


def test_random_configurations_pass(tmp_path):
    for seed in (0, 1, 2):
        cfg, params, x, labels = random_job(seed, samples=2)
        result = cosim(cfg, params, x, labels, sim="verilator", build_root=tmp_path)
        assert result.passed, (seed, result.summary())


def test_verilog_that_does_not_match_its_configuration_is_refused(tmp_path):
    cfg, *_ = small_job(lanes=2)
    text = core_verilog(cfg.replace(hardware={"lanes": 1}))
    with pytest.raises(SimulationError, match="does not match its configuration: port"):
        check_design(cfg, text, "core.v")
    with pytest.raises(SimulationError, match="has no module eqprop_core"):
        check_design(cfg, "module other(); endmodule\n", "core.v")


def test_simulator_problems_are_one_line_errors(monkeypatch):
    with pytest.raises(SimulationError, match="unknown simulator 'modelsim'"):
        prepare_simulator("modelsim")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SimulationError, match="apt-get install iverilog"):
        prepare_simulator("icarus")


def test_cosim_command_checks_a_verilog_file_against_the_json_beside_it(tmp_path, capsys):
    out = tmp_path / "core.v"
    code, _, err = run(capsys, "verilog", "--sizes", "6,4,3", "--T1", "3", "--T2", "2", "--lanes", "2", "--out", str(out))
    assert code == 0, err
    cfg = Config.load(out.with_suffix(".json"))
    assert cfg.network.sizes == [6, 4, 3]
    code, stdout, err = run(capsys, "cosim", "--verilog", str(out), "--sim", "icarus", "--samples", "1", "--json", "--build-dir", str(tmp_path / "b"))
    # digits has 64 inputs: the network written for 6 cannot take its samples
    assert code == 2 and "do not fit digits" in err
    code, stdout, err = run(capsys, "cosim", "--verilog", str(tmp_path / "missing.v"), "--sim", "icarus")
    assert code == 2 and err.count("\n") == 1 and "no Verilog file" in err
    code, stdout, err = run(capsys, "cosim", "--sim", "nosuchsim", "--samples", "1", "--hidden", "8", "--T1", "3", "--T2", "1")
    assert code == 2 and "unknown simulator 'nosuchsim'" in err


def test_cosim_command_on_digits(tmp_path, capsys):
    code, stdout, err = run(capsys, "cosim", "--hidden", "8", "--T1", "3", "--T2", "1", "--lanes", "4", "--samples", "3",
                            "--sim", "verilator", "--json", "--build-dir", str(tmp_path))
    assert code == 0, err
    result = json.loads(stdout)
    assert result["passed"] and result["samples"] == 3 and result["mismatch"] is None and result["simulator"] == "verilator"
