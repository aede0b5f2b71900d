# Everything installs from this repository's own files: npm packages from
# package-lock.json (Anvil, forge, cast, solc-js, Hardhat 2) and a Python venv
# from pyproject.toml. Nothing is downloaded at run time.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
NODE_BIN := $(CURDIR)/node_modules/.bin
export PATH := $(NODE_BIN):$(PATH)
export HARDHAT_DISABLE_TELEMETRY_PROMPT := true

.PHONY: system-deps install demo test test-contracts gas-snapshots test-python check-artifacts hardhat-compile artifacts bench clean

install: node_modules/.installed $(VENV)/.installed system-deps

## Debian packages: bubblewrap (the task sandbox: workers refuse user programs without it),
## chromium (dashboard test), wrk (bench/gateway.py), postgresql (the index on PostgreSQL: tests, bench).
## docker-compose only validates docker-compose.yml (its test skips without it): a machine whose
## package sources lack it still installs.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := bubblewrap chromium wrk postgresql
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
system-deps:
	@command -v bwrap >/dev/null && command -v chromium >/dev/null && command -v wrk >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  $(APT) $(APT_PACKAGES) >/dev/null || { $(SUDO) apt-get update -qq && $(APT) $(APT_PACKAGES) >/dev/null; }
	@command -v docker-compose >/dev/null || $(APT) docker-compose >/dev/null 2>&1 || \
	  echo "docker-compose not installed: tests/python/unit/test_operability.py will skip its check" >&2

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench,embed,postgres]'
	touch $@

## The product: a devnet, the contracts, one job through its whole lifecycle.
demo: install
	$(VENV)/bin/shardex demo

## All tests: forge (unit, fuzz, invariant), artifact freshness, Hardhat compile, pytest.
test: install test-contracts check-artifacts hardhat-compile test-python

# Gas of every entry point is checked against snapshots/ (each call as its own
# transaction: --isolate); `make gas-snapshots` records a change on purpose.
test-contracts:
	forge test --no-match-contract JobMarketGasTest
	FORGE_SNAPSHOT_CHECK=true forge test --isolate --match-contract JobMarketGasTest

gas-snapshots:
	forge test --isolate --match-contract JobMarketGasTest

check-artifacts:
	$(PY) -m deploy.compile --check

hardhat-compile:
	hardhat compile --quiet

test-python:
	$(PY) -m pytest

## Recompile contracts/ into the committed shardex/abi/ artifacts.
artifacts: install
	$(PY) -m deploy.compile

bench: install
	$(PY) bench/gas.py

clean:
	rm -rf build .pytest_cache .hypothesis
