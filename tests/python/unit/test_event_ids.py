"""Event ids (``block-logindex``) as the API takes them: an id past anything the
index can hold is past every event, not a server error (schemathesis found
`?after=557064817785960257140064995-7` overflowing SQLite's integers)."""

from __future__ import annotations

from sqlalchemy import insert

from backend import db, live, queries
from tests.python.conftest import IndexDb


def test_event_ids_parse_and_clamp_to_what_the_index_holds() -> None:
    assert live.parse_event_id("12-3") == (12, 3)
    assert live.parse_event_id("557064817785960257140064995-7") == (live.MAX_BIGINT, 7)
    assert live.parse_event_id("1-99999999999999999999999") == (1, live.MAX_BIGINT)
    for bad in ("12", "a-1", "1-b", "-1", "1-", "1" * 41 + "-1"):
        assert live.parse_event_id(bad) is None, bad


def test_a_huge_after_finds_nothing_after_it(index_db: IndexDb) -> None:
    engine = db.make_engine(index_db("events"))
    db.ensure_schema(engine)
    row = {"block_number": 5, "log_index": 0, "block_hash": "0x" + "00" * 32, "block_time": 1, "tx_hash": "0x" + "11" * 32,
           "contract": "JobMarket", "name": "JobPosted", "job_id": 1, "task_id": None, "worker": None,
           "args_json": {}, "view_json": None}
    with engine.begin() as conn:
        conn.execute(insert(db.events).values(**{k: v for k, v in row.items() if k in db.events.c}))
    assert [e["block_number"] for e in queries.job_events(engine, 1)] == [5]
    assert queries.job_events(engine, 1, after=live.parse_event_id("557064817785960257140064995-7")) == []
