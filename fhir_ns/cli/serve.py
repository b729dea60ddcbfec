"""`fhir-ns serve`: the CDS Hooks 2.0 service (patient-view, order-select, order-sign) on uvicorn."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from fhir_ns.errors import ConfigError

# Logs of the service: one line per request (method, route template, status, time) and the reasons calls
# were refused. uvicorn's own access log is off: its lines hold the raw path, and a timeline link's path
# holds the link token. Nothing logs a header, a body, a token or a patient id.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "loggers": {
        "fhir_ns": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The service's YAML configuration (public_url, state_dir, auth, links ...; see README 'Serve').",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes answering calls (they share the state directory); about one per CPU core.",
)
def serve(config_path: Path | None, host: str, port: int, workers: int) -> None:
    """Run the CDS Hooks service: discovery at /cds-services, cards for patient-view and order hooks."""
    try:
        import uvicorn

        from fhir_ns.serve.app import CONFIG_ENV, create_app
        from fhir_ns.serve.config import ServeConfig
    except ImportError as exc:
        raise ConfigError(f"fhir-ns serve needs the 'serve' extra (pip install 'fhir-ns[serve]'): {exc}") from exc
    config = ServeConfig.load(config_path)
    create_app(config).state.fhir_ns.close()  # checked here, so a broken configuration stops the start at once
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again: a stopped service exits 0
    signal.signal(signal.SIGTERM, _stopped)
    os.environ[CONFIG_ENV] = "" if config_path is None else str(config_path.resolve())
    uvicorn.run(
        "fhir_ns.serve.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=LOG_CONFIG,
        access_log=False,
        server_header=False,
    )


def _stopped(signum: int, frame: object) -> None:
    sys.exit(0)
