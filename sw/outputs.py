"""Output folders written all at once: the one way every command writes its run or build folder.

A command plans its output before it starts working (:class:`OutputFolder` checks the path at
once), works in a staging folder beside the final place, on the same filesystem, and only then
swaps the staging folder in: ``renameat2(RENAME_EXCHANGE)`` where the kernel has it, else two
renames with signals held. So an existing folder is either left as it was or replaced whole, and
a failure or a SIGTERM while the command works or writes leaves no staging folder behind.

Runs are never mixed: a folder that holds only what this kind of output writes (an earlier run of
the same command) is replaced whole; one that holds anything else is refused unless the user
asked to replace it (``--replace``). The folder one is in, or a folder above it, is never an
output. When the output folder is a mount point (a Docker volume), which cannot be renamed, the
staging folder is made inside it and its entries are moved in.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import EqpropError

#: Signals that end a command while it writes; turned into :class:`Terminated` so clean-up runs.
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_STAGING_TAG = ".eqprop-staging-"
_OLD_TAG = ".eqprop-old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputError(EqpropError):
    """An output path that cannot be written, or that holds something else."""


class Terminated(BaseException):
    """A SIGTERM or SIGHUP arrived while an output was being staged; the staging folder is gone."""


@dataclass(frozen=True)
class OutputKind:
    """A kind of output folder: its name for messages and the names (glob patterns) of its top-level entries."""

    name: str
    entries: tuple[str, ...]

    def strangers(self, folder: Path) -> list[str]:
        """Entries of ``folder`` that this kind of output does not write."""
        return sorted(p.name for p in folder.iterdir()
                      if not _is_staging(p.name) and not any(fnmatch.fnmatchcase(p.name, e) for e in self.entries))


def _is_staging(name: str) -> bool:
    """A staging or set-aside folder of this module (inside a mount point it lies among the entries)."""
    return _STAGING_TAG in name or _OLD_TAG in name


def check_path_text(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`Path`, refusing an empty one (``--out ''`` must not mean the current folder)."""
    if not str(path).strip():
        raise OutputError(f"{what} is empty: give a path")
    return Path(path)


#: Characters a path may hold where it goes into generated HDL, Makefiles or build scripts.
_TOOL_SAFE = re.compile(r"[\w./+,@=:~-]+")


def check_tool_path(path: str | os.PathLike, what: str) -> Path:
    """``path``, refused when its absolute form holds characters that generated Verilog (a string
    literal), a simulator's Makefile or a build script would read as syntax: quotes, backslashes,
    ``$``, white space and the like."""
    path = check_path_text(path, what)
    bad = sorted(set(_TOOL_SAFE.sub("", str(path.absolute()))))
    if bad:
        raise OutputError(f"{what} {str(path)!r} holds {' '.join(map(repr, bad))}, which the simulator and build tools "
                          "cannot take in a path: choose a path of letters, digits and ._-+,@=:~/")
    return path


def check_work_folder(path: str | os.PathLike, what: str) -> Path:
    """A folder of intermediate files (simulator builds) that a command creates or reuses: checked now."""
    path = check_tool_path(path, what)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} exists and is not a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: cannot write in it (permission denied)")
    _check_parent_writable(path, what)
    return path


def _refuse_current_folder(path: Path, what: str) -> None:
    here = Path.cwd().resolve()
    target = path.resolve()
    if target == here or target in here.parents:
        raise OutputError(f"{what} {path} is the current folder or a folder above it: give a new or dedicated folder")


