"""The gateway's database schema (SQLAlchemy Core).

SQLite by default; the same tables and queries work on PostgreSQL (only
portable types and plain INSERT/UPDATE/DELETE/SELECT are used).

``events`` is the source of truth, copied from the chain; ``jobs`` and
``tasks`` are derived from it alone and can be recomputed at any time.
Wei amounts are stored as decimal strings: uint256 does not fit any
portable integer column type.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
)

DEFAULT_URL = "sqlite:///shardex-gateway.db"

metadata = MetaData()

# One row (id = 1): the last indexed block and its hash, for reorg detection.
cursor = Table(
    "cursor", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
)

events = Table(
    "events", metadata,
    # (block_number, log_index) is the primary key, hence unique.
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("block_hash", String(66), nullable=False),
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("tx_hash", String(66), nullable=False),
    Column("contract", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("job_id", BigInteger, nullable=True),
    Column("task_id", BigInteger, nullable=True),
    Column("account", String(42), nullable=True),  # the event's worker/account, when it has one
    Column("args_json", JSON, nullable=False),
    Index("ix_events_job", "job_id", "block_number", "log_index"),
    Index("ix_events_account", "account"),
)

jobs = Table(
    "jobs", metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("requester", String(42), nullable=False),
    Column("state", Integer, nullable=False),  # shardex.chain.JobState value
    Column("map_tasks", Integer, nullable=False),
    Column("reduce_tasks", Integer, nullable=False),
    Column("replication", Integer, nullable=False),
    Column("quorum", Integer, nullable=False),
    Column("escrow", String(78), nullable=False),  # wei, decimal
    Column("settled_tasks", Integer, nullable=False),
    Column("posted_block", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
)

tasks = Table(
    "tasks", metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("round", Integer, nullable=False),
    Column("settled", Boolean, nullable=False),
    Column("digest", String(66), nullable=True),  # 0x-hex of the settled digest
    Column("claimed", Integer, nullable=False),
    Column("committed", Integer, nullable=False),
    Column("revealed", Integer, nullable=False),
)

DERIVED = (jobs, tasks)


def make_engine(url: str = DEFAULT_URL, **kwargs) -> Engine:
    """An engine with the schema created (idempotent)."""
    engine = create_engine(url, **kwargs)
    metadata.create_all(engine)
    return engine
