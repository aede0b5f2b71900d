"""One set of job-parameter bounds: the CLI's checks and the API's form fields agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.app import GatewayConfig, create_app
from shardex.chain import Deployment
from shardex.requester import BOUNDS, SubmitError, SubmitRequest, _validate

#: API form field -> SubmitRequest field, where the names differ.
API_NAMES = {"lease_s": "lease_duration", "reveal_window_s": "reveal_window", "job_timeout_s": "job_timeout",
             "task_timeout_s": "timeout_s"}


def test_the_apis_form_fields_declare_exactly_these_bounds(tmp_path: Path) -> None:
    app = create_app(GatewayConfig(rpc_url="http://127.0.0.1:9", deployment=Deployment(31337, "0x" + "1" * 40,
                                                                                         "0x" + "2" * 40, 0),
                                   store_dir=tmp_path / "store", db_url=f"sqlite:///{tmp_path / 'gw.db'}"))
    schemas = app.openapi()["components"]["schemas"]
    form = next(v for k, v in schemas.items() if k.startswith("Body_submit_job"))["properties"]
    declared = {API_NAMES.get(name, name): (p.get("minimum"), p.get("maximum")) for name, p in form.items()
                if "minimum" in p or "maximum" in p}
    assert declared == {name: (low, high) for name, (low, high) in BOUNDS.items()}
    # Optional, so not in BOUNDS (None: the SDK's default budget); the market takes a uint32.
    seats = form["extra_seats"]["anyOf"][0]
    assert (seats["minimum"], seats["maximum"]) == (0, 2**32 - 1)


def _request(**overrides) -> SubmitRequest:
    fields = dict(program="wordcount", program_file=None, input="x", map_shards=1, reduce_shards=1, reward=1,
                  collateral=1) | overrides
    return SubmitRequest(**fields)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_the_cli_refuses_each_value_just_outside_its_bounds(name: str) -> None:
    low, high = BOUNDS[name]
    needs_gpu = {"gpus": 1} if name in ("gpu_memory_mb", "gpu_share") else {}
    _validate(_request(**needs_gpu, **{name: low}))  # the bounds themselves are fine
    # The largest adversary share can only be met by accepting a large epsilon (a margin of at most 16).
    reachable = {"epsilon": 0.5} if name == "adversary" else {}
    _validate(_request(**needs_gpu, **reachable, **{name: high}))
    step = 0.001 if isinstance(low, float) else 1
    for outside in (low - step, high + step):
        with pytest.raises(SubmitError, match="must be"):
            _validate(_request(**needs_gpu, **{name: outside}))
