"""``eqprop demo``: the whole path on digits in one command, without a board.

Each stage is a step of a :class:`eqprop.flow.Flow` (one per float preset, one for the chip's
network) and writes its files into the run folder, as the command of the same name does, with
the simulators' builds in ``sim/``; the summary (``report.json``, ``report.md``
and the table printed at the end) is then read back from those files, so every figure in it is
one a stage wrote.

========  ===========================================================================  =======================
stage     what                                                                         files
========  ===========================================================================  =======================
float     the float reference on digits: C-EP, C-VF with homeostasis, the BP MLP       ``float/<preset>/``
quantize  the C-EP checkpoint converted to the chip's fixed point (golden model)       ``quantized/``
fixed     C-EP from scratch in the chip's arithmetic (golden model, batch 1)          ``fixed/``
verilog   the core's Verilog with those weights, and its predicted cycles per sample   ``verilog/``
cosim     training samples on that Verilog under Verilator, every write checked       ``cosim/cosim.json``
build     the board's bitstream: the SoC through Yosys, nextpnr and the packer         ``build/``
board     the simulated board (the SoC's Verilog under cocotb) loads the fixed-point    ``board/``
          weights over the UART link, is tested, trains on streamed samples, is tested
          again and its weights are read back and compared with the golden model's
========  ===========================================================================  =======================
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import presets
from .checkpoint import to_json
from .config import Config
from .errors import ConfigError
from .flow import Flow
from .outputs import OutputFolder, OutputKind, check_tool_path, write_files
from .report import markdown_table

#: The demo's run folder: a folder per stage, the simulators' builds, the report and the figures.
DEMO_RUN = OutputKind("demo run", ("float", "quantized", "fixed", "verilog", "cosim", "build", "board", "sim", "report.json", "report.md", "*.png"))
STAGES = ("float", "quantize", "fixed", "verilog", "cosim", "build", "board")
#: stage -> the stage whose model it takes.
NEEDS = {"quantize": "float", "verilog": "fixed", "cosim": "verilog", "board": "fixed"}
FLOAT_PRESETS = ("digits-cep", "digits-cvf-homeostasis", "digits-mlp")
CHIP_PRESET = "digits-cep-chip"
#: Epochs of every training stage with --quick.
QUICK_EPOCHS = 2
#: (full, quick): training samples co-simulated; samples the board trains and is tested on.
COSIM_SAMPLES = (10, 2)
BOARD_SAMPLES = (20, 3)
BOARD_TEST_SAMPLES = (20, 5)


def check_stages(skip: list[str]) -> list[str]:
    """The stages to run, or a :class:`ConfigError` naming an unknown one or a skipped stage another needs."""
    unknown = [s for s in skip if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown demo stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    run = [s for s in STAGES if s not in skip]
    for stage in run:
        if NEEDS.get(stage) in skip:
            raise ConfigError(f"the {stage} stage needs the {NEEDS[stage]} stage: skip {stage} too, or keep {NEEDS[stage]}")
    return run


def run_demo(out: Path, board_name: str = "icebreaker", skip: list[str] = (), quick: bool = False, progress: bool = True,
             replace: bool = False) -> int:
    """Run the demo's ``stages`` into a staging folder that replaces ``out`` whole when all are done."""
    from .boards.registry import get_board
    from .hw.core import check_buildable

    stages = check_stages(list(skip))
    folder = OutputFolder(check_tool_path(out, "run folder"), DEMO_RUN, replace, what="run folder")  # simulators build inside it
    board = get_board(board_name)
    chip = presets.get(CHIP_PRESET).replace(training={"arith": "fixed"})
    check_buildable(Flow(chip).for_board(board).config)  # refused now rather than after minutes of training
    with folder.staged() as staging:
        table, footer, figures = _run_stages(staging, stages, board, chip, progress, quick)
    print(f"\n{table}\n\n{footer}\nreport: {out / 'report.md'}, figures: {', '.join(figures) or 'none'}")
    return 0


