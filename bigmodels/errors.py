"""The one exception type for bad user input (config, data, workdir, checkpoint).

The CLI turns it into exit code 2 and a single line on stderr; library users
(notebooks) simply get the exception.
"""

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


class BadInput(ValueError):
    """Raised when something the user supplied is wrong; the message names it."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BadInput(message)


class RunFailed(RuntimeError):
    """Training stopped for a reason the message explains (a failed checkpoint save,
    a non-finite loss); the CLI prints the message and exits with code 1."""
