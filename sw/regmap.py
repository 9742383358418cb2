"""The register map of the core's Wishbone slave (:mod:`eqprop.hw.wishbone`), stated once, in pure Python.

The gateware decodes addresses from it, and it is written out as JSON (:meth:`RegisterMap.to_json`)
and as a C header for firmware (:meth:`RegisterMap.c_header`). The bus is 32 bits wide and word
addressed (``adr`` counts 32-bit words; ``sel`` has one bit, granularity 32); the JSON and the
header give byte offsets, ``adr = offset / 4``, as a CPU sees the slave behind its base address.

Three windows, chosen by the two top bits of ``adr``:

* registers: ``CONFIG_HASH``, ``STATUS``, ``COMMAND``, ``PREDICTION``, ``CYCLES``, ``SAMPLES``
  (:data:`REGISTERS`);
* inputs: ``x_0 .. x_{n_0 - 1}``, one word each, write only (what the next ``COMMAND`` streams
  into the core; they may be written while the core computes the previous sample);
* parameters: every stored parameter word, memory ``m``, bank ``b``, address ``a`` as
  :func:`eqprop.layout.parameter_words` numbers them, at word ``m << (bank bits + address bits) |
  b << address bits | a`` of the window (weights skewed, biases striped over the P banks, as
  :mod:`eqprop.layout` says), two's complement, sign-extended when read. The core reads and writes
  them only between samples: an access while a sample runs waits (``stall``) until it ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .config import Config
from .golden import Arith
from .layout import param_names, param_shapes, parameter_depths

#: Bits of a bus word, and of ``adr``'s window selector.
DATA_WIDTH = 32
WINDOW_BITS = 2
WORD_BYTES = DATA_WIDTH // 8


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    doc: str


@dataclass(frozen=True)
class Register:
    name: str
    #: ``r``, ``w`` or ``rw``.
    access: str
    fields: tuple[Field, ...]
    doc: str


#: The registers in address order (word i of the register window).
REGISTERS = (
    Register("CONFIG_HASH", "r", (Field("value", 0, 32, "eqprop.boards.requests.config_hash of the configuration the core was built for"),),
             "firmware compares it with the header's EQPROP_CONFIG_HASH_VALUE"),
    Register("STATUS", "r", (
        Field("busy", 0, 1, "a sample is being streamed in or computed"),
        Field("done", 1, 1, "the last COMMAND's sample has finished: PREDICTION and CYCLES hold its result"),
        Field("error", 2, 1, "the last COMMAND was refused (its label is not a class); nothing ran"),
    ), "cleared (done, error) by the next COMMAND"),
    Register("COMMAND", "rw", (
        Field("label", 0, 16, "the sample's class (ignored by inference but checked)"),
        Field("train", 16, 1, "1: learn the sample (free and nudged phases, weight updates); 0: inference only"),
    ), "writing starts a sample with the inputs in the input window; a write while busy waits until the running sample ends"),
    Register("PREDICTION", "r", (Field("value", 0, 16, "the free phase's most active output neuron"),), "of the last finished sample"),
    Register("CYCLES", "r", (Field("value", 0, 32, "clock cycles the core took for the last finished sample"),), "eqprop.schedule.cycle_count predicts it"),
    Register("SAMPLES", "r", (Field("value", 0, 32, "training samples finished since reset"),), ""),
)

#: The registers by name.
REGISTER = {r.name: r for r in REGISTERS}


@dataclass(frozen=True)
class ParameterMemory:
    """One parameter memory in the parameter window: P banks of ``depth`` words, ``bank_stride`` words apart."""

    name: str
    memory: int
    #: Word address of bank 0's first word, from the slave's base.
    address: int
    bank_stride: int
    banks: int
    depth: int
    shape: tuple[int, ...]


def _bits(count: int) -> int:
    """Address bits that number ``count`` things."""
    return (count - 1).bit_length()


@dataclass(frozen=True)
class RegisterMap:
    cfg: Config
    #: ``adr`` bits below the window selector.
    inner_bits: int
    #: Bit fields of a parameter word's place in the parameter window, least significant first.
    parameter_address_bits: int
    parameter_bank_bits: int
    parameter_memory_bits: int

    @property
    def address_width(self) -> int:
        return self.inner_bits + WINDOW_BITS

    def window(self, name: str) -> int:
        """Word address of a window's first word: ``registers``, ``inputs`` or ``parameters``."""
        return ("registers", "inputs", "parameters").index(name) << self.inner_bits

    def register(self, name: str) -> int:
        """Word address of a register."""
        return self.window("registers") + [r.name for r in REGISTERS].index(name)

    @property
    def inputs(self) -> int:
        return self.cfg.network.sizes[0]

    def parameter_memories(self) -> list[ParameterMemory]:
        shapes, depths, P = param_shapes(self.cfg.network), parameter_depths(self.cfg), self.cfg.hardware.lanes
        stride = 1 << self.parameter_address_bits
        return [
            ParameterMemory(name, memory, self.window("parameters") + (memory << (self.parameter_bank_bits + self.parameter_address_bits)),
                            stride, P, depths[memory], shapes[name])
            for memory, name in enumerate(param_names(self.cfg.network))
        ]

    def parameter_address(self, memory: int, bank: int, address: int) -> int:
        """Word address of parameter word ``(memory, bank, address)`` (:func:`eqprop.layout.parameter_words`)."""
        block = self.parameter_memories()[memory]
        return block.address + bank * block.bank_stride + address

    def to_dict(self) -> dict:
        from eqprop.boards.requests import config_hash

        arith = Arith.from_config(self.cfg)
        return {
            "bus": {"standard": "Wishbone B4 pipelined", "data_width": DATA_WIDTH, "granularity": DATA_WIDTH,
                    "address_width": self.address_width, "address_unit": "32-bit word (offsets below are in bytes: adr = offset / 4)"},
            "config_hash": config_hash(self.cfg),
            "registers": [
                {"name": r.name, "offset": WORD_BYTES * self.register(r.name), "access": r.access, "doc": r.doc,
                 "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "doc": f.doc} for f in r.fields]}
                for r in REGISTERS
            ],
            "inputs": {"offset": WORD_BYTES * self.window("inputs"), "count": self.inputs, "access": "w",
                       "width": self.cfg.fixed.input.width, "doc": "x_i, the input integers of the next sample"},
            "parameters": {
                "offset": WORD_BYTES * self.window("parameters"),
                "word_width": max(arith.weight_store.width, arith.bias_store.width), "lanes": self.cfg.hardware.lanes,
                "doc": "weights skewed, biases striped over the banks as eqprop.layout.parameter_words; signed, sign-extended when read",
                "memories": [
                    {"name": p.name, "memory": p.memory, "offset": WORD_BYTES * p.address, "bank_stride": WORD_BYTES * p.bank_stride,
                     "banks": p.banks, "depth": p.depth, "shape": list(p.shape), "layout": "striped" if p.name[0] == "b" else "skewed"}
                    for p in self.parameter_memories()
                ],
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def c_header(self, prefix: str = "EQPROP") -> str:
        """``#define``s of every offset (bytes from the slave's base), field shift and mask, and the window sizes."""
        d = self.to_dict()
        lines = [
            f"/* eqprop core, Wishbone B4 register map: {'x'.join(map(str, self.cfg.network.sizes))}, P = {self.cfg.hardware.lanes}.",
            " * Written by `eqprop verilog --bus wishbone`; offsets are in bytes from the slave's base address. */",
            f"#ifndef {prefix}_REGMAP_H", f"#define {prefix}_REGMAP_H", "",
            f"#define {prefix}_CONFIG_HASH_VALUE 0x{d['config_hash']:08x}u",
        ]
        define = lambda name, value: lines.append(f"#define {prefix}_{name} 0x{value:x}u")  # noqa: E731
        for r in d["registers"]:
            define(f"{r['name']}_OFFSET", r["offset"])
            for f in r["fields"]:
                if f["width"] < DATA_WIDTH:
                    define(f"{r['name']}_{f['name'].upper()}_SHIFT", f["lsb"])
                    define(f"{r['name']}_{f['name'].upper()}_MASK", ((1 << f["width"]) - 1) << f["lsb"])
        define("INPUTS_OFFSET", d["inputs"]["offset"])
        define("INPUTS_COUNT", d["inputs"]["count"])
        define("PARAM_LANES", d["parameters"]["lanes"])
        for p in d["parameters"]["memories"]:
            define(f"PARAM_{p['name']}_OFFSET", p["offset"])
            define(f"PARAM_{p['name']}_BANK_STRIDE", p["bank_stride"])
            define(f"PARAM_{p['name']}_DEPTH", p["depth"])
        return "\n".join(lines + ["", f"#endif /* {prefix}_REGMAP_H */", ""])


def register_map(cfg: Config) -> RegisterMap:
    """The register map of the Wishbone slave around the core for ``cfg`` (its stored words and inputs are
    at most 31 bits wide, :class:`eqprop.config.Config` sees to that: one bus word each)."""
    address_bits, bank_bits = _bits(max(parameter_depths(cfg))), _bits(cfg.hardware.lanes)
    memory_bits = _bits(len(param_names(cfg.network)))
    inner = max(_bits(len(REGISTERS)), _bits(cfg.network.sizes[0]), address_bits + bank_bits + memory_bits)
    return RegisterMap(cfg, inner, address_bits, bank_bits, memory_bits)
