"""The ``shardex`` command line (see :mod:`shardex.cli.base`)."""

from shardex.cli import chain, gateway, jobs, store, worker  # noqa: F401  (importing registers the commands)
from shardex.cli.base import app
from shardex.cli.jobs import follow

__all__ = ["app", "follow"]
