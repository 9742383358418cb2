"""The golden model: agreement with the float reference, its randomness, saturation and validation."""

import numpy as np
import pytest
import torch

from eqprop import golden, homeostasis, learning, network
from eqprop.config import Config
from eqprop.data import load_dataset
from eqprop.errors import ConfigError
from eqprop.golden import Arith, GoldenModel, quantize_inputs

#: Formats wide enough that the integers carry float64 results to about 1e-7.
WIDE = {
    "input": {"signed": False, "m": 1, "n": 24},
    "state": {"signed": True, "m": 3, "n": 24},
    "weight": {"signed": True, "m": 3, "n": 24},
    "bias": {"signed": True, "m": 5, "n": 24},
    "accumulator": {"signed": True, "m": 12, "n": 48},
    "update": {"signed": True, "m": 2, "n": 28},
    "factor": {"signed": False, "m": 2, "n": 28},
    "learn_bits": 0,
}

TIED = ({"sizes": [64, 32, 10]}, {})
UNTIED_HOMEOSTASIS = (
    {"sizes": [64, 32, 10], "tied": False},
    {"rule": "cvf", "nudging": "one-sided", "homeostasis": "local", "homeostasis_coef": 0.1, "homeostasis_period": 2},
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


def fixed_config(network_changes=None, learning_changes=None, fixed=None) -> Config:
    return Config().replace(
        network=network_changes or {}, learning=learning_changes or {}, fixed=fixed or {}, training={"arith": "fixed"}
    )


def model_for(cfg: Config, seed: int = 1) -> GoldenModel:
    return GoldenModel.from_float(cfg, network.init_params(cfg.network, torch.Generator().manual_seed(seed), torch.float64))


@pytest.mark.parametrize("defer", [True, False], ids=["deferred-input-updates", "literal-input-updates"])
@pytest.mark.parametrize("net, learn", [TIED, UNTIED_HOMEOSTASIS], ids=["cep-symmetric", "cvf-one-sided-homeostasis"])
def test_wide_formats_agree_with_the_float_reference(net, learn, defer, digits):
    """Both forms of the input-layer updates compute the float model's C-EP / C-VF (the deferred
    one by the telescoping identity, W_0 x tracked exactly), to the wide formats' resolution."""
    cfg = fixed_config(net, learn, WIDE).replace(hardware={"defer_input_updates": defer})
    model = model_for(cfg)
    arith = model.arith
    params = {k: torch.as_tensor(v) for k, v in golden.dequantize_params(arith, model.params).items()}
    x_int = quantize_inputs(arith, digits.x_train[:4])
    x = torch.as_tensor(cfg.fixed.input.to_float(x_int))

    states = model.free_phase(x_int)
    reference = network.free_phase(cfg.network, params, x, cfg.learning.T1)
    for got, want in zip(states, reference):
        np.testing.assert_allclose(cfg.fixed.state.to_float(got), want.numpy(), atol=1e-6)

    for i in range(4):  # learning, sample by sample, with homeostasis every second sample when on
        model.train_sample(x_int[i], int(digits.y_train[i]))
        y = torch.nn.functional.one_hot(torch.tensor([int(digits.y_train[i])]), 10).double()
        s_free = network.free_phase(cfg.network, params, x[i : i + 1], cfg.learning.T1)
        learning.nudged_phases(cfg.network, cfg.learning, params, s_free, y, torch.Generator(), lr=cfg.learning.lr)
        if cfg.learning.homeostasis == "local" and (i + 1) % cfg.learning.homeostasis_period == 0:
            homeostasis.local_rule_(cfg.network, params, cfg.learning.homeostasis_coef)
    got = golden.dequantize_params(arith, model.params)
    moved = max(float((params[k] - torch.as_tensor(v)).abs().max()) for k, v in golden.dequantize_params(arith, model_for(cfg).params).items())
    assert moved > 1e-3  # the weights did learn, so the comparison below means something
    for name, value in got.items():
        np.testing.assert_allclose(value, params[name].numpy(), atol=1e-5, err_msg=name)


def test_default_formats_learn_like_the_float_model_at_batch_1(digits):
    """16-bit states and weights with 8 learning bits track the float model sample by sample."""
    cfg = fixed_config(learning_changes={"lr": [0.01, 0.005]})
    model = model_for(cfg)
    params = network.init_params(cfg.network, torch.Generator().manual_seed(1), torch.float64)
    x = quantize_inputs(model.arith, digits.x_train)
    x_float = torch.as_tensor(cfg.fixed.input.to_float(x))
    for i in range(300):
        model.train_sample(x[i], int(digits.y_train[i]))
        y = torch.nn.functional.one_hot(torch.tensor([int(digits.y_train[i])]), 10).double()
        s_free = network.free_phase(cfg.network, params, x_float[i : i + 1], cfg.learning.T1)
        learning.nudged_phases(cfg.network, cfg.learning, params, s_free, y, torch.Generator(), lr=cfg.learning.lr)
    fixed_accuracy = golden.evaluate_fixed(model, quantize_inputs(model.arith, digits.x_test), digits.y_test)["accuracy"]
    out = network.free_phase(cfg.network, params, torch.as_tensor(digits.x_test).double(), cfg.learning.T1)[-1]
    float_accuracy = float((out.argmax(1).numpy() == digits.y_test).mean())
    assert float_accuracy > 0.6 and abs(fixed_accuracy - float_accuracy) < 0.05


def test_learning_bits_keep_the_small_increments(digits):
    """Why learn_bits exists: without them the per-step increments of W_0 mostly round away. Deferred
    input updates round W_0's increment once per sample, so even without learning bits it stays."""

    def learned_change(bits, defer=False):
        cfg = fixed_config(learning_changes={"lr": [0.01, 0.005]}, fixed={"learn_bits": bits}).replace(hardware={"defer_input_updates": defer})
        model = model_for(cfg)
        start = golden.dequantize_params(model.arith, model.params)["W0"]
        x = quantize_inputs(model.arith, digits.x_train)
        for i in range(30):
            model.train_sample(x[i], int(digits.y_train[i]))
        return golden.dequantize_params(model.arith, model.params)["W0"] - start

    reference = learned_change(15)
    error = {bits: np.linalg.norm(learned_change(bits) - reference) / np.linalg.norm(reference) for bits in (0, 8)}
    assert error[0] > 0.3 and error[8] < 0.05
    deferred = np.linalg.norm(learned_change(0, defer=True) - reference) / np.linalg.norm(reference)
    assert deferred < error[0] / 3


def test_random_sign_nudging_takes_its_sign_from_the_lfsr(digits):
    cfg = fixed_config(learning_changes={"nudging": "random-sign"})
    one_sided = fixed_config(learning_changes={"nudging": "one-sided"})
    x = quantize_inputs(Arith.from_config(cfg), digits.x_train)
    signs = []
    for i in range(12):
        model, reference = model_for(cfg), model_for(one_sided)
        model.draws = i  # as if i words had been drawn before
        model.train_sample(x[i], int(digits.y_train[i]))
        reference.train_sample(x[i], int(digits.y_train[i]))
        assert model.draws == i + 1  # one draw per sample: deterministic rounding draws nothing else
        sign = -1 if int(cfg.fixed.lfsr.draws(i, 1)[0]) & 1 else 1
        same = all(np.array_equal(model.params[k], reference.params[k]) for k in model.params)
        assert same == (sign == 1)
        signs.append(sign)
    assert set(signs) == {-1, 1}


def test_stochastic_rounding_is_reproducible_unbiased_and_seeded(digits):
    base = {"stochastic_rounding": True, "learn_bits": 2}
    cfg = fixed_config(learning_changes={"lr": [0.01, 0.005]}, fixed=base)
    x = quantize_inputs(Arith.from_config(cfg), digits.x_train)

    def trained(c):
        model = model_for(c)
        for i in range(3):
            model.train_sample(x[i], int(digits.y_train[i]))
        return model

    a, b = trained(cfg), trained(cfg)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    # every W1 increment drops bits (update.n + state.n > storage n): one draw per weight per step
    assert a.draws >= 3 * 2 * cfg.learning.T2 * 128 * 10
    other = trained(cfg.replace(fixed={**base, "lfsr": {"width": 16, "taps": 0xB400, "seed": 999}}))
    assert any(not np.array_equal(a.params[k], other.params[k]) for k in a.params)

    # unbiased: rounding the same value many times averages to it
    model = model_for(cfg)
    exact = np.full(50_000, 5 * 1024 + 300, dtype=np.int64)  # 5.29296875 LSBs after dropping 10 bits
    rounded = model._round_to_store(exact, 10, "nearest")
    assert set(np.unique(rounded)) == {5, 6}
    assert abs(rounded.mean() - exact[0] / 1024) < 0.01


def test_weights_saturate_instead_of_wrapping(digits):
    cfg = fixed_config(fixed={"learn_bits": 0})
    model = model_for(cfg)
    store = model.arith.weight_store
    model.params["W1"][:] = store.max_int  # every positive increment of W1 now pushes against the bound
    model._refresh(["W1"])
    x = quantize_inputs(model.arith, digits.x_train)
    model.train_sample(x[0], int(digits.y_train[0]))
    values = model.params["W1"]
    assert values.max() == store.max_int and values.min() < store.max_int  # some stayed, some came down
    assert values.min() > 0  # none wrapped around to negative


def test_inference_is_batched_and_equals_one_sample_at_a_time(digits):
    model = model_for(fixed_config())
    x = quantize_inputs(model.arith, digits.x_test[:20])
    batched = model.predict(x, chunk=8)
    single = [int(model.predict(x[i : i + 1])[0]) for i in range(len(x))]
    assert batched.tolist() == single


@pytest.mark.parametrize(
    "network_changes, learning_changes, fixed, message",
    [
        ({}, {"rule": "ep"}, {}, "cep .tied. or cvf"),
        ({"activation": "sigmoid"}, {}, {}, "hard sigmoid"),
        ({}, {"beta": 0.01}, {}, r"fixed.factor uQ1.15 cannot hold learning.lr\[0\]"),
        ({}, {"lr": [1e-6, 0.005]}, {}, r"learning.lr\[0\].*rounds to 0"),
        ({}, {}, {"state": {"signed": True, "m": 1, "n": 15}}, "fixed.state sQ1.15.*cannot hold states"),
        ({}, {}, {"input": {"signed": False, "m": 0, "n": 8}}, "fixed.input uQ0.8.*cannot hold inputs"),
        ({}, {}, {"accumulator": {"signed": True, "m": 8, "n": 28}}, "fixed.accumulator sQ8.28 cannot hold the largest drive of layer 1.*needs 10 integer bits"),
        ({}, {}, {"weight": {"signed": True, "m": 2, "n": 30}}, "fixed.weight is a multiplier operand of 32 bits"),
        ({}, {}, {"learn_bits": 20}, "stored in 36 bits"),
        ({}, {}, {"update": {"signed": False, "m": 1, "n": 15}}, "fixed.update must be signed"),
        ({}, {}, {"stochastic_rounding": True, "learn_bits": 8, "lfsr": {"width": 4, "taps": 0xC, "seed": 1}}, "more than the 4-bit fixed.lfsr"),
        ({}, {}, {"weight": {"signed": True, "m": 2, "n": 14, "rounding": "banker"}}, "fixed.weight.rounding must be one of"),
        ({}, {}, {"weight": {"signed": True, "m": 2, "n": 14, "overflow": "wrap"}}, "overflow always saturates"),
    ],
)
def test_formats_that_cannot_work_are_refused(network_changes, learning_changes, fixed, message):
    with pytest.raises(ConfigError, match=message):
        fixed_config(network_changes, learning_changes, fixed)


def test_float_training_does_not_check_the_fixed_formats():
    """A float user may change beta freely; the formats are checked only for fixed arithmetic."""
    Config().replace(learning={"beta": 0.01})
