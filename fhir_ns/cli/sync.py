"""`fhir-ns sync`: an incremental, resumable sync job against a FHIR server, with idempotent write-back."""

from __future__ import annotations

import logging
import re
import ssl
import sys
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import requests

from fhir_ns.catalogue import DEFAULT_CANONICAL_BASE
from fhir_ns.cli.options import DateParam, load_config
from fhir_ns.errors import INPUT_SKIPPED, OK, ConfigError, FhirNsError
from fhir_ns.fhir.server.auth import Auth, BearerAuth, NoAuth, SmartBackendAuth
from fhir_ns.fhir.server.http import FhirClient, RetryPolicy
from fhir_ns.fhir.writer import Settings
from fhir_ns.output import check_directory, check_file
from fhir_ns.sync.job import DryRunSink, FileSink, ServerSink, Sink, Summary, SyncJob, SyncOptions
from fhir_ns.sync.state import State

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


class BaseUrl(click.ParamType):
    """A FHIR server base URL (http or https)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).rstrip("/")
        if not re.match(r"^https?://[^/\s]+", text):
            self.fail(f"{value!r} is not an http(s) base URL", param, ctx)
        try:
            if not urlsplit(text).hostname:
                raise ValueError("no host")
            urlsplit(text).port  # noqa: B018 (a port out of range or not a number raises ValueError)
            requests.Request("GET", f"{text}/metadata").prepare()  # what the client will send to
        except (ValueError, requests.RequestException) as exc:
            self.fail(f"{value!r} is not a usable base URL ({exc})", param, ctx)
        return text


class Instant(click.ParamType):
    """A FHIR instant with a time zone, e.g. 2024-05-01T00:00:00Z."""

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not INSTANT.match(str(value)):
            self.fail(f"{value!r} is not an instant with a time zone (2024-05-01T00:00:00Z)", param, ctx)
        return str(value)


@click.command()
@click.option("--base-url", required=True, type=BaseUrl(), help="The FHIR server's base URL.")
@click.option(
    "--state",
    "state_path",
    default="fhir-ns-sync.sqlite",
    show_default=True,
    metavar="PATH",
    help="SQLite file that remembers the watermark and what was written (its directory must exist).",
)
@click.option(
    "--rebind-state",
    is_flag=True,
    help="The state file belongs to the same server at another address: take it over for --base-url.",
)
@click.option("--since", type=Instant(), help="Read changes since this server instant instead of the stored watermark.")
@click.option("--patient", "patients", multiple=True, metavar="ID", help="Sync only these patients (repeatable).")
@click.option(
    "--cohort",
    "cohort_file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="Sync the patient ids listed in FILE (one per line).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read and classify; print per patient the requests a run would send; write nothing (not even the state).",
)
@click.option(
    "-o",
    "--output",
    "dry_run_dir",
    metavar="DIR",
    help="With --dry-run: also write the transaction Bundle each patient would get into DIR (one file each).",
)
@click.option(
    "--sink",
    default="server",
    show_default=True,
    metavar="server|file:DIR",
    help="Write back to the server, or one transaction Bundle per patient into DIR.",
)
@click.option(
    "--auth", "auth_kind", type=click.Choice(["none", "bearer", "smart-backend"]), default="none", show_default=True
)
@click.option(
    "--token-env",
    default="FHIR_NS_TOKEN",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the bearer token.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="File holding the bearer token (instead of --token-env).",
)
@click.option("--smart-client-id", metavar="ID")
@click.option(
    "--smart-key",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PEM",
    help="Private key (PEM) registered with the server for SMART Backend Services.",
)
@click.option("--smart-kid", metavar="KID", help="Key id (kid) of that key in the registered JWKS.")
@click.option("--smart-alg", type=click.Choice(["RS384", "ES384"]), default="RS384", show_default=True)
@click.option(
    "--smart-scope",
    default="system/*.read system/DetectedIssue.write system/CarePlan.write system/Observation.write "
    "system/Provenance.write system/Device.write",
    show_default=True,
)
@click.option(
    "--smart-token-url", metavar="URL", help="Token endpoint (default: from .well-known/smart-configuration)."
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PEM",
    help="CA certificates to trust for TLS (verification is always on).",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for one answer.")
@click.option(
    "--max-retry-wait",
    default=120.0,
    show_default=True,
    help="Most seconds to spend backing off for one request (429/503 with Retry-After included).",
)
@click.option("--as-of", "as_of", type=DateParam(), default=None, help="Evaluation date (default: today).")
@click.option("--ruleset", "ruleset_id", metavar="ID", help="Rule set for everyone (default: by age at onset).")
@click.option("--mappings", "mapping_dirs", multiple=True, metavar="DIR", help="Site mapping directory.")
@click.option("--canonical-base", default=DEFAULT_CANONICAL_BASE, show_default=True, metavar="URL")
@click.option("-v", "--verbose", is_flag=True, help="Log each request retry.")
def sync(
    base_url: str,
    state_path: str,
    rebind_state: bool,
    since: str | None,
    patients: tuple[str, ...],
    cohort_file: str | None,
    dry_run: bool,
    dry_run_dir: str | None,
    sink: str,
    auth_kind: str,
    token_env: str,
    token_file: str | None,
    smart_client_id: str | None,
    smart_key: str | None,
    smart_kid: str | None,
    smart_alg: str,
    smart_scope: str,
    smart_token_url: str | None,
    ca_bundle: str | None,
    timeout: float,
    max_retry_wait: float,
    as_of: date | None,
    ruleset_id: str | None,
    mapping_dirs: tuple[str, ...],
    canonical_base: str,
    verbose: bool,
) -> None:
    """Sync the nephrotic-syndrome cohort of a FHIR server: read changes, re-classify, write back."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="fhir-ns: %(message)s")
    if dry_run_dir is not None and not dry_run:
        raise click.UsageError("-o/--output is for --dry-run; a real run writes Bundles to files with --sink file:DIR")
    check_paths(state_path, sink, dry_run, dry_run_dir)
    if ca_bundle:
        check_ca_bundle(ca_bundle)
    config = load_config(mapping_dirs)
    auth = make_auth(
        auth_kind,
        base_url,
        token_env,
        token_file,
        smart_client_id,
        smart_key,
        smart_kid,
        smart_alg,
        smart_scope,
        smart_token_url,
        ca_bundle or True,
    )
    progress = TerminalProgress() if sys.stderr.isatty() else LineProgress()
    client = FhirClient(
        base_url,
        auth=auth,
        timeout=(10.0, timeout),
        verify=ca_bundle or True,
        retry=RetryPolicy(max_total_wait=max_retry_wait),
        on_retry=progress.retry,
    )
    ids = list(patients)
    if cohort_file:
        ids += read_cohort(cohort_file)
    target = make_sink(sink, client)
    state = State(state_path, base_url, read_only=dry_run, rebind=rebind_state)
    job = SyncJob(
        client,
        state,
        config,
        DryRunSink(click.echo, Path(dry_run_dir) if dry_run_dir else None, target.name) if dry_run else target,
        SyncOptions(
            as_of=as_of or date.today(), ruleset_id=ruleset_id, dry_run=dry_run, since=since, patients=tuple(ids)
        ),
        progress,
        Settings(canonical_base.rstrip("/")),
    )
    stopped: FhirNsError | None = None
    try:
        job.run()
    except FhirNsError as exc:
        stopped = exc
    finally:
        progress.finish()
        state.close()
    summary = job.summary
    if stopped is None or summary.candidates:  # a run stopped midway says what it did first
        report(summary, client, dry_run, stopped=stopped is not None)
    if stopped is not None:
        raise stopped
    raise SystemExit(OK if summary.ok else INPUT_SKIPPED)


