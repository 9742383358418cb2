"""Flashing a built bitstream onto a board (``eqprop flash``) with openFPGALoader or iceprog."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from eqprop.errors import ConfigError
from eqprop.limits import MAX_CONFIG_BYTES

from .build import bitstream_name
from .registry import Board

#: openFPGALoader's name for each board.
OPENFPGALOADER_BOARDS = {"icebreaker": "icebreaker", "ulx3s-85f": "ulx3s"}


def built_board(build_dir: Path) -> str:
    """The board ``build_dir``'s report.json says the build is for; a clear error for anything else."""
    report = build_dir / "report.json"
    if not report.is_file():
        raise ConfigError(f"{build_dir} holds no build (no report.json): run eqprop build first")
    try:
        board = json.loads(report.read_bytes()[:MAX_CONFIG_BYTES]).get("board")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError):
        board = None
    if not isinstance(board, str):
        raise ConfigError(f"{report} is not an eqprop build report (no board name in it): run eqprop build again")
    return board


def bitstream_of(board: Board, build_dir: Path) -> Path:
    """The bitstream inside ``build_dir`` (never a path the report names: that may point elsewhere)."""
    built = built_board(build_dir)
    if built != board.name:
        raise ConfigError(f"{build_dir} was built for {built}, not {board.name}")
    path = build_dir / bitstream_name(board.fpga)
    if not path.is_file():
        raise ConfigError(f"{build_dir} holds no bitstream {path.name}: run eqprop build again")
    return path


def flash_command(board: Board, build_dir: Path, available=shutil.which) -> list[str]:
    """The command that writes ``build_dir``'s bitstream to ``board``'s configuration flash, with the first programmer installed."""
    bitstream = bitstream_of(board, build_dir)
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
