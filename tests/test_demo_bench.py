import json

from eqprop.cli import main


def test_demo_quick_writes_a_report_whose_numbers_come_from_the_runs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == {"digits-cep", "digits-cvf-homeostasis", "digits-mlp"}
    for name, run in report["runs"].items():
        assert 0 <= run["final"]["test_accuracy"] <= 1
        assert name in printed and f"{run['final']['test_accuracy']:.4g}" in printed
    metrics = json.loads((out / "cep" / "metrics.json").read_text())
    assert metrics["history"][-1]["test_accuracy"] == report["runs"]["digits-cep"]["final"]["test_accuracy"]
    assert (out / "cep" / "checkpoint.npz").is_file()


def test_bench_quick_writes_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--seeds", "1", "--only", "accuracy,throughput", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "bench.json").read_text())
    assert set(results) == {"accuracy", "throughput"}
    assert all(0 <= v["test_accuracy"][0] <= 1 for v in results["accuracy"].values())
    assert results["throughput"]["cpu threads 1 batch 64"] > 0 and results["throughput"]["cpu threads 1 batch 1"] > 0
    assert "digits-cep" in (out / "bench.md").read_text()


def test_bench_refuses_unknown_sections(tmp_path, capsys):
    assert main(["bench", "--only", "speed", "--out", str(tmp_path / "b")]) == 2
    assert "unknown bench section" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
