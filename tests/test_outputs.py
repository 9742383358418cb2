"""The output-folder writer: all or nothing under faults and signals, runs never mixed, the umask kept."""

import os
import pathlib
import signal

import pytest

from eqprop import outputs
from eqprop.outputs import OutputError, OutputFolder, OutputKind, Terminated

KIND = OutputKind("test run", ("a.txt", "b.txt", "sub", "*.png"))
OLD = {"a.txt": b"old a", "b.txt": b"old b", "old.png": b"old png"}
NEW = {"a.txt": "new a", "sub/c.txt": b"new c", "new.png": b"new png"}


def _tree(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _as_bytes(files: dict) -> dict:
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


class Fault(Exception):
    pass


def _inject(monkeypatch, at: int, error) -> list:
    """Make the ``at``-th call of the writer's file-system steps raise ``error``; the calls are counted in the list returned."""
    calls = []

    def failing(original):
        def step(*args, **kwargs):
            calls.append(original.__name__)
            if len(calls) == at:
                raise error
            return original(*args, **kwargs)
        return step

    for module, name in ((os, "mkdir"), (os, "chmod"), (os, "rename"), (pathlib.Path, "write_bytes"), (outputs, "_renameat2_exchange")):
        monkeypatch.setattr(module, name, failing(getattr(module, name)))
    return calls


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), Terminated("SIGTERM")], ids=["io-error", "sigterm"])
@pytest.mark.parametrize("swap", ["renameat2", "two-renames", "mount-point"])
@pytest.mark.parametrize("existing", [True, False], ids=["old-folder", "no-folder"])
def test_a_failure_at_every_step_leaves_the_old_folder_or_the_new_one_whole(tmp_path, monkeypatch, error, swap, existing):
    at = 0
    while True:
        at += 1
        root = tmp_path / str(at)
        out = root / "run"
        out.mkdir(parents=True)  # a mount point always exists
        if existing:
            outputs.write_files(out, OLD)
        elif swap != "mount-point":
            out.rmdir()
        before = _tree(out) if out.exists() else None
        with monkeypatch.context() as m:
            if swap == "two-renames":
                m.setattr(outputs, "_renameat2_exchange", lambda new, old: False)
            if swap == "mount-point":
                m.setattr(os.path, "ismount", lambda path: pathlib.Path(path) == out)
            folder = OutputFolder(out, KIND)
            calls = _inject(m, at, error)
            try:
                folder.write(NEW)
                failed = False
            except (OutputError, Terminated):
                failed = True
        after = _tree(out) if out.exists() else None
        assert after == (before if failed else _as_bytes(NEW)), (at, calls)
        assert [p.name for p in root.iterdir()] == ([] if after is None else ["run"]), (at, calls)  # no staging folder left
        if len(calls) < at:  # no step was left to fail: each has had its turn
            assert not failed
            break
    assert at > 4, calls


def test_sigterm_while_the_command_works_removes_the_staging_folder(tmp_path):
    out = tmp_path / "run"
    outputs.write_files(out, OLD)
    with pytest.raises(Terminated):
        with OutputFolder(out, KIND).staged() as staging:
            outputs.write_files(staging, NEW)
            os.kill(os.getpid(), signal.SIGTERM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and _tree(out) == OLD
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_a_folder_of_the_same_kind_is_replaced_whole_and_another_kind_only_when_asked(tmp_path):
    out = tmp_path / "run"
    outputs.write_files(out, OLD)
    OutputFolder(out, KIND).write(NEW)
    assert _tree(out) == _as_bytes(NEW)  # old.png and b.txt are gone: runs are not mixed
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt.*--replace"):
        OutputFolder(out, KIND)
    OutputFolder(out, KIND, replace=True).write(NEW)
    assert _tree(out) == _as_bytes(NEW)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_folder_and_its_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        OutputFolder(tmp_path / "run", KIND).write(NEW)
    finally:
        os.umask(previous)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "run" / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_paths_that_are_no_output_folder_are_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for path, message in [("", "empty"), (".", "current folder"), ("..", "current folder"), ("/", "current folder"),
                          ("file", "not a folder"), ("file/run", "not a folder"), ("link", "symbolic link")]:
        with pytest.raises(OutputError, match=message):
            OutputFolder(path, KIND)


def test_files_written_together_overwrite_the_old_ones_or_none(tmp_path, monkeypatch):
    v, j = tmp_path / "core.v", tmp_path / "core.json"
    v.write_text("old v")
    j.write_text("old j")
    files = outputs.OutputFiles([v, j], "--out")
    calls = []
    real = os.replace

    def second_fails(a, b):
        calls.append(a)
        if len(calls) == 1:
            raise OSError(28, "No space left on device", str(b))
        return real(a, b)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OutputError, match="No space left"):
        files.write(["new v", "new j"])
    assert (v.read_text(), j.read_text()) == ("old v", "old j") and sorted(p.name for p in tmp_path.iterdir()) == ["core.json", "core.v"]
    monkeypatch.setattr(os, "replace", real)
    files.write(["new v", "new j"])
    assert (v.read_text(), j.read_text()) == ("new v", "new j")
    with pytest.raises(OutputError, match="overwrite each other"):
        outputs.OutputFiles([v, v], "--out")


def test_tool_paths_with_syntax_characters_are_refused():
    for bad in ['a"b', "a b", "a$b", "a\\b", "a\nb", "a`b"]:
        with pytest.raises(OutputError, match="cannot take in a path"):
            outputs.check_tool_path(bad, "--build-dir")
    assert outputs.check_tool_path("build/cosim-1.2_x", "--build-dir").name == "cosim-1.2_x"
