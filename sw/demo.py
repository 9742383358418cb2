"""``eqprop demo``: the path a newcomer sees first.

For now it trains the float reference model on digits (C-EP, C-VF with homeostasis, and the BP
MLP baseline of the same shape), prints one result table and writes ``report.json``,
``report.md`` and the C-EP run (checkpoint and metrics) into the run folder. Later stages
(quantization, Verilog, co-simulation, bitstream, simulated board) append to the same table.
"""

from __future__ import annotations

from pathlib import Path

from . import presets
from .checkpoint import CHECKPOINT_NAME, checkpoint_bytes, to_json, write_run
from .report import markdown_table
from .train import train

DEMO_PRESETS = ("digits-cep", "digits-cvf-homeostasis", "digits-mlp")
QUICK_EPOCHS = 2


def run_demo(out: Path, quick: bool = False, progress: bool = True) -> int:
    rows, runs, results = [], {}, {}
    for name in DEMO_PRESETS:
        cfg = presets.get(name)
        if quick:
            cfg = cfg.replace(training={"epochs": QUICK_EPOCHS})
        print(f"training {name}: {presets.PRESETS[name][0]}", flush=True)
        result = train(cfg, progress=progress)
        final = result.final
        seconds = sum(row["train_seconds"] for row in result.history)
        runs[name] = {"config": cfg.to_dict(), "final": final, "train_seconds": seconds}
        rows.append([
            name, cfg.learning.rule, "x".join(map(str, cfg.network.sizes)), final["train_accuracy"], final["test_accuracy"],
            final.get("gradient_cosine_mean"), final.get("jacobian_symmetry"), seconds, final["samples_per_second"],
        ])
        results[name] = result
    headers = ["stage", "rule", "sizes", "train acc", "test acc", "cos to BPTT", "J symmetry", "train s", "samples/s"]
    table = markdown_table(headers, rows)
    report = {"quick": quick, "runs": runs}
    write_run(out, {"report.json": to_json(report), "report.md": f"# eqprop demo\n\n{table}\n"})
    cep = results["digits-cep"]
    write_run(out / "cep", {CHECKPOINT_NAME: checkpoint_bytes(cep.config, cep.params), "metrics.json": to_json({"history": cep.history})})
    print()
    print(table)
    print(f"\nreport: {out / 'report.md'}; C-EP checkpoint: {out / 'cep' / CHECKPOINT_NAME}")
    return 0
