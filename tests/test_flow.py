"""eqprop.Flow: the README's Python example as it stands, the same files as the commands, and its refusals."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eqprop import Flow
from eqprop.checkpoint import load_checkpoint
from eqprop.cli import main
from eqprop.data import load_dataset
from eqprop.errors import CheckpointError, ConfigError, EqpropError
from eqprop.network import init_params
from eqprop.outputs import OutputError

README = Path(__file__).resolve().parents[1] / "README.md"
#: JSON entries that differ between two runs of the same step: timings and the versions that made the file.
VOLATILE = {"provenance", "train_seconds", "samples_per_second", "sim_s", "golden_s", "wall_s", "cycles_per_second", "build_s"}


def readme_example() -> str:
    """The Python block after the README's ``python-example`` marker."""
    match = re.search(r"<!-- python-example[^>]*-->\n```python\n(.*?)\n```", README.read_text(), re.S)
    assert match, "README.md has no marked Python example"
    return match.group(1)


def stable(document):
    """A JSON document without the entries that change from run to run."""
    if isinstance(document, dict):
        return {k: stable(v) for k, v in document.items() if k not in VOLATILE}
    if isinstance(document, list):
        return [stable(v) for v in document]
    return document


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_readme_example_runs_and_writes_what_the_commands_write(tmp_path, monkeypatch, capsys):
    """About 3 minutes: the example (train, quantize, predict, trace, Verilog, two co-simulated samples, the
    iCEBreaker bitstream), then the same steps as commands into another folder: the same files, the same
    contents but for timings (and the tools' logs, which time themselves)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    flow, runs = namespace["flow"], tmp_path / "runs" / "python"
    printed = capsys.readouterr().out
    assert "PASS: 2 samples passed" in printed and namespace["cosim"].passed

    # the flow's model is the quantized one: what the golden model predicts is the accuracy quantize reported
    digits = namespace["digits"]
    accuracy = float(np.mean(flow.predict(digits.x_test) == digits.y_test))
    assert accuracy == namespace["quantized"].report["fixed_test_accuracy"]
    params = {k: v.copy() for k, v in flow.params.items()}
    assert len(namespace["writes"]) > 0 and all(np.array_equal(params[k], flow.params[k]) for k in params)  # trace leaves the model

    cli = tmp_path / "cli"
    assert main(["train", "--config", str(runs / "train" / "config.json"), "--out", str(cli / "train"), "--no-progress"]) == 0
    assert main(["quantize", "--checkpoint", str(cli / "train"), "--out", str(cli / "quantized")]) == 0
    assert main(["verilog", "--checkpoint", str(cli / "quantized"), "--out", str(cli / "verilog" / "core.v")]) == 0
    # the same Verilog in the same build folder: the simulator's build is reused
    assert main(["cosim", "--verilog", str(cli / "verilog" / "core.v"), "--samples", "2", "--build-dir", str(runs / "sim"),
                 "--out", str(cli / "cosim")]) == 0
    (tmp_path / "board.json").write_text(namespace["on_board"].config.to_json())  # the command takes the board's options as a file
    assert main(["build", "--board", "icebreaker", "--config", str(tmp_path / "board.json"), "--out", str(cli / "build")]) == 0
    assert namespace["built"].timing_met and namespace["built"].bitstream.stat().st_size > 100_000
    for step in ("train", "quantized", "verilog", "cosim", "build"):
        assert files_of(runs / step) == files_of(cli / step), step
        for name in files_of(runs / step):
            ours, theirs = runs / step / name, cli / step / name
            if step == "build" and name.endswith((".rpt", ".tim")):
                continue  # Yosys's and nextpnr's logs say how long each pass took
            if name.endswith(".npz"):
                (cfg, arrays), (cli_cfg, cli_arrays) = load_checkpoint(ours), load_checkpoint(theirs)
                assert cfg == cli_cfg and arrays.keys() == cli_arrays.keys()
                assert all(np.array_equal(arrays[k], cli_arrays[k]) for k in arrays), name
            elif name.endswith(".json") and step != "verilog" and (step != "build" or name == "report.json"):  # eqprop's documents
                document, cli_document = json.loads(ours.read_text()), json.loads(theirs.read_text())
                if name != "config.json":  # a report says which versions made it
                    assert "provenance" in document and "provenance" in cli_document
                if name == "quantize.json":  # the command names the checkpoint it read; the flow trained its own
                    assert document.pop("source") is None and cli_document.pop("source") == str(cli / "train")
                assert stable(document) == stable(cli_document), name
            else:
                assert ours.read_bytes() == theirs.read_bytes(), name


def test_a_flow_without_a_folder_writes_nothing_and_reads_a_checkpoint_back(tmp_path, monkeypatch, tiny_config):
    monkeypatch.chdir(tmp_path)
    flow = Flow(tiny_config.replace(training={"epochs": 1}))
    step = flow.train()
    assert step.files == () and list(tmp_path.iterdir()) == []
    written = flow.train(out=tmp_path / "run")  # a step given a folder writes it
    assert [p.name for p in written.files] == ["checkpoint.npz", "config.json", "metrics.json"]
    assert Flow(str(tmp_path / "run" / "config.json")).config == Flow(tmp_path / "run" / "config.json").config == flow.config
    loaded = Flow.from_checkpoint(tmp_path / "run")
    assert loaded.config == flow.config and all(np.array_equal(loaded.params[k], flow.params[k]) for k in flow.params)
    assert loaded.evaluate()["test_accuracy"] == written.final["test_accuracy"]
    data = load_dataset("digits", loaded.config.training.seed)  # the float model predicts what it was measured on
    assert np.mean(loaded.predict(data.x_test) == data.y_test) == pytest.approx(written.final["test_accuracy"])
    quantized = loaded.quantize(out=tmp_path / "q")
    assert quantized.report["source"] == str(tmp_path / "run") and quantized.config.training.arith == "fixed"


def test_a_model_trained_on_centred_inputs_is_measured_on_them_and_cannot_be_quantized(tmp_path, tiny_config):
    data = load_dataset("digits")
    centred = data.centred()
    assert np.abs(centred.x_train.mean(axis=0)).max() < 1e-6
    assert np.allclose(data.x_test - centred.x_test, data.x_train.mean(axis=0), atol=1e-6)  # the training split's mean
    trained = Flow(tiny_config.replace(training={"epochs": 1, "center_inputs": True})).train(out=tmp_path / "run")
    loaded = Flow.from_checkpoint(tmp_path / "run")
    assert loaded.evaluate()["test_accuracy"] == trained.final["test_accuracy"]
    raw = Flow(loaded.config.replace(training={"center_inputs": False}), params=loaded.params)
    assert raw.evaluate()["test_accuracy"] != trained.final["test_accuracy"]  # the same weights on uncentred pixels
    with pytest.raises(ConfigError, match="center_inputs needs arith float"):
        loaded.quantize(out=tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_steps_refuse_before_they_work(tmp_path, monkeypatch, tiny_config):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    flow = Flow(tiny_config, out=tmp_path / "flow")
    import eqprop.train

    monkeypatch.setattr(eqprop.train, "train", lambda *a, **k: pytest.fail("trained before checking its folder"))
    with pytest.raises(OutputError, match="not a folder"):
        flow.train(out=tmp_path / "a-file")
    with pytest.raises(ConfigError, match="train\\(\\) or load a float checkpoint first"):
        flow.quantize()
    with pytest.raises(ConfigError, match="must name a Verilog file"):
        flow.verilog(out=tmp_path / "core.json")
    with pytest.raises(ConfigError, match="give it an output path"):
        Flow(tiny_config).build("icebreaker")
    with pytest.raises(ConfigError, match="unknown preset"):
        Flow("no-such-preset")
    with pytest.raises(CheckpointError):
        Flow(tiny_config, params={"W0": np.zeros((3, 3))})
    initial = init_params(tiny_config.network, torch.Generator().manual_seed(0))
    float_model = Flow(tiny_config, params={k: v.numpy() for k, v in initial.items()})
    with pytest.raises(ConfigError, match="quantize\\(\\) the float model first"):
        float_model.verilog(out=tmp_path / "core.v")
    assert not (tmp_path / "flow").exists() and not (tmp_path / "core.v").exists()
    assert issubclass(OutputError, EqpropError)
