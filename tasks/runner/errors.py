"""The project's exception types: errors a user can fix, reported by the CLI in one line.

Every error the suite raises on purpose for bad input (a config value, a data file, a run
directory, a command-line input) derives from :class:`SuiteError`. ``python -m tasks.<task>``
prints such an error as one line (``error: <message>``) and exits with status 2; any other
exception is a bug and keeps its traceback, with a note saying how to report it.

Subclass the closest type for a new error (``class ResumeMismatch(RunDirError)``); mix in
the builtin a caller may already catch (``class MyError(RunDirError, FileExistsError)``).
The messages name what to fix: the file and line, the flag or config key, the value.

This module imports nothing from the project, so any layer (``pipelines`` included) can
raise these types.
"""

from __future__ import annotations

#: Appended (as an exception note) to the traceback of an unexpected error in the CLI.
REPORT_NOTE = ("This looks like a bug in recurrent-suite, not a problem with your input. "
               "Please report it with the command line you ran, the output above and "
               "`pip freeze`; RECURRENT_SUITE_DEBUG=1 also shows tracebacks of input errors.")


class SuiteError(Exception):
    """Base class: bad input the user can fix; the message is the whole report."""


class ConfigError(SuiteError, ValueError):
    """An invalid config value, config file or ``--set`` item (names the key and value)."""


class DataError(SuiteError, ValueError):
    """Bad input data or data source: ``"<path>:<line>: <message> (got <value>)"``.

    Attributes:
        path: The file (or source name) the problem was found in, or None.
        line: 1-based line number, or None when the problem is not on one line.
        value: The offending value (repr'd in the message), or None.
    """

    def __init__(self, message: str, path=None, line: int | None = None,
                 value: object = None):
        import os

        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.value = value
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        got = "" if value is None else f" (got {value!r})"
        super().__init__(f"{where}{message}{got}")


class InputError(SuiteError, ValueError):
    """A bad command-line input: a flag value, an input file, a text to predict."""


class RunDirError(SuiteError):
    """A run directory (``--output``, ``--model``) that cannot be used as asked."""


class ExportError(SuiteError):
    """An export that cannot be written or loaded as asked (``--export-dir``, ``--version``)."""


class TrainingError(SuiteError, RuntimeError):
    """Training stopped for a reason the user can act on (e.g. a NaN loss)."""


#: Builtin errors that also count as input errors in the CLI: they name a path the user gave
#: (a missing file, an existing target) and are never a bug by themselves.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)
