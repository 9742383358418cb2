"""A catalogue of bad command lines and bad files (issue 14): each ends with exit status 2, exactly
one stderr line starting ``eqprop: error:``, no traceback, and nothing written or changed."""

import gzip
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from eqprop import presets
from eqprop.checkpoint import checkpoint_bytes
from eqprop.cli import main
from eqprop.data import IDX_FILES, write_idx
from eqprop.network import init_params

SMALL = presets.get("digits-cep").replace(network={"sizes": [64, 8, 10]}, learning={"lr": [0.1, 0.1], "T1": 4, "T2": 2})


def _npz(**entries) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


def _entries() -> dict:
    with np.load(io.BytesIO(checkpoint_bytes(SMALL, init_params(SMALL.network, torch.Generator().manual_seed(0))))) as ck:
        return {k: ck[k] for k in ck.files}


def _with_member(name: str, data: bytes, compress=zipfile.ZIP_DEFLATED) -> bytes:
    """A good checkpoint with its member ``name`` replaced by raw ``data``."""
    good, out = zipfile.ZipFile(io.BytesIO(_npz(**_entries()))), io.BytesIO()
    with zipfile.ZipFile(out, "w", compress) as z:
        for info in good.infolist():
            z.writestr(info.filename, data if info.filename == name else good.read(info))
    return out.getvalue()


