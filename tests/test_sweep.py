"""eqprop sweep: the same numbers as the configurations run one by one, resumption after a kill,
an external Dask cluster, failures recorded, bad sweep files refused; the bench on the same executor."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eqprop.cli import main
from eqprop.sweep import plan
from eqprop.sweep_report import pareto_front
from eqprop.sweep_spec import parse_spec, rows

#: A small, fast network on digits: one epoch of training takes a second or two.
TINY = {"network.sizes": [64, 16, 10], "learning.T1": 8, "learning.T2": 4, "training.epochs": 1}
#: The same, as `eqprop train` options.
TINY_ARGS = ["--preset", "digits-cep", "--sizes", "64,16,10", "--T1", "8", "--T2", "4", "--epochs", "1"]
#: Fields of a training's final metrics that are timings, not results.
TIMINGS = ("train_seconds", "samples_per_second")
EQPROP = str(Path(sys.executable).parent / "eqprop")


def write_spec(folder: Path, spec: dict, name: str = "sweep.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(spec))
    return path


def sweep(capsys, *args) -> tuple[int, str]:
    rc = main(["sweep", *map(str, args), "--no-progress"])
    return rc, capsys.readouterr().out


def point(out: Path, stage: str, values: dict) -> dict:
    """The stored record of ``stage`` for a configuration with ``values``."""
    for configuration in json.loads((out / "sweep.json").read_text())["configurations"]:
        if all(configuration["values"][k] == v for k, v in values.items()):
            return json.loads((out / "points" / f"{configuration['points'][stage]}.json").read_text())
    raise AssertionError(f"no configuration with {values}")


def results(final: dict) -> dict:
    return {k: v for k, v in final.items() if k not in TIMINGS}


def test_sweep_equals_the_configurations_run_one_by_one(tmp_path, capsys):
    spec = write_spec(tmp_path, {
        "base": "digits-cep", "stages": ["float-train", "fixed-train", "estimate"],
        "set": TINY | {"hardware.fpga": "ecp5-85f"},
        "grid": {"fixed.weight.n": [6, 12], "hardware.lanes": [1, 2], "training.seed": [0, 1]},
    })
    out = tmp_path / "out"
    rc, text = sweep(capsys, spec, "--out", out, "--workers", 2)
    assert rc == 0, text
    # float training reads neither formats nor lanes, fixed training no lanes, the estimate no seed
    assert "8 configurations, 10 points: 0 stored, 10 to run" in text
    for seed, n in ((0, 6), (1, 12)):  # (the other two fixed-point trainings would take as long again)
        assert main(["train", *TINY_ARGS, "--seed", str(seed), "--json"]) == 0
        alone = json.loads(capsys.readouterr().out)
        stored = json.loads((out / "points" / point(out, "float-train", {"training.seed": seed})["key"] / "metrics.json").read_text())
        assert results(stored["final"]) == results(alone)
        assert main(["train", *TINY_ARGS, "--seed", str(seed), "--arith", "fixed", "--weight-bits", str(2 + n), "--json"]) == 0
        alone = json.loads(capsys.readouterr().out)
        stored = point(out, "fixed-train", {"training.seed": seed, "fixed.weight.n": n})
        assert (stored["test_accuracy"], stored["train_accuracy"]) == (alone["test_accuracy"], alone["train_accuracy"])
    for n in (6, 12):
        assert main(["estimate", "--fpga", "ecp5-85f", "--lanes", "1,2", "--sizes", "64,16,10", "--T1", "8", "--T2", "4",
                     "--weight-bits", str(2 + n), "--json"]) == 0
        for alone in json.loads(capsys.readouterr().out):
            stored = point(out, "estimate", {"fixed.weight.n": n, "hardware.lanes": alone["lanes"]})
            assert {k: stored[k] for k in alone} == alone
    table = (out / "table.csv").read_text().splitlines()
    assert table[0].startswith("fixed.weight.n,hardware.lanes,seeds,float_accuracy_mean,float_accuracy_std,fixed_accuracy_mean")
    assert len(table) == 1 + 4  # seeds pooled
    first = dict(zip(table[0].split(","), table[1].split(",")))
    accuracies = [point(out, "fixed-train", {"training.seed": s, "fixed.weight.n": 6})["test_accuracy"] for s in (0, 1)]
    assert float(first["fixed_accuracy_mean"]) == pytest.approx(sum(accuracies) / 2)
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG" and (out / "accuracy.png").is_file()
    assert "| fixed.weight.n |" in (out / "table.md").read_text()


def test_a_killed_sweep_runs_only_the_remaining_points(tmp_path, capsys):
    seeds = list(range(8))
    spec = write_spec(tmp_path, {"base": "digits-cep", "stages": ["float-train"], "set": TINY, "grid": {"training.seed": seeds}})
    out = tmp_path / "out"
    first = subprocess.Popen([EQPROP, "sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("points/*.json"))) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "eqprop: terminated" in err
    stored = {p.name: p.read_bytes() for p in out.glob("points/*.json")}
    assert 2 <= len(stored) < len(seeds)
    assert not list(out.glob("points/.*")), "no staging folder left behind"
    rc, text = sweep(capsys, spec, "--out", out, "--workers", 1)
    assert rc == 0
    assert f"{len(seeds)} points: {len(stored)} stored, {len(seeds) - len(stored)} to run" in text
    assert {p.name: p.read_bytes() for p in out.glob("points/*.json") if p.name in stored} == stored
    assert len(list(out.glob("points/*.json"))) == len(seeds)
    rc, text = sweep(capsys, spec, "--out", out)
    assert rc == 0 and f"{len(seeds)} stored, 0 to run" in text


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and one worker (no nanny: its pid is the one that runs the tasks), started
    as separate processes with the `dask` command, as on a cluster."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "worker.log")]
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 stdout=logs[0], stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60  # a loaded machine starts it slowly: wait for it before the sweep's own 10 s
    while time.monotonic() < deadline and scheduler.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    worker = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                              stdout=logs[1], stderr=subprocess.STDOUT)
    try:
        yield address, worker.pid
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)
        for log in logs:
            log.close()


def test_a_sweep_runs_on_an_existing_dask_cluster_and_records_failed_points(tmp_path, capsys, dask_cluster):
    address, worker_pid = dask_cluster
    spec = write_spec(tmp_path, {
        "base": "digits-cep", "stages": ["float-train"], "set": TINY,
        # the second learning rate makes the weights infinite at the first step: that point fails, the sweep goes on
        "grid": {"learning.lr": [[0.05, 0.025], [1e38, 1e38]]},
    })
    out = tmp_path / "out"
    rc, text = sweep(capsys, spec, "--out", out, "--scheduler", address)
    assert rc == 1, text
    assert f"on {address}" in text and "1 of 2 points done, 1 failed" in text
    good, bad = (point(out, "float-train", {"learning.lr": lr}) for lr in ([0.05, 0.025], [1e38, 1e38]))
    assert good["test_accuracy"] > 0.2 and good["ran_on"]["pid"] == worker_pid
    assert "training diverged" in bad["error"] and not (out / "points" / bad["key"]).exists()
    rows_ = (out / "table.csv").read_text().splitlines()
    assert rows_[1].endswith(",") and rows_[2].endswith(",float-train")
    rc, text = sweep(capsys, spec, "--out", out, "--scheduler", address)
    assert rc == 1 and "2 stored, 0 to run" in text
    rc, text = sweep(capsys, spec, "--out", out, "--scheduler", address, "--retry-failed")
    assert rc == 1 and "1 stored, 1 to run" in text


def test_random_samples_are_the_same_for_the_same_seed_and_more_keep_the_first():
    def draw(samples: int) -> list[dict]:
        spec = parse_spec({"base": "digits-cep", "stages": ["float-train"], "grid": {"training.seed": [0, 1]},
                           "random": {"samples": samples, "seed": 3, "fields": {
                               "learning.beta": {"uniform": [0.2, 0.8]}, "fixed.learn_bits": [4, 8],
                               "learning.T2": {"integers": [2, 5]}, "learning.homeostasis_coef": {"log-uniform": [1e-3, 1e-1]}}}}, Path("."))
        return [r.values for r in rows(spec)]

    four, eight = draw(4), draw(8)
    assert len(four) == 8 and four == draw(4) and eight[:8] == four
    for values in eight:
        assert 0.2 <= values["learning.beta"] <= 0.8 and values["fixed.learn_bits"] in (4, 8) and 2 <= values["learning.T2"] <= 5
        assert 1e-3 <= values["learning.homeostasis_coef"] <= 1e-1
    assert len({v["learning.beta"] for v in eight}) == 8


def test_points_are_shared_where_a_stage_does_not_read_the_field():
    spec = parse_spec({"base": "digits-cep", "stages": ["float-train", "fixed-train", "estimate"], "set": {"hardware.fpga": "ecp5-85f"},
                       "grid": {"fixed.state.n": [10, 14], "hardware.lanes": [1, 2, 4], "training.seed": [0, 1, 2]}}, Path("."))
    configs, points, _ = plan(spec)
    stages = [p.stage for p in points.values()]
    assert len(configs) == 18
    assert (stages.count("float-train"), stages.count("fixed-train"), stages.count("estimate")) == (3, 6, 6)
    fixed = [p.config for p in points.values() if p.stage == "fixed-train"]
    assert all(c.training.arith == "fixed" and c.hardware.lanes == 1 for c in fixed)
    # the accumulator follows each state width
    assert {c.fixed.accumulator.n for c in fixed} == {14 + 10, 14 + 14}


def test_pareto_front():
    # (cost, accuracy): the cheapest, then each that buys more accuracy; a dearer and worse point is not on it
    points = [(10, 0.8), (20, 0.9), (15, 0.7), (30, 0.95), (20, 0.85), (10, 0.6)]
    assert pareto_front(points, more_is_better=False) == [0, 1, 3]
    # samples/s: more is better
    assert pareto_front([(100, 0.9), (200, 0.8), (150, 0.95), (50, 0.99)], more_is_better=True) == [1, 2, 3]


BAD_SPECS = [
    ({"grid": {"fixed.wieght.n": [8]}}, "unknown configuration field 'fixed.wieght.n' (fixed has accumulator, bias"),
    ({"stages": ["train"]}, "unknown stage(s) 'train'; choose from float-train, fixed-train, estimate, build, cosim"),
    ({"grids": {}}, "unknown key(s) grids"),
    ({"grid": {"hardware.lanes": []}}, "grid field hardware.lanes must list at least one value"),
    ({"grid": {"learning.beta": [0.5, 2.0]}}, 'configuration learning.beta=2.0: learning.beta must be in (0, 1]'),
    ({"stages": ["estimate"]}, "stage estimate needs an FPGA: set or sweep hardware.fpga"),
    ({"grid": {"training.arith": ["float"]}}, "training.arith follows from the stages"),
    ({"random": {"samples": 2, "fields": {"learning.beta": {"normal": [0, 1]}}}}, "random field learning.beta must be a list of choices"),
    ({"base": "digits-xyz"}, "unknown preset 'digits-xyz'"),
    ({"stages": ["fixed-train"], "set": {"training.lr_schedule": "cosine"}}, "stage fixed-train of configuration (the base): training.lr_schedule must be constant"),
    ({"set": {"learning.T1": 5}, "grid": {"learning.T1": [5, 6]}}, "field(s) learning.T1 named more than once"),
]


@pytest.mark.parametrize("change,message", BAD_SPECS, ids=[m.split(":")[0][:40] for _, m in BAD_SPECS])
def test_a_bad_sweep_file_is_refused_on_one_line_and_nothing_is_written(tmp_path, capsys, change, message):
    spec = write_spec(tmp_path, {"base": "digits-cep", "stages": ["float-train"]} | change)
    rc = main(["sweep", str(spec), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"eqprop: error: sweep file {spec}: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,text,message", [
    ("s.toml", "stages = [", "is not valid TOML"),
    ("s.yaml", "stages: []", "name it .toml or .json"),
    ("missing.json", None, "cannot read sweep file"),
])
def test_an_unreadable_sweep_file_is_refused(tmp_path, capsys, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    assert main(["sweep", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqprop: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_workers_with_an_existing_cluster_is_refused(tmp_path, capsys):
    example = Path(__file__).parent.parent / "examples" / "sweep-bits-lanes.toml"
    args = ["sweep", str(example), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqprop: error: --workers sizes the local cluster") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_example_sweep_file_is_valid():
    from eqprop.sweep_spec import load_spec

    example = Path(__file__).parent.parent / "examples" / "sweep-bits-lanes.toml"
    configs, points, _ = plan(load_spec(example))
    assert len(configs) > 1 and {p.stage for p in points.values()} >= {"fixed-train", "estimate"}


def test_the_bench_trains_on_the_dask_executor(tiny_config):
    from eqprop.bench import Bench
    from eqprop.train import train

    configs = [tiny_config.replace(training={"epochs": 1, "seed": seed}) for seed in (0, 1)]
    runs = Bench(seeds=1, quick=False, progress=False, jobs=2).train({"tiny": configs})["tiny"]
    for cfg, run in zip(configs, runs):
        alone = train(cfg)
        assert [results(h) for h in run.history] == [results(h) for h in alone.history]
        assert all((run.params[k] == alone.params[k]).all() for k in alone.params)


def nan_marked(value):
    """``value`` with every NaN replaced by a marker, so that equal histories compare equal."""
    if isinstance(value, dict):
        return {k: nan_marked(v) for k, v in value.items()}
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def test_a_stored_history_reads_back_its_nans():
    from eqprop.sweep import _measured

    row = {"samples_per_second": None, "jacobian_symmetry": None, "gradient_cosine": {"W0": None, "W1": 0.5}, "epoch": 0}
    assert nan_marked(_measured(row)) == {"samples_per_second": None, "jacobian_symmetry": "NaN", "gradient_cosine": {"W0": "NaN", "W1": 0.5}, "epoch": 0}


def test_the_bench_stores_its_runs_and_a_later_bench_takes_them_instead_of_training(tiny_config, tmp_path, monkeypatch):
    import eqprop.bench as bench_module
    from eqprop.bench import Bench

    float_run = tiny_config.replace(training={"epochs": 1})
    fixed_run = tiny_config.replace(network={"sizes": [64, 8, 10]}, learning={"nudging": "one-sided"},
                                    training={"epochs": 1, "arith": "fixed"})
    first = Bench(seeds=1, quick=False, progress=False, jobs=1, runs=tmp_path / "runs").train({"f": [float_run], "x": [fixed_run]})

    def no_training(cfg):
        raise AssertionError("a stored run was trained again")

    monkeypatch.setattr(bench_module, "train", no_training)
    again = Bench(seeds=1, quick=False, progress=False, jobs=1, runs=tmp_path / "runs").train({"f": [float_run], "x": [fixed_run]})
    for key in ("f", "x"):
        (old,), (new,) = first[key], again[key]
        assert new.config == old.config and set(new.params) == set(old.params)
        for name, value in old.params.items():
            assert (np.asarray(new.params[name]) == np.asarray(value)).all(), name
        assert len(new.history) == len(old.history) == 2
        assert [nan_marked(row) for row in new.history] == [nan_marked(row) for row in old.history]
    # another configuration is not taken for a stored one
    other = float_run.replace(training={"seed": 1})
    with pytest.raises(AssertionError, match="trained again"):
        Bench(seeds=1, quick=False, progress=False, jobs=1, runs=tmp_path / "runs").train({"o": [other]})
