"""The `fhir-ns` command line: one module per subcommand, errors as messages with stable exit codes."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback

import click

from fhir_ns import __version__
from fhir_ns.errors import FhirNsError

INTERNAL_ERROR = 70
# each subcommand's module, imported when the subcommand is used (a run pays only for its own imports)
COMMANDS = {
    name: f"fhir_ns.cli.{name}"
    for name in ("classify", "convert", "explain", "report", "rulesets", "serve", "sync", "validate")
}


class FhirNsGroup(click.Group):
    """Turns FhirNsError into its message and exit code, for every way the CLI is invoked; loads each
    subcommand when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = getattr(importlib.import_module(COMMANDS[cmd_name]), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FhirNsError as exc:
            click.echo(f"fhir-ns: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=FhirNsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fhir-ns")
def cli() -> None:
    """Nephrotic syndrome decision support from FHIR data: classify steroid/CNI response, find safety issues,
    measure relapse burden and treatment response, and write DetectedIssue/CarePlan proposals and measure Observations."""


class Terminated(BaseException):
    """SIGTERM (a scheduler's timeout, a service stop) raised in the main process, so that output being written is
    removed rather than left half-written."""


def main() -> None:
    """Entry point: user errors print a message and exit with their code; no tracebacks unless FHIR_NS_DEBUG=1."""
    main_process = os.getpid()

    def terminated(signum: int, frame: object) -> None:
        if os.getpid() != main_process:  # a forked worker: die as before, the parent cleans up
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)
    try:
        code = cli.main(standalone_mode=False)  # returns the code of ctx.exit() instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
    except Terminated:
        click.echo("fhir-ns: stopped by SIGTERM; output not complete was removed", err=True)
        sys.exit(128 + signal.SIGTERM)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except FhirNsError as exc:
        click.echo(f"fhir-ns: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug, not a user error: say so briefly
        if os.environ.get("FHIR_NS_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"fhir-ns: internal error ({type(exc).__name__}: {exc}); set FHIR_NS_DEBUG=1 for details and "
            "please report it",
            err=True,
        )
        sys.exit(INTERNAL_ERROR)
