"""Errors raised by the data readers.

Every reader reports bad input through :class:`DataError`, which names the file, the line
(1-based, when the problem is on one line) and the offending value, so a user can open the
file at the right place instead of debugging a silently wrong dataset.

:class:`DataError` is defined with the project's other exception types in
:mod:`tasks.runner.errors` (a module without project imports), so the command line reports
it in one line like every other input error; it is still a ``ValueError``.
"""

from __future__ import annotations

from tasks.runner.errors import DataError

__all__ = ["DataError"]
