"""Refuse request bodies over the limit before they are parsed or stored.

A declared Content-Length over the limit is answered 413 without reading the
body; a chunked body is counted as it streams and cut off at the limit.
"""

from __future__ import annotations

import json

from backend.problems import PROBLEM_TYPE, problem_body


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await _problem(send, scope, 400, "bad-request", "Content-Length is not a number")
            if int(declared) > self.limit:
                return await _problem(send, scope, 413, "payload-too-large",
                                      f"request body of {int(declared)} bytes is over the {self.limit}-byte limit")
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except BodyTooLarge:
            if not started:
                await _problem(send, scope, 413, "payload-too-large",
                               f"request body is over the {self.limit}-byte limit")


async def _problem(send, scope, status: int, code: str, detail: str) -> None:
    # Raw ASGI: this answers before FastAPI has parsed anything, with the same body its handlers give.
    body = json.dumps(problem_body(status, code, detail, scope.get("path"))).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
