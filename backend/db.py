"""The gateway's database schema (SQLAlchemy Core).

SQLite by default; the same tables and queries work on PostgreSQL (only
portable types and plain INSERT/UPDATE/DELETE/SELECT are used).

``events`` is the source of truth, copied from the chain; ``jobs``, ``tasks``
and ``members`` are derived from it alone and can be recomputed at any time.
A job's parameters that its ``JobPosted`` event does not carry (epsilon, the
adversary share, the escalation budget, ...) are read once from the market's
``job`` view when the event is indexed and kept with the event (``view_json``):
they never change after posting, so a rebuild reads the same values.
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
    Float,
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
    text,
)

DEFAULT_URL = "sqlite:///shardex-gateway.db"

# Bump when a table changes: an index with another version is dropped and
# rebuilt from the chain (everything here is derived from it).
# 3: protocol v2 (drawn seats, margin settlement, WorkerPool); 4: jobs.token;
# 5: sign-in nonces, sessions and the writer lease (several gateways over one database);
# 6: every uint32 of a job in a 64-bit column (PostgreSQL's INTEGER is 32-bit signed), the lease's term
# and the rollback log. A version change drops sessions too: everyone signs in again, once.
SCHEMA_VERSION = 6

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
    # JobPosted only: the immutable parameters of the job from the market's job view.
    Column("view_json", JSON, nullable=True),
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
    Column("map_tasks", BigInteger, nullable=False),
    Column("reduce_tasks", BigInteger, nullable=False),
    Column("margin", Integer, nullable=False),  # lead (in agreeing drawn workers) that settles a task
    Column("resource_class", Integer, nullable=False),  # 0 CPU, 1 GPU
    Column("escrow", String(78), nullable=False),  # wei, decimal
    Column("settled_tasks", BigInteger, nullable=False),
    Column("seed_block", BigInteger, nullable=False),  # round 0's randomness comes from this block
    Column("extra_seats_used", BigInteger, nullable=False),  # escalation seats opened so far
    Column("escalations", BigInteger, nullable=False),
    Column("seats_drawn", BigInteger, nullable=False),  # TaskAssigned events, all tasks and rounds
    Column("declines", BigInteger, nullable=False),
    # From the job view at indexing time (immutable after posting); null if the view could not be read.
    Column("epsilon_ppm", BigInteger, nullable=True),
    Column("adversary_ppm", BigInteger, nullable=True),
    Column("max_rounds", Integer, nullable=True),
    Column("extra_seats", BigInteger, nullable=True),
    Column("collateral", String(78), nullable=True),  # wei, decimal
    Column("min_stake", String(78), nullable=True),  # wei, decimal
    Column("lease_duration", BigInteger, nullable=True),
    Column("reveal_window", BigInteger, nullable=True),
    Column("token", String(42), nullable=True),  # the ERC-20 the job pays in; NULL: ETH
    Column("posted_block", BigInteger, nullable=False),
    Column("posted_time", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
    Index("ix_jobs_state", "state", "job_id"),
    Index("ix_jobs_requester", "requester", "job_id"),
)

# Only tasks some event touched; an untouched task is in round 0 with ``margin`` seats, none drawn.
tasks = Table(
    "tasks", metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("round", Integer, nullable=False),
    Column("seats", Integer, nullable=False),  # seats of the current round
    Column("seated", Integer, nullable=False),  # seats of the current round held (assigned or committed)
    Column("committed", Integer, nullable=False),  # commits in the current round
    Column("lead_count", Integer, nullable=False),  # commits of the leading result in the tally
    Column("total", Integer, nullable=False),  # commits in the tally (every result, every round since a void one)
    Column("reveal_deadline", BigInteger, nullable=False),  # a result won: its committers may open it until then
    Column("settled", Boolean, nullable=False),
    Column("digest", String(66), nullable=True),  # 0x-hex of the settled digest
    Column("seed_block", BigInteger, nullable=False),  # the round's own seed block; 0: the job's
    Column("declined", Integer, nullable=False),  # seats given back, all rounds
)

# Pool members, one row per address any WorkerPool event named.
members = Table(
    "members", metadata,
    Column("account", String(42), primary_key=True),
    Column("stake", String(78), nullable=False),  # wei, decimal: bonded (includes locked)
    Column("locked", String(78), nullable=False),  # wei, decimal: collateral held by seats
    Column("classes", Integer, nullable=False),  # bitmask of the resource classes it opted in to
    Column("joins_json", JSON, nullable=False),  # {class: epoch from which it is drawn} for those classes
    Column("updated_block", BigInteger, nullable=False),
)

DERIVED = (jobs, tasks, members)

# Not derived from the chain: what lets several gateways share one database.

# SIWE nonces handed out and not yet spent; spending one deletes its row.
auth_nonces = Table(
    "auth_nonces", metadata,
    Column("nonce", String(32), primary_key=True),
    Column("expires_at", Float, nullable=False),  # unix seconds
    Index("ix_auth_nonces_expiry", "expires_at"),
)

# Signed-in sessions, by the SHA-256 of their bearer token (the token itself is never stored).
sessions = Table(
    "sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("address", String(42), nullable=False),
    Column("expires_at", Float, nullable=False),  # unix seconds
    Index("ix_sessions_expiry", "expires_at"),
)

# One row (id = 1): which gateway writes the index, until when. The writer renews it in every
# transaction it writes; another gateway takes it over once it has expired (backend/indexer.py).
writer_lease = Table(
    "writer_lease", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(80), nullable=False),
    Column("expires_at", Float, nullable=False),  # unix seconds, by the holder's clock
    # Bumped by every takeover: a writer renews and writes only in the term it took the lease in, so
    # one that lost it, however briefly, notices and catches up before it writes again.
    Column("term", BigInteger, nullable=False),
    # The number of the last rollback of indexed events (a reorg, another chain), see rollback_log.
    Column("rollbacks", BigInteger, nullable=False),
)

# Every rollback (its number, the block it kept; -1: none), written in the transaction that deletes
# the events: a gateway that follows the index learns the lowest block kept since it last looked.
rollback_log = Table(
    "rollback_log", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kept", BigInteger, nullable=False),
)


#: Connections an engine keeps open: as many as FastAPI's thread pool runs routes at once (40), so a
#: busy gateway never opens (and, past the pool, closes) a connection per request: to PostgreSQL
#: that is a TCP handshake and a login each time, to SQLite the connection's pragmas.
POOL_SIZE = 40


def make_engine(url: str = DEFAULT_URL, **kwargs) -> Engine:
    """An engine with the schema created (idempotent)."""
    if url.startswith("postgresql") or (url.startswith("sqlite:///") and ":memory:" not in url):
        kwargs = {"pool_size": POOL_SIZE, "max_overflow": 0, **kwargs}
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
        if engine.dialect.name == "postgresql":
            # Gateways starting together over one database: one creates the schema, the others wait.
            conn.execute(text("SELECT pg_advisory_xact_lock(7305114)"))
        if inspect(conn).has_table("meta"):
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            if row is None or row.value != str(SCHEMA_VERSION):
                metadata.drop_all(conn)
        elif inspect(conn).has_table("events"):  # version 1 had no meta table
            metadata.drop_all(conn)
        metadata.create_all(conn)
        if conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() is None:
            conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        if conn.execute(select(writer_lease.c.id).where(writer_lease.c.id == 1)).first() is None:
            conn.execute(insert(writer_lease).values(id=1, holder="", expires_at=0.0, term=0, rollbacks=0))
