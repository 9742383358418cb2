"""The fixed-point commands: ``train --arith fixed``, ``quantize``, ``eval`` of integer checkpoints, ``cycles``."""

import json

import numpy as np
import pytest

from eqprop.checkpoint import load_checkpoint
from eqprop.config import Config
from eqprop.golden import Arith
from eqprop.program import Program, sample_passes
from eqprop.schedule import cycle_count

from test_cli import FAST, run


@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("float") / "run"
    from eqprop.cli import main

    assert main(["train", "--out", str(out), "--hidden", "32", "--epochs", "2", "--T1", "15", "--T2", "6", "--no-progress"]) == 0
    return out


def test_train_fixed_writes_an_integer_checkpoint_that_eval_reads(tmp_path, capsys):
    out = tmp_path / "fx"
    code, stdout, err = run(capsys, "train", "--arith", "fixed", "--lr", "0.01,0.005", "--out", str(out), "--json", *FAST)
    assert code == 0, err
    final = json.loads(stdout)
    ck = np.load(out / "checkpoint.npz", allow_pickle=False)
    formats = json.loads(str(ck["formats"]))
    assert str(ck["arith"]) == "fixed" and ck["W0"].dtype == np.int64
    assert formats["W0"] == {"signed": True, "m": 2, "n": 22, "rounding": "nearest", "overflow": "clamp"}
    cfg, arrays = load_checkpoint(out)
    assert cfg.training.arith == "fixed" and cfg.fixed.learn_bits == 8
    code, stdout, _ = run(capsys, "eval", "--checkpoint", str(out), "--json")
    assert code == 0 and json.loads(stdout)["test_accuracy"] == pytest.approx(final["test_accuracy"])


