"""The task registry: which applications exist, found rather than listed.

A task module registers itself when imported::

    registry.register(PosTask)            # a tasks.runner.task.Task subclass

(its ``name``, ``config_class``, ``demo_overrides`` / ``demo_inputs`` are the class's) and
registers its data sources with ``pipelines.sources.register`` (named sources, default).
Tasks are discovered in two places:

* built-in tasks: every module of the ``tasks`` package (a package scan, no list to edit);
* third-party tasks: the entry-point group :data:`ENTRY_POINT_GROUP` of installed
  distributions, each entry naming a module (``pkg.pos``) or a Task class (``pkg.pos:PosTask``).

Importing this module also lets ``pipelines.sources.load`` find a task's data sources through
:func:`find` (``pipelines`` never imports ``tasks`` itself).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import sys

from pipelines import sources
from tasks.runner.errors import ConfigError

#: Entry-point group an installed package uses to add a task (see docs/adding_a_task.md).
ENTRY_POINT_GROUP = "recurrent_suite.tasks"
#: Modules of the ``tasks`` package that are not tasks (helpers and entry points).
_NOT_TASKS = ("demo", "__main__")

_TASKS: dict[str, type] = {}
_scanned = False


def register(task_class: type) -> type:
    """Adds ``task_class`` (a Task subclass with ``name`` and ``config_class``) to the registry.

    Usable as a class decorator. Registering a name again replaces it only with the same
    class from a reloaded module; a second class under a taken name is refused.

    Raises:
        TypeError: Not a Task subclass, or without name / config_class.
        ValueError: The name is taken by another task.
    """
    from tasks.runner.task import Task

    if not (inspect.isclass(task_class) and issubclass(task_class, Task)):
        raise TypeError(f"register() takes a Task subclass, got {task_class!r}")
    name = task_class.name
    if not name or task_class.config_class is None:
        raise TypeError(f"{task_class.__qualname__} needs a name and a config_class")
    old = _TASKS.get(name)
    if old is not None and old is not task_class and (
            old.__module__, old.__qualname__) != (task_class.__module__, task_class.__qualname__):
        raise ValueError(f"task name {name!r} of {task_class.__module__}."
                         f"{task_class.__qualname__} is taken by {old.__module__}."
                         f"{old.__qualname__}")
    _TASKS[name] = task_class
    return task_class


def discover() -> None:
    """Imports every built-in task module and every entry point of :data:`ENTRY_POINT_GROUP`
    (once; modules already imported are not imported again)."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    import tasks

    for info in pkgutil.iter_modules(tasks.__path__):
        if not info.ispkg and info.name not in _NOT_TASKS:
            importlib.import_module(f"tasks.{info.name}")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if inspect.isclass(loaded):
            register(loaded)


def rescan() -> None:
    """Forgets that :func:`discover` ran (after installing a package, or in tests)."""
    global _scanned
    _scanned = False


def names() -> list[str]:
    """Every task's name, by the tasks' ``order`` (then alphabetically)."""
    discover()
    return sorted(_TASKS, key=lambda n: (_TASKS[n].order, n))


def task_class(name: str) -> type:
    """The registered Task class called ``name``.

    Raises:
        ConfigError: No such task (the message lists the known ones).
    """
    if name not in _TASKS:
        _import_named(name)
    if name not in _TASKS:
        discover()
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    return _TASKS[name]


def get(name: str):
    """A new instance of the task called ``name`` (see :func:`task_class`)."""
    return task_class(name)()


def _import_named(name: str) -> None:
    """Imports ``tasks.<name>`` when the package has such a module (the cheap path)."""
    module = f"tasks.{name}"
    if module in sys.modules or not name.isidentifier():
        return
    import tasks

    if any(info.name == name for info in pkgutil.iter_modules(tasks.__path__)):
        importlib.import_module(module)


def find(task: str) -> None:
    """``pipelines.sources`` finder: imports what registers ``task``'s data sources."""
    _import_named(task)
    if task not in sources.registered():
        discover()


sources.add_finder(find)
