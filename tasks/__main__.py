"""``python -m tasks NAME COMMAND [flags]``: the shared command line of any registered task.

The built-in tasks also run as ``python -m tasks.<name>``; a task from an installed package
(entry-point group ``recurrent_suite.tasks``) runs only this way::

    python -m tasks pos train --data tests/fixtures/conll/conll2003
    python -m tasks --list
"""

from __future__ import annotations

import sys

from tasks.runner import registry
from tasks.runner.cli import main as task_main
from tasks.runner.errors import ConfigError

USAGE = "usage: python -m tasks NAME {train,evaluate,predict,tune,export,...} [flags]"


def main(argv: list[str] | None = None) -> int:
    """Runs ``NAME``'s command line with the rest of ``argv``; ``--list`` prints the names."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--list"):
        if argv and argv[0] == "--list":
            print("\n".join(registry.names()))
            return 0
        print(USAGE + "\ntasks: " + ", ".join(registry.names()),
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        task = registry.get(argv[0])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return task_main(task, argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
