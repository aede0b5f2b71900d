"""A small online (latency-bound) embedding service that reports to a ColocationController.

``POST /embed`` with ``{"texts": [...]}`` answers ``{"vectors": [[...], ...]}``,
vectors from the same model as the built-in ``embed`` program (loaded once, on
first use or by :meth:`OnlineService.load`). ``GET /metrics`` is the
controller's Prometheus text, ``GET /colocation`` its metrics as JSON.

The compute function is injectable: ``create_app(controller, embed_fn=f)``
with ``f(texts) -> list[list[float]]`` (tests use a cheap CPU-bound stand-in).
It runs in one worker thread, one request at a time (the model is not
re-entrant, and on a CPU parallel requests only queue inside it), so the
event loop stays free and the latency recorded covers queueing + compute.

Run alone: ``python -m worker.colocation.online --slo-ms 100 --port 8000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from worker.colocation.controller import ColocationController

EmbedFn = Callable[[list[str]], list[list[float]]]
MAX_TEXTS = 256


def model_embed_fn() -> EmbedFn:
    """The real model (shardex.programs.embed's loader), L2-normalized vectors."""
    from shardex.programs.embed import load_model

    model = load_model()

    def embed(texts: list[str]) -> list[list[float]]:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False).tolist()

    return embed


def standin_embed_fn(mb_per_text: float = 8.0, dims: int = 384) -> EmbedFn:
    """A CPU-bound stand-in for the model: SHA-256 over ``mb_per_text`` MiB per text.

    hashlib releases the GIL on large buffers, so like torch it leaves the event
    loop and the control loop free while it computes (~0.5 ms per MiB here).
    """
    block = b"\x5a" * (1 << 20)
    rounds = max(1, round(mb_per_text))

    def embed(texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            h = hashlib.sha256(text.encode())
            for _ in range(rounds):
                h.update(block)
            seed = h.digest()
            raw = [b - 127.5 for b in (seed * (dims // len(seed) + 1))[:dims]]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            out.append([x / norm for x in raw])
        return out

    return embed


class OnlineService:
    def __init__(self, controller: ColocationController | None, embed_fn: EmbedFn | None = None) -> None:
        """``embed_fn``: the compute function; None: the real model, loaded on first use."""
        self.controller = controller
        self._fn: EmbedFn | None = embed_fn
        self._load_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-embed")

    def load(self) -> EmbedFn:
        with self._load_lock:
            if self._fn is None:
                self._fn = model_embed_fn()
            return self._fn

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.load()(texts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._pool.shutdown(wait=False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/embed" and method == "POST":
            await self._embed(receive, send)
        elif path == "/metrics" and method == "GET" and self.controller is not None:
            await _respond(send, 200, self.controller.render_metrics().encode(), b"text/plain; version=0.0.4")
        elif path == "/colocation" and method == "GET" and self.controller is not None:
            await _json(send, 200, self.controller.metrics())
        elif path == "/healthz":
            await _json(send, 200, {"ok": True})
        else:
            await _json(send, 404, {"error": "not found"})

    async def _embed(self, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            texts = json.loads(body)["texts"]
            if (not isinstance(texts, list) or not all(isinstance(t, str) for t in texts)
                    or len(texts) > MAX_TEXTS):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            await _json(send, 400, {"error": f'body must be {{"texts": [str, ...]}} with at most {MAX_TEXTS} texts'})
            return
        track = self.controller.track() if self.controller is not None else contextlib.nullcontext()
        with track:
            vectors = await asyncio.get_running_loop().run_in_executor(self._pool, self.embed, texts)
        await _json(send, 200, {"vectors": vectors})


async def _respond(send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _json(send, status: int, obj) -> None:
    await _respond(send, status, json.dumps(obj, separators=(",", ":")).encode(), b"application/json")


def create_app(controller: ColocationController | None = None, embed_fn: EmbedFn | None = None) -> OnlineService:
    return OnlineService(controller, embed_fn)


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--slo-ms", type=float, default=100.0)
    parser.add_argument("--standin", action="store_true", help="a CPU-bound stand-in instead of the model")
    args = parser.parse_args(argv)
    controller = ColocationController(args.slo_ms)
    app = create_app(controller, standin_embed_fn() if args.standin else None)
    app.load()
    controller.start_in_thread()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
