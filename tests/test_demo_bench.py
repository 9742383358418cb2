import json

import numpy as np
import pytest

from eqprop import presets
from eqprop.checkpoint import load_checkpoint
from eqprop.cli import main
from eqprop.demo import STAGES, summarize
from eqprop.golden import Arith, GoldenModel
from eqprop.provenance import versions
from eqprop.schedule import cycle_count
from eqprop.sim.runner import training_samples


@pytest.mark.slow
def test_demo_quick_runs_the_whole_path_and_reports_what_its_stages_wrote(tmp_path, capsys):
    """About 3 minutes: float and fixed training, Verilog, co-simulation, the iCEBreaker bitstream, the simulated board."""
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    rows = {row["stage"].split(" (")[0].split(":")[0]: row for row in report["rows"]}
    assert report["stages"] == list(STAGES) and len(report["rows"]) == 10

    # accuracy figures are the ones the training and board stages wrote
    for preset in ("digits-cep", "digits-cvf-homeostasis", "digits-mlp"):
        metrics = json.loads((out / "float" / preset / "metrics.json").read_text())
        assert rows[f"float {preset}"]["test_accuracy"] == metrics["history"][-1]["test_accuracy"]
        assert f"{100 * metrics['history'][-1]['test_accuracy']:.2f}" in printed
    fixed = json.loads((out / "fixed" / "metrics.json").read_text())["final"]
    assert rows["fixed digits-cep-chip"]["test_accuracy"] == fixed["test_accuracy"] and 0.5 < fixed["test_accuracy"] <= 1
    quantized = json.loads((out / "quantized" / "quantize.json").read_text())
    assert rows["quantized digits-cep"]["test_accuracy"] == quantized["fixed_test_accuracy"]

    # the co-simulation checked the Verilog the demo wrote, in the cycles the formula predicts
    cfg, params = load_checkpoint(out / "fixed")
    cosim = json.loads((out / "cosim" / "cosim.json").read_text())
    assert cosim["passed"] and cosim["samples"] == 2 and rows["co-simulation"]["mismatches"] == 0
    assert rows["co-simulation"]["cycles_per_sample"] == cosim["cycles_checked"] / 2 == cycle_count(cfg).total

    build = json.loads((out / "build" / "report.json").read_text())
    resources = build["resources"]
    assert resources["DSP"]["used"] >= 5 and resources["SPRAM"]["used"] == 4 and resources["LUT"]["used"] <= resources["LUT"]["available"]
    assert build["timing_met"] and (out / "build" / build["bitstream"]).stat().st_size > 100_000
    assert f"LUT {resources['LUT']['used']}/{resources['LUT']['available']}" in printed

    # the simulated board started from the fixed-point weights and learned exactly as the golden model does
    board = json.loads((out / "board" / "board.json").read_text())
    assert board["weights_equal_golden"] and rows["simulated icebreaker, 5 test samples"]["test_accuracy"] == board["accuracy_before"] / 100
    board_cfg, read_back = load_checkpoint(out / "board")  # the board's configuration (its FPGA, lanes, input updates)
    golden = GoldenModel(Arith.from_config(board_cfg), params)
    for x, label in zip(*training_samples(board_cfg, 3)):
        golden.train_sample(x, int(label))
    for name, value in golden.params.items():
        np.testing.assert_array_equal(read_back[name], value)
    assert (out / "learning_curves.png").read_bytes().startswith(b"\x89PNG") and (out / "resources.png").is_file()
    documents = ["report.json", *(f"float/{preset}/metrics.json" for preset in ("digits-cep", "digits-cvf-homeostasis", "digits-mlp")),
                 "fixed/metrics.json", "quantized/quantize.json", "verilog/verilog.json", "cosim/cosim.json", "build/report.json", "board/board.json"]
    for name in documents:  # every JSON document the demo wrote says what made it
        assert json.loads((out / name).read_text())["provenance"] == versions(), name

    # a stage's file, changed, changes the summary: the report reads the files, it does not remember the runs
    cosim_file = out / "cosim" / "cosim.json"
    cosim_file.write_text(json.dumps(cosim | {"passed": False}))
    assert summarize(out, ["verilog", "cosim"])[1]["mismatches"] == 1


