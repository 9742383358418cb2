"""The theory of EP, measured on this code (SPEC section 3; the C-EP, VF, symmetric-nudging and
homeostasis papers)."""

import torch

from eqprop import theory
from eqprop.gradients import bptt_gradient, implicit_gradient
from eqprop.network import free_phase, convergence


def test_ep_and_cep_match_bptt_in_the_theorem_setting():
    # Tied, dynamics s <- dPhi/ds, converged free phase, small beta: Theorem 1 makes them equal.
    for rule in ("ep", "cep"):
        for seed in range(3):
            cosines = theory.ep_bptt_cosines("identity", rule, beta=1e-4, seed=seed)
            assert min(cosines.values()) >= 0.99, (rule, seed, cosines)


def test_prototypical_hard_sigmoid_is_aligned_but_not_exact():
    cosines = theory.ep_bptt_cosines("hardsigmoid", "cep", beta=0.01)
    assert min(cosines.values()) > 0.3
    assert min(cosines.values()) < 0.999  # rho' is missing from the EP update: only approximately BPTT


def test_continual_updates_sum_to_ep_as_the_learning_rate_vanishes():
    errors = [theory.continual_vs_plain(lr) for lr in (1e-2, 1e-4, 1e-6)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_symmetric_nudging_has_smaller_bias_than_one_sided():
    for beta in (0.05, 0.2, 0.4):
        bias = theory.nudging_bias(beta)
        assert bias["symmetric"] < bias["one-sided"], (beta, bias)
        if beta <= 0.2:
            assert bias["symmetric"] < 0.5 * bias["one-sided"], (beta, bias)
    # one-sided bias is O(beta), symmetric O(beta^2)
    small, large = theory.nudging_bias(0.05), theory.nudging_bias(0.2)
    assert large["symmetric"] / small["symmetric"] > 1.5 * large["one-sided"] / small["one-sided"]


def test_cauchy_estimator_error_falls_as_points_grow():
    errors = theory.cauchy_errors([2, 3, 4, 6, 8], beta=0.3)
    values = list(errors.values())
    assert all(a > b for a, b in zip(values, values[1:])), errors
    assert values[-1] < 1e-2 * values[0]


def test_local_homeostasis_rule_is_the_autograd_gradient_and_probes_agree_in_expectation():
    few, many = theory.homeostasis_agreement(probes=50), theory.homeostasis_agreement(probes=1600)
    assert many["local_rule_error"] < 1e-10
    assert many["probe_error"] < 0.15
    assert many["probe_error"] < few["probe_error"]
    assert many["probe_loss_error"] < 0.1


def test_implicit_gradient_equals_bptt_once_the_free_phase_has_converged():
    net, params, x, y = theory.small_problem("hardsigmoid", tied=False)
    s = free_phase(net, params, x, 200)
    assert float(convergence(net, params, s).max()) < 1e-12
    bptt, rbp = bptt_gradient(net, params, x, y, 200), implicit_gradient(net, params, x, y, 200)
    for name in bptt:
        torch.testing.assert_close(bptt[name], rbp[name], rtol=1e-8, atol=1e-10)
