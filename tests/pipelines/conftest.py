"""The built-in tasks register their data sources with ``pipelines.sources``; importing the
task registry lets ``sources.load("ner", ...)`` find them (``pipelines`` never imports
``tasks``)."""

import tasks.runner.registry  # noqa: F401
