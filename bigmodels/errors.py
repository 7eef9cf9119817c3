"""The one exception type for bad user input (config, data, workdir, checkpoint).

The CLI turns it into exit code 2 and a single line on stderr; library users
(notebooks) simply get the exception. `first_line` makes one line of any exception.
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


def first_line(e: BaseException) -> str:
    """The first line of `e`'s message ("" if it has none): errors of other libraries
    (tracebacks, lists of problems) reported as one line."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""
