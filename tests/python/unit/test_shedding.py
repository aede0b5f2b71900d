"""Which queued seats a busy worker gives back (worker/shedding.py)."""

from hypothesis import given
from hypothesis import strategies as st

from worker.shedding import QueuedSeat, seats_to_shed

ME, B, C = "0xme", "0xb", "0xc"


def queue(job, *tasks):
    return [QueuedSeat(job, t, 0) for t in tasks]


def test_the_lottery_gave_one_worker_most_seats_and_it_hands_the_tail_of_its_queue_to_the_idle_peer():
    # r = 1, two workers: seats 1..6 wait behind one running task; B finished its two and holds none.
    q = queue(1, 1, 2, 3, 4, 5, 6)
    served = {(1, t): {ME} for t in range(1, 7)}
    shed = seats_to_shed(q, 7, {B: 0}, {1: {B}}, served)
    # 7 vs 0 -> give one (6 vs 1), 6 vs 1 -> (5 vs 2), 5 vs 2 -> (4 vs 3): then one apart, keep.
    assert shed == queue(1, 6, 5, 4)


def test_a_task_every_known_peer_served_is_kept_it_could_be_left_with_nobody_to_draw():
    # r = 3 over three workers: each sits on every task; a declined seat could go to no one.
    q = queue(1, 1, 2, 3)
    served = {(1, t): {ME, B, C} for t in range(4)}
    assert seats_to_shed(q, 4, {B: 0, C: 0}, {1: {B, C}}, served) == []


def test_only_peers_that_committed_on_the_job_receive_work():
    q = queue(1, 1, 2, 3, 4)
    served = {(1, t): {ME} for t in range(1, 5)}
    assert seats_to_shed(q, 5, {B: 0}, {1: set()}, served) == []  # B was seen, never committed: maybe gone
    assert seats_to_shed(q, 5, {B: 0}, {2: {B}}, served) == []  # B works on another job only


def test_even_or_one_apart_moves_nothing():
    q = queue(1, 1, 2)
    served = {(1, t): {ME} for t in (1, 2)}
    assert seats_to_shed(q, 3, {B: 2}, {1: {B}}, served) == []
    assert seats_to_shed(q, 3, {B: 3}, {1: {B}}, served) == []


def test_a_task_the_idlest_peer_served_goes_to_whoever_else_could_take_it():
    q = queue(1, 1, 2, 3, 4)
    served = {(1, 4): {ME, B}, (1, 3): {ME}, (1, 2): {ME}, (1, 1): {ME}}
    shed = seats_to_shed(q, 5, {B: 0, C: 2}, {1: {B, C}}, served)
    # Seat 4: only C may take it (5 vs 2: give). Seat 3: B (4 vs 0: give). Seat 2: B (3 vs 1: give). Then 2 vs 2.
    assert shed == queue(1, 4, 3, 2)


@given(st.integers(0, 12), st.integers(0, 3), st.lists(st.integers(0, 8), min_size=1, max_size=3),
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_shedding_never_leaves_a_task_without_a_taker_nor_this_worker_less_busy_than_a_peer(
        queued, running, loads, peer_served):
    peers = [f"0xp{i}" for i in range(len(loads))]
    q = queue(1, *range(queued))
    served = {(1, t): {ME} | ({peers[0]} if peer_served[t] else set()) for t in range(queued)}
    shed = seats_to_shed(q, queued + running, dict(zip(peers, loads, strict=True)), {1: set(peers)}, served)
    assert shed == [s for s in reversed(q) if s in shed]  # from the end of the queue
    for seat in shed:
        assert set(peers) - served[(1, seat.task_id)], "a shed seat must have someone left to draw"
    # After shedding, this worker holds at least as much as the idlest peer it could have given to.
    assert queued + running - len(shed) >= min(loads) or not shed
