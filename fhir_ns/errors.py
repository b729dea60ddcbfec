"""Exit codes and the errors that carry them. Stable numbers: schedulers and scripts rely on them."""

from __future__ import annotations

# Exit codes
OK = 0
INPUT_SKIPPED = 1  # the run finished, but some input was refused (details on stderr / OperationOutcome)
USAGE = 2  # bad command line (click's own code)
CONFIG = 3  # a mapping or rule-set file is broken, or an option names something unknown
NO_INPUT = 4  # nothing readable at all was given
CAPABILITY = 5  # the FHIR server cannot do what the job needs (see its CapabilityStatement)
SERVER = 6  # the FHIR server could not be reached or kept failing
AUTH = 7  # authentication failed
OUTPUT = 8  # an output file or directory cannot be written (a directory, a missing or read-only folder, disk full)


class FhirNsError(Exception):
    """An error meant for the user: a message and an exit code, never a traceback."""

    exit_code = CONFIG


class ConfigError(FhirNsError):
    exit_code = CONFIG


class NoInputError(FhirNsError):
    exit_code = NO_INPUT


class CapabilityError(FhirNsError):
    exit_code = CAPABILITY


class ServerError(FhirNsError):
    """The server failed (after retries) or answered with an error; `status` is the HTTP status, if any."""

    exit_code = SERVER

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnreachableError(ServerError):
    """The server cannot be reached at all (refused, unknown host, TLS): no patient can be synced, so the run stops."""


class AuthError(FhirNsError):
    exit_code = AUTH


class OutputError(FhirNsError):
    """An output path (file, directory or state) that cannot be written; nothing half-written is left."""

    exit_code = OUTPUT


class PatientNotFoundError(NoInputError):
    """A patient asked for by id (`explain --patient`) has no data in the input."""


class PatientRefusedError(FhirNsError):
    """A patient asked for by id whose input has errors: it is refused, as `classify` refuses it."""

    exit_code = INPUT_SKIPPED
