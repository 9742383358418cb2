"""``eqprop demo``: the whole path on digits in one command, without a board.

Each stage writes its own files into the run folder; the summary (``report.json``, ``report.md``
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
from .checkpoint import CHECKPOINT_NAME, checkpoint_bytes, load_checkpoint, to_json
from .config import Config
from .data import load_dataset
from .errors import ConfigError
from .outputs import OutputFolder, OutputKind, check_tool_path, write_files
from .progress import counting, ticking
from .report import markdown_table
from .train import train

#: The demo's run folder: a folder per stage, the report and the figures.
DEMO_RUN = OutputKind("demo run", ("float", "quantized", "fixed", "verilog", "cosim", "build", "board", "report.json", "report.md", "*.png"))
STAGES = ("float", "quantize", "fixed", "verilog", "cosim", "build", "board")
#: stage -> the stage whose files it reads.
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
    board_cfg = chip.replace(hardware={"fpga": board.fpga, **board.hardware})
    check_buildable(board_cfg)  # refused now rather than after minutes of training
    with folder.staged() as staging:
        table, footer, figures = _run_stages(staging, stages, board, chip, board_cfg, progress, quick)
    print(f"\n{table}\n\n{footer}\nreport: {out / 'report.md'}, figures: {', '.join(figures) or 'none'}")
    return 0


def _run_stages(out: Path, stages: list[str], board, chip: Config, board_cfg: Config, progress: bool, quick: bool):
    """Run ``stages`` writing into ``out``, then the report; the summary table, its footer and the figures' names."""
    pick = (lambda counts: counts[1]) if quick else (lambda counts: counts[0])
    epochs = {"epochs": QUICK_EPOCHS} if quick else {}
    started = time.perf_counter()
    for i, stage in enumerate(stages, 1):
        print(f"[{i}/{len(stages)}] {stage}: {STAGE_TEXT[stage]}", flush=True)
        if stage == "float":
            for name in FLOAT_PRESETS:
                _train_run(out / "float" / name, presets.get(name).replace(training=epochs), progress)
        elif stage == "quantize":
            _quantize(out)
        elif stage == "fixed":
            _train_run(out / "fixed", chip.replace(training=epochs), progress)
        elif stage == "verilog":
            _verilog(out)
        elif stage == "cosim":
            _cosim(out, pick(COSIM_SAMPLES), progress)
        elif stage == "build":
            from .boards.build import build

            with ticking(f"{board.name}: Yosys, nextpnr, packer", progress):
                build(board, board_cfg, out / "build")
        elif stage == "board":
            _board(out, board, board_cfg, pick(BOARD_SAMPLES), pick(BOARD_TEST_SAMPLES), progress)
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


# -- stages: each writes its files ---------------------------------------------------------------


def _train_run(folder: Path, cfg: Config, progress: bool) -> None:
    result = train(cfg, progress=progress)
    write_files(folder, {CHECKPOINT_NAME: checkpoint_bytes(cfg, result.params), "config.json": cfg.to_json() + "\n",
                       "metrics.json": to_json({"config": cfg.to_dict(), "history": result.history, "final": result.final})})


def _quantize(out: Path) -> None:
    from .quantize import quantize_checkpoint

    cfg, arrays = load_checkpoint(out / "float" / "digits-cep", arith="float")
    fixed_cfg, model, report = quantize_checkpoint(cfg, arrays, load_dataset(cfg.training.dataset, cfg.training.seed))
    write_files(out / "quantized", {CHECKPOINT_NAME: checkpoint_bytes(fixed_cfg, model.params), "config.json": fixed_cfg.to_json() + "\n",
                                  "quantize.json": to_json(report)})


def _verilog(out: Path) -> None:
    from .hw.verilog import core_verilog
    from .schedule import cycle_count

    started = time.perf_counter()
    cfg, params = load_checkpoint(out / "fixed", arith="fixed")
    text = core_verilog(cfg, params)
    report = {"lines": len(text.splitlines()), "seconds": time.perf_counter() - started, "cycles": cycle_count(cfg).to_dict()}
    write_files(out / "verilog", {"core.v": text, "core.json": cfg.to_json() + "\n", "verilog.json": to_json(report)})


def _cosim(out: Path, samples: int, progress: bool) -> None:
    from .sim.runner import cosim, training_samples

    cfg, params = load_checkpoint(out / "fixed", arith="fixed")
    x, labels = training_samples(cfg, samples)
    with ticking(f"Verilator: {samples} samples", progress):
        result = cosim(cfg, params, x, labels, verilog=out / "verilog" / "core.v", build_root=out / "cosim" / "sim")
    write_files(out / "cosim", {"cosim.json": to_json(result.to_dict())})


def _board(out: Path, board, cfg: Config, samples: int, test_samples: int, progress: bool) -> None:
    from .boards.train import board_train, open_link, run_files
    from .sim.runner import training_samples

    _, params = load_checkpoint(out / "fixed", arith="fixed")
    x, labels = training_samples(cfg, samples)
    test_x, test_y = training_samples(cfg, test_samples, split="test")
    with ticking("Verilator: building the SoC", progress):
        link = open_link(board, cfg, build_root=out / "board" / "sim")
    try:
        with counting("simulated board: training", samples, "sample", progress) as update:
            report, weights = board_train(board, cfg, link, params, x, labels, test_x, test_y, simulated=True, progress=update)
    finally:
        link.transport.close()
    write_files(out / "board", run_files(cfg, report, weights))


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
