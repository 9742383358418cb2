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
Files are written to a temporary name and renamed, so a failure never leaves a half-written
checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .config import Config
from .errors import CheckpointError, EqpropError
from .layout import param_shapes

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


def check_params(cfg: Config, params: dict[str, np.ndarray], where: str) -> None:
    """Names, shapes and values of ``params`` against the network ``cfg`` describes: finite floats,
    or integers inside their storage formats when ``cfg.training.arith`` is ``fixed``."""
    shapes = param_shapes(cfg.network)
    missing = [k for k in shapes if k not in params]
    extra = [k for k in params if k not in shapes]
    if missing or extra:
        detail = "; ".join(p for p in (missing and f"missing {', '.join(missing)}", extra and f"unexpected {', '.join(extra)}") if p)
        raise CheckpointError(f"{where} do not match the network {cfg.network.sizes} (tied={cfg.network.tied}): {detail}")
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


def load_checkpoint(path: str | Path, arith: str | None = None) -> tuple[Config, dict[str, np.ndarray]]:
    """Read and validate a checkpoint; returns its configuration and parameters.

    ``arith`` (``float`` or ``fixed``) refuses a checkpoint of the other kind.
    """
    path = resolve(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not an eqprop checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as ck:
            entries = {k: ck[k] for k in ck.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable eqprop checkpoint ({exc})") from None
    if str(entries.pop("format", "")) != FORMAT:
        raise CheckpointError(f"{path} is not an eqprop checkpoint (no format entry {FORMAT!r})")
    version = entries.pop("format_version", None)
    if version is None or int(version) != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}, this eqprop reads {FORMAT_VERSION}")
    kind = str(entries.pop("arith", ""))
    if kind not in ("float", "fixed"):
        raise CheckpointError(f"{path} has an unknown arith entry {kind!r} (float or fixed)")
    if arith is not None and kind != arith:
        raise CheckpointError(f"{path} holds {kind} arithmetic; this command reads {arith} checkpoints")
    try:
        cfg = Config.from_json(str(entries.pop("config")))
    except KeyError:
        raise CheckpointError(f"{path} has no configuration entry") from None
    except EqpropError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if cfg.training.arith != kind:
        raise CheckpointError(f"{path}: its arith entry says {kind} but its configuration says {cfg.training.arith}")
    if kind == "fixed":
        declared = entries.pop("formats", None)
        expected = {k: f.to_dict() for k, f in _store_formats(cfg).items()}
        try:
            declared = json.loads(str(declared)) if declared is not None else None
        except json.JSONDecodeError:
            declared = "unreadable"
        if declared != expected:
            raise CheckpointError(f"{path}: its formats entry does not match the storage formats its configuration implies")
    check_params(cfg, entries, str(path))
    return cfg, entries


def write_run(out: str | Path, files: dict[str, bytes | str]) -> None:
    """Write all ``files`` into the folder ``out`` or none of them.

    They are staged in a temporary folder beside ``out`` and moved in only when all are written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EqpropError(f"output {out} exists and is not a folder")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise EqpropError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    try:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (staging / name).write_bytes(data)
        if not out.exists():
            os.replace(staging, out)
            return
        for name in files:
            os.replace(staging / name, out / name)
    except OSError as exc:
        raise EqpropError(f"cannot write run folder {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def to_json(document: dict) -> str:
    """The text of a JSON file eqprop writes: ``document`` and, under ``provenance``, the versions that
    made it (:func:`eqprop.provenance.versions`)."""
    from .provenance import versions

    return json.dumps(document | {"provenance": versions()}, indent=2, sort_keys=True) + "\n"
