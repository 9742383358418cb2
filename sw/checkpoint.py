"""Checkpoints and run folders.

A checkpoint is one ``.npz`` file (plain NumPy, no pickle) readable without eqprop::

    import json, numpy as np
    ck = np.load("runs/x/checkpoint.npz")
    config = json.loads(str(ck["config"]))      # the whole Config (sizes, T1, T2, beta, ...)
    W0, b1 = ck["W0"], ck["b1"]                 # one named array per weight and bias

Entries: ``format`` (the string ``eqprop-checkpoint``), ``format_version`` (integer, now 1),
``arith`` (``float`` or ``fixed``, the same as the configuration's ``training.arith``), ``config``
(the configuration as JSON), and the parameters named as in :mod:`eqprop.network`: ``W{l}``
``(n_{l+1}, n_l)``, ``b{l}`` ``(n_l,)``, ``B{l}`` ``(n_l, n_{l+1})`` (untied only).

A ``fixed`` checkpoint holds the stored integers (``int64``) of the golden model and the chip,
and one more entry, ``formats``: JSON mapping each array's name to its storage format
(``{"signed": true, "m": 2, "n": 22, ...}``), so ``W0 * 2**-formats["W0"]["n"]`` is its value.
Those formats follow from the configuration's ``fixed`` section (weights and biases with
``learn_bits`` extra fraction bits); loading checks that they agree and that every value fits.
Run folders are written all at once (:mod:`eqprop.outputs`); reading inflates nothing larger
than the network the configuration describes (:mod:`eqprop.limits`).
"""

from __future__ import annotations

import io
import json
import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import limits
from .config import Config
from .errors import CheckpointError, EqpropError
from .layout import param_shapes
from .outputs import OutputKind
from .report import json_text

FORMAT = "eqprop-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"


