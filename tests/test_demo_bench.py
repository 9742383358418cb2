import json

from eqprop import presets
from eqprop.checkpoint import load_checkpoint
from eqprop.cli import main
from eqprop.schedule import cycle_count


def test_demo_quick_writes_a_report_whose_numbers_come_from_the_runs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    runs = report["runs"]
    assert set(runs) == {"digits-cep", "digits-cvf-homeostasis", "digits-mlp", "digits-cep quantized", "digits-cep-chip fixed"}
    for name, run in runs.items():
        if "test_accuracy" in run["final"]:
            assert 0 <= run["final"]["test_accuracy"] <= 1
            assert name in printed and f"{run['final']['test_accuracy']:.4g}" in printed
    assert f"{runs['digits-cep quantized']['final']['fixed_test_accuracy']:.4g}" in printed
    for stage, folder in (("digits-cep", "cep"), ("digits-cep-chip fixed", "cep-fixed")):
        metrics = json.loads((out / folder / "metrics.json").read_text())
        assert metrics["history"][-1]["test_accuracy"] == runs[stage]["final"]["test_accuracy"]
    cfg, arrays = load_checkpoint(out / "cep-fixed")
    assert cfg.training.arith == "fixed" and arrays["W0"].dtype.kind == "i"
    assert f"{report['cycles']['total']:.0f} cycles per training sample" in printed
    verilog = (out / "verilog" / "core.v").read_text()
    assert "module eqprop_core" in verilog and len(verilog.splitlines()) == report["verilog"]["lines"]
    assert f"{report['verilog']['lines']} lines" in printed


def test_bench_quick_writes_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--seeds", "1", "--only", "accuracy,cycles,throughput", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "bench.json").read_text())
    assert set(results) == {"accuracy", "cycles", "throughput"}
    assert all(0 <= v["test_accuracy"][0] <= 1 for v in results["accuracy"].values())
    assert results["throughput"]["cpu threads 1 batch 64"] > 0 and results["throughput"]["cpu threads 1 batch 1"] > 0
    assert results["throughput"]["golden batch 1"] > 0
    assert results["cycles"]["digits-cep"][0] == cycle_count(presets.get("digits-cep"), 1).to_dict()
    markdown = (out / "bench.md").read_text()
    assert "digits-cep" in markdown and f"{cycle_count(presets.get('digits-cep'), 16).total:.0f}" in markdown
    assert (out / "cycles.png").read_bytes().startswith(b"\x89PNG")


def test_bench_refuses_unknown_sections(tmp_path, capsys):
    assert main(["bench", "--only", "speed", "--out", str(tmp_path / "b")]) == 2
    assert "unknown bench section" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
