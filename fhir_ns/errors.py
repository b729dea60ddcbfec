"""Exit codes and the errors that carry them. Stable numbers: schedulers and scripts rely on them."""

from __future__ import annotations

# Exit codes
OK = 0
INPUT_SKIPPED = 1  # the run finished, but some input was refused (details on stderr / OperationOutcome)
USAGE = 2  # bad command line (click's own code)
CONFIG = 3  # a mapping or rule-set file is broken, or an option names something unknown
NO_INPUT = 4  # nothing readable at all was given


class FhirNsError(Exception):
    """An error meant for the user: a message and an exit code, never a traceback."""

    exit_code = CONFIG


class ConfigError(FhirNsError):
    exit_code = CONFIG


class NoInputError(FhirNsError):
    exit_code = NO_INPUT