def _npy_header(shape, descr="<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _corrupt_deflate() -> bytes:
    raw = bytearray(_npz(**_entries()))
    z = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    info = z.getinfo("W0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zz:
        for i in z.infolist():
            zz.writestr(i.filename, z.read(i))
    data = bytearray(out.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("W0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5:start + 40] = b"\xff" * 35
    return bytes(data)


def _idx_folder(folder: Path, labels: np.ndarray | None = None, label_type: int = 0x08, raw_train_images: bytes | None = None) -> Path:
    folder.mkdir()
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        write_idx(folder / images_stem, np.zeros((10, 28, 28), np.uint8))
        write_idx(folder / labels_stem, np.arange(10) % 10)
    if raw_train_images is not None:
        (folder / IDX_FILES["train"][0]).write_bytes(raw_train_images)
    if labels is not None:
        dtype = {0x09: ">i1", 0x0D: ">f4"}[label_type]
        (folder / IDX_FILES["train"][1]).write_bytes(bytes([0, 0, label_type, 1]) + struct.pack(">I", len(labels)) + labels.astype(dtype).tobytes())
    return folder


def _files(root: Path) -> dict:
    """Every file and folder under ``root`` with its contents (folders as None)."""
    return {p: (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def _training_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "checkpoint.npz").write_bytes(checkpoint_bytes(SMALL, init_params(SMALL.network, torch.Generator().manual_seed(0))))
    (folder / "config.json").write_text(SMALL.to_json())
    (folder / "metrics.json").write_text("{}")
    return folder


def _checkpoint(root: Path, data: bytes) -> Path:
    (root / "ck.npz").write_bytes(data)
    return root / "ck.npz"


# Each case: (argv with {t} for the test's folder, a function that makes the files it needs, words the message holds).
CASES = {
    # wrong silently or a traceback before
    "seed above numpy's range": (["train", "--seed", "4294967296", "--out", "{t}/o"], None, "MAX_SEED"),
    "meta device": (["train", "--device", "meta", "--epochs", "1", "--out", "{t}/o"], None, "not meta"),
    "config not UTF-8": (["train", "--config", "{t}/c.json"], lambda t: (t / "c.json").write_bytes(b'{"\xff\xfe": 1}'), "not UTF-8"),
    "config nested deeply": (["train", "--config", "{t}/c.json"], lambda t: (t / "c.json").write_text("[" * 100_000 + "]" * 100_000), "nested deeper"),
    "config data_dir a number": (["train", "--config", "{t}/c.json"], lambda t: (t / "c.json").write_text('{"training": {"data_dir": 5}}'), "training.data_dir"),
    "config /dev/zero": (["train", "--config", "/dev/zero"], None, "MAX_CONFIG_BYTES"),
    "config empty name": (["train", "--config", ""], None, "non-empty"),
    "preset empty name": (["train", "--preset", ""], None, "non-empty"),
    "out empty": (["train", "--out", ""], None, "non-empty"),
    "huge layer": (["train", "--sizes", "64,1000000,10"], None, "MAX_UNITS"),
    "too many weights": (["train", "--hidden", "16000,16000"], None, "MAX_WEIGHTS"),
    "T1 of 10^12": (["train", "--T1", "1000000000000"], None, "MAX_STEPS"),
    "epochs of 10^9": (["train", "--epochs", "1000000000"], None, "MAX_EPOCHS"),
    "lanes 10000 (cycles)": (["cycles", "--lanes", "10000"], None, "MAX_LANES"),
    "lanes 10000 (verilog)": (["verilog", "--lanes", "10000", "--out", "{t}/v/core.v"], None, "MAX_LANES"),
    "lanes 0 (cycles)": (["cycles", "--lanes", "0"], None, "hardware.lanes"),
    "verilog out a folder": (["verilog", "--out", "{t}"], None, "must name a Verilog file"),
    "verilog out the json": (["verilog", "--out", "{t}/v/core.json"], None, "must name a Verilog file"),
    "verilog out dot": (["verilog", "--out", "."], None, "must name a Verilog file"),
    "verilog out empty": (["verilog", "--out", ""], None, "non-empty"),
    "verilog out with a trailing slash": (["verilog", "--out", "{t}/core.v/"], None, "must name a Verilog file"),
    "learn bits of a million": (["train", "--learn-bits", "1000000"], None, "MAX_LEARN_BITS"),
    "verilog out a folder named .v": (["verilog", "--out", "{t}/d.v"], lambda t: (t / "d.v").mkdir(), "is a folder"),
    "train out a file": (["train", "--out", "{t}/f"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "train out under a file": (["train", "--out", "{t}/f/run"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "train out the current folder": (["train", "--out", "."], None, "current folder"),
    "train out a folder above": (["train", "--out", ".."], None, "current folder"),
    "train into a quantized run": (["train", "--out", "{t}/q"], lambda t: ((t / "q").mkdir(), (t / "q" / "quantize.json").write_text("{}")), "--replace"),
    "train into an unrelated folder": (["train", "--out", "{t}/u"], lambda t: ((t / "u").mkdir(), (t / "u" / "notes.txt").write_text("mine")), "notes.txt"),
    "quantize onto its own training run": (["quantize", "--checkpoint", "{t}/r", "--out", "{t}/r"], lambda t: _training_run(t / "r"), "--replace"),
    "checkpoint empty name": (["eval", "--checkpoint", ""], None, "non-empty"),
    # checkpoints
    "checkpoint inflating far beyond its network": (
        ["eval", "--checkpoint", "{t}/ck.npz"],
        lambda t: _checkpoint(t, _with_member("W0.npy", _npy_header((200_000_000,)) + bytes(200_000))), "W0 has shape"),
    "checkpoint declaring a 37 GiB array": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _with_member("W0.npy", _npy_header((8, 64 * 2**27)))), "W0 has shape"),
    "checkpoint with more data than its header": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _with_member("W0.npy", _npy_header((8, 64)) + bytes(4 * 8 * 64 + 10**6))), "more data"),
    "checkpoint with a malformed npy header": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _with_member("W0.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<}  \n")), "not a readable"),
    "checkpoint with an object array": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _with_member("W0.npy", _npy_header((8, 64), "|O"))), "not a readable"),
    "checkpoint with a corrupt deflate stream": (["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _corrupt_deflate()), "not a readable"),
    "checkpoint format_version 1.9": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _npz(**(_entries() | {"format_version": np.array(1.9)}))), "version 1.9"),
    "checkpoint with a huge config entry": (
        ["eval", "--checkpoint", "{t}/ck.npz"], lambda t: _checkpoint(t, _with_member("config.npy", _npy_header((1,), "<U300000000")))
        , "MAX_CONFIG_BYTES"),
    # IDX files
    "IDX label 3.7": (["train", "--dataset", "mnist", "--data-dir", "{t}/m"],
                      lambda t: _idx_folder(t / "m", np.array([3.7] * 10), 0x0D), "float32 labels"),
    "IDX label -1": (["train", "--dataset", "mnist", "--data-dir", "{t}/m"], lambda t: _idx_folder(t / "m", np.array([-1] * 10), 0x09), "label -1"),
    "IDX dimensions whose product overflows": (
        ["train", "--dataset", "mnist", "--data-dir", "{t}/m"],
        lambda t: _idx_folder(t / "m", raw_train_images=bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)), "MAX_IDX_BYTES"),
    "IDX gz inflating beyond its header": (
        ["train", "--dataset", "mnist", "--data-dir", "{t}/m"],
        lambda t: _idx_folder(t / "m", raw_train_images=gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28) + bytes(30_000_000))), "more bytes"),
    "IDX corrupt gzip": (["train", "--dataset", "mnist", "--data-dir", "{t}/m"],
                         lambda t: _idx_folder(t / "m", raw_train_images=gzip.compress(bytes(100))[:12] + b"\x00" * 30), "corrupt gzip"),
    # boards
    "flash a broken report": (["flash", "--board", "icebreaker", "{t}/b", "--dry-run"],
                              lambda t: ((t / "b").mkdir(), (t / "b" / "report.json").write_text("{")), "not an eqprop build report"),
    "flash a report naming a bitstream elsewhere": (
        ["flash", "--board", "icebreaker", "{t}/b", "--dry-run"],
        lambda t: ((t / "b").mkdir(), (t / "other.bin").write_bytes(b"x"),
                   (t / "b" / "report.json").write_text(json.dumps({"board": "icebreaker", "bitstream": str(t / "other.bin")}))), "no bitstream"),
    "flash an empty build dir name": (["flash", "--board", "icebreaker", ""], None, "non-empty"),
    "build out a file": (["build", "--board", "icebreaker", "--out", "{t}/f"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "build an unknown bus": (["build", "--board", "icebreaker", "--bus", "pci", "--out", "{t}/b"], None, "invalid choice"),
    "board train negative samples": (["board", "train", "--board", "icebreaker", "--sim", "--samples", "-1435"], None, "at least 0"),
    "board train negative retries": (["board", "train", "--board", "icebreaker", "--sim", "--retries", "-1"], None, "at least 0"),
    "board train no test samples": (["board", "train", "--board", "icebreaker", "--sim", "--test-samples", "0"], None, "at least 1"),
    "board train build dir a file": (["board", "train", "--board", "icebreaker", "--sim", "--build-dir", "{t}/f"],
                                     lambda t: (t / "f").write_text("x"), "not a folder"),
    "board train build dir with a quote": (["board", "train", "--board", "icebreaker", "--sim", "--build-dir", '{t}/a"b'], None, "'\"'"),
    "board train out inside its build dir": (["board", "train", "--board", "icebreaker", "--sim", "--build-dir", "{t}/s", "--out", "{t}/s/run"],
                                             None, "overlap"),
    "cosim random -1": (["cosim", "--random", "-1"], None, "at least 1"),
    "cosim random 0": (["cosim", "--random", "0"], None, "at least 1"),
    "cosim samples 0": (["cosim", "--samples", "0"], None, "at least 1"),
    "cosim unknown waves format": (["cosim", "--waves", "lxt", "--samples", "1"], None, "invalid choice"),
    "cosim build dir a file": (["cosim", "--build-dir", "{t}/f"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "cosim build dir with a quote": (["cosim", "--random", "1", "--build-dir", '{t}/x");$finish;("'], None, "'\"'"),
    "demo out a file": (["demo", "--out", "{t}/f"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "demo out empty": (["demo", "--out", ""], None, "non-empty"),
    "demo out with a space": (["demo", "--out", "{t}/a b"], None, "' '"),
    "bench out a file": (["bench", "--out", "{t}/f", "--only", "cycles"], lambda t: (t / "f").write_text("x"), "not a folder"),
    "bench seeds 0": (["bench", "--seeds", "0"], None, "at least 1"),
    "bench runs a file": (["bench", "--out", "{t}/b", "--only", "cycles", "--runs", "{t}/f"], lambda t: (t / "f").write_text("x"), "is not a folder"),
    "bench runs inside its output": (["bench", "--out", "{t}/b", "--only", "cycles", "--runs", "{t}/b/runs"], None, "inside the bench's output folder"),
    "bench jobs 0": (["bench", "--jobs", "0"], None, "at least 1"),
    # argparse's own mistakes carry the one prefix too
    "no command": ([], None, "required"),
    "unknown command": (["nope"], None, "invalid choice"),
    "not a number": (["train", "--epochs", "x"], None, "invalid int"),
    "unknown option": (["train", "--nope"], None, "unrecognized"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_with_one_error_line_and_changes_nothing(name, tmp_path, capsys, monkeypatch):
    argv, make, message = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "config.json").write_text("{}")  # what `--out .` used to overwrite
    if make:
        make(tmp_path)
    before = _files(tmp_path)
    try:
        code = main([a.replace("{t}", str(tmp_path)) for a in argv])
    except SystemExit as exc:
        code = exc.code
    _, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("eqprop: error: "), err
    assert message in err, err
    assert _files(tmp_path) == before


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes in read-only folders")
    tmp_path.chmod(0o555)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["verilog"])
    except SystemExit as exc:
        code = exc.code
    finally:
        tmp_path.chmod(0o755)
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("eqprop: error: ") and "permission denied" in err and len(err.splitlines()) == 1
