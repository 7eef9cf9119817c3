"""What every command-line entry point shares: flag parsing and the bad-input exit."""

import re
import sys
import traceback

from absl import app, flags

from bigmodels.config import check_renamed_overrides, override_args, unknown_key
from bigmodels.errors import (EXIT_BAD_INPUT, EXIT_RUN_FAILED, BadInput, RunFailed,
                              first_line)


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
    except Exception as e:                 # absl and ml_collections errors, get_config's
        fail(_parse_error(argv, e))


def _parse_error(argv, e: Exception) -> str:
    """The one line for a failure to parse `argv`, naming the flag or key at fault."""
    if str(e).startswith("flag --config=") or _in_experiment_file(e):
        return config_error(_flag_value(argv, "config"), e)
    if isinstance(e, (KeyError, AttributeError)):   # ml_collections: an unknown key
        line = _unknown_override(argv)
        if line:
            return line
    if isinstance(e, flags.IllegalFlagValueError):
        line = _wrong_type(argv, str(e))
        if line:
            return line
    if isinstance(e, flags.Error):
        return first_line(e) or type(e).__name__
    return f"{type(e).__name__}: {first_line(e)}"


def config_error(path: str, e: Exception) -> str:
    """The one line for an experiment file that fails to load: a BadInput from its
    get_config as it is, anything else as the type and first line of the original."""
    chain = [e]
    while (chain[-1].__cause__ or chain[-1].__context__) and len(chain) < 20:  # no cycles
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    bad = [c for c in chain if isinstance(c, BadInput)]
    if bad:
        return f"--config={path}: {first_line(bad[-1]) or 'BadInput'}"
    # ml_collections re-raises get_config's error with a traceback for its message.
    cause = next((c for c in chain[1:] if not str(c).startswith("Error whilst")), e)
    return f"--config={path}: {type(cause).__name__}: {first_line(cause)}"


def _in_experiment_file(e: Exception) -> bool:
    """Whether `e` came from importing the experiment file or running its get_config
    (ml_collections re-raises only their TypeError and ValueError as a flag error)."""
    return any(frame.name in ("_LoadConfigModule", "get_config")
               for frame in traceback.extract_tb(e.__traceback__))


def _unknown_override(argv):
    """`--config.optim.lrr: unknown config key; did you mean optim.lr?` for the first
    override that is not a key of the config (None if each one is)."""
    path = _flag_value(argv, "config")
    if path is None or "config" not in flags.FLAGS:
        return None
    try:
        config = flags.FLAGS["config"].parser.parse(path)     # the experiment again
    except Exception as e:                     # the KeyError came from get_config itself
        return config_error(path, e)
    for key, _ in override_args(argv):
        why = unknown_key(config, key)
        if why:
            return f"--config.{key}: {why}"
    return None


_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false",
          "string": "a string"}


def _wrong_type(argv, message: str):
    """`--config.total_steps: expected an integer, got '1.5'` from absl's message
    "flag --config.total_steps=1.5: invalid literal for int() ...": the value's key and
    the type its default has."""
    match = re.match(r"flag --(config\.[^=\s]+)=", message)
    if not match or match.group(1) not in flags.FLAGS:
        return None
    name = match.group(1)
    parser = flags.FLAGS[name].parser
    if "ConfigDict" in type(parser).__name__:       # a group such as config.model
        return f"--{name}: a group of keys; set one as --{name}.<key>=<value>"
    kind = parser.flag_type()
    values = [v for k, v in override_args(argv) if f"config.{k}" == name]
    got = f", got {values[-1]!r}" if values else ""
    return f"--{name}: expected {_TYPES.get(kind, kind)}{got}"


def _flag_value(argv, name: str):
    """The value of `--name=value` or `--name value` in argv (the last one), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value



def refuse_arguments(argv) -> None:
    """Every entry point takes flags only: a leftover word (say from an unquoted
    `--prompt=class Foo:`) would otherwise be dropped without a word."""
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")


def run_main(main) -> None:
    """`app.run(main)` with one-line errors and documented exit codes: 2 for flag
    errors and BadInput, 75 after a SIGTERM and 130 after a Ctrl-C (the last finished
    step is saved), 1 for RunFailed."""
    import os

    from bigmodels.preemption import (EXIT_INTERRUPTED, EXIT_PREEMPTED, Interrupted,
                                      InterruptedAgain, Preempted)

    def guarded(argv):
        refuse_arguments(argv)
        try:
            return main(argv)
        except BadInput as e:
            fail(str(e))
        except Preempted as e:
            fail(str(e), EXIT_PREEMPTED)
        except InterruptedAgain as e:
            # os._exit: a normal exit would wait for a save still running in a thread.
            sys.stdout.flush()
            sys.stderr.write(f"error: {e}\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt as e:       # also a Ctrl-C before the handler was set
            fail(str(e) if isinstance(e, Interrupted) else "interrupted (Ctrl-C)",
                 EXIT_INTERRUPTED)
        except RunFailed as e:
            fail(str(e), EXIT_RUN_FAILED)
    app.run(guarded, flags_parser=_parse_flags)
