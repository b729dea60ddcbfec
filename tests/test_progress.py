"""Progress on a terminal: reading and evaluating, each with a rate and an ETA; nothing when stderr is not a
terminal, with -q, or when the results themselves are printed on the terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fhir_ns.cli import cli

ROOT = Path(__file__).resolve().parent.parent
COHORT = ROOT / "samples" / "cohort.ndjson"
ETA = re.compile(rb"\d+/\d+(?: patients)? \[\d\d:\d\d<\d\d:\d\d")  # done/total [elapsed<remaining


def on_a_terminal(*args: str, stdout_terminal: bool = False) -> tuple[bytes, bytes]:
    """Run fhir-ns with stderr (and, if asked, stdout) on a pseudo-terminal of 100 x 30: (terminal, stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    captured = tempfile.TemporaryFile()  # noqa: SIM115 (not a pipe: a full one would stop the child while we read)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_ns", *args],
        stdout=slave if stdout_terminal else captured,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,  # its own session: no terminal signal of this process's reaches it
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while True:
        if time.monotonic() > deadline:  # never hang the suite: fail with what was seen
            proc.kill()
            proc.wait()
            os.close(master)
            raise AssertionError(f"fhir-ns {' '.join(args)} did not finish in 120 s: {seen[-800:]!r}")
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=120)
    os.close(master)
    captured.seek(0)
    return seen, captured.read()


@pytest.fixture(scope="module")
def big_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample bulk export's patients 400 times over (new ids), in one NDJSON file: long enough to show pace."""
    lines = [orjson.loads(line) for f in sorted(COHORT.glob("*.ndjson")) for line in f.read_bytes().splitlines()]
    out = tmp_path_factory.mktemp("big") / "cohort.ndjson"
    with out.open("wb") as fh:
        for n in range(400):
            for resource in lines:
                text = (
                    orjson.dumps(resource).replace(b'"c-0', f'"c{n}-0'.encode()).replace(b"/c-0", f"/c{n}-0".encode())
                )
                fh.write(text + b"\n")
    return out


def test_a_long_run_on_a_terminal_shows_reading_and_evaluating_with_rate_and_eta(big_cohort: Path) -> None:
    terminal, stdout = on_a_terminal("classify", str(big_cohort), "--as-of", "2024-01-01", "--format", "json")
    assert b"fhir-ns: reading" in terminal and b"B/s" in terminal
    assert b"fhir-ns: evaluating" in terminal and b"patients/s" in terminal
    assert ETA.search(terminal), terminal[-800:]
    assert terminal.rstrip().endswith(b"patient(s) evaluated")  # the bars are cleared: the summary stands alone
    assert len(orjson.loads(stdout)) == 2000


def test_convert_to_a_file_shows_progress_and_with_two_jobs_only_the_summary(big_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    terminal, _ = on_a_terminal("convert", str(big_cohort), "--as-of", "2024-01-01", "-o", str(out))
    assert b"fhir-ns: reading" in terminal and b"fhir-ns: evaluating" in terminal
    assert out.exists()
    out.unlink()
    with_jobs, _ = on_a_terminal("convert", str(COHORT), "--as-of", "2024-01-01", "-o", str(out), "--jobs", "2")
    assert b"fhir-ns: reading" not in with_jobs and with_jobs.rstrip().endswith(b"patient(s) evaluated")


def test_quiet_or_results_on_the_terminal_show_no_progress() -> None:
    quiet, _ = on_a_terminal("classify", str(COHORT), "--as-of", "2024-01-01", "-q")
    printed, _ = on_a_terminal("classify", str(COHORT), "--as-of", "2024-01-01", stdout_terminal=True)
    assert b"fhir-ns: reading" not in quiet and b"fhir-ns: evaluating" not in quiet
    assert b"fhir-ns: reading" not in printed and b"Patient c-0001" in printed


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    result = CliRunner().invoke(cli, ["classify", str(COHORT), "--as-of", "2024-01-01", "--format", "json"])
    assert result.exit_code == 0
    assert "fhir-ns: reading" not in result.stderr and "\r" not in result.stderr


def test_validate_shows_its_reading_on_a_terminal_and_not_with_quiet(big_cohort: Path) -> None:
    terminal, report = on_a_terminal("validate", str(big_cohort))
    assert b"fhir-ns: reading" in terminal and b"B/s" in terminal
    assert report  # the report itself is printed once validation is done
    quiet, _ = on_a_terminal("validate", str(COHORT), "-q")
    assert b"fhir-ns: reading" not in quiet
