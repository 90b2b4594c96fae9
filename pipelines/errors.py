"""Errors raised by the data readers.

Every reader reports bad input through :class:`DataError`, which names the file, the line
(1-based, when the problem is on one line) and the offending value, so a user can open the
file at the right place instead of debugging a silently wrong dataset.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: ``"<path>:<line>: <message> (got <value>)"``.

    Attributes:
        path: The file (or source name) the problem was found in, or None.
        line: 1-based line number, or None when the problem is not on one line.
        value: The offending value (repr'd in the message), or None.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 line: int | None = None, value: object = None):
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