def test_quantize_calibrates_converts_and_keeps_accuracy(float_run, tmp_path, capsys):
    out = tmp_path / "q"
    code, stdout, err = run(capsys, "quantize", "--checkpoint", str(float_run), "--out", str(out), "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["test_accuracy_loss"] <= 0.01
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json", "quantize.json"]
    cfg, arrays = load_checkpoint(out)
    _, floats = load_checkpoint(float_run)
    step = 2.0 ** -Arith.from_config(cfg).weight_store.n
    np.testing.assert_allclose(arrays["W1"] * step, floats["W1"], atol=step / 2 + 1e-12)  # nearest rounding
    largest, m = max(float(np.abs(floats[k]).max()) for k in ("W0", "W1")), cfg.fixed.weight.m
    assert largest < 2 ** (m - 1) and (m == 1 or largest >= 2 ** (m - 2))  # the fewest integer bits that hold it
    assert cfg.fixed.weight.width == 16
    code, stdout, _ = run(capsys, "eval", "--checkpoint", str(out), "--json")
    assert json.loads(stdout)["test_accuracy"] == pytest.approx(report["fixed_test_accuracy"])

    code, stdout, _ = run(capsys, "quantize", "--checkpoint", str(float_run), "--out", str(tmp_path / "q6"), "--weight-bits", "4", "--json")
    assert code == 0 and json.loads(stdout)["fixed_test_accuracy"] < report["fixed_test_accuracy"]


def test_quantize_with_formats_from_a_configuration(float_run, tmp_path, capsys):
    fixed = tmp_path / "fixed.json"
    cfg, _ = load_checkpoint(float_run)
    fixed.write_text(cfg.replace(fixed={"learn_bits": 4}).to_json())
    code, stdout, err = run(capsys, "quantize", "--checkpoint", str(float_run), "--out", str(tmp_path / "q"), "--fixed-config", str(fixed), "--json")
    assert code == 0, err
    assert json.loads(stdout)["calibrated"] is False
    cfg, _ = load_checkpoint(tmp_path / "q")
    assert cfg.fixed.learn_bits == 4 and str(cfg.fixed.weight) == "sQ2.14"


def _rewrite(path, **changes):
    with np.load(path) as z:
        entries = {k: z[k] for k in z.files}
    entries.update(changes)
    np.savez(path, **entries)


def test_bad_fixed_point_input_is_one_error_line_and_writes_nothing(float_run, tmp_path, capsys):
    out = tmp_path / "fx"
    assert run(capsys, "train", "--arith", "fixed", "--out", str(out), *FAST)[0] == 0
    good = (out / "checkpoint.npz").read_bytes()
    cfg, arrays = load_checkpoint(out)
    too_big = arrays["W0"].copy()
    too_big[0, 0] = Arith.from_config(cfg).weight_store.max_int + 1
    cases = [
        (dict(W0=too_big), "W0 holds values outside its format sQ2.22"),
        (dict(W0=arrays["W0"].astype(np.float64)), "W0 must hold integers"),
        (dict(formats=np.array("{}")), "formats entry does not match"),
        (dict(arith=np.array("float")), "arith entry says float but its configuration says fixed"),
    ]
    for changes, message in cases:
        (out / "checkpoint.npz").write_bytes(good)
        _rewrite(out / "checkpoint.npz", **changes)
        code, _, err = run(capsys, "eval", "--checkpoint", str(out))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (message, err)
    (out / "checkpoint.npz").write_bytes(good)

    nan_run = tmp_path / "nan"
    nan_run.mkdir()
    (nan_run / "checkpoint.npz").write_bytes((float_run / "checkpoint.npz").read_bytes())
    _rewrite(nan_run / "checkpoint.npz", b1=np.full(32, np.nan, np.float32))
    bad_config = tmp_path / "bad.json"
    data = Config().to_dict()
    data["fixed"]["weight"]["rounding"] = "banker"
    bad_config.write_text(json.dumps(data))
    target = tmp_path / "never"
    for argv, message in [
        (["quantize", "--checkpoint", str(nan_run), "--out", str(target)], "b1 must hold finite"),
        (["quantize", "--checkpoint", str(out), "--out", str(target)], "holds fixed arithmetic; this command reads float"),
        (["quantize", "--checkpoint", str(float_run), "--out", str(target), "--weight-bits", "2"], "no fraction bits"),
        (["quantize", "--checkpoint", str(float_run), "--out", str(target), "--fixed-config", str(bad_config)], "fixed.weight.rounding must be one of"),
        (["train", "--arith", "fixed", "--beta", "0.01", "--out", str(target)], "fixed.factor uQ1.15 cannot hold"),
        (["train", "--arith", "fixed", "--rule", "ep", "--out", str(target)], "cep (tied) or cvf"),
        (["train", "--arith", "fixed", "--state-bits", "2", "--out", str(target)], "no fraction bits"),
        (["cycles", "--lanes", "0"], "positive integer"),
        (["cycles", "--rule", "bptt"], "the chip learns with cep (tied) or cvf"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert not target.exists()


def test_narrower_states_and_weights_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "fx"
    code, _, err = run(capsys, "train", "--arith", "fixed", "--weight-bits", "10", "--state-bits", "9", "--out", str(out), *FAST)
    assert code == 0, err
    cfg, _ = load_checkpoint(out)
    assert str(cfg.fixed.weight) == "sQ2.8" and str(cfg.fixed.state) == "sQ2.7"
    assert cfg.fixed.accumulator.n == 15  # exact products of 8 + max(7, 7) fraction bits


def test_cycles_command_prints_the_formula_for_each_lane_count(capsys):
    code, stdout, _ = run(capsys, "cycles", "--lanes", "1,4,16", "--json")
    assert code == 0
    rows = json.loads(stdout)
    assert [r["lanes"] for r in rows] == [1, 4, 16]
    assert rows[0] == cycle_count(Config(), 1).to_dict()
    code, stdout, _ = run(capsys, "cycles", "--preset", "digits-cvf-homeostasis")
    assert code == 0 and "lower bound" in stdout and "homeostasis" in stdout


@pytest.mark.parametrize("preset", ["digits-cep", "digits-cvf-homeostasis"])
def test_cycle_formula_at_one_lane_is_the_work_plus_the_gaps(preset):
    """At P = 1 every beat does one MAC or one read-modify-write, so only the gaps between passes
    are extra (and, with literal input updates, the W_0 x recomputed after every update); passes
    overlap, so the gaps are far fewer cycles than a drain after every pass."""
    from eqprop import presets

    for defer in (True, False):
        cfg = presets.get(preset).replace(hardware={"lanes": 1, "defer_input_updates": defer})
        count, learn = cycle_count(cfg), cfg.learning
        without, with_homeostasis = (sum(slot.gap for slot in sample_passes(cfg, homeostasis=h)) for h in (False, True))
        gaps = without + (with_homeostasis - without) / learn.homeostasis_period
        n, nudged_steps = cfg.network.sizes, (2 if learn.nudging == "symmetric" else 1) * learn.T2
        refresh = 0 if defer else nudged_steps * n[0] * n[1]
        assert count.total == pytest.approx(count.bound + gaps + refresh)
        slots = sample_passes(cfg, homeostasis=False)
        assert without < sum(slot.pass_.drain for slot in slots) / 4


def test_cycles_never_beat_the_lower_bound_and_fall_with_lanes():
    rng = np.random.default_rng(3)
    for _ in range(200):
        sizes = [int(v) for v in rng.integers(1, 200, rng.integers(2, 5))]
        tied = bool(rng.integers(2))
        cfg = Config().replace(
            network={"sizes": sizes, "tied": tied},
            learning={"rule": "cep" if tied else "cvf", "lr": [0.01] * (len(sizes) - 1), "nudging": str(rng.choice(["one-sided", "symmetric"]))},
        )
        totals = [cycle_count(cfg, p).total for p in (1, 2, 3, 8, 64)]
        for p, total in zip((1, 2, 3, 8, 64), totals):
            assert total >= cycle_count(cfg, p).bound
        # the beats fall with more lanes; the drains grow a little (a deeper adder tree)
        beats = [sum(s.pass_.beats for s in sample_passes(cfg.replace(hardware={"lanes": p}))) for p in (1, 2, 3, 8, 64)]
        assert beats == sorted(beats, reverse=True)


def test_untied_feedback_updates_walk_the_matrix_along_its_longer_side():
    """An untied update of B_l (n_l x n_{l+1}) puts the lanes along its longer side: by column
    where the network narrows (64-128-10: 10 columns of 128), by row where it widens."""
    from eqprop import presets

    cvf = presets.get("digits-cvf-homeostasis")
    for sizes, by_column in (([64, 128, 10], True), ([10, 20, 128], False)):
        cfg = cvf.replace(network={"sizes": sizes}, learning={"lr": [0.01, 0.01]}, hardware={"lanes": 64})
        (update_b,) = [p for p in Program.of(cfg).update.parts if p.target == "B"]
        assert update_b.column == by_column and update_b.length == max(sizes[1:]) and update_b.rows == min(sizes[1:])
    ratios = [cycle_count(cvf, p).ratio for p in (1, 2, 4, 8, 16, 32, 64)]
    assert max(ratios) <= 1.25, ratios  # by row, P = 64 took 1.83 times the bound


def test_verilog_is_written_with_its_configuration_beside_it(tmp_path, capsys):
    fx = tmp_path / "fx"
    assert run(capsys, "train", "--arith", "fixed", "--out", str(fx), *FAST)[0] == 0
    code, stdout, err = run(capsys, "verilog", "--checkpoint", str(fx), "--lanes", "2", "--out", str(tmp_path / "build" / "core.v"))
    assert code == 0, err
    text = (tmp_path / "build" / "core.v").read_text()
    assert "module eqprop_core" in text and "x__payload" in text and "prediction__payload" in text
    written = Config.load(tmp_path / "build" / "core.json")
    cfg, _ = load_checkpoint(fx)
    assert written == cfg.replace(hardware={"lanes": 2})
    code, _, _ = run(capsys, "verilog", "--config", str(tmp_path / "build" / "core.json"), "--out", str(tmp_path / "blank.v"))
    assert code == 0 and (tmp_path / "blank.v").read_text() != text  # zero weights instead of the trained ones
    code, _, err = run(capsys, "verilog", "--fpga", "ice40up5k", "--out", str(tmp_path / "up5k.v"))
    assert code == 0, err  # the default digits network fits the iCE40UP5K: its weights in SPRAM
    assert (tmp_path / "up5k.v").read_text().count("SB_SPRAM256KA") == 4

    for argv, message in [
        (["verilog", "--lanes", "0"], "hardware.lanes must be a positive integer"),
        (["verilog", "--rule", "ep"], "cep (tied) or cvf"),
        (["verilog", "--checkpoint", str(fx), "--preset", "digits-cep"], "without --config or --preset"),
        (["verilog", "--checkpoint", str(fx), "--fpga", "ice40up5k"], "live in SPRAM, which has no initial contents"),
        (["verilog", "--fpga", "ice40up5k", "--lanes", "2"], "need 8 SPRAMs (2 banks of 24-bit words"),
        (["verilog", "--fpga", "ice40up5k", "--sizes", "64,700,10", "--learn-bits", "0"], "ice40up5k has 120 Kbit"),
        (["verilog", "--fpga", "ice40up5k", "--sizes", "64,16,10", "--weight-bits", "18"], "fixed.weight makes 18-bit multiplier operands"),
        (["verilog", "--fpga", "ecp5-85f", "--lanes", "64"], "ecp5-85f has 156 DSPs"),
        # b2 takes 3 beats at 2 lanes: W_1's last new words land while W_2's reads have begun
        (["verilog", "--fpga", "ice40up5k", "--sizes", "6,4,6,3", "--lr", "0.1,0.1,0.1", "--lanes", "2", "--learn-bits", "0"],
         "update_W2 would read it while update_W1's last words are still being written"),
    ]:
        code, _, err = run(capsys, *argv, "--out", str(tmp_path / "bad" / "core.v"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert not (tmp_path / "bad").exists()
