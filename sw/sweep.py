"""``eqprop sweep``: a design-space sweep over configuration fields and stages, run on Dask.

The sweep file (:mod:`eqprop.sweep_spec`) gives the configurations; each configuration runs the
sweep's stages, and each (stage, configuration) is a *point*. A point is keyed by a hash of its
stage, the stage's options and the part of the configuration the stage reads (:data:`STAGES`):
float training reads no formats and no hardware, training no lanes or FPGA, the hardware's
figures no training settings. So configurations that differ only where a stage does not look
share that stage's point (a float training is not repeated per weight width, an estimate not per
seed), and a point once stored is never run again.

Points run on an embedded LocalCluster or an existing Dask cluster (:mod:`eqprop.cluster`); a task
returns its result and the files it made, and this process stores them as each point completes:
``points/KEY/`` (the stage's files, e.g. the checkpoint) and then ``points/KEY.json`` (the result,
or the error of a failed point). The JSON is written last and whole, so a sweep stopped at any
moment and run again runs only the points without one; failed points are run again with
``--retry-failed``. The table and the plots (:mod:`eqprop.sweep_report`) are written at the end
from the stored points.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .checkpoint import CHECKPOINT_NAME, checkpoint_bytes, to_json
from .config import Config
from .errors import EqpropError
from .outputs import OutputFiles, OutputFolder, OutputKind, ending_signals_raise
from .report import json_text
from .sweep_spec import FPGA_STAGES, Row, SweepError, SweepSpec, describe, load_spec, naming, rows

#: A sweep's folder: its stored points, its table and plots.
SWEEP_RUN = OutputKind("sweep", ("points", "table.csv", "table.md", "sweep.json", "*.png"))
#: The files one point's stage wrote (a training run, a build folder): anything.
POINT_FILES = OutputKind("sweep point", ("*",))


@dataclass(frozen=True)
class Stage:
    #: The parts of the configuration the stage reads: sections, or ``section.field``.
    reads: tuple[str, ...]
    arith: str
    #: ``run(point) -> (result, files)``, on a worker.
    run: Callable[["Point"], tuple[dict, dict[str, bytes]]]


@dataclass(frozen=True)
class Point:
    stage: str
    #: The stage's options from the sweep file (cosim: samples and simulator).
    options: dict
    #: The configuration as the stage sees it: what it does not read set to the defaults.
    config: Config

    @property
    def key(self) -> str:
        text = json_text({"stage": self.stage, "options": self.options, "config": self.config.to_dict()})
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def reads(stage: str, path: str) -> bool:
    """Whether ``stage`` reads the configuration field at the dotted ``path``."""
    return any(path == part or path.startswith(part + ".") or part.startswith(path + ".") for part in STAGES[stage].reads)


def stage_config(stage: str, cfg: Config) -> Config:
    """``cfg`` as ``stage`` reads it: the fields it does not read at their defaults, its arithmetic set."""
    data, defaults = cfg.to_dict(), Config().to_dict()
    seen = {section: {} for section in defaults if section != "version"}
    for part in STAGES[stage].reads:
        section, _, name = part.partition(".")
        seen[section].update({name: data[section][name]} if name else data[section])
    seen["training"]["arith"] = STAGES[stage].arith
    return Config().replace(**seen)


def point_for(spec: SweepSpec, stage: str, cfg: Config) -> Point:
    options = {"samples": spec.cosim_samples, "simulator": spec.simulator} if stage == "cosim" else {}
    return Point(stage, options, stage_config(stage, cfg))


def plan(spec: SweepSpec) -> tuple[list[Row], dict[str, Point], list[dict[str, str]]]:
    """The configurations, the distinct points, and for each configuration its point per stage.
    :class:`SweepError` names the first configuration a stage cannot take."""
    configs = rows(spec)
    points, row_points = {}, []
    for row in configs:
        keys = {}
        for stage in spec.stages:
            if stage in FPGA_STAGES and row.config.hardware.fpga == "generic":
                raise SweepError(f"stage {stage} needs an FPGA: set or sweep hardware.fpga (ice40up5k, ecp5-85f)")
            try:
                point = point_for(spec, stage, row.config)
            except EqpropError as error:
                raise SweepError(f"stage {stage} of configuration {describe(row.values)}: {error}") from None
            points.setdefault(point.key, point)
            keys[stage] = point.key
        row_points.append(keys)
    return configs, points, row_points


# -- stages, on a worker ---------------------------------------------------------------------------


def run_point(point: Point) -> tuple[dict, dict[str, bytes]]:
    """The stage's result and files; a failure comes back as ``{"error": ...}`` (its traceback too
    when it is not a mistake in what was asked), so the sweep goes on."""
    started = time.perf_counter()
    try:
        result, files = STAGES[point.stage].run(point)
    except EqpropError as error:
        result, files = {"error": " ".join(str(error).split())}, {}
    except Exception as error:  # noqa: BLE001 - any failure of one point is recorded, not fatal to the sweep
        result, files = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}, {}
    # where it ran: on a cluster, the machine and process to look at when a point needs a second look
    return result | {"seconds": time.perf_counter() - started, "ran_on": {"host": socket.gethostname(), "pid": os.getpid()}}, files


def training_point(cfg: Config) -> Point:
    """The point of a training run of ``cfg``, float or fixed as ``cfg.training.arith`` says: the
    key under which a sweep and the bench (``--runs``) store it."""
    stage = f"{cfg.training.arith}-train"
    return Point(stage, {}, stage_config(stage, cfg))


def training_record(cfg: Config, run) -> tuple[dict, dict[str, bytes]]:
    """A training run's result and files, stored as ``eqprop train --out`` stores them."""
    rates = [row["samples_per_second"] for row in run.history[1:] if row["samples_per_second"]]
    result = {"test_accuracy": run.final["test_accuracy"], "train_accuracy": run.final["train_accuracy"],
              "training_samples_per_s": sum(rates) / len(rates) if rates else None}
    files = {CHECKPOINT_NAME: checkpoint_bytes(cfg, run.params),
             "metrics.json": to_json({"config": cfg.to_dict(), "history": run.history, "final": run.final}),
             "config.json": cfg.to_json() + "\n"}
    return result, {name: text.encode() if isinstance(text, str) else text for name, text in files.items()}