def check_paths(state_path: str, sink: str, dry_run: bool, dry_run_dir: str | None) -> None:
    """Every path the run will write, checked before any request (a dry run writes neither state nor sink)."""
    if not dry_run or Path(state_path).is_dir():
        check_file(state_path, "--state")
    if sink.startswith("file:") and not dry_run:
        check_directory(sink[5:], f"--sink {sink}")
    if dry_run_dir is not None:
        check_directory(dry_run_dir, f"-o {dry_run_dir}")


def read_cohort(path: str) -> list[str]:
    """The patient ids of a --cohort file: one per line (`Patient/` prefix allowed), `#` starts a comment line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the cohort file {path}: {exc}") from exc
    return [line.strip().split("/")[-1] for line in text.splitlines() if line.strip() and not line.startswith("#")]


def check_ca_bundle(path: str) -> None:
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigError(f"--ca-bundle {path}: no CA certificate could be read from it ({exc.reason})") from exc


def make_auth(
    kind: str,
    base_url: str,
    token_env: str,
    token_file: str | None,
    client_id: str | None,
    key: str | None,
    kid: str | None,
    alg: str,
    scope: str,
    token_url: str | None,
    verify: bool | str,
) -> Auth:
    if kind == "bearer":
        return BearerAuth(file=Path(token_file)) if token_file else BearerAuth(env=token_env)
    if kind == "smart-backend":
        missing = [
            n for n, v in (("--smart-client-id", client_id), ("--smart-key", key), ("--smart-kid", kid)) if not v
        ]
        if missing:
            raise ConfigError(f"--auth smart-backend needs {', '.join(missing)}")
        assert client_id and key and kid
        return SmartBackendAuth(base_url, client_id, Path(key), kid, alg, scope, token_url, verify=verify)
    return NoAuth()


def make_sink(spec: str, client: FhirClient) -> Sink:
    if spec == "server":
        return ServerSink(client)
    if spec.startswith("file:") and len(spec) > 5:
        return FileSink(Path(spec[5:]))
    raise ConfigError(f"--sink must be 'server' or 'file:DIR', not {spec!r}")


def report(summary: Summary, client: FhirClient, dry_run: bool, stopped: bool = False) -> None:
    stats = client.stats
    mode = "incremental" if summary.incremental else "full"
    click.echo(
        f"fhir-ns sync ({mode}{', dry run' if dry_run else ''}{', stopped' if stopped else ''}): cohort {summary.cohort}, considered "
        f"{summary.candidates}, read {summary.read}, "
        + (
            f"would write {summary.would_write}, "
            if dry_run
            else f"written {summary.written} ({summary.withdrawn} finding(s)/plan(s) withdrawn), "
        )
        + f"unchanged {summary.unchanged}, failed {len(summary.failed)}; {stats.requests} request(s), "
        f"{stats.retries} retry(ies); {stats.server_seconds:.1f} s waiting on the server of {summary.seconds:.1f} s"
        + (f"; watermark {summary.watermark}" if summary.watermark else ""),
        err=True,
    )
    for pid, why in sorted(summary.failed.items()):
        click.echo(f"  failed Patient/{pid}: {why}", err=True)


class LineProgress:
    """A plain log line per patient (for schedulers and log files)."""

    def start(self, total: int) -> None:
        self.total, self.count = total, 0
        click.echo(f"fhir-ns sync: {total} patient(s) to consider", err=True)

    def done(self, patient_id: str, outcome: str, detail: str) -> None:
        self.count += 1
        click.echo(
            f"[{self.count}/{self.total}] Patient/{patient_id}: {outcome}" + (f" ({detail})" if detail else ""),
            err=True,
        )

    def retry(self, why: str) -> None:
        pass  # each retry is logged with -v; the summary line counts them

    def finish(self) -> None:
        pass


class TerminalProgress(LineProgress):
    """One updating line on a terminal: patients done / total, writes, retries."""

    def start(self, total: int) -> None:
        self.total, self.count, self.writes, self.retries, self.failed = total, 0, 0, 0, 0
        self._draw()

    def done(self, patient_id: str, outcome: str, detail: str) -> None:
        self.count += 1
        self.writes += outcome == "written"
        self.failed += outcome == "failed"
        self._draw()

    def retry(self, why: str) -> None:
        self.retries += 1
        self._draw()

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.count / self.total) if getattr(self, "total", 0) else width
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.count}/{getattr(self, 'total', 0)} "
            f"patients, {self.writes} written, {self.failed} failed, {self.retries} retries "
        )
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