def _check_parent_writable(path: Path, what: str) -> None:
    """The nearest existing folder above ``path`` is a folder we may create entries in."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise OutputError(f"{what} {path}: {ancestor} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{what} {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: cannot write in {ancestor} (permission denied)")


class OutputFolder:
    """The folder one command writes, checked when planned and written all at once.

    ``replace`` allows replacing a folder that holds other files than ``kind`` writes.
    """

    def __init__(self, path: str | os.PathLike, kind: OutputKind, replace: bool = False, what: str = "output folder") -> None:
        self.path, self.kind, self.replace, self.what = check_path_text(path, what), kind, replace, what
        self.check()

    def check(self) -> None:
        """Raise :class:`OutputError` unless the folder can be written (and replaced) now."""
        path = self.path
        if path.is_symlink():
            raise OutputError(f"{self.what} {path} is a symbolic link: give the folder itself")
        _refuse_current_folder(path, self.what)
        if path.exists():
            if not path.is_dir():
                raise OutputError(f"{self.what} {path} exists and is not a folder")
            strangers = self.kind.strangers(path)
            if strangers and not self.replace:
                shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
                raise OutputError(f"{self.what} {path} holds files that are not a {self.kind.name} ({shown}): "
                                  "give another folder, or --replace to replace it whole")
            if os.path.ismount(path) and not os.access(path, os.W_OK | os.X_OK):
                raise OutputError(f"{self.what} {path}: cannot write in it (permission denied)")
        _check_parent_writable(path, self.what)

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        """A fresh folder to write the output into; swapped in for ``path`` when the block ends without an error."""
        mounted = os.path.ismount(self.path)
        place = self.path if mounted else self.path.absolute().parent  # a mount point cannot be renamed: stage inside it
        with ending_signals_raise():
            try:
                place.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}{_STAGING_TAG}", dir=place))
            except OSError as exc:
                raise self._cannot_write(exc) from None
            try:
                try:
                    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700; a run folder follows the umask
                except OSError as exc:
                    raise self._cannot_write(exc) from None
                yield staging
                with _signals_held():
                    self.check()  # the folder may have changed while the command worked
                    self._swap_in(staging)
            finally:
                with _signals_held():
                    shutil.rmtree(staging, ignore_errors=True)

    def write(self, files: dict[str, bytes | str]) -> None:
        """Write ``files`` (relative name -> content) as the whole folder."""
        with self.staged() as folder:
            try:
                write_files(folder, files)
            except OSError as exc:
                raise self._cannot_write(exc) from None

    def _cannot_write(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self.what} {self.path}: {exc.strerror or exc}")

    def _swap_in(self, staging: Path) -> None:
        try:
            if os.path.ismount(self.path):
                _move_entries_into(staging, self.path)
            elif not self.path.exists():
                os.rename(staging, self.path)
            else:
                _exchange(staging, self.path)  # the old folder is now at ``staging``, removed on the way out
        except OSError as exc:
            raise OutputError(f"cannot write {self.what} {self.path}: {exc.strerror or exc}") from None


class OutputFiles:
    """Files written together (a core's Verilog and its configuration): each to a temporary name
    beside it first, then all renamed, so a failure leaves the old files."""

    def __init__(self, paths: list[Path], what: str) -> None:
        if len(set(p.absolute() for p in paths)) != len(paths):
            raise OutputError(f"{what}: {', '.join(map(str, paths))} would overwrite each other")
        for path in paths:
            if path.is_dir():
                raise OutputError(f"{what} {path} is a folder: give a file name")
            _check_parent_writable(path, what)
        self.paths, self.what = paths, what

    def write(self, contents: list[bytes | str]) -> None:
        temporaries = []
        with ending_signals_raise():
            try:
                for path, content in zip(self.paths, contents):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    handle, name = tempfile.mkstemp(prefix=f".{path.name}{_STAGING_TAG}", dir=path.parent)
                    temporaries.append(Path(name))
                    with os.fdopen(handle, "wb") as f:
                        f.write(content.encode() if isinstance(content, str) else content)
                    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes it 0600
                with _signals_held():
                    for path, temporary in zip(self.paths, temporaries):
                        os.replace(temporary, path)
            except OSError as exc:
                raise OutputError(f"cannot write {self.what} {exc.filename or ''}: {exc.strerror or exc}") from None
            finally:
                for temporary in temporaries:
                    temporary.unlink(missing_ok=True)


def write_files(folder: Path, files: dict[str, bytes | str]) -> None:
    """Write ``files`` (names relative to ``folder``, sub-folders made as needed); for a staging folder."""
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _renameat2_exchange(new: Path, old: Path) -> bool:
    """Swap two folders with one ``renameat2(RENAME_EXCHANGE)``; False where the kernel or the
    filesystem cannot (no such call, or a filesystem without exchange)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(old), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(old))


def _exchange(new: Path, old: Path) -> None:
    """Swap the folders ``new`` and ``old`` atomically where the kernel can, else by two renames."""
    if _renameat2_exchange(new, old):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{old.name}{_OLD_TAG}", dir=old.parent))
    try:
        os.rename(old, aside / "old")
    except BaseException:
        os.rmdir(aside)
        raise
    try:
        os.rename(new, old)
    except BaseException:
        os.rename(aside / "old", old)  # the old folder back in its place
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _move_entries_into(staging: Path, mount: Path) -> None:
    """A mount point cannot be renamed: move its old entries aside (inside it), then the new ones in;
    on a failure, everything moved goes back."""
    aside = Path(tempfile.mkdtemp(prefix=_OLD_TAG, dir=mount))
    old = [e.name for e in mount.iterdir() if e not in (staging, aside)]
    new = [e.name for e in staging.iterdir()]
    moves = [(mount / name, aside / name) for name in old] + [(staging / name, mount / name) for name in new]
    done = []
    try:
        for source, target in moves:
            os.rename(source, target)
            done.append((source, target))
    except BaseException:
        for source, target in reversed(done):
            os.rename(target, source)
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def ending_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` inside the block (main thread only), so staging is cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    previous = {s: signal.signal(s, terminate) for s in _ENDING_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ending signals wait until the swap is done: the folder is then the old one or the new one, whole."""
    held = set(_ENDING_SIGNALS) | {signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