def _train(point: Point) -> tuple[dict, dict[str, bytes]]:
    from .train import train

    return training_record(point.config, train(point.config))


def _estimate(point: Point) -> tuple[dict, dict[str, bytes]]:
    from .hw.estimate import estimate

    return estimate(point.config, [point.config.hardware.lanes])[0].to_dict(), {}


def _build(point: Point) -> tuple[dict, dict[str, bytes]]:
    """A bitstream for the board with the configuration's FPGA, built in a temporary folder whose
    files come back with the report (the worker may be another machine)."""
    from .boards.build import build, soc_clock
    from .boards.registry import board_for
    from .hw.devices import DEVICES
    from .schedule import cycle_count

    cfg, board = point.config, board_for(point.config.hardware.fpga)
    with tempfile.TemporaryDirectory(prefix="eqprop-sweep-build-") as tmp:
        folder = Path(tmp) / "build"
        report = build(board, cfg, folder)
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    clock = soc_clock(report)
    cycles = cycle_count(cfg).total
    resources = report["resources"]
    result = {
        "board": board.name, "lut": resources["LUT"]["used"], "ff": resources["FF"]["used"], "dsp": resources["DSP"]["used"],
        "ram_bits": resources["RAM"]["used"] * DEVICES[cfg.hardware.fpga].block_bits,
        "fmax_mhz": clock["achieved"], "timing_met": report["timing_met"], "build_s": report["build_s"],
        "cycles_per_sample": cycles,
        # the SoC runs at its board clock when timing is met, else it would have to run at its Fmax
        "samples_per_s": min(clock["achieved"], clock["required"]) * 1e6 / cycles,
    }
    return result, files


def _cosim(point: Point) -> tuple[dict, dict[str, bytes]]:
    """The first training samples on the simulated core from the seed's initial weights, checked
    against the golden model; the simulator builds stay in this worker's own folder for the next point."""
    from .sim.runner import cosim, initial_params, training_samples

    cfg = point.config
    x, labels = training_samples(cfg, point.options["samples"])
    build_root = Path(tempfile.gettempdir()) / f"eqprop-sweep-cosim-{os.getpid()}"
    result = cosim(cfg, initial_params(cfg), x, labels, sim=point.options["simulator"], build_root=build_root)
    return result.to_dict(), {}


STAGES: dict[str, Stage] = {
    "float-train": Stage(("network", "learning", "training"), "float", _train),
    "fixed-train": Stage(("network", "learning", "training", "fixed", "hardware.defer_input_updates"), "fixed", _train),
    "estimate": Stage(("network", "learning", "fixed", "hardware"), "fixed", _estimate),
    "build": Stage(("network", "learning", "fixed", "hardware"), "fixed", _build),
    "cosim": Stage(("network", "learning", "training", "fixed", "hardware.lanes", "hardware.defer_input_updates"), "fixed", _cosim),
}


# -- storage ---------------------------------------------------------------------------------------


