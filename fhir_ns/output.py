"""Writing output files whole or not at all, as they are produced."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from fhir_ns.errors import OutputError


def check_file(path: str, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written: a directory, or one whose directory is
    missing, a file, or read-only ('-' is stdout)."""
    if path == "-":
        return
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        raise OutputError(f"{option} {path}: is a directory; give a file name")
    folder = target.parent
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a directory")
    if existing != folder:
        raise OutputError(f"{option} {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write in {folder} (permission denied or read-only)")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"{option} {path}: the file is read-only")


def check_directory(path: str, option: str) -> None:
    """Refuse, before any work, a directory to write files into that is a file, lies under a file or cannot be
    written; a missing one is created when the first file is written. `option` names it as typed (`-o DIR`)."""
    existing = _nearest_existing(Path(path))
    if not existing.is_dir():
        where = "is a file" if existing == Path(path) else f"lies under {existing}, a file"
        raise OutputError(f"{option}: {where}, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{option}: cannot write in {existing} (permission denied or read-only)")


def check_empty_directory(path: str, option: str) -> None:
    """Refuse, before any work, a directory to fill that cannot be written (see `check_directory`) or that
    already holds files: what an earlier run left there would pass for this run's output."""
    check_directory(path, f"{option} {path}")
    target = Path(path)
    if target.is_dir() and any(target.iterdir()):
        raise OutputError(f"{option} {path}: the directory is not empty; give a new or empty one")


def write_atomically(path: str, data: bytes) -> None:
    """Write a file whole or not at all ('-' is stdout)."""
    with atomic_output(path) as out:
        out.write(data)


class Output:
    """Where output goes; a write that fails (disk full, permission) is an OutputError naming the file."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream = stream
        self.name = name

    def write(self, data: bytes) -> None:
        with _failing_as_output_error(self.name):
            self.stream.write(data)


@contextmanager
def atomic_output(path: str) -> Iterator[Output]:
    """A file to write as output is produced, in place only once complete ('-' is stdout).

    Its directory must exist (see `check_file`). On any failure the temporary file is removed and the
    target is left as it was."""
    if path == "-":
        yield Output(sys.stdout.buffer, "standard output")
        with _failing_as_output_error("standard output"):
            sys.stdout.flush()
        return
    target = Path(path)
    tmp, fh = None, None
    try:  # from the temporary file's creation on, anything (SIGTERM included) removes it
        with _failing_as_output_error(path):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            fh = os.fdopen(fd, "wb")
        yield Output(fh, path)
        with _failing_as_output_error(path):
            fh.flush()
            os.fsync(fh.fileno())  # the content is on disk before the name points at it
            fh.close()
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; output gets the usual permissions
            os.replace(tmp, target)
    except BaseException:
        if fh is not None:
            with suppress(OSError):  # what is still buffered cannot be written either; the error is on its way
                fh.close()
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str, option: str) -> Iterator[Path]:
    """A temporary directory beside `path` to fill, renamed to `path` when the block ends without error (`path`
    must be missing or empty: see `check_empty_directory`); removed on any failure (SIGTERM included), so a
    directory of output is there whole or not at all. `option` names it in messages (`-o`)."""
    target = Path(path)
    tmp: Path | None = None
    try:
        with _failing_as_output_error(f"{option} {path}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        yield tmp
        with _failing_as_output_error(f"{option} {path}"):
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; output gets the usual permissions
            if target.is_dir():
                target.rmdir()  # empty (checked before the run): replaced by the complete output
            os.replace(tmp, target)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def _failing_as_output_error(name: str) -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # a reader that stopped early (`| head`) is not an error
    except OSError as exc:
        raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from exc


def _nearest_existing(path: Path) -> Path:
    """The path itself if it exists, else its nearest ancestor that does ('.' at the top of a relative path)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def indented(data: bytes, spaces: int) -> bytes:
    """JSON from orjson's OPT_INDENT_2, indented as an element nested `spaces` deeper (strings hold no newline)."""
    pad = b" " * spaces
    return pad + data.replace(b"\n", b"\n" + pad)


def json_array(elements: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces of a JSON array, as orjson's OPT_INDENT_2 lays it out, of elements already indented by 2."""
    first = True
    for element in elements:
        yield (b"[\n" if first else b",\n") + element
        first = False
    yield b"[]" if first else b"\n]"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
