import math

import pytest
import torch

from eqprop.config import Config
from eqprop.errors import DataError, EqpropError
from eqprop.homeostasis import state_jacobian, symmetry_ratio
from eqprop.learning import nudged_phases, rule_delta
from eqprop.network import free_phase, init_params, step
from eqprop.train import train
from eqprop import theory


@pytest.mark.parametrize(
    "changes",
    [
        {"learning": {"rule": "cep"}},
        {"learning": {"rule": "ep", "nudging": "one-sided"}},
        {"learning": {"rule": "cep", "nudging": "random-sign"}},
        {"network": {"tied": False}, "learning": {"rule": "cvf"}},
        {"network": {"tied": False, "untied_init": "transpose"}, "learning": {"rule": "vf"}},
        {"learning": {"rule": "bptt"}},
        {"learning": {"rule": "rbp"}},
        {"learning": {"rule": "mlp"}},
    ],
)
def test_every_rule_learns_digits(tiny_config, changes):
    result = train(tiny_config.replace(**changes))
    first, last = result.history[0], result.final
    assert first["test_accuracy"] < 0.3
    assert last["test_accuracy"] > 0.5, last
    assert last["train_loss"] < first["train_loss"]


def test_metrics_are_recorded_per_epoch(tiny_config):
    cfg = tiny_config.replace(network={"tied": False}, learning={"rule": "cvf"})
    result = train(cfg)
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    row = result.final
    assert set(row["gradient_cosine"]) == {"W0", "W1", "B1"}
    assert all(-1 <= c <= 1 for c in row["gradient_cosine"].values())
    assert 0 < row["jacobian_symmetry"] < 1
    assert 0 < row["weight_angle_deg"]["W1"] < 180
    assert row["free_convergence"] >= 0 and row["samples_per_second"] > 0


def test_homeostasis_raises_symmetry_and_alignment(tiny_config):
    base = tiny_config.replace(network={"tied": False}, learning={"rule": "cvf"})
    without = train(base).final
    with_h = train(base.replace(learning={"homeostasis": "local", "homeostasis_coef": 0.01, "homeostasis_period": 16})).final
    assert with_h["jacobian_symmetry"] > without["jacobian_symmetry"] + 0.05
    assert with_h["weight_angle_deg"]["W1"] < without["weight_angle_deg"]["W1"] - 10
    assert with_h["gradient_cosine_mean"] > without["gradient_cosine_mean"]


def test_probe_homeostasis_reduces_asymmetry(tiny_config):
    cfg = tiny_config.replace(
        network={"tied": False},
        learning={"rule": "cvf", "homeostasis": "probe", "homeostasis_coef": 0.05, "homeostasis_period": 16, "homeostasis_probes": 4},
        training={"epochs": 1},
    )
    result = train(cfg)
    assert result.final["jacobian_symmetry"] > result.history[0]["jacobian_symmetry"] + 0.05


def test_tied_network_jacobian_is_symmetric():
    net, params, x, _ = theory.small_problem("hardsigmoid", tied=True)
    s = free_phase(net, params, x, 10)
    J = state_jacobian(net, params, s)
    assert symmetry_ratio(J) == pytest.approx(1.0)
    torch.testing.assert_close(J, J.T)


def test_symmetric_continual_phases_telescope_to_the_symmetric_ep_estimate():
    net, params, x, y = theory.small_problem("hardsigmoid", tied=True)
    continual = theory.ep_estimate(net, params, x, y, rule="cep", nudging="symmetric", beta=0.1, T2=20)
    plain = theory.ep_estimate(net, params, x, y, rule="ep", nudging="symmetric", beta=0.1, T2=20)
    for name in plain:
        torch.testing.assert_close(continual[name], plain[name], rtol=1e-9, atol=1e-12)