class PointStore:
    """The stored points of a sweep folder: ``points/KEY.json`` and ``points/KEY/``."""

    def __init__(self, out: Path) -> None:
        self.folder = out / "points"

    def load(self, point: Point) -> dict | None:
        """The stored record of ``point``, or None when it has none (or an unreadable one: it runs again)."""
        try:
            record = json.loads((self.folder / f"{point.key}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == point.key else None

    def training(self, cfg: Config):
        """The stored training run of ``cfg`` as a :class:`~eqprop.train.TrainResult` for ``cfg``, or
        None when there is none (or an unreadable one: it runs again)."""
        import torch

        from .checkpoint import load_checkpoint
        from .train import TrainResult

        point = training_point(cfg)
        record = self.load(point)
        if record is None or "error" in record:
            return None
        folder = self.folder / point.key
        try:
            _, params = load_checkpoint(folder / CHECKPOINT_NAME, arith=cfg.training.arith)
            history = json.loads((folder / "metrics.json").read_text())["history"]
        except (EqpropError, OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(history, list) or not history or not all(isinstance(row, dict) for row in history):
            return None
        if cfg.training.arith == "float":
            from .train import torch_device

            params = {name: torch.from_numpy(value).to(torch_device(cfg.training.device)) for name, value in params.items()}
        return TrainResult(cfg, params, [_measured(row) for row in history])

    def save_training(self, cfg: Config, run) -> None:
        self.save(training_point(cfg), *training_record(cfg, run))

    def save(self, point: Point, result: dict, files: dict[str, bytes]) -> dict:
        """Store a completed point: its files first, then its JSON, which marks it done."""
        if files:
            OutputFolder(self.folder / point.key, POINT_FILES, replace=True, what="point folder").write(files)
        record = {"key": point.key, "stage": point.stage, "options": point.options, "config": point.config.to_dict(),
                  "files": sorted(files), **result}
        OutputFiles([self.folder / f"{point.key}.json"], "point result").write([to_json(record)])
        return record


def _measured(value, key: str | None = None):
    """A stored history row as training made it: JSON holds a NaN (a measurement without a value,
    e.g. the Jacobian symmetry of saturated states) as null, and every null in a row stands for one
    but epoch 0's ``samples_per_second`` (no samples yet), which was None."""
    if value is None:
        return None if key == "samples_per_second" else math.nan
    if isinstance(value, dict):
        return {k: _measured(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_measured(v) for v in value]
    return value


# -- the sweep -------------------------------------------------------------------------------------


def run_sweep(spec_path: str | Path, out: str | Path, scheduler: str | None = None, workers: int | None = None,
              retry_failed: bool = False, progress: bool = True) -> int:
    """Run the sweep file's points that are not stored in ``out`` yet, then write its table and plots.
    Returns 0 when every point succeeded, 1 when some failed (they are in the table and their JSON)."""
    from .cluster import dask_client, run_each
    from .progress import counting
    from .sweep_report import write_report

    spec = load_spec(spec_path)
    OutputFolder(out, SWEEP_RUN)  # checked before anything runs; the sweep writes into it point by point
    out = Path(out)
    with naming(spec_path):
        configs, points, row_points = plan(spec)
    store = PointStore(out)
    records = {key: record for key, point in points.items() if (record := store.load(point)) is not None
               and not (retry_failed and "error" in record)}
    todo = [point for key, point in points.items() if key not in records]
    where = scheduler or f"a local cluster ({workers or os.cpu_count()} workers)"
    print(f"sweep: {len(configs)} configurations, {len(points)} points: {len(records)} stored, {len(todo)} to run"
          + (f" on {where}" if todo else ""), flush=True)
    if todo:
        # a SIGTERM ends the sweep as Ctrl-C does: the cluster is closed, the points stored so far stay
        with ending_signals_raise(), dask_client(scheduler, workers) as client, counting("sweep", len(points), "point", progress) as update:
            update(len(records))
            for index, returned, error in run_each(client, run_point, todo, [f"sweep-{p.stage}-{p.key}" for p in todo]):
                point = todo[index]
                result, files = returned if error is None else ({"error": f"{type(error).__name__}: {error}"}, {})
                records[point.key] = store.save(point, result, files)
                if "error" in result:
                    print(f"sweep: {point.stage} {point.key} failed: {result['error']}", flush=True)
                update(len(records))
    failed = sum("error" in record for record in records.values())
    written = write_report(out, spec, configs, row_points, records)
    print(f"sweep: {len(points) - failed} of {len(points)} points done, {failed} failed; wrote {', '.join(str(out / name) for name in written)}")
    return 1 if failed else 0
