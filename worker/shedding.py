"""Which queued seats a busy worker gives back so that an idle one gets them.

The lottery draws seats without knowing how busy anyone is: with two equal
workers and eight tasks, one holds six seats about a third of the time, and
the job waits while the other sits idle. A seat may be declined early in its
lease (it is redrawn, never to the decliner), so a worker that sees itself
clearly busier than a peer who is working on the same jobs gives back the
seats at the end of its queue, about half the difference, as a scheduler
would move queued work to an idle executor.

Only for jobs of margin 1 (the agent checks): with a larger margin, honest
workers giving seats back while an adversary keeps its own would tilt the
redraws towards the adversary and weaken the margin's error bound.

Only seats some less busy peer could take are given back: the redraw skips
every worker that ever sat on the task, so a task all known peers have served
stays (giving it back could leave it with nobody to draw). And only peers that
committed on the job lately count (the agent's ACTIVE_PEER_S): a worker that
stopped, or never came, must not be the reason work is given back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedSeat:
    job_id: int
    task_id: int
    round: int


def seats_to_shed(queue: list[QueuedSeat], my_outstanding: int, peers_outstanding: Mapping[str, int],
                  active_peers: Mapping[int, set[str]], served: Mapping[tuple[int, int], set[str]]
                  ) -> list[QueuedSeat]:
    """``queue``: this worker's seats waiting to start, in start order; ``my_outstanding``: all its
    seats not yet computed (running ones too); ``peers_outstanding``: the same count for each peer
    seen on these jobs; ``active_peers``: per job, the peers that committed on it; ``served``: per
    (job, task), every worker ever seated on it. Returns the seats to give back, from the end of
    the queue."""
    loads = {p: peers_outstanding.get(p, 0) for peers in active_peers.values() for p in peers}
    shed: list[QueuedSeat] = []
    mine = my_outstanding
    for seat in reversed(queue):
        served_it = served.get((seat.job_id, seat.task_id), set())
        takers = [p for p in active_peers.get(seat.job_id, ()) if p not in served_it]
        if not takers:
            continue
        idlest = min(takers, key=lambda p: (loads[p], p))
        if mine - loads[idlest] < 2:
            continue  # even, or one apart: moving it would only move the wait
        shed.append(seat)
        mine -= 1
        loads[idlest] += 1  # where it most likely lands: the next seat goes to the next idlest
    return shed
