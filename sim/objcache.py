"""Verilator's runtime objects, compiled once and kept between builds.

Every Verilator build compiles the same runtime (``verilated.cpp``, ``verilated_vpi.cpp``, ...):
about two thirds of the C++ compile time of a small design. The runner sets Verilator's
``OBJCACHE`` (a prefix of every compile command) to ``python -m eqprop.sim.objcache``, so make
runs ``python -m eqprop.sim.objcache c++ ... -c -o verilated.o /.../verilated.cpp``.

A compile is kept when it writes a dependency file (``-MMD``) and its source and every file the
dependency file lists are absolute paths (the design's own files, in the build folder, are
relative: those compiles always run). It is reused for the same compiler and the same command
line only while each of those files has the size and modification time it had. Entries are
written to a temporary name and renamed, so parallel builds (pytest-xdist workers) may share
the folder: ``$EQPROP_OBJCACHE`` (default ``$XDG_CACHE_HOME/eqprop/verilator-objects``, else
``~/.cache/...``). Anything unusual (a cache that cannot be written, a command of another shape)
compiles as asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE_ENV = "EQPROP_OBJCACHE"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eqprop" / "verilator-objects"


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _key(command: list[str]) -> tuple[str, str, str] | None:
    """``(key, object file, dependency file)`` of a compile that may be kept, else None."""
    args = command[1:]
    if "-c" not in args or "-MMD" not in args or args.count("-o") != 1 or args.index("-o") + 1 >= len(args):
        return None
    output = args[args.index("-o") + 1]
    sources = [a for a in args if a.endswith((".cpp", ".cc", ".c")) and a != output]
    compiler = shutil.which(command[0])
    if len(sources) != 1 or not os.path.isabs(sources[0]) or not output.endswith(".o") or compiler is None:
        return None
    compiler = os.path.realpath(compiler)
    identity = json.dumps({"compiler": [compiler, *_stamp(compiler)], "command": args})
    return hashlib.sha256(identity.encode()).hexdigest()[:32], output, output[:-2] + ".d"


def _dependencies(text: str) -> list[str] | None:
    """The prerequisites of a ``-MMD`` file, or None when one of them is not an absolute path."""
    _, _, rest = text.replace("\\\n", " ").partition(":")
    deps = rest.split()
    return deps if deps and all(os.path.isabs(d) for d in deps) else None


def _put(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    os.close(fd)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def compile_cached(command: list[str]) -> int:
    found = _key(command)
    if found is None:
        return subprocess.call(command)
    key, output, depfile = found
    try:
        entry = cache_dir() / key
    except RuntimeError:  # no home folder to keep it in
        return subprocess.call(command)
    try:
        manifest = json.loads(entry.with_suffix(".json").read_text())
        if all(_stamp(path) == stamp for path, stamp in manifest.items()):
            _put(entry.with_suffix(".o"), Path(output))
            _put(entry.with_suffix(".d"), Path(depfile))
            return 0
    except (OSError, ValueError):
        pass
    code = subprocess.call(command)
    if code == 0:
        try:
            deps = _dependencies(Path(depfile).read_text())
            if deps is not None:
                entry.parent.mkdir(parents=True, exist_ok=True)
                manifest = {path: _stamp(path) for path in deps}
                _put(Path(output), entry.with_suffix(".o"))
                _put(Path(depfile), entry.with_suffix(".d"))
                fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
                with os.fdopen(fd, "w") as f:
                    json.dump(manifest, f)
                os.replace(tmp, entry.with_suffix(".json"))  # last: an entry with a manifest is whole
        except (OSError, ValueError):
            pass
    return code


if __name__ == "__main__":
    sys.exit(compile_cached(sys.argv[1:]))
