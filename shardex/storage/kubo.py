"""A content store backed by any node that speaks the Kubo RPC API (/api/v0).

Client choice: plain ``httpx`` (async). ``ipfshttpclient`` 0.7.0 is sync-only,
unmaintained since 2021 and its ``connect()`` rejects every current Kubo
version (it accepts only 0.4.23–0.8.0), so it does not serve.

Every call has a timeout, passed both to httpx and to the node (``timeout=``
query argument): without it a ``cat`` of a CID nobody has would hang. Reads
do not trust the node: ``cat`` walks the DAG with ``block/get`` and verifies
every block against its CID.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from shardex.storage import reader
from shardex.storage.cid import CID
from shardex.storage.errors import BlockCorrupted, BlockNotFound, ProviderError, StoreError

ADD_PARAMS = {"cid-version": "1", "raw-leaves": "true", "chunker": "size-262144", "hash": "sha2-256",
              "cid-base": "base32"}


class KuboStore:
    def __init__(self, api_url: str, *, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.name = self.api_url
        self.timeout = timeout
        self._client = httpx.AsyncClient(base_url=f"{self.api_url}/api/v0", timeout=timeout + 5)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> KuboStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, endpoint: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        params = {"timeout": f"{self.timeout:g}s", **(params or {})}
        try:
            r = await self._client.post(endpoint, params=params, **kw)
        except httpx.TimeoutException:
            raise ProviderError(f"{self.name}: {endpoint} timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {endpoint}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            message = _error_message(r)
            if "timeout" in message.lower() or "deadline" in message.lower() or "aborted" in message.lower():
                raise ProviderError(f"{self.name}: {endpoint} timed out after {self.timeout:g}s ({message})")
            raise ProviderError(f"{self.name}: {endpoint} failed: HTTP {r.status_code}: {message}")
        return r

    async def version(self) -> str:
        return (await self._post("version")).json()["Version"]

    # ------------------------------------------------------------ add

    async def add_bytes(self, data: bytes, *, pin: bool = True) -> CID:
        r = await self._post("add", {**ADD_PARAMS, "pin": str(pin).lower()},
                             files={"file": ("data", data, "application/octet-stream")})
        return CID.parse(_ndjson(r)[-1]["Hash"])

    async def add_path(self, path: Path, *, pin: bool = True) -> CID:
        path = Path(path)
        if path.is_file():
            with path.open("rb") as f:
                r = await self._post("add", {**ADD_PARAMS, "pin": str(pin).lower()},
                                     files={"file": (path.name, f, "application/octet-stream")})
            return CID.parse(_ndjson(r)[-1]["Hash"])
        if not path.is_dir():
            raise StoreError(f"no such file or directory: {path}")
        files = []
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.is_symlink():
                rel = p.relative_to(path.parent).as_posix()
                files.append(("file", (rel, p.read_bytes(), "application/octet-stream")))
        r = await self._post("add", {**ADD_PARAMS, "pin": str(pin).lower(), "wrap-with-directory": "false"},
                             files=files)
        by_name = {e["Name"]: e["Hash"] for e in _ndjson(r)}
        return CID.parse(by_name[path.name])

    # ------------------------------------------------------------ blocks

    async def get_block(self, cid: CID | str) -> bytes:
        cid = CID.parse(cid)
        try:
            r = await self._post("block/get", {"arg": str(cid)})
        except ProviderError as exc:
            if "timed out" in str(exc):
                raise BlockNotFound(cid, f"{self.name} (within {self.timeout:g}s)") from None
            raise
        if not cid.verify(r.content):
            raise BlockCorrupted(cid, f"as served by {self.name}")
        return r.content

    async def put_block(self, cid: CID | str, data: bytes) -> None:
        cid = CID.parse(cid)
        if not cid.verify(data):
            raise BlockCorrupted(cid, "refusing to put bytes that do not match")
        codec = cid.codec_name
        # Kubo names the codec `cid-codec`; js-ipfs (and Kubo before 0.13) `format`.
        r = await self._post("block/put", {"cid-codec": codec, "format": codec, "mhtype": "sha2-256",
                                           "version": "1", "cid-base": "base32"},
                             files={"file": ("block", data, "application/octet-stream")})
        got = CID.parse(r.json()["Key"])
        if got.digest != cid.digest:
            raise ProviderError(f"{self.name} stored {got} for {cid}")

    async def has_block(self, cid: CID | str) -> bool:
        try:
            await self._post("block/stat", {"arg": str(CID.parse(cid)), "offline": "true", "cid-base": "base32"})
        except ProviderError:
            return False
        return True

    # ------------------------------------------------------------ read

    async def cat(self, cid: CID | str) -> AsyncIterator[bytes]:
        async for part in reader.aiter_file(self.get_block, CID.parse(cid)):
            yield part

    async def cat_bytes(self, cid: CID | str) -> bytes:
        return b"".join([part async for part in self.cat(cid)])

    # ------------------------------------------------------------ pins

    async def pin(self, cid: CID | str) -> None:
        await self._post("pin/add", {"arg": str(CID.parse(cid)), "recursive": "true"})

    async def unpin(self, cid: CID | str) -> None:
        await self._post("pin/rm", {"arg": str(CID.parse(cid))})

    async def pins(self) -> list[CID]:
        r = await self._post("pin/ls", {"type": "recursive", "cid-base": "base32"})
        lines = _ndjson(r)
        keys: list[str] = []
        for line in lines:
            if "Keys" in line and isinstance(line["Keys"], dict):
                keys.extend(line["Keys"])
            elif "Cid" in line:
                keys.append(line["Cid"])
        return [CID.parse(k) for k in keys]


def _ndjson(r: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def _error_message(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("Message") or body)
    except ValueError:
        return r.text[:200]
