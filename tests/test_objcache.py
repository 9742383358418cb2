"""The kept Verilator runtime objects (eqprop.sim.objcache): reused only while what they were compiled from is unchanged."""

import os
import shutil
import stat

import pytest

from eqprop.sim.objcache import CACHE_ENV, compile_cached


@pytest.fixture
def counting_compiler(tmp_path):
    """A C compiler that counts its runs in ``runs``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    script = tmp_path / "countcc"
    script.write_text(f'#!/bin/sh\necho x >> "{tmp_path / "runs"}"\nexec {cc} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), lambda: len((tmp_path / "runs").read_text().split()) if (tmp_path / "runs").exists() else 0


def test_a_runtime_object_is_compiled_once_until_its_header_changes(tmp_path, monkeypatch, counting_compiler):
    compiler, runs = counting_compiler
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    lib = tmp_path / "include"
    lib.mkdir()
    (lib / "answer.h").write_text("#define ANSWER 42\n")
    (lib / "runtime.c").write_text('#include "answer.h"\nint answer(void) { return ANSWER; }\n')
    command = [compiler, "-O1", "-MMD", f"-I{lib}", "-c", "-o", "runtime.o", str(lib / "runtime.c")]

    def build(name):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        assert compile_cached(command) == 0
        return (folder / "runtime.o").read_bytes(), (folder / "runtime.d").read_text()

    first = build("a")
    assert runs() == 1
    assert build("b") == first and runs() == 1  # the second build's object comes from the cache
    (lib / "answer.h").write_text("#define ANSWER 43\n")
    os.utime(lib / "answer.h", ns=(0, 10**18))
    changed = build("c")
    assert runs() == 2 and changed[0] != first[0]


def test_a_compile_that_reads_the_build_folder_always_runs(tmp_path, monkeypatch, counting_compiler):
    compiler, runs = counting_compiler
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "main.c").write_text('#include "design.h"\nint main(void) { return WIDTH; }\n')
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "design.h").write_text("#define WIDTH 3\n")  # relative in the dependency file: the design's own
        monkeypatch.chdir(folder)
        assert compile_cached([compiler, "-MMD", "-I.", "-c", "-o", "main.o", str(tmp_path / "main.c")]) == 0
    assert runs() == 2
    assert compile_cached([compiler, "-MMD", "-c", "-o", "broken.o", str(tmp_path / "missing.c")]) != 0
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.json"))
