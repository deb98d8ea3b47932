"""A private Redis for the Celery configuration: Debian's ``redis-server`` on a free loopback port.

Nothing is saved (``--save ''``, ``--appendonly no``) and its working directory is a temp dir the
stack removes; it runs in its own process group like every other process of the stack.
"""

from __future__ import annotations

import shutil
import socket
from typing import TYPE_CHECKING

from tests.e2e.net import free_port, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.processes import ManagedProcess, ProcessRegistry


class RedisMissingError(RuntimeError):
    """``redis-server`` is not installed."""


def redis_server_executable() -> str:
    """The ``redis-server`` binary.

    :raises RedisMissingError: with the command that installs it.
    """
    found = shutil.which("redis-server")
    if not found:
        raise RedisMissingError(
            "redis-server (the Celery configuration's broker) is not installed: run `scripts/e2e_setup.sh` "
            "(or `apt-get update && apt-get install -y redis-server`)"
        )
    return found


def ping(port: int) -> bool:
    """Whether a Redis answers ``PING`` on 127.0.0.1:``port``.

    :param port: the TCP port.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(
    registry: ProcessRegistry, work_dir: Path, log_path: Path, env: dict[str, str]
) -> tuple[ManagedProcess, int]:
    """Start ``redis-server`` on a free port and wait until it answers.

    :param registry: the stack's process registry (it stops the server at the end).
    :param work_dir: its own directory (created).
    :param log_path: its log file.
    :param env: its environment.
    :return: the process and its port.
    """
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_executable(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(work_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip
    process = registry.start("redis", argv, env=env, log_path=log_path, cwd=work_dir)

    def probe() -> bool:
        if not process.running():
            raise RuntimeError(f"redis-server exited at start:\n{process.describe()}")
        return ping(port)

    wait_for("redis-server to answer PING", probe, timeout=30, interval=0.2)
    return process, port