def test_demo_refuses_unknown_stages_and_boards_before_anything_runs(tmp_path, capsys):
    for args, message in ((["--skip", "fpga"], "unknown demo stage(s) fpga"), (["--skip", "fixed"], "the verilog stage needs the fixed stage"),
                          (["--board", "nosuch"], "unknown board 'nosuch'")):
        assert main(["demo", "--out", str(tmp_path / "d"), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
    (tmp_path / "file").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and (tmp_path / "file").read_text() == "mine"


@pytest.mark.slow
def test_bench_quick_writes_markdown_json_and_plots_from_its_own_runs(tmp_path, capsys):
    """A few minutes: short training runs on digits and MNIST-1D (one and two hidden layers), the RTL co-simulated on both."""
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--seeds", "1", "--only", "accuracy,cycles,throughput", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "bench.json").read_text())
    assert set(results) == {"accuracy", "cycles", "throughput", "bars", "provenance"}
    assert results["provenance"] == versions()
    markdown = (out / "bench.md").read_text()
    # the SPEC's bars this run measured, each said met or not, in the summary too
    bars = {bar["bar"].split(":")[0]: bar for bar in results["bars"]}
    assert set(bars) == {"C-EP on digits", "C-VF + homeostasis on digits", "BP MLP on digits", "RTL training bit-exact with the golden model",
                         "cycles/sample within 1.25x the lower bound for every P up to 64",
                         "BP MLP on mnist1d within 5 points of the authors' 68% MLP", "C-EP on mnist1d within 5 points of the BP MLP",
                         "C-EP with factored updates >= 5x the literal form (784-512-10, batch 20, 1 thread)",
                         "plain EP at most 1.5x as fast as factored C-EP"}
    forms = results["throughput"]["continual"]
    assert bars["plain EP at most 1.5x as fast as factored C-EP"]["met"] == (forms["ep_over_factored"] <= 1.5)
    assert forms["factored_over_literal"] == forms["cpu C-EP, factored updates"] / forms["cpu C-EP, literal per-step updates"]
    cep = results["accuracy"]["digits"]["C-EP"]["test_accuracy"][0]
    assert bars["C-EP on digits"]["met"] == (cep >= 0.97) and bars["C-EP on digits"]["measured"] == f"{100 * cep:.2f}%"
    rtl_mismatches = [m for d in ("digits", "mnist1d") for m in results["accuracy"][d]["C-EP RTL (co-simulated)"]["mismatches"]]
    assert bars["RTL training bit-exact with the golden model"]["met"] == (rtl_mismatches == [])
    summary = markdown.split("## accuracy")[0]
    assert "| bar (SPEC section 8" in summary and f"{sum(b['met'] for b in bars.values())} of 9 bars met. Indicative only: 1 seed(s)" in summary
    for dataset in ("digits", "mnist1d"):
        methods = results["accuracy"][dataset]
        # digits-cep-chip is the chip's own preset: its float twin is trained beside the fixed point
        twin = {"C-EP float twin of the fixed point"} if dataset == "digits" else set()
        rules = {"BP MLP", "EP", "C-EP", "C-VF", "C-VF + homeostasis"}
        # MNIST-1D has two-hidden-layer presets too: each rule on them is a row of its own
        deeper = {f"{rule} (2 hidden layers)" for rule in rules} if dataset == "mnist1d" else set()
        assert set(methods) == rules | {"C-EP fixed point (golden)", "C-EP RTL (co-simulated)"} | twin | deeper
        if deeper:
            assert len(methods["C-EP (2 hidden layers)"]["config"]["network"]["sizes"]) == 4
        assert all(0 <= m["test_accuracy"][0] <= 1 for m in methods.values())
        rtl = methods["C-EP RTL (co-simulated)"]
        assert rtl["mismatches"] == [] and rtl["writes_checked"] > 0
        assert f"{100 * rtl['test_accuracy'][0]:.2f} ± 0.00" in markdown.split("## accuracy")[0]  # the summary table
        assert (out / f"learning_curves_{dataset}.png").read_bytes().startswith(b"\x89PNG")
    assert results["throughput"]["cpu threads 1 batch 64"] > 0 and results["throughput"]["cpu threads 1 batch 1"] > 0
    assert results["throughput"]["golden batch 1"] > 0
    ice = results["throughput"]["board icebreaker"]
    assert ice["board_samples_per_s"] < min(ice["compute_samples_per_s"], ice["link_bound_samples_per_s"])
    assert results["cycles"]["digits-cep"][0] == cycle_count(presets.get("digits-cep"), 1).to_dict()
    assert f"{cycle_count(presets.get('digits-cep'), 16).total:.0f}" in markdown
    assert (out / "cycles.png").read_bytes().startswith(b"\x89PNG")


def test_bench_refuses_unknown_sections_and_bad_counts(tmp_path, capsys):
    for args, message in ((["--only", "speed"], "unknown bench section(s) speed"), (["--jobs", "0"], "--jobs: expected an integer of at least 1"),
                          (["--seeds", "0"], "--seeds: expected an integer of at least 1"), (["--datasets", "cifar"], "unknown bench dataset(s) cifar"),
                          (["--methods", "C-EP,SGD"], "unknown bench method(s) SGD"), (["--epochs", "0"], "--epochs must be at least 1"),
                          (["--datasets", "digits,mnist"], "eqprop data get mnist")):
        try:
            code = main(["bench", *args, "--out", str(tmp_path / "b")])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        assert code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_says_which_spec_bars_its_sections_met():
    from eqprop.bench import bars_table, spec_bars

    def methods(cep, cvf_h, mlp):
        return {"C-EP": {"test_accuracy": cep}, "C-VF + homeostasis": {"test_accuracy": cvf_h}, "C-VF": {"test_accuracy": [0.9]},
                "BP MLP": {"test_accuracy": mlp}, "C-EP RTL (co-simulated)": {"mismatches": [], "writes_checked": 100}}

    results = {"accuracy": {"digits": methods([0.975, 0.97, 0.972], [0.95, 0.965, 0.96], [0.97]), "mnist1d": methods([0.5], [0.5], [0.5])},
               "fixed": {"fixed_gap_points": 1.6}, "cycles": {"digits-cep": [{"lanes": 1, "ratio": 1.02}, {"lanes": 64, "ratio": 1.2}]}}
    met = {" ".join(bar["bar"].split(" ")[:4]): bar["met"] for bar in spec_bars(results)}
    assert met == {"C-EP on digits: test": True, "C-VF + homeostasis on": False, "BP MLP on digits:": True, "BP MLP on mnist1d": False,
                   "C-EP on mnist1d within": True, "RTL training bit-exact with": True, "fixed-point C-EP from scratch": False,
                   "cycles/sample within 1.25x the": True}
    table = bars_table(spec_bars(results), seeds=3, quick=False)
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:-2])}
    assert rows["C-VF + homeostasis on digits: test accuracy >= 96% (mean over seeds)"] == ["95.83% (C-VF without it: 90.00%)", "NO"]
    assert rows["cycles/sample within 1.25x the lower bound for every P up to 64"] == ["worst 1.200x (digits-cep, P = 64)", "yes"]
    assert "float minus fixed +1.60 points" in table
    assert table.endswith("5 of 8 bars met.") and spec_bars({"throughput": {}}) == [] and bars_table([], 3, False) == ""


