"""eqprop estimate: the device check's counts, the cycle formula, a LUT line fitted to Yosys runs; bad input refused."""

import json

import pytest

from eqprop.bench import BENCH_DATASETS, DEFAULT_DATASETS, SECTIONS
from eqprop.boards.registry import BOARDS, board_for
from eqprop.errors import ConfigError
from eqprop.hw.devices import DEVICES, multipliers
from eqprop.hw.estimate import MEASURED_LUTS, against_synthesis, estimate, lane_cost
from eqprop.hw.synth import synthesize
from eqprop.schedule import cycle_count

from test_cli import run


def test_estimates_follow_the_cycle_formula_and_the_device_check_at_each_lane_count(capsys):
    code, stdout, _ = run(capsys, "estimate", "--fpga", "ecp5-85f", "--lanes", "1,2,4,8,16,64", "--json")
    assert code == 0
    rows = json.loads(stdout)
    cfg = board_for("ecp5-85f").default_config()
    assert [row["lanes"] for row in rows] == [1, 2, 4, 8, 16, 64]
    for row in rows:
        at = cfg.replace(hardware={"lanes": row["lanes"]})
        counted = cycle_count(at)
        assert row["cycles_per_sample"] == counted.total and row["inference_cycles"] == counted.inference
        assert row["samples_per_s"] == pytest.approx(board_for("ecp5-85f").clock_hz / counted.total)
        assert row["dsp"] == multipliers(at) and row["dsp_available"] == DEVICES["ecp5-85f"].dsps
    assert [row["lut"] for row in rows] == sorted(row["lut"] for row in rows)  # more lanes, more logic
    assert rows[-1]["refused"] == f"64 lanes need {multipliers(cfg.replace(hardware={'lanes': 64}))} DSP blocks; ecp5-85f has 156 DSPs: use fewer lanes"
    assert all(row["refused"] is None for row in rows[:-1])
    code, stdout, _ = run(capsys, "estimate", "--fpga", "ice40up5k", "--lanes", "1,2")
    assert code == 0 and "| 1 | 5/8 " in stdout and "no: the weights W0, W1 need 8 SPRAMs" in stdout


def test_the_lut_line_is_within_15_percent_of_the_runs_it_was_fitted_to():
    for fpga, runs in MEASURED_LUTS.items():
        cfg = board_for(fpga).default_config()
        for est in estimate(cfg, list(runs)):
            assert abs(est.lut - runs[est.lanes]) <= 0.15 * runs[est.lanes], (fpga, est.lanes)


def test_the_bench_compares_the_estimate_with_synthesis_where_the_device_holds_the_network():
    synthesized = []

    def fake_synthesize(cfg):
        synthesized.append(cfg.hardware.lanes)
        return {"counts": {"LUT": 1000 * cfg.hardware.lanes, "FF": 700, "DSP": 3, "block RAM": 24, "SPRAM": 4}}

    rows = against_synthesis(BOARDS["icebreaker"].default_config(), fake_synthesize)
    assert synthesized == [1]  # P = 2 and 4 need more SPRAMs than the UP5K has
    (row,) = rows
    assert row["lut_error_pct"] == pytest.approx(100 * (row["lut_estimate"] - 1000) / 1000) and row["dsp_synthesized"] == 3
    assert (row["ram_blocks_synthesized"], row["lut_ram_synthesized"], row["spram_synthesized"]) == (24, 0, 4)
    assert lane_cost(rows) is None  # one lane count: no line


def test_a_lanes_cost_is_the_line_through_the_synthesized_counts():
    rows = [{"lanes": p, "lut_synthesized": 1500 + 1200 * p + noise, "ff_synthesized": 1600 + 1100 * p} for p, noise in ((1, 10), (2, -20), (4, 10))]
    cost = lane_cost(rows)
    assert cost["ff_per_lane"] == pytest.approx(1100) and cost["ff_fixed"] == pytest.approx(1600)
    assert 1190 < cost["lut_per_lane"] < 1210 and 1480 < cost["lut_fixed"] < 1520


def test_ram_blocks_and_lut_ram_are_what_yosys_maps():
    """About 20 s: a small network on the ECP5 whose memories take every mapping (LUT RAM, the wide
    simple-dual-port block, the true-dual-port configurations), synthesized by Yosys."""
    cfg = board_for("ecp5-85f").default_config().replace(network={"sizes": [64, 32, 10]}, hardware={"lanes": 1})
    (est,) = estimate(cfg, [1])
    counts = synthesize(cfg)["counts"]
    assert (est.ram_blocks, est.lut_ram, est.dsp) == (counts["block RAM"], counts["LUT RAM"], counts["DSP"])
    assert est.ram_blocks > 0 and est.lut_ram > 0


def test_bad_input_is_one_error_line(capsys):
    for args, message in ((["--fpga", "nosuch"], "no board has the FPGA 'nosuch'"), (["--fpga", "ecp5-85f", "--lanes", "0"], "lane counts must be positive"),
                          (["--fpga", "ecp5-85f", "--lanes", "two"], "expected comma-separated integers")):
        code, _, err = run(capsys, "estimate", *args)
        assert code == 2 and message in err and err.startswith("eqprop") and err.count("\n") == 1
    with pytest.raises(ConfigError, match="an estimate needs an FPGA"):
        estimate(board_for("ecp5-85f").default_config().replace(hardware={"fpga": "generic"}), [1])


def test_the_bench_help_names_its_sections_and_datasets(capsys):
    code, stdout, _ = run(capsys, "bench", "--help")
    text = " ".join(stdout.split())
    assert code == 0 and ", ".join(SECTIONS) in text
    assert ", ".join(BENCH_DATASETS) in text and f"default: {','.join(DEFAULT_DATASETS)};" in text
