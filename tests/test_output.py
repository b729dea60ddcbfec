"""Output paths: every mistake (a directory, a missing or file parent, no permission, a full disk) is one line
naming the path and exit 8, checked before any work where it can be, and nothing half-written is left."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from fhir_ns.cli import cli
from fhir_ns.errors import OUTPUT, OutputError
from tests.fhir_server import free_port
from tests.test_cli import two_patients

AS_OF = "2023-03-01"


def convert(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["convert", str(two_patients(tmp_path)), "--as-of", AS_OF, *args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def assert_refused(result: Result, *words: str) -> None:
    assert result.exit_code == OUTPUT, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr


def test_convert_to_an_existing_directory_is_refused_before_any_work(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    result = convert(tmp_path, "-o", str(folder))
    assert_refused(result, f"-o {folder}", "is a directory")
    assert "read" not in result.stderr  # nothing was read: the check came first
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_convert_to_a_path_under_a_file_or_a_missing_directory_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert_refused(convert(tmp_path, "-o", str(a_file / "out.json")), "notes.txt is a file, not a directory")
    assert_refused(convert(tmp_path, "-o", str(tmp_path / "missing" / "out.json")), "missing does not exist")
    assert not (tmp_path / "missing").exists() and a_file.read_text() == "keep me"


def test_outcome_path_mistakes_are_refused_the_same_way_for_convert_and_classify(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    out = tmp_path / "out.json"
    assert_refused(convert(tmp_path, "-o", str(out), "--outcome", str(folder)), "--outcome", "is a directory")
    assert not out.exists()  # refused before the Bundle was written
    classify = CliRunner().invoke(
        cli, ["classify", str(two_patients(tmp_path)), "--outcome", str(tmp_path / "two.json" / "oo.json")]
    )
    assert_refused(classify, "--outcome", "two.json is a file, not a directory")
    assert classify.stdout == ""


def test_a_directory_without_write_permission_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fault injection: the tests may run as root, for whom every directory is writable
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    assert_refused(convert(tmp_path, "-o", str(locked / "out.json")), "cannot write in", "permission denied")


def test_a_full_disk_while_writing_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.json"
    out.write_bytes(b'{"previous": "run"}')

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = convert(tmp_path, "-o", str(out))
    assert_refused(result, f"cannot write {out}", "No space left on device")
    assert orjson.loads(out.read_bytes()) == {"previous": "run"}
    assert leftovers(tmp_path) == []


def test_a_rename_refused_at_the_end_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", refused)
    result = convert(tmp_path, "-o", str(tmp_path / "out.json"))
    assert_refused(result, "cannot write", "Permission denied")
    assert not (tmp_path / "out.json").exists() and leftovers(tmp_path) == []


def test_a_good_path_still_works_and_stdout_is_still_the_default(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert convert(tmp_path, "-o", str(out)).exit_code == 0 and orjson.loads(out.read_bytes())["type"] == "transaction"
    assert orjson.loads(convert(tmp_path).stdout)["type"] == "transaction"


def sync(tmp_path: Path, *args: str) -> Result:
    closed = f"http://127.0.0.1:{free_port()}/fhir"  # a path mistake must be found before the first request
    return CliRunner().invoke(cli, ["sync", "--base-url", closed, *args])


def test_sync_state_path_mistakes_are_refused_before_any_request(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert_refused(sync(tmp_path, "--state", str(tmp_path)), f"--state {tmp_path}", "is a directory")
    missing = tmp_path / "var" / "sync.sqlite"
    assert_refused(sync(tmp_path, "--state", str(missing)), "the directory", "does not exist")
    assert_refused(sync(tmp_path, "--state", str(a_file / "s.sqlite")), "notes.txt is a file, not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_sync_sink_and_dry_run_directories_under_a_file_are_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    state = ["--state", str(tmp_path / "s.sqlite")]
    assert_refused(sync(tmp_path, *state, "--sink", f"file:{a_file}/out"), "--sink file:", "lies under")
    assert_refused(sync(tmp_path, *state, "--dry-run", "-o", str(a_file)), f"-o {a_file}", "is a file")
    real_run = sync(tmp_path, *state, "-o", str(tmp_path / "out"))
    assert real_run.exit_code == 2 and "--sink file:DIR" in real_run.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_state_the_disk_refuses_to_write_is_a_clean_error(tmp_path: Path) -> None:
    import sqlite3

    from fhir_ns.sync.state import State

    state = State(tmp_path / "s.sqlite", "http://fhir.test/fhir")

    class FullDisk:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql.startswith(("INSERT", "BEGIN")):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    real = state.db
    state.db = FullDisk(real)  # type: ignore[assignment]
    with pytest.raises(OutputError, match=r"cannot write the state .*s.sqlite: database or disk is full"):
        state.commit_patient("p1", "hash", "ipna-2022-child|1.0.0", None, "2025-01-01", [])
    with pytest.raises(OutputError):
        state.set_meta("watermark", "2025-01-01T00:00:00Z")
    real.close()


def test_a_file_that_is_not_a_state_is_refused_and_left_alone(tmp_path: Path) -> None:
    import sqlite3

    from fhir_ns.errors import ConfigError
    from fhir_ns.sync.state import State

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, and long enough to have a header " * 4)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    before = (text.read_bytes(), other.read_bytes())
    for path in (text, other):
        with pytest.raises(ConfigError, match="not a fhir-ns state file"):
            State(path, "http://fhir.test/fhir")
    assert (text.read_bytes(), other.read_bytes()) == before


def test_sigterm_while_writing_removes_the_unfinished_file(tmp_path: Path) -> None:
    """As a real process: a scheduler's timeout (SIGTERM) mid-run leaves no temporary file and exit 143."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "fhir_ns", "convert", "-", "--as-of", AS_OF, "-o", str(out)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not leftovers(tmp_path) and time.monotonic() < deadline:  # writing has begun; stdin is still open
        time.sleep(0.05)
    assert leftovers(tmp_path), "the output file was never opened"
    time.sleep(0.3)  # now reading standard input, mid-run
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert b"stopped by SIGTERM" in stderr and b"Traceback" not in stderr, stderr
    assert leftovers(tmp_path) == [] and not out.exists()


def test_a_full_disk_on_every_write_is_still_one_clean_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary file on a device that is always full (/dev/full): writes, flushes and the close all fail."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    real_fdopen = os.fdopen

    def always_full(fd: int, mode: str = "r", *args: object, **kwargs: object) -> object:
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode)

    monkeypatch.setattr(os, "fdopen", always_full)
    result = convert(tmp_path, "-o", str(tmp_path / "out.json"))
    monkeypatch.undo()
    assert_refused(result, "cannot write", "No space left on device")
    assert not (tmp_path / "out.json").exists() and leftovers(tmp_path) == []
