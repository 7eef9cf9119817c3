"""What every command-line entry point shares: flag parsing and the bad-input exit."""

import sys

from absl import app, flags

from bigmodels.config import check_renamed_overrides
from bigmodels.errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED, BadInput, RunFailed


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """One line on stderr, exit code 2 (or `code`), no traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _parse_flags(argv):
    try:
        check_renamed_overrides(argv)      # before the parser calls an old key unknown
    except BadInput as e:
        fail(str(e))
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])
    except (AttributeError, KeyError) as e:   # ml_collections: unknown override key
        fail(f"unknown config key in overrides: {str(e).strip(chr(34) + chr(39))}")
    except Exception as e:                    # e.g. an override of an unsupported type
        fail(f"{type(e).__name__}: {str(e).splitlines()[0]}")


def run_main(main) -> None:
    """`app.run(main)` with one-line errors and documented exit codes: 2 for flag
    errors and BadInput, 75 after a SIGTERM (the last step is saved), 1 for RunFailed."""
    from bigmodels.preemption import EXIT_PREEMPTED, Preempted

    def guarded(argv):
        try:
            return main(argv)
        except BadInput as e:
            fail(str(e))
        except Preempted as e:
            fail(str(e), EXIT_PREEMPTED)
        except RunFailed as e:
            fail(str(e), EXIT_RUN_FAILED)
    app.run(guarded, flags_parser=_parse_flags)