def test_the_board_bars_read_each_boards_build_simulation_and_rate():
    from eqprop.bench import spec_bars

    def board(mhz, timing_met, lanes, used, available, rate, over_cpu, equal):
        return {"build": {"resources": {"LUT": {"used": used, "available": available}}, "lanes": lanes, "soc_clock_mhz": mhz, "timing_met": timing_met},
                "fmax_mhz": mhz + 1, "compute_samples_per_s": rate, "compute_over_cpu": over_cpu,
                "simulated_board": {"samples": 200, "weights_equal_golden": equal}}

    results = {"boards": {"ulx3s-85f": board(50.0, True, 8, 19_000, 83_640, 1_900.0, 3.7, True),
                          "icebreaker": board(24.0, False, 1, 4_400, 5_280, 300.0, 0.6, False), "cpu_float_batch1_samples_per_s": 500.0},
               "toolchain": {"verilator": {"passed": True}, "epoch_p1": {"samples": 1437, "passed": True}, "epoch_p8": {"samples": 1437, "passed": False}}}
    met = {bar["bar"]: (bar["measured"], bar["met"]) for bar in spec_bars(results)}
    assert met["ulx3s-85f: timing met with the SoC at >= 50 MHz"] == ("50 MHz (Fmax 51.0)", True)
    assert met["ulx3s-85f: P >= 16"] == ("P = 8", False)
    assert met["ulx3s-85f: compute-bound training samples/s >= 10x the float CPU's (batch 1, one thread)"] == ("3.70x", False)
    assert met["icebreaker: timing met with the SoC at >= 24 MHz"][1] is False  # 24 MHz asked, but nextpnr missed it
    assert met["icebreaker: >= 250 compute-bound training samples/s"] == ("300.0", True)
    assert met["icebreaker: at most 85% of the logic cells"] == ("4,400 of 5,280", True)
    assert met["icebreaker: the simulated board trains 200 samples equal to the golden model"] == ("weights DIFFER", False)
    assert met["a whole digits epoch co-simulated bit-exact at P = 1, 8"] == ("P = 1: 1,437 samples, passed; P = 8: 1,437 samples, MISMATCH", False)


def test_the_summary_reads_each_board_and_not_the_cpu_rate_beside_them():
    from eqprop.bench import summary_table

    board = {"build": {"resources": {"LUT": {"used": 10, "available": 20}}, "lanes": 1, "soc_clock_mhz": 12.0, "build_s": 60.0},
             "fmax_mhz": 18.7, "board_samples_per_s": 23.8, "compute_samples_per_s": 24.3, "link_bound_samples_per_s": 1136}
    table = summary_table({"boards": {"icebreaker": board, "cpu_float_batch1_samples_per_s": 465.0}})
    assert "icebreaker, P = 1: resources; SoC Fmax (runs at)" in table and "LUT 10/20; 18.7 MHz (12 MHz)" in table
    assert "cpu_float" not in table
