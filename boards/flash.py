"""Flashing a built bitstream onto a board (``eqprop flash``) with openFPGALoader or iceprog."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from eqprop.errors import ConfigError

from .registry import Board

#: openFPGALoader's name for each board.
OPENFPGALOADER_BOARDS = {"icebreaker": "icebreaker", "ulx3s-85f": "ulx3s"}


def bitstream_of(build_dir: Path) -> Path:
    report = build_dir / "report.json"
    if not report.is_file():
        raise ConfigError(f"{build_dir} holds no build (no report.json): run eqprop build first")
    path = Path(json.loads(report.read_text())["bitstream"])
    if not path.is_file():
        raise ConfigError(f"the bitstream {path} named in {report} is missing")
    return path


def flash_command(board: Board, build_dir: Path, available=shutil.which) -> list[str]:
    """The command that writes ``build_dir``'s bitstream to ``board``'s configuration flash, with the first programmer installed."""
    bitstream = bitstream_of(build_dir)
    report = json.loads((build_dir / "report.json").read_text())
    if report["board"] != board.name:
        raise ConfigError(f"{build_dir} was built for {report['board']}, not {board.name}")
    for tool in board.programmers:
        if available(tool):
            if tool == "iceprog":
                return ["iceprog", str(bitstream)]
            return ["openFPGALoader", "-b", OPENFPGALOADER_BOARDS[board.name], "-f", str(bitstream)]
    raise ConfigError(f"no programmer for {board.name}: install {' or '.join(board.programmers)}")


def flash(board: Board, build_dir: Path, dry_run: bool = False) -> list[str]:
    command = flash_command(board, build_dir, available=(lambda tool: True) if dry_run else shutil.which)
    if not dry_run:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(f"{command[0]} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
    return command
