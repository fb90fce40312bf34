"""The exit-code convention of every ``dualjax`` command, decided from the exception raised.

* **2, bad input**: :class:`ValueError` (every check in :mod:`dualjax.checks`, config overrides,
  a folder that is refused, JSON that does not parse) and :class:`FileNotFoundError` (a file
  the user named does not exist); also argparse's own usage errors.
* **1, failure**: the input was fine but the work could not be done: :class:`Failure` (e.g.
  :class:`dualjax.faults.NonFiniteError`, a training run that diverged) and any other
  :class:`OSError` (disk full, a folder that became unwritable).
* anything else is a bug: exit 1 too, reported as an internal error.

``dualjax.cli.main`` prints one line ``dualjax <command>: error: <message>`` for the first two
kinds and the traceback only with ``--debug`` (or ``DUALJAX_DEBUG=1``).
"""

from __future__ import annotations

BAD_INPUT, FAILURE = 2, 1


class UsageError(ValueError):
    """A command line that does not parse (argparse's errors, raised instead of exiting): exit 2."""


class Failure(Exception):
    """An expected failure of the work itself (not of its input): exit code 1, no traceback."""


def exit_code(err: BaseException) -> int | None:
    """2 for bad input, 1 for an expected failure, ``None`` for anything else (a bug)."""
    if isinstance(err, (ValueError, FileNotFoundError)):
        return BAD_INPUT
    if isinstance(err, (Failure, OSError)):
        return FAILURE
    return None
