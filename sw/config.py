"""The one configuration object of eqprop.

:class:`Config` describes the network, how it learns and how it is trained. Every layer of the
toolchain reads it; it round-trips through JSON (``Config.to_json`` / ``Config.from_json``) and is
stored inside every checkpoint. Validation happens in ``Config.validate`` and names the field at
fault, so a bad configuration is refused before anything is computed or written.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import limits
from .errors import ConfigError
from .fixed import Format
from .lfsr import Lfsr

CONFIG_VERSION = 1

#: Learning rules. ``ep``/``cep`` need tied weights, ``vf``/``cvf`` untied ones; the ``c`` forms
#: update the weights at every nudged step (continual). ``bptt``, ``rbp`` and ``mlp`` are the
#: gradient baselines: backprop through the free phase, implicit (recurrent backprop) gradients
#: at the fixed point, and a feed-forward MLP of the same shape trained by backprop.
RULES = ("ep", "cep", "vf", "cvf", "bptt", "rbp", "mlp")
EP_RULES = ("ep", "cep", "vf", "cvf")
CONTINUAL_RULES = ("cep", "cvf")
NUDGINGS = ("one-sided", "symmetric", "random-sign")
ACTIVATIONS = ("hardsigmoid", "sigmoid", "identity")
HOMEOSTASIS_MODES = ("off", "local", "probe")
UNTIED_INITS = ("transpose", "independent", "matched")
DATASETS = ("digits", "mnist1d", "mnist", "fashion-mnist")
DTYPES = ("float32", "float64")
#: ``float``: the PyTorch reference model. ``fixed``: the integer golden model, the chip's arithmetic.
ARITHS = ("float", "fixed")
#: How the float model computes continual updates (TrainingConfig.continual).
CONTINUAL_FORMS = ("factored", "literal")
LR_SCHEDULES = ("constant", "cosine")
#: FPGAs with a resource budget the core is checked against (eqprop.hw.devices).
FPGAS = ("generic", "ice40up5k", "ecp5-85f")


def fields_json(fields: dict) -> str:
    """A configuration's fields (``Config.to_dict``, or part of it) as :meth:`Config.to_json` writes them."""
    return json.dumps(fields, indent=2, sort_keys=True)


def phase_count(nudging: str) -> int:
    """Nudged phases per sample: symmetric nudging runs +beta and -beta, the others one phase."""
    return 2 if nudging == "symmetric" else 1


def rule_is_tied(rule: str) -> bool | None:
    """Whether an EP rule needs tied weights (``None`` for the baselines, which take either)."""
    if rule in ("ep", "cep"):
        return True
    if rule in ("vf", "cvf"):
        return False
    return None


@dataclass
class NetworkConfig:
    """Shape and dynamics of the layered convergent network."""

    #: Units per layer, input first, output last: ``[n_0, n_1, ..., n_L]``.
    sizes: list[int] = field(default_factory=lambda: [64, 128, 10])
    #: Tied: ``B_l = W_l^T`` (one stored matrix). Untied: ``B_l`` is its own parameter.
    tied: bool = True
    #: ``hardsigmoid`` is the hardware's rho; ``sigmoid`` and ``identity`` are float-only.
    activation: str = "hardsigmoid"
    #: How untied ``B_l`` starts: as ``W_l^T`` (``transpose``), or drawn independently of ``W_l``, at a
    #: random angle to ``W_l^T``: uniform at its own fan-in's scale (``independent``, the larger
    #: feedback), or at ``W_l^T``'s scale (``matched``: only the angle differs).
    untied_init: str = "independent"
    #: Weights start uniform in ``+-gain/sqrt(fan_in)``.
    init_gain: float = 1.0

    @property
    def n_layers(self) -> int:
        """Number of weight layers L (the output layer is layer L)."""
        return len(self.sizes) - 1


@dataclass
class LearningConfig:
    """How the network learns: rule, phases, nudging, learning rates and homeostasis."""

    rule: str = "cep"
    nudging: str = "symmetric"
    #: Free-phase steps.
    T1: int = 30
    #: Nudged-phase steps (per phase; symmetric nudging runs two phases).
    T2: int = 10
    #: Nudge strength |beta|.
    beta: float = 0.5
    #: One learning rate per weight layer ``W_l`` (also used for ``b_{l+1}`` and ``B_l``).
    lr: list[float] = field(default_factory=lambda: [0.05, 0.025])
    #: Jacobian homeostasis: ``off``, the ``local`` pairwise rule, or the ``probe`` estimator.
    homeostasis: str = "off"
    #: Homeostasis step size lambda (``W -= lambda (W - B^T)`` for the local rule).
    homeostasis_coef: float = 0.0
    #: Apply homeostasis once every this many training samples.
    homeostasis_period: int = 1
    #: Gaussian probes per application of the probe estimator.
    homeostasis_probes: int = 1


