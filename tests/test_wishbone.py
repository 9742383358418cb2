"""The core behind its Wishbone slave: the register map's two outputs agree, and a cocotb master trains it bit-exactly."""

import json
import re

import numpy as np
import torch

from eqprop import network
from eqprop.boards.requests import config_hash
from eqprop.config import Config
from eqprop.golden import GoldenModel
from eqprop.hw.verilog import WISHBONE_TOP, wishbone_verilog
from eqprop.layout import param_shapes, parameter_words
from eqprop.regmap import REGISTERS, register_map
from eqprop.schedule import cycle_count
from eqprop.sim.wishbone import simulate

from test_cli import run


def small_config(**hardware) -> Config:
    return Config().replace(
        network={"sizes": [6, 5, 3], "tied": True, "init_gain": 2.0},
        learning={"rule": "cep", "T1": 4, "T2": 2, "lr": [0.1, 0.1], "nudging": "symmetric"},
        training={"arith": "fixed"},
        hardware={"lanes": 3, **hardware},
    )


def header_defines(text: str) -> dict[str, int]:
    return {name: int(value, 16) for name, value in re.findall(r"^#define (\w+) 0x([0-9a-f]+)u$", text, re.M)}


def test_the_c_header_states_what_the_json_states():
    regmap = register_map(small_config())
    d, defines = regmap.to_dict(), header_defines(regmap.c_header())
    assert defines.pop("EQPROP_CONFIG_HASH_VALUE") == d["config_hash"] == config_hash(small_config())
    for r in d["registers"]:
        assert defines.pop(f"EQPROP_{r['name']}_OFFSET") == r["offset"]
        for f in r["fields"]:
            if f["width"] < 32:
                assert defines.pop(f"EQPROP_{r['name']}_{f['name'].upper()}_SHIFT") == f["lsb"]
                assert defines.pop(f"EQPROP_{r['name']}_{f['name'].upper()}_MASK") == ((1 << f["width"]) - 1) << f["lsb"]
    assert (defines.pop("EQPROP_INPUTS_OFFSET"), defines.pop("EQPROP_INPUTS_COUNT")) == (d["inputs"]["offset"], 6)
    assert defines.pop("EQPROP_PARAM_LANES") == 3
    for p in d["parameters"]["memories"]:
        assert [defines.pop(f"EQPROP_PARAM_{p['name']}_{key.upper()}") for key in ("offset", "bank_stride", "depth")] == \
            [p["offset"], p["bank_stride"], p["depth"]]
    assert defines == {}  # nothing in the header that the JSON does not have
    # every parameter word has its own bus word, inside the parameter window, and no two share one
    words = parameter_words(regmap.cfg, {k: np.zeros(s) for k, s in param_shapes(regmap.cfg.network).items()})
    addresses = {regmap.parameter_address(m, b, a) for m, b, a, _ in words}
    assert len(addresses) == len(words) and min(addresses) >= regmap.window("parameters") and max(addresses) < 1 << regmap.address_width
    assert [regmap.register(r.name) for r in REGISTERS] == list(range(len(REGISTERS)))


def test_a_wishbone_master_trains_20_samples_bit_exactly(tmp_path):
    """Icarus, about 20 s: load, 20 training samples and 2 inferences through the bus, every word read back."""
    cfg = small_config()
    golden = GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(4), torch.float64))
    words = parameter_words(cfg, golden.params)
    rng = np.random.default_rng(2)
    x, labels = rng.integers(0, 256, (22, 6)), rng.integers(0, 3, 22)
    train = [1] * 20 + [0] * 2
    text, slave = wishbone_verilog(cfg)
    job = {"config": cfg.to_dict(), "words": [list(w) for w in words], "x": x.tolist(), "labels": labels.tolist(), "train": train}
    result = simulate(text, job, tmp_path, WISHBONE_TOP)

    assert result["config_hash"] == config_hash(cfg)
    for sample, xs, label, learn in zip(result["samples"], x, labels, train):
        expected = int(golden.free_phase(xs.reshape(1, -1))[-1][0].argmax())
        if learn:
            golden.train_sample(xs, int(label))
        assert sample == {"done": True, "error": False, "prediction": expected,
                          "cycles": cycle_count(cfg).total if learn else cycle_count(cfg).inference}
    assert result["refused"] == {"busy": False, "done": False, "error": True} and result["trained"] == 20
    assert result["words"] == [list(w) for w in parameter_words(cfg, golden.params)]  # learned bit-exactly


def test_verilog_bus_wishbone_writes_the_slave_its_register_map_and_metadata(tmp_path, capsys):
    out = tmp_path / "wb" / "core.v"
    code, stdout, _ = run(capsys, "verilog", "--sizes", "6,5,3", "--hidden", "5", "--lanes", "2", "--bus", "wishbone", "--out", str(out))
    assert code == 2  # --sizes and --hidden together: refused before anything is written
    code, stdout, _ = run(capsys, "verilog", "--sizes", "6,5,3", "--lanes", "2", "--bus", "wishbone", "--out", str(out))
    assert code == 0, stdout
    folder = out.parent
    assert sorted(p.name for p in folder.iterdir()) == ["core.json", "core.metadata.json", "core.v", "regmap.h", "regmap.json"]
    assert f"module {WISHBONE_TOP}(" in out.read_text() and "bus__stall" in out.read_text()
    regmap = json.loads((folder / "regmap.json").read_text())
    cfg = Config.load(folder / "core.json")
    assert regmap["config_hash"] == config_hash(cfg) and regmap["parameters"]["lanes"] == 2
    metadata = json.loads((folder / "core.metadata.json").read_text())
    bus = metadata["interface"]["members"]["bus"]
    assert {name: (port["dir"], port["width"]) for name, port in bus["members"].items()} == {
        "cyc": ("in", 1), "stb": ("in", 1), "we": ("in", 1), "sel": ("in", 1), "adr": ("in", regmap["bus"]["address_width"]),
        "dat_w": ("in", 32), "dat_r": ("out", 32), "ack": ("out", 1), "stall": ("out", 1)}
    (annotation,) = bus["annotations"].values()
    assert {k: v for k, v in annotation.items()} == {k: v for k, v in regmap.items() if k != "provenance"}
