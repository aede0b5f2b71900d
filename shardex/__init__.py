"""Shardex core SDK: configuration, typed chain client, content store, jobs, programs.

`worker/` and `backend/` share code only through this package.
"""

__version__ = "0.1.0"