def _run_stages(out: Path, stages: list[str], board, chip: Config, progress: bool, quick: bool):
    """Run ``stages`` writing into ``out``, then the report; the summary table, its footer and the figures' names."""
    pick = (lambda counts: counts[1]) if quick else (lambda counts: counts[0])
    epochs = {"epochs": QUICK_EPOCHS} if quick else {}
    floats = {name: Flow(presets.get(name).replace(training=epochs), out, progress=progress) for name in FLOAT_PRESETS}
    fixed = Flow(chip.replace(training=epochs), out, progress=progress)
    started = time.perf_counter()
    for i, stage in enumerate(stages, 1):
        print(f"[{i}/{len(stages)}] {stage}: {STAGE_TEXT[stage]}", flush=True)
        if stage == "float":
            for name, flow in floats.items():
                flow.train(out=out / "float" / name)
        elif stage == "quantize":
            floats["digits-cep"].quantize()
        elif stage == "fixed":
            fixed.train(out=out / "fixed")
        elif stage == "verilog":
            step = fixed.verilog()
            write_files(step.verilog.parent, {"verilog.json": to_json(step.to_dict())})  # the demo's summary reads it
        elif stage == "cosim":
            fixed.cosim(pick(COSIM_SAMPLES))
        elif stage == "build":
            fixed.for_board(board).build(board)
        elif stage == "board":
            fixed.for_board(board).board_train(board, pick(BOARD_SAMPLES), pick(BOARD_TEST_SAMPLES))
    rows = summarize(out, stages)
    summary = {"rows": rows, "quick": quick, "board": board.name, "stages": stages, "seconds": time.perf_counter() - started}
    table = markdown_table(HEADERS, [_cells(row) for row in rows])
    footer = (f"{'Quick run (a smoke test, not the quality bar). ' if quick else ''}Board: {board.name}. "
              f"Stages: {', '.join(stages)}; {summary['seconds']:.0f} s in all.")
    figures = _figures(out, stages)
    links = "".join(f"\n\n![{name}]({name})" for name in figures)
    write_files(out, {"report.json": to_json(summary), "report.md": f"# eqprop demo\n\n{table}\n\n{footer}{links}\n", **figures})
    return table, footer, figures


STAGE_TEXT = {
    "float": f"train the float reference on digits ({', '.join(FLOAT_PRESETS)})",
    "quantize": "convert the digits-cep checkpoint to the chip's fixed point",
    "fixed": f"train {CHIP_PRESET} from scratch in the chip's fixed-point arithmetic (the golden model)",
    "verilog": "write the core's Verilog with the fixed-point weights",
    "cosim": "co-simulate training samples on that Verilog under Verilator, every write checked against the golden model",
    "build": "build the board's bitstream",
    "board": "train on the simulated board through the UART link",
}


# -- the summary: read back from the stages' files ------------------------------------------------

HEADERS = ["stage", "test accuracy %", "mismatches", "cycles/sample", "x bound", "samples/s", "resources, clock", "s"]


def summarize(out: Path, stages: list[str]) -> list[dict]:
    """The summary rows of ``stages``, read from their files in ``out``; each row names its source file."""
    rows = []
    for stage in stages:
        for source, values in _SUMMARIES[stage](out):
            rows.append({"source": str(source.relative_to(out)), **values})
    return rows


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _training_row(stage: str, path: Path) -> tuple[Path, dict]:
    metrics = _read(path)
    return path, {"stage": stage, "test_accuracy": metrics["final"]["test_accuracy"], "samples_per_s": metrics["final"]["samples_per_second"],
                  "seconds": sum(h["train_seconds"] for h in metrics["history"])}


def _float_rows(out: Path):
    return [_training_row(f"float {name}", out / "float" / name / "metrics.json") for name in FLOAT_PRESETS]


def _quantize_rows(out: Path):
    path = out / "quantized" / "quantize.json"
    return [(path, {"stage": "quantized digits-cep (golden)", "test_accuracy": _read(path)["fixed_test_accuracy"]})]


def _fixed_rows(out: Path):
    return [_training_row(f"fixed {CHIP_PRESET} (golden)", out / "fixed" / "metrics.json")]


def _verilog_rows(out: Path):
    path = out / "verilog" / "verilog.json"
    verilog = _read(path)
    cycles = verilog["cycles"]
    return [(path, {"stage": f"Verilog ({verilog['lines']} lines): the cycle formula", "cycles_per_sample": cycles["total"],
                    "bound_ratio": cycles["ratio"], "hardware": f"P = {cycles['lanes']}", "seconds": verilog["seconds"]})]


