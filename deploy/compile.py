"""Compile contracts/ with solc 0.8.28 and write the ABI + bytecode artifacts.

The artifacts in ``shardex/abi/`` are committed: the SDK, workers and gateway
load them without a compiler. ``python -m deploy.compile --check`` recompiles
and fails if the committed artifacts differ, so they can never drift from the
sources.

Native solc cannot be downloaded on these machines, so py-solc-x is pointed at
``tools/solc``, a stand-in binary that answers like native solc and compiles
through solc-js (the same compiler build forge and Hardhat use here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shardex.errors import ShardexError

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = ROOT / "shardex" / "abi"
SOLC_SHIM = ROOT / "tools" / "solc"
SOLC_VERSION = "0.8.28"
#: Contracts whose artifacts are written: the deployable ones, and the ERC-20
#: interface clients use to approve and read a job's token.
CONTRACTS = ("JobMarket", "WorkerPool", "IERC20")
#: Same settings as foundry.toml and hardhat.config.js.
SETTINGS = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    # No metadata hash: bytecode then depends only on sources and settings,
    # not on comments' byte offsets, so the freshness check is exact.
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "devdoc", "userdoc"]}},
}


class CompileError(ShardexError):
    """solc reported errors; the message lists them."""


def standard_input() -> dict:
    # Source order changes solc's output (AST ids order internal functions);
    # case-insensitive path order is what forge and Hardhat use, so all three
    # toolchains produce byte-identical bytecode.
    paths = sorted(CONTRACTS_DIR.rglob("*.sol"), key=lambda p: str(p.relative_to(ROOT)).lower())
    sources = {str(path.relative_to(ROOT)): {"content": path.read_text(encoding="utf-8")} for path in paths}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def compile_contracts() -> dict[str, dict]:
    """Compile and return ``{name: artifact}`` for every deployable contract."""
    import solcx  # imported here so `--help` works without the venv extras

    output = solcx.compile_standard(standard_input(), solc_binary=str(SOLC_SHIM), allow_empty=True)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    artifacts = {}
    for source, contracts in output["contracts"].items():
        for name, data in contracts.items():
            if name not in CONTRACTS:
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceName": source,
                "compiler": SOLC_VERSION,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "devdoc": data.get("devdoc", {}),
                "userdoc": data.get("userdoc", {}),
            }
    missing = set(CONTRACTS) - set(artifacts)
    if missing:
        raise CompileError(f"contracts not found in output: {sorted(missing)}")
    return artifacts


def render(artifact: dict) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def stale_artifacts(artifacts: dict[str, dict]) -> list[str]:
    """Names whose committed artifact differs from ``artifacts``."""
    stale = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != render(artifact):
            stale.append(name)
    return stale


def write_artifacts(artifacts: dict[str, dict]) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        (ARTIFACTS_DIR / f"{name}.json").write_text(render(artifact), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed artifacts differ from a fresh compile")
    args = parser.parse_args(argv)
    artifacts = compile_contracts()
    if args.check:
        stale = stale_artifacts(artifacts)
        if stale:
            print(f"stale artifacts: {', '.join(stale)}; run `python -m deploy.compile`", file=sys.stderr)
            return 1
        print("artifacts match a fresh compile")
        return 0
    write_artifacts(artifacts)
    for name in artifacts:
        print(f"wrote {ARTIFACTS_DIR.relative_to(ROOT) / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
