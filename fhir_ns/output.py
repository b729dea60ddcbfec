"""Writing output files whole or not at all, as they are produced."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str, data: bytes) -> None:
    """Write a file whole or not at all ('-' is stdout)."""
    with atomic_output(path) as out:
        out.write(data)


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A file to write as output is produced, in place only once complete ('-' is stdout)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; output gets the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
