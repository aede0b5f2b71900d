"""A throwaway PostgreSQL cluster: ``initdb`` into a directory, ``pg_ctl start``
on a free port, one database per caller, ``stop`` removes nothing but the
server (the directory is the caller's).

The tests and ``bench/gateway.py --db postgresql`` run the gateway's index on
a real server this way, as the Anvil and IPFS fixtures do for theirs. The
server binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, which
``make install`` apt-installs where missing). PostgreSQL refuses to run as
root: under root the server runs as the ``postgres`` system user, which owns
the data directory.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.devnet import free_port
from shardex.errors import ShardexError

USER = "shardex"


class PostgresUnavailable(ShardexError):
    """No PostgreSQL server binaries here (``make install`` apt-installs them)."""


def server_bin() -> Path:
    """The newest installed server's bin directory."""
    env = os.environ.get("SHARDEX_PG_BIN")
    candidates = [Path(env)] if env else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
        reverse=True)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    if (found := shutil.which("pg_ctl")) and shutil.which("initdb"):
        return Path(found).parent
    raise PostgresUnavailable("PostgreSQL server binaries not found (initdb, pg_ctl): run `make install`, "
                              "or set SHARDEX_PG_BIN to their directory")


def _as_server_user() -> list[str]:
    """Under root, the command prefix that runs as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable("running as root and there is no `postgres` system user to run the server as") from exc
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PostgresCluster:
    directory: Path
    port: int

    @classmethod
    def start(cls, directory: Path, port: int | None = None) -> PostgresCluster:
        binaries = server_bin()
        prefix = _as_server_user()
        directory.mkdir(parents=True, exist_ok=True)
        data, sockets = directory / "data", directory / "sock"
        sockets.mkdir(exist_ok=True)
        if prefix:
            shutil.chown(directory, "postgres")
            shutil.chown(sockets, "postgres")
        port = port or free_port()
        if not (data / "PG_VERSION").exists():
            _run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C"])
        # fsync off: a test cluster that loses power is thrown away anyway.
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        _run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "server.log"),
              "-w", "-t", "60", "start"])
        return cls(directory, port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
        import psycopg  # the `postgres` extra

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _run([*_as_server_user(), str(server_bin() / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate",
              "-w", "stop"], check=False)


def _run(command: list[str], check: bool = True) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if check and proc.returncode != 0:
        raise PostgresUnavailable(f"`{' '.join(command)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