def _cosim_rows(out: Path):
    from .schedule import cycle_count

    path = out / "cosim" / "cosim.json"
    cosim = _read(path)
    bound = cycle_count(Config.load(out / "verilog" / "core.json")).bound
    per_sample = cosim["cycles_checked"] / cosim["samples"] if cosim["samples"] else None
    return [(path, {"stage": f"co-simulation ({cosim['simulator']}, {cosim['samples']} samples)", "mismatches": 0 if cosim["passed"] else 1,
                    "cycles_per_sample": per_sample, "bound_ratio": per_sample / bound if per_sample else None,
                    "samples_per_s": cosim["samples"] / cosim["sim_s"] if cosim["sim_s"] else None,
                    "hardware": f"{cosim['cycles_per_second']:,.0f} simulated cycles/s", "seconds": cosim["wall_s"]})]


def _build_rows(out: Path):
    from .boards.build import soc_clock

    path = out / "build" / "report.json"
    build = _read(path)
    resources = ", ".join(f"{kind} {r['used']}/{r['available']}" for kind, r in build["resources"].items() if r["available"])
    clock = soc_clock(build)
    return [(path, {"stage": f"bitstream {build['board']}", "timing_met": build["timing_met"], "seconds": build["build_s"],
                    "hardware": f"{resources}; SoC Fmax {clock['achieved']:.1f} MHz, runs at {clock['required']:.1f}"
                                + ("" if build["timing_met"] else "; timing NOT met")})]


def _board_rows(out: Path):
    from .schedule import cycle_count

    path = out / "board" / "board.json"
    board = _read(path)
    bound = cycle_count(Config.load(out / "board" / "config.json")).bound
    where = f"simulated {board['board']}, {board['test_samples']} test samples"
    return [
        (path, {"stage": f"{where}: before training", "test_accuracy": board["accuracy_before"] / 100}),
        (path, {"stage": f"{where}: after {board['samples']} samples", "test_accuracy": board["accuracy_after"] / 100,
                "mismatches": len(board["mismatched"]), "cycles_per_sample": board["cycles_per_sample"],
                "bound_ratio": board["cycles_per_sample"] / bound, "samples_per_s": board["link_samples_per_s"],
                "hardware": f"a real board: {board['board_samples_per_s']:.1f} samples/s ({board['compute_samples_per_s']:.1f} compute-, "
                            f"{board['link_bound_samples_per_s']:.0f} link-bound)"}),
    ]


_SUMMARIES = {"float": _float_rows, "quantize": _quantize_rows, "fixed": _fixed_rows, "verilog": _verilog_rows, "cosim": _cosim_rows,
              "build": _build_rows, "board": _board_rows}


def _cells(row: dict) -> list:
    """A summary row as table cells; ``-`` where a stage has no such figure."""
    def number(key: str, format_value):
        return None if row.get(key) is None else format_value(row[key])

    def rate(value: float) -> str:  # thousands separated, small rates with three significant digits
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

    return [row["stage"], number("test_accuracy", lambda v: f"{100 * v:.2f}"), row.get("mismatches"),
            number("cycles_per_sample", lambda v: f"{v:.0f}"), number("bound_ratio", lambda v: f"{v:.3f}"), number("samples_per_s", rate),
            row.get("hardware"), number("seconds", lambda v: f"{v:.1f}")]


def _figures(out: Path, stages: list[str]) -> dict[str, bytes]:
    from . import plots

    runs = ([(f"float {p}", out / "float" / p) for p in FLOAT_PRESETS] if "float" in stages else []) + (
        [(f"fixed {CHIP_PRESET}", out / "fixed")] if "fixed" in stages else [])
    curves = {name: [_read(folder / "metrics.json")["history"]] for name, folder in runs}
    figures = {"learning_curves.png": plots.learning_curves(curves, "digits")} if curves else {}
    if "build" in stages:
        build = _read(out / "build" / "report.json")
        figures["resources.png"] = plots.resource_bars({build["board"]: build})
    return figures
