"""The ``shardex`` command line (see :mod:`shardex_cli.base`)."""

from shardex_cli import chain, gateway, jobs, store, worker  # noqa: F401  (importing registers the commands)
from shardex_cli.base import app
from shardex_cli.jobs import follow

__all__ = ["app", "follow"]