def checkpoint_bytes(cfg: Config, params: dict) -> bytes:
    """The checkpoint file's contents for ``cfg`` and ``params`` (numpy arrays or torch tensors).

    ``cfg.training.arith`` says whether ``params`` are floats or the golden model's stored integers.
    """
    params = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in params.items()}
    check_params(cfg, params, "parameters")
    extra = {}
    if cfg.training.arith == "fixed":
        extra["formats"] = np.array(json.dumps({k: f.to_dict() for k, f in _store_formats(cfg).items()}, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(
        buffer,
        format=np.array(FORMAT),
        format_version=np.array(FORMAT_VERSION, dtype=np.int64),
        arith=np.array(cfg.training.arith),
        config=np.array(cfg.to_json()),
        **extra,
        **{k: np.asarray(v) for k, v in params.items()},
    )
    return buffer.getvalue()


def _store_formats(cfg: Config) -> dict:
    from .golden import Arith, store_formats

    return store_formats(Arith.from_config(cfg))


def check_names(cfg: Config, names: list[str], where: str) -> None:
    """The parameter ``names`` are those of the network ``cfg`` describes, no more, no fewer."""
    shapes = param_shapes(cfg.network)
    missing = [k for k in shapes if k not in names]
    extra = [k for k in names if k not in shapes]
    if missing or extra:
        detail = "; ".join(p for p in (missing and f"missing {', '.join(missing)}", extra and f"unexpected {', '.join(extra)}") if p)
        raise CheckpointError(f"{where} do not match the network {cfg.network.sizes} (tied={cfg.network.tied}): {detail}")


def check_params(cfg: Config, params: dict[str, np.ndarray], where: str) -> None:
    """Names, shapes and values of ``params`` against the network ``cfg`` describes: finite floats,
    or integers inside their storage formats when ``cfg.training.arith`` is ``fixed``."""
    check_names(cfg, list(params), where)
    shapes = param_shapes(cfg.network)
    for name, shape in shapes.items():
        array = np.asarray(params[name])
        if array.shape != shape:
            raise CheckpointError(f"{where}: {name} has shape {array.shape}, the network needs {shape}")
        if cfg.training.arith == "float" and (not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all()):
            raise CheckpointError(f"{where}: {name} must hold finite floating-point values")
    if cfg.training.arith == "fixed":
        for name, fmt in _store_formats(cfg).items():
            array = np.asarray(params[name])
            if not np.issubdtype(array.dtype, np.integer):
                raise CheckpointError(f"{where}: {name} must hold integers (a fixed-point checkpoint), not {array.dtype}")
            if array.size and (array.min() < fmt.min_int or array.max() > fmt.max_int):
                raise CheckpointError(f"{where}: {name} holds values outside its format {fmt} [{fmt.min_int}, {fmt.max_int}]")


def resolve(path: str | Path) -> Path:
    """A checkpoint file from a run folder or a file path."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    return path


def run_files(cfg: Config, params: dict, report_name: str, report: dict) -> dict[str, bytes | str]:
    """A run folder's files: the checkpoint, its configuration, and the step's report (``metrics.json``,
    ``quantize.json``, ``board.json``) with provenance."""
    return {CHECKPOINT_NAME: checkpoint_bytes(cfg, params), "config.json": cfg.to_json() + "\n", report_name: to_json(report)}


#: Archive entries beside the parameters, each read with at most ``limits.MAX_CONFIG_BYTES``.
METADATA = ("format", "format_version", "arith", "config", "formats")
#: Run folders of ``eqprop train`` and ``eqprop quantize`` (see :mod:`eqprop.outputs`).
TRAINING_RUN = OutputKind("training run", (CHECKPOINT_NAME, "config.json", "metrics.json"))
QUANTIZED_RUN = OutputKind("quantized run", (CHECKPOINT_NAME, "config.json", "quantize.json"))


class _Archive:
    """An ``.npz`` read entry by entry, each array's header checked before its data is inflated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        limits.check_at_most(f"checkpoint {path}'s size in bytes", path.stat().st_size, "MAX_CHECKPOINT_BYTES")
        self.zip = zipfile.ZipFile(path)
        try:
            self._check_entries()
        except BaseException:
            self.zip.close()
            raise

    def _check_entries(self) -> None:
        path, infos = self.path, self.zip.infolist()
        limits.check_at_most(f"the number of entries in checkpoint {path}", len(infos), "MAX_CHECKPOINT_ENTRIES")
        limits.check_at_most(f"checkpoint {path}'s inflated size in bytes", sum(i.file_size for i in infos), "MAX_CHECKPOINT_BYTES")
        self.entries = {i.filename.removesuffix(".npy"): i for i in infos}
        if len(self.entries) != len(infos) or any(not i.filename.endswith(".npy") for i in infos):
            raise CheckpointError(f"{path} is not an eqprop checkpoint (entries other than one .npy array per name)")

    def read(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Entry ``name``: of ``shape`` when given, else of at most ``limits.MAX_CONFIG_BYTES``."""
        with self.zip.open(self.entries[name]) as f:
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header is None:
                raise ValueError(f"entry {name} has .npy format version {version}")
            try:
                stored_shape, fortran, dtype = header(f)
            except (SyntaxError, tokenize.TokenError) as exc:  # numpy parses the header as a Python literal
                raise ValueError(f"entry {name} has a corrupt .npy header ({type(exc).__name__})") from None
            if dtype.hasobject:
                raise ValueError(f"entry {name} holds Python objects")
            if shape is not None and stored_shape != shape:
                raise CheckpointError(f"{self.path}: {name} has shape {stored_shape}, the network needs {shape}")
            if shape is not None and (dtype.kind not in "iuf" or dtype.itemsize > 8):
                raise CheckpointError(f"{self.path}: {name} holds {dtype} values, not numbers of at most 64 bits")
            size = math.prod(stored_shape) * dtype.itemsize
            if shape is None:
                limits.check_at_most(f"entry {name} of {self.path} in bytes", size, "MAX_CONFIG_BYTES")
            data = f.read(size)
            if len(data) != size or f.read(1):
                raise ValueError(f"entry {name} holds {'less' if len(data) != size else 'more'} data than its header says")
        return np.frombuffer(bytearray(data), dtype=dtype).reshape(stored_shape, order="F" if fortran else "C")

    def close(self) -> None:
        self.zip.close()


def _version_of(value: np.ndarray | None) -> int | None:
    """The format version entry as an integer, ``None`` unless it is one integer."""
    if value is None or value.shape != () or value.dtype.kind not in "iu":
        return None
    return int(value)


def load_checkpoint(path: str | Path, arith: str | None = None) -> tuple[Config, dict[str, np.ndarray]]:
    """Read and validate a checkpoint; returns its configuration and parameters.

    ``arith`` (``float`` or ``fixed``) refuses a checkpoint of the other kind. Nothing larger than
    the network its configuration describes is inflated (:mod:`eqprop.limits`).
    """
    path = resolve(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not an eqprop checkpoint (not an .npz archive)")
    try:
        archive = _Archive(path)
        try:
            return _read_checkpoint(archive, path, arith)
        finally:
            archive.close()
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable eqprop checkpoint ({exc})") from None


def _read_checkpoint(archive: _Archive, path: Path, arith: str | None) -> tuple[Config, dict[str, np.ndarray]]:
    meta = {name: archive.read(name) for name in METADATA if name in archive.entries}
    if str(meta.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path} is not an eqprop checkpoint (no format entry {FORMAT!r})")
    version = _version_of(meta.get("format_version"))
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {meta.get('format_version')}, this eqprop reads {FORMAT_VERSION}")
    kind = str(meta.get("arith", ""))
    if kind not in ("float", "fixed"):
        raise CheckpointError(f"{path} has an unknown arith entry {kind!r} (float or fixed)")
    if arith is not None and kind != arith:
        raise CheckpointError(f"{path} holds {kind} arithmetic; this command reads {arith} checkpoints")
    if "config" not in meta:
        raise CheckpointError(f"{path} has no configuration entry")
    try:
        cfg = Config.from_json(str(meta["config"]))
    except EqpropError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if cfg.training.arith != kind:
        raise CheckpointError(f"{path}: its arith entry says {kind} but its configuration says {cfg.training.arith}")
    if kind == "fixed":
        _check_formats_entry(cfg, meta.get("formats"), path)
    shapes = param_shapes(cfg.network)
    check_names(cfg, [name for name in archive.entries if name not in METADATA], str(path))
    arrays = {name: archive.read(name, shape) for name, shape in shapes.items()}
    check_params(cfg, arrays, str(path))
    return cfg, arrays


def _check_formats_entry(cfg: Config, declared: np.ndarray | None, path: Path) -> None:
    expected = {k: f.to_dict() for k, f in _store_formats(cfg).items()}
    try:
        declared = json.loads(str(declared)) if declared is not None else None
    except (json.JSONDecodeError, RecursionError):
        declared = "unreadable"
    if declared != expected:
        raise CheckpointError(f"{path}: its formats entry does not match the storage formats its configuration implies")


def to_json(document: dict) -> str:
    """The text of a JSON file eqprop writes: ``document`` and, under ``provenance``, the versions that
    made it (:func:`eqprop.provenance.versions`); indented, keys sorted, NaN and infinities as ``null``."""
    from .provenance import versions

    return json_text(document | {"provenance": versions()}, indent=2) + "\n"
