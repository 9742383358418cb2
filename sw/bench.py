"""``eqprop bench``: measurements, each produced by this run and written to ``bench.json`` and ``bench.md``.

Sections:

* ``theory``: EP/C-EP against BPTT, continual vs plain updates, nudging bias, the Cauchy
  estimator and homeostasis estimators (see :mod:`eqprop.theory`).
* ``accuracy``: test accuracy over seeds for the digits presets (BP MLP, BPTT, EP, C-EP, C-VF
  with and without homeostasis).
* ``homeostasis``: C-VF with and without homeostasis, same seeds, on digits and MNIST-1D with one
  and two hidden layers: accuracy, gradient cosine to BPTT and Jacobian symmetry over training,
  with a PNG of the curves.
* ``fixed``: the chip's arithmetic (the golden model): fixed-point C-EP trained from scratch
  against float C-EP with the same preset over seeds, accuracy against weight and state widths
  and learning bits (table and PNG), and the accuracy a float-trained checkpoint keeps when
  quantized.
* ``cycles``: cycles per sample from the cycle-count formula against the lower bound, for
  several lane counts P (table and PNG).
* ``throughput``: C-EP training samples per second at batch 1 and batch 64 (medians over
  repeats, on CPU and, when present, CUDA), and the golden model's at batch 1 beside them.
* ``cosim``: co-simulation of the default digits network's Verilog under Verilator and Icarus
  (:mod:`eqprop.sim`): samples checked write by write against the golden model, wall time and
  simulated cycles per second of each simulator, the Verilog generation time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from . import presets, theory
from .checkpoint import to_json, write_run
from .config import Config
from .data import load_dataset
from .errors import EqpropError
from .network import init_params
from .report import markdown_table, mean_std, pct
from .train import one_hot, rule_direction, train

SECTIONS = ("theory", "accuracy", "homeostasis", "fixed", "cycles", "throughput", "cosim")
#: Training samples co-simulated per simulator (full, quick); Icarus is about 50 times slower.
COSIM_SAMPLES = {"verilator": (20, 2), "icarus": (2, 1)}
ACCURACY_PRESETS = ("digits-mlp", "digits-bptt", "digits-ep", "digits-cep", "digits-cvf", "digits-cvf-homeostasis")
QUICK_EPOCHS = 2


def run_bench(out: Path, sections: list[str], seeds: int = 3, quick: bool = False, progress: bool = True) -> int:
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise EqpropError(f"unknown bench section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if seeds < 1:
        raise EqpropError(f"--seeds must be at least 1, got {seeds}")
    results, markdown, files = {}, ["# eqprop bench\n"], {}
    for section in SECTIONS:
        if section not in sections:
            continue
        print(f"bench: {section}", flush=True)
        data, md, extra = _RUNNERS[section](seeds=seeds, quick=quick, progress=progress)
        results[section] = data
        markdown.append(f"## {section}\n\n{md}\n")
        files.update(extra)
        print(md + "\n", flush=True)
    files.update({"bench.json": to_json(results), "bench.md": "\n".join(markdown)})
    write_run(out, files)
    print(f"bench: wrote {out / 'bench.md'} and {out / 'bench.json'}")
    return 0


def _with_epochs(cfg: Config, quick: bool) -> Config:
    return cfg.replace(training={"epochs": QUICK_EPOCHS}) if quick else cfg


# -- theory ------------------------------------------------------------------------------------


def bench_theory(seeds: int, quick: bool, progress: bool):
    rows, data = [], {}
    for activation in ("identity", "hardsigmoid"):
        for rule in ("ep", "cep"):
            cos = theory.ep_bptt_cosines(activation, rule, beta=1e-4 if activation == "identity" else 0.01)
            data[f"cosine_{rule}_{activation}"] = cos
            rows.append([f"cos({rule} update, -BPTT grad), {activation}", ", ".join(f"{k}: {v:.4f}" for k, v in cos.items())])
    data["continual_vs_plain"] = {str(lr): theory.continual_vs_plain(lr) for lr in (1e-2, 1e-4, 1e-6)}
    rows.append(["|sum C-EP steps - EP| / |EP| for lr 1e-2, 1e-4, 1e-6", ", ".join(f"{v:.2e}" for v in data["continual_vs_plain"].values())])
    data["nudging_bias"] = {str(b): theory.nudging_bias(b) for b in (0.05, 0.1, 0.2, 0.4)}
    for b, errs in data["nudging_bias"].items():
        rows.append([f"relative error to exact gradient at beta={b}", f"one-sided {errs['one-sided']:.4f}, symmetric {errs['symmetric']:.4f}"])
    data["cauchy"] = theory.cauchy_errors([2, 3, 4, 6, 8])
    rows.append(["Cauchy estimator error at |beta|=0.3, N = 2, 3, 4, 6, 8", ", ".join(f"{v:.2e}" for v in data["cauchy"].values())])
    data["homeostasis"] = theory.homeostasis_agreement(probes=1600)
    rows.append(["homeostasis: local rule vs autograd, probe (1600) vs autograd", f"{data['homeostasis']['local_rule_error']:.1e}, {data['homeostasis']['probe_error']:.3f}"])
    return data, markdown_table(["check", "measured"], rows), {}


# -- accuracy ----------------------------------------------------------------------------------


def _seed_runs(cfg: Config, seeds: int, progress: bool, data=None) -> list:
    return [train(cfg.replace(training={"seed": seed}), data, progress=progress) for seed in range(seeds)]


def bench_accuracy(seeds: int, quick: bool, progress: bool):
    rows, data = [], {}
    for name in ACCURACY_PRESETS:
        cfg = _with_epochs(presets.get(name), quick)
        runs = _seed_runs(cfg, seeds, progress)
        tests = [r.final["test_accuracy"] for r in runs]
        trains = [r.final["train_accuracy"] for r in runs]
        cosines = [r.final["gradient_cosine"] for r in runs if "gradient_cosine" in r.final]
        data[name] = {"test_accuracy": tests, "train_accuracy": trains, "gradient_cosine": cosines, "config": cfg.to_dict()}
        cos = ", ".join(f"{k} {statistics.fmean(c[k] for c in cosines):.3f}" for k in cosines[0]) if cosines else None
        rows.append([name, "x".join(map(str, cfg.network.sizes)), pct(*mean_std(trains)), pct(*mean_std(tests)), cos, len(tests)])
    headers = ["preset", "sizes", "train accuracy %", "test accuracy %", "cos(update, -BPTT grad) at the end", "seeds"]
    return data, markdown_table(headers, rows), {}


# -- homeostasis -------------------------------------------------------------------------------


def homeostasis_variant(dataset: str, hidden: list[int], homeostasis: bool, n_features: int, n_classes: int) -> Config:
    """The C-VF study configuration: the digits C-VF preset on another dataset and depth, lr halving per layer."""
    base = presets.get("digits-cvf-homeostasis" if homeostasis else "digits-cvf")
    sizes = [n_features, *hidden, n_classes]
    lr = [base.learning.lr[0] / 2**l for l in range(len(sizes) - 1)]
    return base.replace(network={"sizes": sizes}, learning={"lr": lr}, training={"dataset": dataset})


def bench_homeostasis(seeds: int, quick: bool, progress: bool):
    rows, data, curves = [], {}, {}
    for dataset in ("digits", "mnist1d"):
        ds = load_dataset(dataset)
        for hidden in ([128], [128, 64]):
            for on in (False, True):
                cfg = _with_epochs(homeostasis_variant(dataset, hidden, on, ds.n_features, ds.n_classes), quick)
                runs = _seed_runs(cfg, seeds, progress, ds if dataset != "digits" else None)
                key = f"{dataset} {'x'.join(map(str, cfg.network.sizes))} {'with' if on else 'without'}"
                finals = [r.final for r in runs]
                entry = {
                    "test_accuracy": [f["test_accuracy"] for f in finals],
                    "gradient_cosine_mean": [f["gradient_cosine_mean"] for f in finals],
                    "jacobian_symmetry": [f["jacobian_symmetry"] for f in finals],
                    "history": [r.history for r in runs],
                }
                data[key] = entry
                curves[key] = runs
                rows.append([
                    key, pct(*mean_std(entry["test_accuracy"])),
                    "%.3f ± %.3f" % mean_std(entry["gradient_cosine_mean"]), "%.3f ± %.3f" % mean_std(entry["jacobian_symmetry"]),
                    "%.1f" % statistics.fmean(f["weight_angle_deg"]["W1"] for f in finals),
                ])
    headers = ["C-VF run (dataset, sizes, homeostasis)", "test accuracy %", "cos to BPTT (end)", "J symmetry (end)", "angle W1/B1^T deg"]
    return data, markdown_table(headers, rows) + "\n\n![homeostasis](homeostasis.png)", {"homeostasis.png": _plot_homeostasis(curves)}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    return buffer.getvalue()


def _plot_homeostasis(curves: dict) -> bytes:
    plt = _pyplot()
    metrics = (("test_accuracy", "test accuracy"), ("gradient_cosine_mean", "cos(update, -BPTT grad)"), ("jacobian_symmetry", "Jacobian symmetry"))
    groups = sorted({k.rsplit(" ", 1)[0] for k in curves})
    fig, axes = plt.subplots(len(groups), len(metrics), figsize=(4 * len(metrics), 2.6 * len(groups)), squeeze=False)
    for row, group in enumerate(groups):
        for col, (metric, label) in enumerate(metrics):
            ax = axes[row][col]
            for suffix, color in (("without", "tab:red"), ("with", "tab:blue")):
                for i, run in enumerate(curves.get(f"{group} {suffix}", [])):
                    epochs = [h["epoch"] for h in run.history]
                    ax.plot(epochs, [h.get(metric) for h in run.history], color=color, alpha=0.7, label=f"{suffix} homeostasis" if i == 0 else None)
            ax.set_title(f"{group}: {label}", fontsize=8)
            ax.set_xlabel("epoch", fontsize=8)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


# -- fixed point -------------------------------------------------------------------------------

#: (weight bits, state bits) of the width sweep: each axis from 8 to 16 with the other at 16.
WIDTH_SWEEP = [(w, 16) for w in (16, 14, 12, 10, 8)] + [(16, s) for s in (14, 12, 10, 8)]
LEARN_BITS_SWEEP = (0, 4, 8)
QUANTIZE_WIDTHS = (16, 12, 10, 8)


def bench_fixed(seeds: int, quick: bool, progress: bool):
    from .quantize import quantize_checkpoint, resize

    chip = _with_epochs(presets.get("digits-cep-chip"), quick).replace(training={"probe_samples": 0})
    fixed = chip.replace(training={"arith": "fixed"})
    data: dict = {}
    md = []

    # fixed-point training from scratch against float, same preset and seeds
    runs = {"float": _seed_runs(chip, seeds, progress), "fixed": _seed_runs(fixed, seeds, progress)}
    rows = []
    for arith, results in runs.items():
        tests = [r.final["test_accuracy"] for r in results]
        rates = [r.history[1]["samples_per_second"] for r in results]
        data[f"digits-cep-chip {arith}"] = {"test_accuracy": tests, "samples_per_second_epoch1": rates}
        rows.append([f"digits-cep-chip, {arith}", pct(*mean_std(tests)), len(tests)])
    gap = statistics.fmean(data["digits-cep-chip float"]["test_accuracy"]) - statistics.fmean(data["digits-cep-chip fixed"]["test_accuracy"])
    data["fixed_gap_points"] = 100 * gap
    md.append(markdown_table(["C-EP on digits (batch 1, as the chip)", "test accuracy %", "seeds"], rows))
    md.append(f"float minus fixed point: {100 * gap:+.2f} points of test accuracy (mean of {seeds} seeds).")

    # widths and learning bits, seed 0
    sweep_rows, sweep = [], {}
    for weight_bits, state_bits in WIDTH_SWEEP:
        cfg = resize(fixed, weight_bits=weight_bits, state_bits=state_bits)
        result = train(cfg, progress=progress)
        sweep[f"{weight_bits},{state_bits}"] = result.final["test_accuracy"]
        sweep_rows.append([weight_bits, state_bits, chip.fixed.learn_bits, f"{100 * result.final['test_accuracy']:.2f}", f"{result.final['test_loss']:.4f}"])
    for learn_bits in LEARN_BITS_SWEEP:
        if learn_bits == chip.fixed.learn_bits:
            continue
        result = train(fixed.replace(fixed={"learn_bits": learn_bits}), progress=progress)
        data[f"learn_bits {learn_bits}"] = result.final["test_accuracy"]
        sweep_rows.append([16, 16, learn_bits, f"{100 * result.final['test_accuracy']:.2f}", f"{result.final['test_loss']:.4f}"])
    data["width_sweep"] = sweep
    md.append(markdown_table(["weight bits", "state bits", "learn bits", "test accuracy % (seed 0)", "test loss"], sweep_rows))
    md.append("![accuracy against width](fixed_widths.png)")

    # quantizing float-trained checkpoints (inference)
    float_cfg = _with_epochs(presets.get("digits-cep"), quick).replace(training={"probe_samples": 0})
    losses: dict[int, list[float]] = {bits: [] for bits in QUANTIZE_WIDTHS}
    dataset = load_dataset("digits")
    for run in _seed_runs(float_cfg, seeds, progress, dataset):
        arrays = {k: v.detach().cpu().numpy() for k, v in run.params.items()}
        for bits in QUANTIZE_WIDTHS:
            _, _, report = quantize_checkpoint(resize(float_cfg, weight_bits=bits, state_bits=bits), arrays, dataset)
            losses[bits].append(100 * report["test_accuracy_loss"])
    data["quantize_loss_points"] = {str(b): v for b, v in losses.items()}
    md.append(markdown_table(
        ["digits-cep float checkpoint quantized to (weight = state bits)", "test accuracy lost, points", "seeds"],
        [[bits, "%.2f ± %.2f" % mean_std(v), len(v)] for bits, v in losses.items()],
    ))
    float_mean = statistics.fmean(data["digits-cep-chip float"]["test_accuracy"])
    return data, "\n\n".join(md), {"fixed_widths.png": _plot_widths(sweep, float_mean)}


def _plot_widths(sweep: dict, float_mean: float) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for axis, label in ((0, "weight bits (states 16)"), (1, "state bits (weights 16)")):
        points = sorted((int(k.split(",")[axis]), v) for k, v in sweep.items() if int(k.split(",")[1 - axis]) == 16)
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=label)
    ax.axhline(100 * float_mean, color="gray", linestyle="--", label="float, same preset (mean over seeds)")
    ax.set_xlabel("bits")
    ax.set_ylabel("test accuracy %")
    ax.set_title("fixed-point C-EP trained from scratch on digits (seed 0)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


# -- cycles ------------------------------------------------------------------------------------

CYCLE_LANES = (1, 2, 4, 8, 16, 32, 64)


def bench_cycles(seeds: int, quick: bool, progress: bool):
    from .schedule import cycle_count

    rows, data = [], {}
    for name in ("digits-cep", "digits-cvf-homeostasis"):
        counts = [cycle_count(presets.get(name), p) for p in CYCLE_LANES]
        data[name] = [c.to_dict() for c in counts]
        rows += [[name, c.lanes, f"{c.total:.0f}", f"{c.bound:.0f}", f"{c.ratio:.3f}", c.inference] for c in counts]
    table = markdown_table(["preset", "P", "cycles/sample", "lower bound", "ratio", "cycles/inference"], rows)
    return data, table + "\n\n![cycles against P](cycles.png)", {"cycles.png": _plot_cycles(data)}


def _plot_cycles(data: dict) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, counts in data.items():
        line = ax.plot([c["lanes"] for c in counts], [c["total"] for c in counts], marker="o", label=f"{name}: formula")
        ax.plot([c["lanes"] for c in counts], [c["bound"] for c in counts], linestyle="--", color=line[0].get_color(), label=f"{name}: lower bound")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("MAC lanes P")
    ax.set_ylabel("cycles per training sample")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


# -- throughput --------------------------------------------------------------------------------


def training_rate(cfg: Config, batch: int, samples: int, device: str, repeats: int) -> float:
    """Median training samples per second over ``repeats`` timings of ``samples`` samples (the training step of :func:`train`)."""
    net = cfg.network
    data = load_dataset("digits")
    generator = torch.Generator().manual_seed(0)
    params = init_params(net, generator, torch.float32, device)
    x_all = torch.as_tensor(data.x_train, device=device)
    y_all = one_hot(torch.as_tensor(data.y_train, device=device), net.sizes[-1], torch.float32)
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        with torch.no_grad():
            while done < samples:
                idx = torch.arange(done, done + batch, device=device) % len(x_all)
                rule_direction(cfg, params, x_all[idx], y_all[idx], generator, lr=cfg.learning.lr)
                done += batch
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def golden_training_rate(cfg: Config, samples: int, repeats: int) -> float:
    """Median training samples per second of the golden model (batch 1, as the chip)."""
    from .golden import GoldenModel, quantize_inputs

    data = load_dataset("digits")
    fixed = cfg.replace(training={"arith": "fixed"})
    model = GoldenModel.from_float(fixed, init_params(cfg.network, torch.Generator().manual_seed(0), torch.float64))
    x = quantize_inputs(model.arith, data.x_train)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(samples):
            model.train_sample(x[i % len(x)], int(data.y_train[i % len(x)]))
        rates.append(samples / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_throughput(seeds: int, quick: bool, progress: bool):
    """C-EP training rate on each device, batch 1 and 64; on CPU with one torch thread and with torch's default.
    The golden model's batch-1 rate is measured in the same run, beside the float model's."""
    cfg = presets.get("digits-cep")
    default_threads = torch.get_num_threads()
    settings = [("cpu", n) for n in sorted({1, default_threads})] + ([("cuda", default_threads)] if torch.cuda.is_available() else [])
    rows, data = [], {}
    try:
        for device, threads in settings:
            torch.set_num_threads(threads)
            for batch in (1, 64):
                samples = (64 if quick else 512) if batch == 1 else (640 if quick else 8192)
                rate = training_rate(cfg, batch, samples, device, repeats=3 if quick else 5)
                data[f"{device} threads {threads} batch {batch}"] = rate
                rows.append([device, threads, batch, "x".join(map(str, cfg.network.sizes)), f"{rate:.0f}"])
        torch.set_num_threads(1)
        golden_rate = golden_training_rate(cfg, 64 if quick else 512, repeats=3 if quick else 5)
    finally:
        torch.set_num_threads(default_threads)
    data["golden batch 1"] = golden_rate
    data["golden_over_float_batch_1"] = golden_rate / data["cpu threads 1 batch 1"]
    rows.append(["golden model (numpy int64)", "-", 1, "x".join(map(str, cfg.network.sizes)), f"{golden_rate:.0f}"])
    table = markdown_table(["device", "torch threads", "batch", "sizes", "C-EP training samples/s (median)"], rows)
    note = f"At batch 1 the golden model trains at {data['golden_over_float_batch_1']:.2f}x the float model's rate (1 torch thread)."
    return data, table + "\n\n" + note, {}


# -- co-simulation -----------------------------------------------------------------------------


def bench_cosim(seeds: int, quick: bool, progress: bool):
    """The default digits network (``digits-cep``, P = 1) on both simulators, from its seeded weights."""
    import tempfile

    from .hw.verilog import core_verilog
    from .sim.runner import cosim, initial_params, training_samples

    cfg = presets.get("digits-cep").replace(training={"arith": "fixed"})
    started = time.perf_counter()
    core_verilog(cfg)
    verilog_s = time.perf_counter() - started
    params, rows, data = initial_params(cfg), [], {"verilog_s": verilog_s}
    with tempfile.TemporaryDirectory() as build:
        for sim, (full, short) in COSIM_SAMPLES.items():
            x, labels = training_samples(cfg, short if quick else full)
            result = cosim(cfg, params, x, labels, sim=sim, build_root=build)
            data[sim] = result.to_dict()
            rows.append([sim, result.samples, result.cycles_checked, result.writes_checked, "yes" if result.passed else "NO",
                         f"{result.wall_s:.1f}", f"{result.cycles_per_second:,.0f}"])
    table = markdown_table(["simulator", "samples", "cycles checked", "writes checked", "passed", "wall s", "simulated cycles/s"], rows)
    return data, f"{table}\n\nVerilog generation (Amaranth + Yosys) of the core: {verilog_s:.1f} s.", {}


_RUNNERS = {
    "theory": bench_theory,
    "accuracy": bench_accuracy,
    "homeostasis": bench_homeostasis,
    "fixed": bench_fixed,
    "cycles": bench_cycles,
    "throughput": bench_throughput,
    "cosim": bench_cosim,
}
