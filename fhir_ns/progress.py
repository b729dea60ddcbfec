"""Progress of a long run on a terminal: bytes read, then patients evaluated, each with a rate and an ETA.

Shown on stderr only when stderr is a terminal and the user did not ask for quiet (`-q`): piped or
scheduled runs (cron, CI) print nothing more than before. The bars are tqdm's (the field's usual
progress library), cleared when done so the summary line stands alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from fhir_ns.fhir.reader import expand_paths


class Progress:
    """Two phases, one bar each: reading (bytes of input) and evaluating (patients). Disabled: does nothing."""

    def __init__(self, enabled: bool, total_bytes: int | None = None) -> None:
        self.enabled = enabled
        self.total_bytes = total_bytes
        self._bar: Any = None

    @classmethod
    def for_inputs(cls, inputs: Iterable[str], quiet: bool, printing_results: bool = False) -> Progress:
        """A progress display for a run over `inputs`: on when stderr is a terminal and not `quiet`, unless
        the results are printed on a terminal themselves (they would tear the bar, and show the pace anyway)."""
        if quiet or not _terminal(sys.stderr) or (printing_results and _terminal(sys.stdout)):
            return cls(False)
        return cls(True, _input_bytes(inputs))

    def reading(self, done: int) -> None:
        """`done` more bytes of the input were read (compressed files count their size on disk)."""
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = self._open("reading", self.total_bytes, unit="B", unit_scale=True, unit_divisor=1024)
        self._bar.update(done)

    def evaluating(self, total: int) -> None:
        """The reading is done; `total` patients are to be evaluated."""
        if not self.enabled:
            return
        self.close()
        self._bar = self._open("evaluating", total, unit=" patients")

    def evaluated(self, count: int = 1) -> None:
        if self.enabled and self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @staticmethod
    def _open(what: str, total: int | None, **units: Any) -> Any:
        from tqdm import tqdm  # imported only when a bar is shown

        tqdm.monitor_interval = 0  # no monitor thread: --jobs forks workers while a bar is shown
        columns, lines = _size()
        return tqdm(
            total=total, desc=f"fhir-ns: {what}", file=sys.stderr, leave=False, ncols=columns, nrows=lines, **units
        )


NO_PROGRESS = Progress(False)


def _terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _size() -> tuple[int, int]:
    """The terminal's columns and lines (80 x 24 when it reports none, as one without a size does: tqdm
    would otherwise hide the bar)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def _input_bytes(inputs: Iterable[str]) -> int | None:
    """The size of the input on disk, or None when it cannot be known (standard input)."""
    total = 0
    for name in expand_paths(inputs):
        if name == "-":
            return None
        try:
            total += os.stat(name).st_size
        except OSError:
            continue
    return total
