"""Writing output files whole or not at all."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def write_atomically(path: str, data: bytes) -> None:
    """Write a file whole or not at all ('-' is stdout)."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
