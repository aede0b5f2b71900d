"""A small client for the gateway's /v1 API (scripts, tests, the demo):
Sign-In with Ethereum, submit a job, sign and relay its transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account import Account

from shardex import siwe
from shardex.errors import ShardexError


class GatewayError(ShardexError):
    """The gateway answered with a problem (RFC 9457); ``problem`` holds its body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        error = problem.get("error")
        what = f"{error['name']}({', '.join(f'{k}={v}' for k, v in error['args'].items())})" if error else \
            problem.get("detail", "")
        super().__init__(f"{status} {problem.get('code', 'error')}: {what}")


def _check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text[:500]}
        raise GatewayError(r.status_code, body)
    return r


class GatewayClient:
    def __init__(self, base_url: str, private_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.account = Account.from_key(private_key) if private_key else None
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sign_in(self) -> str:
        """SIWE: fetch a nonce, sign the EIP-4361 message with our key, keep the bearer token."""
        if self.account is None:
            raise ValueError("signing in needs a private key")
        info = _check(self.http.get("/v1/auth/nonce")).json()
        now = datetime.now(UTC)
        msg = siwe.SiweMessage(domain=urlsplit(self.base_url).netloc, address=self.account.address,
                               uri=self.base_url, chain_id=info["chain_id"], nonce=info["nonce"], issued_at=now,
                               expiration_time=now + timedelta(hours=1))
        r = _check(self.http.post("/v1/auth/siwe", json={"message": msg.text(),
                                                          "signature": msg.sign(self.account.key)}))
        self.token = r.json()["token"]
        return self.token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params: Any) -> Any:
        return _check(self.http.get(path, params={k: v for k, v in params.items() if v is not None})).json()

    def submit(self, input_path: Path | None = None, *, signing: str = "wallet", **fields: Any) -> dict[str, Any]:
        """POST /v1/jobs. In wallet mode, signs and relays the returned transactions and
        returns the final POST /v1/tx answer (with ``job_id``)."""
        files = {}
        handle = None
        if input_path is not None:
            handle = Path(input_path).open("rb")  # noqa: SIM115 - closed below
            files["input"] = ("input", handle, "application/octet-stream")
        try:
            data = {k: str(v) for k, v in fields.items() if v is not None} | {"signing": signing}
            r = _check(self.http.post("/v1/jobs", data=data, files=files or None, headers=self.auth))
        finally:
            if handle is not None:
                handle.close()
        body = r.json()
        if signing != "wallet":
            return body
        answer: dict[str, Any] = {}
        for item in body["transactions"]:
            answer = self.sign_and_send(item["tx"])
        return {**body, **answer}

    def sign_and_send(self, tx: dict[str, Any]) -> dict[str, Any]:
        if self.account is None:
            raise ValueError("signing needs a private key")
        fields = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"]), "chainId": tx["chainId"],
                  "nonce": tx["nonce"], "gas": tx["gas"], "type": tx["type"],
                  "maxFeePerGas": int(tx["maxFeePerGas"]), "maxPriorityFeePerGas": int(tx["maxPriorityFeePerGas"])}
        signed = self.account.sign_transaction(fields)
        return _check(self.http.post("/v1/tx", json={"raw": "0x" + bytes(signed.raw_transaction).hex()})).json()
