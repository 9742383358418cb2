"""The flow as one Python object: train or load, quantize, the golden model, Verilog, co-simulation,
estimates, bitstreams and boards, each step the command of the same name.

A :class:`Flow` holds a configuration and the model's parameters (float arrays, or the golden
model's stored integers once quantized; ``None``: the configuration's seeded initial weights).
:meth:`~Flow.train` and :meth:`~Flow.quantize` replace the model; the other steps read it. Every
step writes the files its command writes, through the same writers, into its own folder under the
flow's ``out`` (or the folder a step is given), and returns a small result with the paths it wrote
and its figures. The command line, ``eqprop demo`` and ``eqprop bench`` run their stages through
it, so each stage is wired once. Mistakes raise :class:`eqprop.errors.EqpropError` subclasses.

A flow's folder (``out``)::

    train/      checkpoint.npz config.json metrics.json      eqprop train --out out/train
    quantized/  checkpoint.npz config.json quantize.json     eqprop quantize --out out/quantized
    verilog/    core.v core.json (regmap.json regmap.h core.metadata.json with the Wishbone bus)
                                                             eqprop verilog --out out/verilog/core.v
    cosim/      cosim.json                                   eqprop cosim --out out/cosim
    build/      the bitstream, report.json                   eqprop build --out out/build
    board/      checkpoint.npz config.json board.json        eqprop board train --out out/board
    sim/        simulator builds (co-simulation, the simulated board)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import QUANTIZED_RUN, TRAINING_RUN, load_checkpoint, run_files, to_json
from .config import Config
from .errors import ConfigError
from .outputs import OutputFiles, OutputFolder, OutputKind, check_path_text
from .progress import counting, ticking
from .report import json_text

#: The run folder of ``eqprop cosim --out``: the co-simulation's result.
COSIM_RUN = OutputKind("co-simulation run", ("cosim.json",))
#: Each step's folder in a flow's ``out``.
FOLDERS = {"train": "train", "quantize": "quantized", "verilog": "verilog", "cosim": "cosim", "build": "build", "board": "board",
           "sim": "sim"}
VERILOG_NAME = "core.v"


@dataclass(frozen=True)
class TrainStep:
    """What :meth:`Flow.train` did: the metrics of every epoch (0: before training) and the files written."""

    config: Config
    history: list[dict]
    files: tuple[Path, ...] = ()

    @property
    def final(self) -> dict:
        return self.history[-1]


@dataclass(frozen=True)
class QuantizeStep:
    """What :meth:`Flow.quantize` did: the fixed-point configuration, the report (formats, float and
    fixed-point accuracies) and the files written."""

    config: Config
    report: dict
    files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class VerilogStep:
    """What :meth:`Flow.verilog` wrote: the Verilog first, then its configuration JSON (and the
    Wishbone slave's register map and metadata); its size, the seconds it took, the cycle formula."""

    files: tuple[Path, ...]
    lines: int
    seconds: float
    cycles: object  # eqprop.schedule.CycleCount

    @property
    def verilog(self) -> Path:
        return self.files[0]

    def to_dict(self) -> dict:
        return {"lines": self.lines, "seconds": self.seconds, "cycles": self.cycles.to_dict()}


@dataclass(frozen=True)
class CosimStep:
    """What :meth:`Flow.cosim` did: the simulator's result (:class:`eqprop.sim.runner.CosimResult`) and the files written."""

    result: object
    files: tuple[Path, ...] = ()

    @property
    def passed(self) -> bool:
        return self.result.passed


@dataclass(frozen=True)
class BuildStep:
    """What :meth:`Flow.build` did: the build report (resources, clocks, timing) in its folder."""

    report: dict
    folder: Path

    @property
    def bitstream(self) -> Path:
        return self.folder / self.report["bitstream"]

    @property
    def timing_met(self) -> bool:
        return self.report["timing_met"]


@dataclass(frozen=True)
class BoardStep:
    """What :meth:`Flow.board_train` did: the report, the weights read back from the board and the files written."""

    report: dict
    weights: dict[str, np.ndarray] = field(repr=False)
    files: tuple[Path, ...] = ()


class Flow:
    """One run of the flow: a configuration (a :class:`Config`, a preset's name, or a configuration
    file: a path, or a name ending in ``.json``) and its model, with the folder ``out`` its steps write into (``None``: steps write only
    where they are given a folder). ``replace`` lets a step replace a folder that holds other files
    than it writes; ``progress`` shows bars and clocks while steps work."""

    def __init__(self, config: Config | str | os.PathLike, out: str | os.PathLike | None = None, *,
                 params: dict[str, np.ndarray] | None = None, replace: bool = False, progress: bool = False) -> None:
        self.config = _config(config)
        self.out = None if out is None else check_path_text(out, "flow folder")
        self.params = None if params is None else _arrays(params)
        self.replace, self.progress = replace, progress
        #: The checkpoint the model was loaded from, which a quantization report names as its source
        #: (``None``: trained in this process, or the seeded initial weights).
        self.source: str | None = None
        #: The core Verilog this flow wrote for its model, which :meth:`cosim` checks by default.
        self.verilog_file: Path | None = None
        if self.params is not None:
            from .checkpoint import check_params

            check_params(self.config, self.params, "the flow's parameters")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, out: str | os.PathLike | None = None, *, arith: str | None = None,
                        replace: bool = False, progress: bool = False) -> "Flow":
        """The flow of a run folder or checkpoint file (``arith``: refuse one of the other arithmetic)."""
        config, params = load_checkpoint(path, arith=arith)
        flow = cls(config, out, params=params, replace=replace, progress=progress)
        flow.source = str(path)
        return flow

    def with_config(self, **sections: dict) -> "Flow":
        """A flow with the same model and folder, its configuration changed as :meth:`Config.replace` does."""
        return self._with(self.config.replace(**sections))

    def for_board(self, board) -> "Flow":
        """This flow on ``board`` (a name or an :class:`eqprop.boards.registry.Board`): its FPGA and hardware
        options (:meth:`~eqprop.boards.registry.Board.configure`)."""
        return self._with(_board(board).configure(self.config))

    def _with(self, config: Config) -> "Flow":
        flow = Flow(config, self.out, params=self.params, replace=self.replace, progress=self.progress)
        flow.source = self.source
        return flow

    # -- the model -------------------------------------------------------------------------------

    def train(self, data=None, out: str | os.PathLike | None = None) -> TrainStep:
        """Train the configuration (on ``data``, default its data set); the flow's model becomes the trained one.
        Writes ``checkpoint.npz``, ``config.json`` and ``metrics.json``, as ``eqprop train --out``."""
        from .train import train

        folder = self._folder(out, "train", TRAINING_RUN)
        result = train(self.config, data, progress=self.progress)
        params = _arrays(result.params)
        metrics = {"config": self.config.to_dict(), "history": result.history, "final": result.final}
        files = self._write(folder, run_files(self.config, params, "metrics.json", metrics))
        self.params, self.source, self.verilog_file = params, None, None
        return TrainStep(self.config, result.history, files)

    def evaluate(self, data=None) -> dict:
        """Loss and accuracy of the model on both splits of ``data`` (default the configuration's data set), as ``eqprop eval``."""
        from .train import check_fits, evaluate_arrays

        data = self._data(data)
        check_fits(self.config, data)
        result = {}
        for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
            result.update({f"{split}_{k}": v for k, v in evaluate_arrays(self.config, self._model_params(), x, y).items()})
        return result

    def quantize(self, fixed_config: Config | None = None, weight_bits: int | None = None, state_bits: int | None = None,
                 data=None, out: str | os.PathLike | None = None) -> QuantizeStep:
        """Convert the float model to the chip's fixed point, formats calibrated from its weights (or
        taken from ``fixed_config``'s ``fixed`` section), widths optionally changed; the flow's model
        becomes the fixed-point one. Writes ``checkpoint.npz``, ``config.json`` and ``quantize.json``,
        as ``eqprop quantize --out``."""
        from .quantize import quantize_checkpoint, resize
        from .train import check_fits

        folder = self._folder(out, "quantize", QUANTIZED_RUN)
        if self.config.training.arith != "float" or self.params is None:
            raise ConfigError("quantize converts a trained float model: train() or load a float checkpoint first")
        cfg = self.config if fixed_config is None else self.config.replace(fixed=fixed_config.to_dict()["fixed"])
        if weight_bits is not None or state_bits is not None:
            cfg = resize(cfg, weight_bits=weight_bits, state_bits=state_bits)
        data = self._data(data, cfg)
        check_fits(cfg, data)
        fixed_cfg, model, report = quantize_checkpoint(cfg, self.params, data, calibrated=fixed_config is None)
        report["source"] = self.source
        report["calibrated"] = fixed_config is None
        files = self._write(folder, run_files(fixed_cfg, model.params, "quantize.json", report))
        self.config, self.params, self.source, self.verilog_file = fixed_cfg, model.params, None, None
        return QuantizeStep(fixed_cfg, report, files)

    def predict(self, x) -> np.ndarray:
        """Class predictions for inputs ``x`` (rows of the data set's floats): the golden model's, as
        the chip infers, once the model is fixed-point; else the float model's."""
        x = np.atleast_2d(np.asarray(x))
        if self.config.training.arith == "fixed":
            from .golden import quantize_inputs

            model = self._golden()
            return model.predict(quantize_inputs(model.arith, x))
        import torch

        from .mlp import forward
        from .network import free_phase

        dtype = getattr(torch, self.config.training.dtype)
        params = {k: torch.as_tensor(v).to(dtype) for k, v in self._model_params().items()}
        inputs = torch.as_tensor(x).to(dtype)
        with torch.no_grad():
            out = forward(self.config.network, params, inputs) if self.config.learning.rule == "mlp" else \
                free_phase(self.config.network, params, inputs, self.config.learning.T1)[-1]
        return out.argmax(1).numpy()

    def trace(self, x, label: int | None = None):
        """Every write the chip makes for one input ``x`` (a row of the data set's floats), with its
        cycle: an inference, or with ``label`` the training of that sample (the flow's model is left
        as it is). An :class:`eqprop.schedule.WriteTrace`."""
        from .golden import quantize_inputs
        from .schedule import sample_trace

        model = self._golden()
        return sample_trace(model, quantize_inputs(model.arith, np.atleast_2d(np.asarray(x)))[0],
                            0 if label is None else int(label), train=label is not None)

    # -- hardware --------------------------------------------------------------------------------

    def verilog(self, bus: str = "streams", out: str | os.PathLike | None = None) -> VerilogStep:
        """Write the core's Verilog (``bus="wishbone"``: behind its Wishbone slave) with the model's
        weights as its memories' initial contents, and its configuration JSON beside it (with the
        Wishbone bus also ``regmap.json``, ``regmap.h`` and ``.metadata.json``), as ``eqprop verilog --out``."""
        from .schedule import cycle_count

        path = self._path(out, "verilog", VERILOG_NAME)
        if path.suffix != ".v" or str(out if out is not None else path).endswith(("/", os.sep)):
            raise ConfigError(f"{out if out is not None else path} must name a Verilog file ending in .v (its configuration goes beside it as .json)")
        beside = [path.with_name("regmap.json"), path.with_name("regmap.h"), path.with_suffix(".metadata.json")] if bus == "wishbone" else []
        files = OutputFiles([path, path.with_suffix(".json"), *beside], "Verilog output")
        cfg, params = self._chip()
        started = time.perf_counter()
        if bus == "wishbone":
            from .hw.verilog import wishbone_verilog

            text, slave = wishbone_verilog(cfg, params)
            extra = [to_json(slave.regmap.to_dict()), slave.regmap.c_header(), json_text(slave.metadata.as_json(), indent=2) + "\n"]
        elif bus == "streams":
            from .hw.verilog import core_verilog

            text, extra = core_verilog(cfg, params), []
        else:
            raise ConfigError(f"unknown bus {bus!r}: streams or wishbone")
        seconds = time.perf_counter() - started
        files.write([text, cfg.to_json() + "\n", *extra])
        if bus == "streams":
            self.verilog_file = path
        return VerilogStep(tuple(files.paths), len(text.splitlines()), seconds, cycle_count(cfg))

    def cosim(self, samples: int | None = None, sim: str = "verilator", verilog: str | os.PathLike | None = None, waves: str | None = None,
              build_dir: str | os.PathLike | None = None, data=None, out: str | os.PathLike | None = None) -> CosimStep:
        """Train the first ``samples`` training samples (default all) of ``data`` (default the
        configuration's data set) on the core's Verilog under the simulator, every write checked
        against the golden model: the file ``verilog`` (checked against
        the configuration), else the Verilog this flow wrote, else one generated now. Writes
        ``cosim.json``, as ``eqprop cosim --out``.
        Simulator builds go to ``build_dir`` (default: the flow's ``sim/``, else ``build/cosim``), and
        with ``waves`` ("vcd" or "fst") a waveform of the whole run."""
        from .hw.core import check_buildable
        from .sim.runner import cosim, training_samples

        folder = self._folder(out, "cosim", COSIM_RUN)
        cfg, params = self._chip(initial=True)
        check_buildable(cfg)
        x, labels = training_samples(cfg, samples, data=data)
        with ticking(f"{sim}: {len(x)} samples", self.progress):
            result = cosim(cfg, params, x, labels, sim=sim, verilog=verilog or self.verilog_file, waves=waves,
                           build_root=self._work_folder(build_dir, "build/cosim"))
        return CosimStep(result, self._write(folder, {"cosim.json": to_json(result.to_dict())}))

    def estimate(self, lanes: list[int] = (1, 2, 4, 8, 16), fpga: str | None = None) -> list:
        """DSPs, RAM, LUTs, cycles and samples/s at each lane count on ``fpga`` (default
        ``hardware.fpga``), before synthesis: a list of :class:`eqprop.hw.estimate.Estimate`, as ``eqprop estimate``."""
        from .hw.estimate import estimate

        return estimate(self.config if fpga is None else self.config.replace(hardware={"fpga": fpga}), list(lanes))

    def build(self, board, out: str | os.PathLike | None = None, bus: str = "uart") -> BuildStep:
        """Build ``board``'s bitstream (a name or a :class:`~eqprop.boards.registry.Board`): the SoC with
        this configuration's core (``bus="wishbone"``: the core's Wishbone slave alone), through Yosys,
        nextpnr and the packer, as ``eqprop build --out``."""
        from .boards.build import build

        board = _board(board)
        folder = self._path(out, "build")
        with ticking(f"{board.name}: Yosys, nextpnr, packer", self.progress):
            report = build(board, self.config, folder, replace=self.replace, bus=bus)
        return BuildStep(report, folder)

    def board_train(self, board, samples: int = 200, test_samples: int = 100, port: str | None = None, retries: int = 3,
                    build_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None) -> BoardStep:
        """Load the model onto ``board`` over its link (``port``: a serial port or pyserial URL; without
        one the simulated board, built in ``build_dir``), test it on ``test_samples``, train ``samples``,
        test again and read the weights back, compared with the golden model's. Writes
        ``checkpoint.npz`` (the weights read back), ``config.json`` and ``board.json``, as ``eqprop board train --out``."""
        from .boards.train import BOARD_RUN, board_train, open_link
        from .outputs import check_work_folder
        from .sim.runner import training_samples

        board = _board(board)
        folder = self._folder(out, "board", BOARD_RUN)
        root = None if port is not None else check_work_folder(self._work_folder(build_dir, "build/board-sim"), "simulated board's build folder")
        if folder is not None and root is not None and _nested(folder.path, root):
            raise ConfigError(f"the board's run folder {folder.path} and its build folder {root} overlap: give them separate folders")
        cfg, params = self._chip(initial=True)
        x, labels = training_samples(cfg, samples)
        test_x, test_y = training_samples(cfg, test_samples, split="test")
        with ticking("Verilator: building the SoC", self.progress and port is None):
            link = open_link(board, cfg, port=port, build_root=root or "build/board-sim", retries=retries)
        try:
            with counting(f"{board.name}: training", samples, "sample", self.progress) as update:
                report, weights = board_train(board, cfg, link, params, x, labels, test_x, test_y, simulated=port is None, progress=update)
        finally:
            link.transport.close()
        return BoardStep(report, weights, self._write(folder, run_files(cfg, weights, "board.json", report)))

    # -- pieces ----------------------------------------------------------------------------------

    def _path(self, out, step: str, name: str | None = None) -> Path:
        """The path a step writes: ``out`` when given, else its place in the flow's folder."""
        if out is not None:
            return check_path_text(out, f"{step} output")
        if self.out is None:
            raise ConfigError(f"{step}: give it an output path, or the flow a folder (Flow(..., out=FOLDER))")
        path = self.out / FOLDERS[step]
        return path / name if name else path

    def _folder(self, out, step: str, kind: OutputKind) -> OutputFolder | None:
        """The checked run folder of a step, or ``None`` when neither the step nor the flow has one."""
        if out is None and self.out is None:
            return None
        return OutputFolder(self._path(out, step), kind, self.replace)

    def _work_folder(self, given, default: str) -> Path:
        """Where simulators build: ``given``, else the flow's ``sim/``, else ``default``."""
        if given is not None:
            return Path(given)
        return self.out / FOLDERS["sim"] if self.out is not None else Path(default)

    @staticmethod
    def _write(folder: OutputFolder | None, files: dict[str, bytes | str]) -> tuple[Path, ...]:
        if folder is None:
            return ()
        folder.write(files)
        return tuple(folder.path / name for name in files)

    def _data(self, data=None, cfg: Config | None = None):
        from .train import model_data

        return model_data(cfg or self.config, data)

    def _model_params(self) -> dict[str, np.ndarray]:
        """The model's parameters: trained or loaded, else the configuration's seeded initial weights."""
        if self.params is not None:
            return self.params
        if self.config.training.arith == "fixed":
            return self._chip(initial=True)[1]
        import torch

        from .network import init_params

        generator = torch.Generator().manual_seed(self.config.training.seed)
        return _arrays(init_params(self.config.network, generator, getattr(torch, self.config.training.dtype)))

    def _chip(self, initial: bool = False) -> tuple[Config, dict[str, np.ndarray] | None]:
        """The configuration in the chip's arithmetic and the model's stored integers; without a model
        ``None``, or with ``initial`` the seeded initial weights' integers. A float model must be quantized first."""
        if self.config.training.arith == "float" and self.params is not None:
            raise ConfigError("the chip takes the golden model's integers: quantize() the float model first")
        cfg = self.config.replace(training={"arith": "fixed"})
        if self.params is None and initial:
            from .sim.runner import initial_params

            return cfg, initial_params(cfg)
        return cfg, self.params

    def _golden(self):
        from .golden import Arith, GoldenModel

        cfg, params = self._chip(initial=True)
        return GoldenModel(Arith.from_config(cfg), {k: v.copy() for k, v in params.items()})


def _config(config: Config | str | os.PathLike) -> Config:
    """A configuration, the preset of that name, or the configuration file at that path (a
    :class:`~pathlib.Path`, or a name ending in ``.json``)."""
    if isinstance(config, Config):
        return config
    if isinstance(config, str) and not config.endswith(".json"):
        from . import presets

        return presets.get(config)
    return Config.load(config)


def _arrays(params: dict) -> dict[str, np.ndarray]:
    """Parameters as numpy arrays (the float model trains torch tensors)."""
    return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in params.items()}


def _board(board):
    from .boards.registry import get_board

    return get_board(board) if isinstance(board, str) else board


def _nested(a: Path, b: Path) -> bool:
    """Whether one of the folders ``a`` and ``b`` is, or lies inside, the other."""
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents
