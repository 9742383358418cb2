"""The sweep file of ``eqprop sweep`` (TOML or JSON): what to vary, over which stages.

::

    base = "digits-cep-chip"            # a preset; or  config = "my-config.json"  (beside the sweep file)
    stages = ["fixed-train", "estimate"]

    [set]                               # the same for every point
    "training.epochs" = 1

    [grid]                              # every combination of these
    "fixed.weight.n" = [6, 10, 14]
    "hardware.lanes" = [1, 2, 4, 8]
    "hardware.fpga" = ["ice40up5k", "ecp5-85f"]
    "training.seed" = [0, 1]

    [random]                            # and/or random samples: the same ones for the same seed
    samples = 4
    seed = 0
    [random.fields]
    "learning.beta" = { uniform = [0.2, 1.0] }     # also log-uniform, and integers (both ends included)
    "fixed.learn_bits" = [4, 6, 8]                  # a list: one of these

    [cosim]                             # for the cosim stage
    samples = 4
    simulator = "verilator"

Fields are dotted paths into the configuration's JSON (``eqprop presets --show NAME`` prints one),
any of them: ``network.sizes``, ``learning.rule``, ``fixed.state.n``, ``hardware.defer_input_updates``...
Each grid combination, with each random sample, is one configuration. Unless the sweep sets
``fixed.accumulator`` itself, every configuration's accumulator is refitted to its formats, as
``eqprop train --weight-bits`` does. ``training.arith`` follows from the stage. Everything is
checked here, every configuration included, before any point runs.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import limits, presets
from .config import Config
from .errors import EqpropError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SweepError(EqpropError):
    """A sweep file that cannot be read or asks for something that does not exist."""


#: Stages in the order a configuration goes through them; :mod:`eqprop.sweep` runs them.
STAGES = ("float-train", "fixed-train", "estimate", "build", "cosim")
#: Stages that run on an FPGA's figures: every configuration needs ``hardware.fpga`` to name one.
FPGA_STAGES = ("estimate", "build")
SIMULATORS = ("verilator", "icarus")
#: Distributions of a random field besides a list of choices: name -> draw(rng, low, high).
DISTRIBUTIONS = {
    "uniform": lambda rng, low, high: rng.uniform(low, high),
    "log-uniform": lambda rng, low, high: math.exp(rng.uniform(math.log(low), math.log(high))),
    "integers": lambda rng, low, high: rng.randint(low, high),
}
_KEYS = {"base", "config", "stages", "set", "grid", "random", "cosim"}


@dataclass(frozen=True)
class Row:
    """One configuration of the sweep: the swept fields' values and the configuration they give."""

    values: dict[str, Any]
    config: Config


@dataclass(frozen=True)
class SweepSpec:
    base: Config
    stages: tuple[str, ...]
    #: Fields set for every point, and the grid's fields with their values.
    fixed: dict[str, Any]
    grid: dict[str, list]
    #: Random fields (path -> a list of choices, or {distribution: [low, high]}), samples, seed.
    random_fields: dict[str, Any]
    samples: int
    seed: int
    cosim_samples: int
    simulator: str

    @property
    def swept(self) -> list[str]:
        return [*self.grid, *self.random_fields]

    def to_dict(self) -> dict:
        return {"base": self.base.to_dict(), "stages": list(self.stages), "set": self.fixed, "grid": self.grid,
                "random": {"samples": self.samples, "seed": self.seed, "fields": self.random_fields},
                "cosim": {"samples": self.cosim_samples, "simulator": self.simulator}}


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; :class:`SweepError` names the file and what is wrong."""
    path = Path(path)
    data = _read(path)
    with naming(path):
        return parse_spec(data, path.parent)


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Errors raised inside name the sweep file ``path``."""
    try:
        yield
    except EqpropError as error:
        raise SweepError(f"sweep file {path}: {error}") from None


def _read(path: Path) -> dict:
    if path.suffix not in (".toml", ".json"):
        raise SweepError(f"sweep file {path}: name it .toml or .json")
    raw = limits.read_file(path, "sweep file", "MAX_CONFIG_BYTES", SweepError)
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SweepError(f"sweep file {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {path} must hold an object (a table) at the top")
    return data


