"""Starting real processes of the command line on 127.0.0.1 for the multi-worker tests.

Every process gets a free port, its own log file, a bounded wait, and is killed at the end
(:class:`Cluster` is a context manager).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class Cluster:
    """Processes started by a test; ``__exit__`` kills every one still running."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.procs: list[subprocess.Popen] = []
        self.logs: list[str] = []

    def start(self, args: list[str], env: dict, name: str) -> subprocess.Popen:
        log = os.path.join(self.log_dir, f"{name}-{len(self.procs)}.log")
        full_env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
                    "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **env}
        with open(log, "w", encoding="utf-8") as out:
            proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def output(self, proc) -> str:
        with open(self.logs[self.procs.index(proc)], encoding="utf-8") as f:
            return f.read()

    def wait(self, procs, timeout: float) -> list[int]:
        """Return codes, waiting at most ``timeout`` seconds in all (then killing)."""
        deadline = time.monotonic() + timeout
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self.kill(proc)
                codes.append(None)
        return codes

    def kill(self, proc) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            self.kill(proc)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
