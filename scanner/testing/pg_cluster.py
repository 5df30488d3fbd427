"""A throw-away PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary folder,
``pg_ctl start`` listening only on a unix socket in that folder, ``stop`` removes it all.

``initdb`` refuses to run as root; as root the cluster is run by the ``postgres`` system user
(Debian's package creates it) through ``runuser``, and the socket folder is made reachable for it.
Nothing listens on TCP, so parallel runs and a real server on 5432 do not collide.

``python -m scanner.testing.pg_cluster start DIR`` / ``stop DIR`` does the same from a shell
(``.ci/run`` uses it) and prints the URL to use.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_URL = "SCANNER_TEST_PG_URL"  # a server to use instead of starting one (an empty database's URL)


class ClusterUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


class PgCluster:
    """One private PostgreSQL server under ``root`` (created when None)."""

    def __init__(self, root: Path | None = None, durable: bool = False):
        """``durable`` keeps fsync on (benchmarks comparing commit costs); tests run without it."""
        self.durable = durable
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="scanner-pg-"))
        self.data = self.root / "data"
        self.socket = self.root  # short path: unix socket names are limited to ~107 bytes
        self._bindir = _bindir()
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"

    @property
    def url(self) -> str:
        """URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql:///{dbname}?host={self.socket}&user=postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self._bindir / args[0]), *args[1:]] if self._bindir else list(args)
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> "PgCluster":
        if self._bindir is None:
            raise ClusterUnavailable("PostgreSQL server programs (initdb, pg_ctl) not found: "
                                     "apt-get install -y postgresql")
        if self._user:
            try:
                pw = pwd.getpwnam(self._user)
            except KeyError:
                raise ClusterUnavailable("running as root and there is no 'postgres' user to run initdb as") from None
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("running as root and runuser is missing")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)
            # the postgres user must be able to reach the folder (mkdtemp parents are world-searchable /tmp)
        try:
            if not (self.data / "PG_VERSION").exists():
                self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--locale=C", "--no-sync")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                      "-o", f"-c listen_addresses='' -k {self.socket} -c max_connections=200"
                      + ("" if self.durable else " -c fsync=off -c synchronous_commit=off"), "start")
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            raise ClusterUnavailable(f"could not start PostgreSQL: {(exc.stderr or exc.stdout or '').strip()[-600:]}"
                                     f" {tail}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"could not start PostgreSQL: {exc}") from None
        return self

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown) and, by default, delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``start DIR`` (prints the maintenance URL) or ``stop DIR``."""
    if len(argv) != 2 or argv[0] not in {"start", "stop"}:
        print("usage: python -m scanner.testing.pg_cluster start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    root.mkdir(parents=True, exist_ok=True)
    cluster = PgCluster(root)
    if argv[0] == "stop":
        cluster.stop(remove=True)
        return 0
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        print(f"no PostgreSQL for the tests: {exc}", file=sys.stderr)
        return 1
    print(cluster.url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
