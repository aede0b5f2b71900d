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
    event,
    insert,
    inspect,
    select,
)

DEFAULT_URL = "sqlite:///shardex-gateway.db"

# Bump when a table changes: an index with another version is dropped and
# rebuilt from the chain (everything here is derived from it).
SCHEMA_VERSION = 2

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(32), primary_key=True),
    Column("value", String(200), nullable=False),
)

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
    Column("block_time", BigInteger, nullable=False),  # the block's timestamp (unix seconds)
    Column("tx_hash", String(66), nullable=False),
    Column("contract", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("job_id", BigInteger, nullable=True),
    Column("task_id", BigInteger, nullable=True),
    Column("account", String(42), nullable=True),  # the event's worker/account, when it has one
    Column("args_json", JSON, nullable=False),
    Index("ix_events_job", "job_id", "block_number", "log_index"),
    Index("ix_events_account", "account"),
    Index("ix_events_name", "name", "block_time"),
)

jobs = Table(
    "jobs", metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("requester", String(42), nullable=False),
    Column("spec_digest", String(66), nullable=False),
    Column("reward_per_replica", String(78), nullable=False),  # wei, decimal
    Column("state", Integer, nullable=False),  # shardex.chain.JobState value
    Column("map_tasks", Integer, nullable=False),
    Column("reduce_tasks", Integer, nullable=False),
    Column("replication", Integer, nullable=False),
    Column("quorum", Integer, nullable=False),
    Column("escrow", String(78), nullable=False),  # wei, decimal
    Column("settled_tasks", Integer, nullable=False),
    Column("posted_block", BigInteger, nullable=False),
    Column("posted_time", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
    Index("ix_jobs_state", "state", "job_id"),
    Index("ix_jobs_requester", "requester", "job_id"),
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
    if engine.dialect.name == "sqlite":
        # WAL: API readers never wait for the indexer's write transaction.
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    ensure_schema(engine)
    return engine


def ensure_schema(engine: Engine) -> None:
    """Create the tables; an index written by another schema version is dropped
    first (the indexer then rebuilds it from the chain)."""
    with engine.begin() as conn:
        if inspect(conn).has_table("meta"):
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            if row is None or row.value != str(SCHEMA_VERSION):
                metadata.drop_all(conn)
        elif inspect(conn).has_table("events"):  # version 1 had no meta table
            metadata.drop_all(conn)
        metadata.create_all(conn)
        if conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() is None:
            conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
