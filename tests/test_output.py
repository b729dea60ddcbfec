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
from fhir_ns.errors import OUTPUT
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
