import json
import subprocess
import sys

import numpy as np
import pytest

from eqprop.cli import main
from eqprop.checkpoint import load_checkpoint

FAST = ["--hidden", "16", "--T1", "8", "--T2", "4", "--epochs", "1", "--no-progress"]


def run(capsys, *argv):
    """Exit code, stdout and stderr of the CLI; argparse's own errors exit through SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_metrics_and_a_checkpoint_loadable_without_eqprop(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--dataset", "digits", "--rule", "cep", "--seed", "0", "--out", str(out), "--json", *FAST)
    assert code == 0
    final = json.loads(stdout)
    assert 0 <= final["train_accuracy"] <= 1 and 0 <= final["test_accuracy"] <= 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert metrics["final"] == final
    ck = np.load(out / "checkpoint.npz", allow_pickle=False)  # plain numpy, no eqprop needed
    config = json.loads(str(ck["config"]))
    assert str(ck["format"]) == "eqprop-checkpoint" and int(ck["format_version"]) == 1
    assert config["network"]["sizes"] == [64, 16, 10]
    assert config["learning"]["T1"] == 8 and config["learning"]["T2"] == 4 and config["learning"]["beta"] == 0.5
    assert ck["W0"].shape == (16, 64) and ck["b1"].shape == (16,) and ck["W1"].shape == (10, 16)
    code, stdout, _ = run(capsys, "eval", "--checkpoint", str(out), "--json")
    assert code == 0
    assert json.loads(stdout)["test_accuracy"] == pytest.approx(final["test_accuracy"])


def test_untied_rule_switches_to_untied_weights_and_config_file_round_trips(tmp_path, capsys):
    out = tmp_path / "vf"
    code, _, _ = run(capsys, "train", "--rule", "cvf", "--homeostasis", "local", "--homeostasis-coef", "0.01", "--out", str(out), *FAST)
    assert code == 0
    cfg, arrays = load_checkpoint(out)
    assert not cfg.network.tied and "B1" in arrays and cfg.learning.homeostasis == "local"
    code, _, _ = run(capsys, "train", "--config", str(out / "config.json"), "--out", str(tmp_path / "again"), "--no-progress")
    assert code == 0
    again, _ = load_checkpoint(tmp_path / "again")
    assert again == cfg


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--rule", "hebb"], "invalid choice: 'hebb'"),
        (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["train", "--T1", "0"], "learning.T1"),
        (["train", "--T2", "-1"], "learning.T2"),
        (["train", "--beta", "0"], "learning.beta"),
        (["train", "--beta", "nan"], "learning.beta"),
        (["train", "--rule", "cep", "--untied"], "needs tied weights"),
        (["train", "--sizes", "10,5,10"], "input size 10 does not match dataset digits"),
        (["train", "--hidden", "32,32"], "one learning rate per weight layer: 3"),
        (["train", "--hidden", "32", "--sizes", "64,32,10"], "either --sizes or --hidden"),
        (["train", "--lr", "0.1"], "learning.lr"),
        (["train", "--preset", "nope"], "unknown preset"),
        (["train", "--dataset", "mnist"], "eqprop data get mnist"),
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist"),
        (["train", "--config", "/nonexistent.json"], "cannot read configuration"),
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code, _, err = run(capsys, *argv, "--out", str(out), "--no-progress")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_hidden_layers_with_their_learning_rates_follow_the_dataset(tmp_path, capsys):
    out = tmp_path / "deep"
    code, _, err = run(capsys, "train", "--dataset", "mnist1d", "--hidden", "12,8", "--lr", "0.05,0.03,0.02", "--out", str(out), *FAST[2:])
    assert code == 0, err
    cfg, arrays = load_checkpoint(out)
    assert cfg.network.sizes == [80, 12, 8, 10] and arrays["W2"].shape == (10, 8)  # MNIST-1D: 40 features, on and off


def test_corrupt_or_mismatched_checkpoints_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--out", str(out), *FAST)[0] == 0
    ck = out / "checkpoint.npz"
    good = ck.read_bytes()

    def rewrite(**changes):
        with np.load(tmp_path / "good.npz") as z:
            entries = {k: z[k] for k in z.files}
        entries.update(changes)
        np.savez(ck, **entries)

    (tmp_path / "good.npz").write_bytes(good)
    cases = [
        (lambda: ck.write_bytes(good[: len(good) // 2]), "not an eqprop checkpoint"),
        (lambda: rewrite(W0=np.zeros((3, 3), np.float32)), "W0 has shape"),
        (lambda: rewrite(b1=np.full(16, np.nan, np.float32)), "b1 must hold finite"),
        (lambda: rewrite(format_version=np.array(99)), "format version 99"),
        (lambda: rewrite(config=np.array("{")), "not valid JSON"),
        (lambda: rewrite(B7=np.zeros(2, np.float32)), "unexpected B7"),
    ]
    for corrupt, message in cases:
        corrupt()
        code, _, err = run(capsys, "eval", "--checkpoint", str(out))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (message, err)
    code, _, err = run(capsys, "eval", "--checkpoint", str(tmp_path / "missing"))
    assert code == 2 and "not found" in err


def test_failed_run_leaves_an_existing_run_folder_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--out", str(out), *FAST)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, _ = run(capsys, "train", "--out", str(out), "--lr", "1e38,1e38", *FAST)
    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_console_script_runs_and_has_help():
    result = subprocess.run([sys.executable, "-m", "eqprop.cli", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--rule", "--nudging", "--T1", "--T2", "--beta", "--lr", "--homeostasis", "--untied-init", "--config", "--json"):
        assert option in result.stdout
    result = subprocess.run([sys.executable, "-m", "eqprop.cli", "train", "--epochs", "x"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
