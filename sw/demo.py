"""``eqprop demo``: the path a newcomer sees first.

It trains the float reference model on digits (C-EP, C-VF with homeostasis, and the BP MLP
baseline of the same shape), quantizes the C-EP checkpoint to the chip's 16-bit fixed point,
trains C-EP from scratch in the chip's arithmetic (the golden model, one sample at a time),
writes the core's Verilog with those weights, prints one result table with the cycles per sample
the chip will take, and writes ``report.json``, ``report.md``, the C-EP run, the fixed-point run
and ``verilog/core.v`` (with ``core.json``) into the run folder. Later stages (co-simulation,
bitstream, simulated board) append to the same table.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import presets
from .checkpoint import CHECKPOINT_NAME, checkpoint_bytes, to_json, write_run
from .data import load_dataset
from .hw.verilog import core_verilog
from .quantize import quantize_checkpoint
from .report import markdown_table
from .schedule import cycle_count
from .train import train

DEMO_PRESETS = ("digits-cep", "digits-cvf-homeostasis", "digits-mlp")
CHIP_PRESET = "digits-cep-chip"
QUICK_EPOCHS = 2


def run_demo(out: Path, quick: bool = False, progress: bool = True) -> int:
    rows, runs, results = [], {}, {}

    def trained(stage: str, cfg, description: str):
        if quick:
            cfg = cfg.replace(training={"epochs": QUICK_EPOCHS})
        print(f"training {stage}: {description}", flush=True)
        result = train(cfg, progress=progress)
        final = result.final
        seconds = sum(row["train_seconds"] for row in result.history)
        runs[stage] = {"config": cfg.to_dict(), "final": final, "train_seconds": seconds}
        rows.append([
            stage, cfg.learning.rule, cfg.training.arith, "x".join(map(str, cfg.network.sizes)), final["train_accuracy"],
            final["test_accuracy"], final.get("gradient_cosine_mean"), final.get("jacobian_symmetry"), seconds, final["samples_per_second"],
        ])
        results[stage] = result

    for name in DEMO_PRESETS:
        trained(name, presets.get(name), presets.PRESETS[name][0])

    cep = results["digits-cep"]
    print("quantizing the digits-cep checkpoint to 16-bit fixed point", flush=True)
    arrays = {k: v.detach().cpu().numpy() for k, v in cep.params.items()}
    quantized_cfg, quantized, quantize_report = quantize_checkpoint(cep.config, arrays, load_dataset("digits", cep.config.training.seed))
    runs["digits-cep quantized"] = {"config": quantized_cfg.to_dict(), "final": quantize_report}
    rows.append([
        "digits-cep quantized", "cep", "fixed", "x".join(map(str, quantized_cfg.network.sizes)), quantize_report["fixed_train_accuracy"],
        quantize_report["fixed_test_accuracy"], None, None, None, None,
    ])

    chip = presets.get(CHIP_PRESET).replace(training={"arith": "fixed"})
    trained(f"{CHIP_PRESET} fixed", chip, "C-EP from scratch in the chip's fixed-point arithmetic (the golden model)")
    chip_run = results[f"{CHIP_PRESET} fixed"]
    print("writing the core's Verilog with the fixed-point weights", flush=True)
    start = time.perf_counter()
    verilog = core_verilog(chip_run.config, chip_run.params)
    verilog_report = {"file": "verilog/core.v", "lines": len(verilog.splitlines()), "seconds": time.perf_counter() - start}
    cycles = cycle_count(chip)
    report = {"quick": quick, "runs": runs, "cycles": cycles.to_dict(), "verilog": verilog_report}

    headers = ["stage", "rule", "arith", "sizes", "train acc", "test acc", "cos to BPTT", "J symmetry", "train s", "samples/s"]
    table = markdown_table(headers, rows)
    cycle_line = (
        f"chip at P = {cycles.lanes} MAC lanes: {cycles.total:.0f} cycles per training sample "
        f"({cycles.ratio:.3f}x the lower bound of {cycles.bound:.0f}), {cycles.inference} per inference; "
        f"Verilog: {verilog_report['file']}, {verilog_report['lines']} lines in {verilog_report['seconds']:.1f} s"
    )
    write_run(out, {"report.json": to_json(report), "report.md": f"# eqprop demo\n\n{table}\n\n{cycle_line}\n"})
    write_run(out / "cep", {CHECKPOINT_NAME: checkpoint_bytes(cep.config, cep.params), "metrics.json": to_json({"history": cep.history})})
    write_run(out / "verilog", {"core.v": verilog, "core.json": chip_run.config.to_json() + "\n"})
    write_run(out / "cep-fixed", {CHECKPOINT_NAME: checkpoint_bytes(chip_run.config, chip_run.params), "metrics.json": to_json({"history": chip_run.history})})
    print()
    print(table)
    print(f"\n{cycle_line}")
    print(f"\nreport: {out / 'report.md'}; checkpoints: {out / 'cep'} (float), {out / 'cep-fixed'} (fixed point)")
    return 0