@dataclass
class TrainingConfig:
    """Data and the training loop."""

    dataset: str = "digits"
    #: Folder with the IDX files, for ``mnist`` and ``fashion-mnist`` (default: where ``eqprop data get`` puts them).
    data_dir: str | None = None
    epochs: int = 30
    batch_size: int = 16
    seed: int = 0
    #: Torch device of the float model (``cpu``, ``cuda``, ``cuda:1``...).
    device: str = "cpu"
    dtype: str = "float32"
    #: Samples used each epoch to measure gradient alignment with BPTT (0 to skip).
    probe_samples: int = 128
    #: ``float`` trains the reference model; ``fixed`` the golden model, one sample at a time as the chip.
    arith: str = "float"
    #: How the float model computes continual updates (C-EP, C-VF): ``factored`` keeps each nudged
    #: phase's weight changes as low-rank factors and writes the weights once per phase;
    #: ``literal`` writes them at every step. Same weights up to float rounding.
    continual: str = "factored"
    #: Learning rates per epoch: ``constant``, or ``cosine`` (annealed from ``learning.lr`` towards 0
    #: over the epochs, as the seeds train MNIST). The chip's rates are constants: float only.
    lr_schedule: str = "constant"
    #: Subtract the training split's mean input from every input, train and test (float only: the
    #: chip takes unsigned pixels). The continual rules need it on bright images: a batch's ``W_0``
    #: increments move every sample's drive in proportion to ``x . x'``, on average 94 between two
    #: Fashion-MNIST images (35 on MNIST, 0 once centred), and at the rates that learn, that feedback
    #: drove the hidden layer to saturation within the nudged phase.
    center_inputs: bool = False


_FORMAT_FIELDS = ("input", "state", "weight", "bias", "accumulator", "update", "factor")


@dataclass
class FixedConfig:
    """Number formats of the chip's datapath, read by the golden model and the HDL.

    Formats use the ``fixedpoint`` package's vocabulary (``signed``, ``m`` integer bits counting
    the sign, ``n`` fraction bits, ``rounding``, ``overflow`` = ``clamp``). Weights and biases are
    stored with ``learn_bits`` extra fraction bits, so that the small per-step C-EP increments
    accumulate instead of rounding away; the multipliers see the ``weight`` format (rounded with
    its mode). With ``stochastic_rounding`` the increments are rounded with random bits from the
    ``lfsr`` instead. How each format is used is documented in :mod:`eqprop.golden`.
    """

    #: Input pixels x (clamped into layer 0).
    input: Format = Format(False, 1, 7)
    #: Neuron states (hidden states are in [0, 1]; the nudged output leaves it by up to beta).
    state: Format = Format(True, 2, 14)
    #: Weights as the multipliers see them.
    weight: Format = Format(True, 2, 14)
    #: Biases (added to the accumulator at their stored precision).
    bias: Format = Format(True, 4, 12)
    #: Dot-product accumulator; sized so that no drive can overflow it (checked).
    accumulator: Format = Format(True, 12, 28)
    #: The per-neuron learning factors ``eta/beta * s`` the weight updates are built from.
    update: Format = Format(True, 1, 15)
    #: Constants: beta, the learning-rate factors eta_l/(phases beta) and the homeostasis lambda.
    factor: Format = Format(False, 1, 15)
    #: Extra fraction bits of stored weights and biases.
    learn_bits: int = 8
    #: Round weight increments stochastically with the LFSR's bits (else with the storage format's mode).
    stochastic_rounding: bool = False
    #: The LFSR behind stochastic rounding and random-sign nudging.
    lfsr: Lfsr = Lfsr()

    def __post_init__(self) -> None:
        for name in _FORMAT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Format):
                setattr(self, name, Format.from_dict(value, f"fixed.{name}"))
        if isinstance(self.lfsr, dict):
            unknown = set(self.lfsr) - {"width", "taps", "seed"}
            if unknown:
                raise ConfigError(f"unknown field(s) in fixed.lfsr: {', '.join(sorted(unknown))}")
            self.lfsr = Lfsr(**self.lfsr)
        elif not isinstance(self.lfsr, Lfsr):
            raise ConfigError("fixed.lfsr must be an object with width, taps and seed")

    def formats(self) -> dict[str, Format]:
        return {name: getattr(self, name) for name in _FORMAT_FIELDS}


