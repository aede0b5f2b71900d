"""The gateway's routes, one router per resource; ``backend.app`` includes them all."""
