"""What every command-line entry point shares: flag parsing and the bad-input exit."""

import sys

from absl import app, flags

from bigmodels.errors import EXIT_BAD_INPUT, BadInput


def fail(message: str) -> None:
    """One line on stderr, exit code 2, no traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_BAD_INPUT)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])
    except (AttributeError, KeyError) as e:   # ml_collections: unknown override key
        fail(f"unknown config key in overrides: {str(e).strip(chr(34) + chr(39))}")
    except Exception as e:                    # e.g. an override of an unsupported type
        fail(f"{type(e).__name__}: {str(e).splitlines()[0]}")


def run_main(main) -> None:
    """`app.run(main)` whose flag errors and BadInput exit with code 2 and one line."""
    def guarded(argv):
        try:
            return main(argv)
        except BadInput as e:
            fail(str(e))
    app.run(guarded, flags_parser=_parse_flags)