@dataclass
class HardwareConfig:
    """How the chip is built: what the cycle-count formula and the HDL read."""

    #: P, the number of parallel MAC lanes the datapath is time-multiplexed over.
    lanes: int = 1
    #: The FPGA the core is built for (its DSP width and count, its RAM), checked before any HDL
    #: is built: ``generic`` (no budget), ``ice40up5k``, ``ecp5-85f``.
    fpga: str = "generic"
    #: Defer the updates of the input weights W_0 to the end of the sample (eqprop.golden
    #: documents the arithmetic): x is clamped, so the nudged phases' increments of W_0 telescope,
    #: and W_0 x is tracked exactly in the accumulator instead. Off: W_0 is read, modified and
    #: written after every nudged step, and W_0 x recomputed from it.
    defer_input_updates: bool = True


@dataclass
class Config:
    """Network + learning + training: the single source of truth, serializable to JSON."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    fixed: FixedConfig = field(default_factory=FixedConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    version: int = CONFIG_VERSION

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return fields_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> "Config":
        if not isinstance(data, dict):
            raise ConfigError("configuration must be a JSON object")
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"configuration version {version!r} is not supported (this eqprop reads {CONFIG_VERSION})")
        sections = {f.name: f.type for f in dataclasses.fields(cls) if f.name != "version"}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        kwargs = {}
        for name, section_cls in SECTIONS.items():
            kwargs[name] = _section_from_dict(section_cls, name, data.get(name, {}))
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "Config":
        limits.check_at_most("the configuration's size in bytes", len(text), "MAX_CONFIG_BYTES")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"configuration is not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError(f"configuration is nested deeper than {limits.MAX_JSON_DEPTH} levels") from None
        if _depth(data) > limits.MAX_JSON_DEPTH:
            raise ConfigError(f"configuration is nested deeper than {limits.MAX_JSON_DEPTH} levels")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a configuration file (at most ``limits.MAX_CONFIG_BYTES``, UTF-8 JSON)."""
        if not str(path).strip():
            raise ConfigError("the configuration file name is empty")
        path = Path(path)
        raw = limits.read_file(path, "configuration", "MAX_CONFIG_BYTES", ConfigError)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"configuration {path} is not UTF-8 text (byte {exc.start})") from None
        return cls.from_json(text)

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A validated copy with some fields changed: ``cfg.replace(learning={"beta": 0.1})``."""
        data = self.to_dict()
        for section, values in sections.items():
            if section not in data or not isinstance(data[section], dict):
                raise ConfigError(f"unknown configuration section {section!r}")
            data[section].update(values)
        return Config.from_dict(data)

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> "Config":
        """Raise :class:`ConfigError` naming the first field that is out of range or inconsistent."""
        net, learn, train = self.network, self.learning, self.training
        _check_choice("network.activation", net.activation, ACTIVATIONS)
        _check_choice("network.untied_init", net.untied_init, UNTIED_INITS)
        _check_choice("learning.rule", learn.rule, RULES)
        _check_choice("learning.nudging", learn.nudging, NUDGINGS)
        _check_choice("learning.homeostasis", learn.homeostasis, HOMEOSTASIS_MODES)
        _check_choice("training.dataset", train.dataset, DATASETS)
        _check_choice("training.dtype", train.dtype, DTYPES)
        _check_choice("training.arith", train.arith, ARITHS)
        _check_choice("training.continual", train.continual, CONTINUAL_FORMS)
        _check_choice("training.lr_schedule", train.lr_schedule, LR_SCHEDULES)

        if not isinstance(net.sizes, list) or len(net.sizes) < 2:
            raise ConfigError("network.sizes must list at least an input and an output layer, e.g. [64, 128, 10]")
        limits.check_at_most("the number of weight layers (network.sizes)", len(net.sizes) - 1, "MAX_LAYERS")
        for i, n in enumerate(net.sizes):
            if not _is_int(n) or n < 1:
                raise ConfigError(f"network.sizes[{i}] must be a positive integer, got {n!r}")
            limits.check_at_most(f"network.sizes[{i}]", n, "MAX_UNITS")
        if not isinstance(net.tied, bool):
            raise ConfigError(f"network.tied must be true or false, got {net.tied!r}")
        _check_positive("network.init_gain", net.init_gain)
        weights = sum(a * b for a, b in zip(net.sizes, net.sizes[1:])) * (1 if net.tied else 2)
        limits.check_at_most(f"the number of weights of network.sizes {net.sizes}", weights, "MAX_WEIGHTS")

        needs_tied = rule_is_tied(learn.rule)
        if needs_tied is True and not net.tied:
            raise ConfigError(f"rule {learn.rule!r} needs tied weights (network.tied = true); use 'vf'/'cvf' for untied weights")
        if needs_tied is False and net.tied:
            raise ConfigError(f"rule {learn.rule!r} needs untied weights (network.tied = false); use 'ep'/'cep' for tied weights")

        for name in ("T1", "T2"):
            value = getattr(learn, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"learning.{name} must be a positive number of steps, got {value!r}")
            limits.check_at_most(f"learning.{name}", value, "MAX_STEPS")
        beta = learn.beta
        if not _is_number(beta) or not math.isfinite(beta) or not 0 < beta <= 1:
            raise ConfigError(f"learning.beta must be in (0, 1] (the nudge strength |beta|), got {beta!r}")
        if not isinstance(learn.lr, list) or len(learn.lr) != net.n_layers:
            raise ConfigError(
                f"learning.lr must list one learning rate per weight layer: {net.n_layers} for sizes {net.sizes}, got {learn.lr!r}"
            )
        for i, lr in enumerate(learn.lr):
            _check_positive(f"learning.lr[{i}]", lr)
        if learn.homeostasis != "off":
            if net.tied:
                raise ConfigError("learning.homeostasis needs untied weights: tied weights are symmetric already")
            if net.n_layers < 2:
                raise ConfigError("learning.homeostasis needs a hidden layer: without one there is no reciprocal W/B pair")
            coef = learn.homeostasis_coef
            if not _is_number(coef) or not math.isfinite(coef) or not 0 < coef <= 0.5:
                raise ConfigError(f"learning.homeostasis_coef must be in (0, 0.5] when homeostasis is on, got {coef!r}")
        _check_count("learning.homeostasis_period", learn.homeostasis_period, 1, "MAX_PERIOD")
        _check_count("learning.homeostasis_probes", learn.homeostasis_probes, 1, "MAX_PROBES")

        _check_count("training.epochs", train.epochs, 1, "MAX_EPOCHS")
        _check_count("training.batch_size", train.batch_size, 1, "MAX_BATCH_SIZE")
        _check_count("training.seed", train.seed, 0, "MAX_SEED")
        _check_count("training.probe_samples", train.probe_samples, 0, "MAX_PROBE_SAMPLES")
        if train.data_dir is not None and (not isinstance(train.data_dir, str) or not train.data_dir):
            raise ConfigError(f"training.data_dir must name a folder (or be null), got {train.data_dir!r}")
        if not isinstance(train.device, str) or not train.device:
            raise ConfigError(f"training.device must name a torch device, got {train.device!r}")

        fx = self.fixed
        _check_count("fixed.learn_bits", fx.learn_bits, 0, "MAX_LEARN_BITS")
        if not isinstance(fx.stochastic_rounding, bool):
            raise ConfigError(f"fixed.stochastic_rounding must be true or false, got {fx.stochastic_rounding!r}")
        _check_count("hardware.lanes", self.hardware.lanes, 1, "MAX_LANES")
        _check_choice("hardware.fpga", self.hardware.fpga, FPGAS)
        if not isinstance(self.hardware.defer_input_updates, bool):
            raise ConfigError(f"hardware.defer_input_updates must be true or false, got {self.hardware.defer_input_updates!r}")
        if not isinstance(train.center_inputs, bool):
            raise ConfigError(f"training.center_inputs must be true or false, got {train.center_inputs!r}")
        if train.arith == "fixed" and train.center_inputs:
            raise ConfigError("training.center_inputs needs arith float: the chip's inputs are unsigned pixels")
        if train.arith == "fixed" and train.lr_schedule != "constant":
            raise ConfigError("training.lr_schedule must be constant with arith fixed: the chip's learning rates are constants")
        if train.arith == "fixed":
            from .golden import Arith  # the formats' range checks need the derived constants

            Arith.from_config(self)
        return self


SECTIONS = {
    "network": NetworkConfig,
    "learning": LearningConfig,
    "training": TrainingConfig,
    "fixed": FixedConfig,
    "hardware": HardwareConfig,
}


def _section_from_dict(section_cls: type, name: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"configuration section {name!r} must be a JSON object")
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown field(s) in {name}: {', '.join(sorted(unknown))}")
    return section_cls(**values)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a number or string is 0 deep), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_count(name: str, value: Any, least: int, limit: str) -> None:
    """An integer from ``least`` up to the limit called ``limit`` in :mod:`eqprop.limits`."""
    if not _is_int(value) or value < least:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(least, f"an integer of at least {least}")
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    limits.check_at_most(name, value, limit)


def _check_positive(name: str, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
