import json

import pytest

from eqprop import presets
from eqprop.config import Config
from eqprop.errors import ConfigError


def test_json_round_trip_keeps_every_field():
    cfg = Config().replace(network={"sizes": [64, 20, 20, 10], "tied": False}, learning={"rule": "cvf", "lr": [0.1, 0.05, 0.02], "T2": 7})
    again = Config.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["version"] == 1


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"network": {"sizes": [64]}}, "network.sizes"),
        ({"network": {"sizes": [64, 0, 10]}}, "network.sizes[1]"),
        ({"learning": {"T1": 0}}, "learning.T1"),
        ({"learning": {"T2": -3}}, "learning.T2"),
        ({"learning": {"beta": 0.0}}, "learning.beta"),
        ({"learning": {"beta": float("nan")}}, "learning.beta"),
        ({"learning": {"beta": 1.5}}, "learning.beta"),
        ({"learning": {"lr": [0.1]}}, "learning.lr"),
        ({"learning": {"lr": [0.1, -1.0]}}, "learning.lr[1]"),
        ({"learning": {"rule": "hebb"}}, "learning.rule"),
        ({"learning": {"nudging": "sideways"}}, "learning.nudging"),
        ({"network": {"tied": False}}, "needs tied weights"),
        ({"learning": {"rule": "cvf"}}, "needs untied weights"),
        ({"learning": {"homeostasis": "local", "homeostasis_coef": 0.01}}, "homeostasis needs untied"),
        ({"network": {"tied": False}, "learning": {"rule": "cvf", "homeostasis": "local", "homeostasis_coef": 0.0}}, "homeostasis_coef"),
        ({"training": {"dataset": "mnist", "data_dir": ""}}, "training.data_dir"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"center_inputs": 1}}, "training.center_inputs must be true or false"),
        ({"training": {"arith": "fixed", "center_inputs": True}}, "training.center_inputs needs arith float"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Config().replace(**changes)


def test_unknown_fields_and_sections_are_refused():
    data = Config().to_dict()
    data["learning"]["gamma"] = 1
    with pytest.raises(ConfigError, match="unknown field.*gamma"):
        Config.from_dict(data)
    with pytest.raises(ConfigError, match="unknown configuration section"):
        Config.from_dict({"board": {}})
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json("{")


def test_every_preset_is_valid_and_default_is_digits_cep():
    from eqprop.quantize import fit_accumulator

    for name in presets.PRESETS:
        presets.get(name).validate()
        if name.endswith("-chip"):  # run with --arith fixed: its accumulator must already hold every drive
            chip = presets.get(name)
            needed = fit_accumulator(chip).fixed.accumulator
            assert chip.fixed.accumulator.m >= needed.m and chip.fixed.accumulator.n == needed.n, name
            chip.replace(training={"arith": "fixed"}).validate()
    assert presets.get("digits-cep") == Config()
    assert Config().learning.rule == "cep" and Config().training.dataset == "digits"
    assert max(Config().network.sizes[1:-1]) <= 128


def test_presets_on_generated_data_fit_it_and_mnist1d_has_every_rule_in_one_and_two_hidden_layers():
    from eqprop.data import load_dataset
    from eqprop.train import check_fits

    for name in presets.PRESETS:
        cfg = presets.get(name)
        if cfg.training.dataset in ("digits", "mnist1d"):
            check_fits(cfg, load_dataset(cfg.training.dataset))
    for suffix, hidden in (("", 1), ("-2h", 2)):
        shapes = {rule: presets.get(f"mnist1d-{rule}{suffix}").network.sizes for rule in ("mlp", "ep", "cep", "cvf", "cvf-homeostasis")}
        assert len(set(map(tuple, shapes.values()))) == 1 and len(shapes["cep"]) == hidden + 2, shapes
        # homeostasis is measured beside C-VF without it: the two presets differ in nothing else
        with_it = presets.get(f"mnist1d-cvf-homeostasis{suffix}")
        assert with_it.learning.homeostasis == "local" and with_it.learning.homeostasis_coef > 0
        off = {"homeostasis": "off", "homeostasis_coef": 0.0, "homeostasis_period": 1}
        assert with_it.replace(learning=off) == presets.get(f"mnist1d-cvf{suffix}")
    assert presets.for_dataset_rule("mnist1d", "ep") == presets.get("mnist1d-ep")