def parse_spec(data: dict, folder: Path) -> SweepSpec:
    """The checked sweep of a parsed sweep file; ``folder``: where its ``config`` path is relative to."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SweepError(f"unknown key(s) {', '.join(unknown)}; a sweep file has {', '.join(sorted(_KEYS))}")
    base = _base_config(data, folder)
    stages = _stages(data.get("stages"))
    fixed = _table(data, "set")
    grid = _table(data, "grid")
    rand = _table(data, "random")
    unknown = sorted(set(rand) - {"samples", "seed", "fields"})
    if unknown:
        raise SweepError(f"unknown key(s) in random: {', '.join(unknown)}; it has samples, seed and fields")
    random_fields = _table(rand, "fields", "random.fields")
    samples = _count(rand.get("samples", 1 if random_fields else 0), "random.samples", 0, "MAX_RUNS")
    if random_fields and not samples:
        raise SweepError("random.fields needs random.samples of at least 1")
    cosim = _table(data, "cosim")
    unknown = sorted(set(cosim) - {"samples", "simulator"})
    if unknown:
        raise SweepError(f"unknown key(s) in cosim: {', '.join(unknown)}; it has samples and simulator")
    simulator = cosim.get("simulator", "verilator")
    if simulator not in SIMULATORS:
        raise SweepError(f"cosim.simulator must be {' or '.join(SIMULATORS)}, got {simulator!r}")
    spec = SweepSpec(base, stages, fixed, grid, random_fields, samples, _count(rand.get("seed", 0), "random.seed", 0, "MAX_SEED"),
                     _count(cosim.get("samples", 4), "cosim.samples", 1, "MAX_SAMPLES"), simulator)
    _check_fields(spec)
    return spec


def _base_config(data: dict, folder: Path) -> Config:
    if ("base" in data) == ("config" in data):
        raise SweepError("give one of base (a preset's name) and config (a configuration file)")
    if "base" in data:
        if not isinstance(data["base"], str):
            raise SweepError(f"base must name a preset, got {data['base']!r}")
        return presets.get(data["base"])
    if not isinstance(data["config"], str) or not data["config"].strip():
        raise SweepError(f"config must be a configuration file's path, got {data['config']!r}")
    return Config.load(folder / data["config"])


def _stages(stages: Any) -> tuple[str, ...]:
    if not isinstance(stages, list) or not stages:
        raise SweepError(f"stages must list at least one of {', '.join(STAGES)}")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise SweepError(f"unknown stage(s) {', '.join(map(repr, bad))}; choose from {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in stages)


def _table(data: dict, key: str, name: str | None = None) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SweepError(f"{name or key} must be a table of fields")
    return value


def _count(value: Any, name: str, least: int, limit: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise SweepError(f"{name} must be an integer of at least {least}, got {value!r}")
    limits.check_at_most(name, value, limit)
    return value


def _check_fields(spec: SweepSpec) -> None:
    """Every field exists in the configuration, none is named twice, and the values have the right shape."""
    base = spec.base.to_dict()
    named = [*spec.fixed, *spec.grid, *spec.random_fields]
    for path in named:
        field_value(base, path)
        if path == "training.arith":
            raise SweepError("training.arith follows from the stages (float-train, fixed-train): leave it out")
    twice = sorted({p for p in named if named.count(p) > 1})
    if twice:
        raise SweepError(f"field(s) {', '.join(twice)} named more than once across set, grid and random")
    for path, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid field {path} must list at least one value")
    for path, values in spec.random_fields.items():
        _check_distribution(path, values)
    points = math.prod(len(v) for v in spec.grid.values()) * max(spec.samples, 1)
    limits.check_at_most("the sweep's number of configurations", points, "MAX_RUNS")


def field_value(data: dict, path: str) -> Any:
    """The value at the dotted ``path`` of a configuration's dictionary; :class:`SweepError` for no such field."""
    node, walked = data, []
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(walked) or "the configuration"
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "no fields"
            raise SweepError(f"unknown configuration field {path!r} ({where} has {known})")
        node = node[part]
        walked.append(part)
    return node


def _set_field(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


def _check_distribution(path: str, spec: Any) -> None:
    if isinstance(spec, list) and spec:
        return
    if isinstance(spec, dict) and len(spec) == 1:
        (name, bounds), = spec.items()
        if name in DISTRIBUTIONS and isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds):
            low, high = bounds
            if low > high:
                raise SweepError(f"random field {path}: {name} needs low <= high, got {bounds}")
            if name == "log-uniform" and low <= 0:
                raise SweepError(f"random field {path}: log-uniform needs positive bounds, got {bounds}")
            if name == "integers" and not all(isinstance(b, int) for b in bounds):
                raise SweepError(f"random field {path}: integers needs integer bounds, got {bounds}")
            return
    raise SweepError(f"random field {path} must be a list of choices or one of "
                     f"{', '.join(f'{{{name} = [low, high]}}' for name in DISTRIBUTIONS)}, got {spec!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _random_values(spec: SweepSpec) -> list[dict[str, Any]]:
    """The random samples' values, drawn in order from one generator: more samples keep the first ones."""
    if not spec.samples:
        return [{}]
    rng = random.Random(spec.seed)
    samples = []
    for _ in range(spec.samples):
        values = {}
        for path, dist in spec.random_fields.items():
            if isinstance(dist, list):
                values[path] = rng.choice(dist)
            else:
                (name, (low, high)), = dist.items()
                values[path] = DISTRIBUTIONS[name](rng, low, high)
        samples.append(values)
    return samples


def rows(spec: SweepSpec) -> list[Row]:
    """Every configuration of the sweep, checked; :class:`SweepError` names the first invalid one."""
    grid = [dict(zip(spec.grid, combination)) for combination in itertools.product(*spec.grid.values())]
    out = []
    for sample in _random_values(spec):
        for values in grid:
            values = {**values, **sample}
            try:
                out.append(Row(values, configure(spec, values)))
            except EqpropError as error:
                raise SweepError(f"configuration {describe(values)}: {error}") from None
    return out


def configure(spec: SweepSpec, values: dict[str, Any]) -> Config:
    """The base with the set fields and ``values``: the accumulator refitted (unless the sweep sets
    it) while the configuration is float, so it is checked once it fits, as quantize.resize does."""
    from .quantize import fit_accumulator

    data = copy.deepcopy(spec.base.to_dict())
    for path, value in {**spec.fixed, **values}.items():
        _set_field(data, path, copy.deepcopy(value))
    arith = data["training"]["arith"]
    data["training"]["arith"] = "float"
    cfg = Config.from_dict(data)
    if not any(path.startswith("fixed.accumulator") for path in [*spec.fixed, *spec.swept]):
        cfg = fit_accumulator(cfg)
    return cfg.replace(training={"arith": arith})


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{path}={json.dumps(value)}" for path, value in values.items()) or "(the base)"