def test_random_sign_nudging_draws_both_signs_per_sample():
    net, params, x, y = theory.small_problem("hardsigmoid", tied=True, batch=64)
    cfg = Config().replace(network={"sizes": net.sizes}, learning={"nudging": "random-sign", "lr": [1e-3] * 3})
    s_free = free_phase(net, params, x, 30)
    d = nudged_phases(net, cfg.learning, params, s_free, y, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    signs = torch.randint(0, 2, (64, 1), generator=g).double() * 2 - 1
    assert 0 < int((signs > 0).sum()) < 64
    expected = None
    s = s_free
    for _ in range(cfg.learning.T2):
        s_next = step(net, params, s, y, cfg.learning.beta * signs)
        step_delta = rule_delta(net, s_next, s, 1.0 / (cfg.learning.beta * signs.reshape(-1)))
        expected = step_delta if expected is None else {k: expected[k] + step_delta[k] for k in expected}
        s = s_next
    for name in expected:
        torch.testing.assert_close(d[name], expected[name])


def test_untied_init_transpose_starts_symmetric_and_the_independent_ones_do_not():
    cfg = Config().replace(network={"tied": False, "untied_init": "transpose"}, learning={"rule": "cvf"})
    p = init_params(cfg.network, torch.Generator().manual_seed(0))
    torch.testing.assert_close(p["B1"], p["W1"].T)
    norms = {}
    for init in ("independent", "matched"):
        p = init_params(cfg.replace(network={"untied_init": init}).network, torch.Generator().manual_seed(0))
        cos = float((p["B1"].T * p["W1"]).sum() / (p["B1"].norm() * p["W1"].norm()))
        assert abs(math.degrees(math.acos(cos)) - 90) < 10
        norms[init] = float(p["B1"].norm() / p["W1"].norm())
    # 64-128-10: B_1 (128 x 10) at its own fan-in's scale is sqrt(128 / 10) times W_1's; matched, as large
    assert norms["independent"] == pytest.approx(math.sqrt(128 / 10), rel=0.1)
    assert norms["matched"] == pytest.approx(1.0, rel=0.1)


def test_size_mismatch_and_divergence_are_user_errors(tiny_config):
    with pytest.raises(DataError, match="input size 40"):
        train(tiny_config.replace(network={"sizes": [40, 32, 10]}))
    with pytest.raises(EqpropError, match="diverged"):
        train(tiny_config.replace(learning={"lr": [1e38, 1e38]}, training={"epochs": 1}))


def test_measuring_does_not_change_the_training_run(tiny_config):
    cfg = tiny_config.replace(learning={"nudging": "random-sign"}, training={"epochs": 1})
    measured, unmeasured = train(cfg), train(cfg.replace(training={"probe_samples": 0}))
    for name, value in measured.params.items():
        torch.testing.assert_close(value, unmeasured.params[name], rtol=0, atol=0)
    assert "gradient_cosine" in measured.final and "gradient_cosine" not in unmeasured.final


@pytest.mark.parametrize(
    "changes",
    [
        {"learning": {"rule": "cep"}},
        {"learning": {"rule": "cep", "nudging": "random-sign"}},
        {"network": {"tied": False}, "learning": {"rule": "cvf", "nudging": "one-sided"}},
        {"network": {"sizes": [64, 32, 16, 10], "tied": False}, "learning": {"rule": "cvf", "lr": [0.05, 0.02, 0.01]}},
    ],
)
def test_factored_continual_updates_give_the_literal_weights(tiny_config, changes):
    """After a whole epoch the factored form's weights equal the per-step form's to float64 rounding
    (amplified over the epoch: 1e-7 of the largest weight, while training moves them by 1e-3 or more)."""
    cfg = tiny_config.replace(training={"epochs": 1, "dtype": "float64", "probe_samples": 0}, **changes)
    factored = train(cfg).params
    literal = train(cfg.replace(training={"continual": "literal"})).params
    assert factored.keys() == literal.keys()
    for name in literal:
        scale = float(literal[name].abs().max())
        assert float((factored[name] - literal[name]).abs().max()) <= 1e-7 * max(scale, 1.0), name
    # The weights did move: equality is not that of two untrained networks.
    initial = init_params(cfg.network, torch.Generator().manual_seed(cfg.training.seed), torch.float64)
    assert float((factored["W0"] - initial["W0"]).abs().max()) > 1e-3
