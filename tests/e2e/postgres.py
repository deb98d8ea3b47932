"""A private, throw-away PostgreSQL cluster on a free loopback port (Debian's binaries, no system service)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.net import free_port

#: Where Debian installs the server binaries (``initdb`` and ``pg_ctl`` are not on PATH there).
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


class PostgresMissingError(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``createdb``.

    Prefers Debian's newest ``/usr/lib/postgresql/N/bin``, else the directory of ``pg_ctl`` on PATH.

    :raises PostgresMissingError: with the command that installs them.
    """
    candidates = sorted(
        (p / "bin" for p in DEBIAN_PG_ROOT.glob("*") if (p / "bin" / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise PostgresMissingError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH. "
        "Install them with `scripts/e2e_setup.sh` (or `apt-get update && apt-get install -y postgresql`)."
    )


@dataclass
class PostgresCluster:
    """A cluster in a temp dir, owned by the ``postgres`` OS user when we run as root."""

    bin_dir: Path
    root: Path
    port: int
    log_path: Path
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def sqlalchemy_url(self) -> str:
        """The Airflow metadata DB URL (database ``airflow``, trust auth on loopback)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool (as the cluster owner), raising with its output on failure."""
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}\n"
                f"server log tail:\n{self.log_tail()}"
            )
        return result

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        from tests.e2e.processes import tail

        return tail(self.log_path, lines)

    @classmethod
    def create(cls, log_path: Path) -> PostgresCluster:
        """initdb + start on a free port + ``createdb airflow``.

        :param log_path: the server log file (kept with the other artifacts).
        :raises PostgresMissingError: the binaries are not installed.
        """
        bin_dir = find_pg_bin()
        run_as = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="ami-e2e-pg-"))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        if run_as:
            owner = pwd.getpwnam(run_as)
            for path in (root, log_path):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            # The postgres user must be able to reach the log file's directory.
            os.chmod(log_path.parent, 0o755)
        cluster = cls(bin_dir=bin_dir, root=root, port=free_port(), log_path=log_path, run_as=run_as)
        cluster._run("initdb", "-D", str(cluster.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        cluster.start()
        cluster._run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "airflow")
        return cluster

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start"
        )

    def postmaster_pgid(self) -> int | None:
        """The postmaster's process group id (for memory sampling), or None if it is not running."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            return os.getpgid(pid)
        except (OSError, ValueError, IndexError):
            return None

    def stop_and_remove(self) -> str:
        """``pg_ctl stop -m fast`` (immediate if that fails), then delete the temp dir.

        :return: what happened, for the report.
        """
        outcome = "stopped"
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                outcome = "stopped (immediate)"
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=30)
        else:
            outcome = "not running"
        for _ in range(20):
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                break
            time.sleep(0.5)
        return f"postgres (port {self.port}): {outcome}, {self.root} removed: {not self.root.exists()}"
