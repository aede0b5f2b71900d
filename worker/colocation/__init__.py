"""Online work beside offline batch tasks on one worker (see controller.py)."""

from worker.colocation.controller import ColocationController, Thresholds

__all__ = ["ColocationController", "Thresholds"]
