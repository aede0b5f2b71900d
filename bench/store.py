"""Embedded content store throughput and memory.

    python bench/store.py [--mb 256] [--rss-mb 1024]

Throughput: add and verified cat of one file of ``--mb`` random MB, as a ratio
of plain ``hashlib.sha256`` over the same bytes read the same way (256 KiB
reads from the page cache): hashing is the physical limit of a hashing store.
Aim: add >= 0.7, cat >= 0.8. Each figure is the best of three runs.

Measured twice: with the store in memory (tmpfs, /dev/shm), which isolates
the store's own cost, and with the store on this machine's disk, where an add
also pays for writing every byte; for the disk the baseline printed beside it
is a plain copy of the same bytes into one file on that disk.

Memory: peak RSS of a fresh process that adds, then of one that cats, a
``--rss-mb`` file (aim < 100 MB each).

Ends with one JSON line holding all figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shardex.storage import EmbeddedStore  # noqa: E402
from shardex.storage.importer import CHUNK_SIZE  # noqa: E402

MB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for _ in range(size // MB):
            f.write(os.urandom(MB))


def sha256_file(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
    return time.perf_counter() - start


def copy_file(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    with src.open("rb") as f, dst.open("wb") as out:
        while chunk := f.read(CHUNK_SIZE):
            out.write(chunk)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def measure_store(src: Path, base: Path, size_mb: int) -> tuple[float, float]:
    """(best add seconds, best verified-cat seconds) for a store under ``base``."""
    def add() -> float:
        store_dir = base / f"store-{time.monotonic_ns()}"
        store = EmbeddedStore(store_dir)
        start = time.perf_counter()
        store.add_path_sync(src)
        elapsed = time.perf_counter() - start
        shutil.rmtree(store_dir)
        return elapsed

    add_s = best_of(3, add)
    store = EmbeddedStore(base / "cat-store")
    root = store.add_path_sync(src)

    def cat() -> float:
        start = time.perf_counter()
        n = sum(len(part) for part in store.cat_sync(root))
        assert n == size_mb * MB
        return time.perf_counter() - start

    cat_s = best_of(3, cat)
    shutil.rmtree(base / "cat-store")
    return add_s, cat_s


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def child_rss(mode: str, store_dir: Path, target: str) -> int:
    """Peak RSS (bytes) of a fresh interpreter doing one add or cat."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from shardex.storage import EmbeddedStore
store = EmbeddedStore({str(store_dir)!r})
if {mode!r} == "add":
    print(store.add_path_sync({target!r}))
else:
    n = 0
    for part in store.cat_sync({target!r}):
        n += len(part)
    print(n)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[-1]), out[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rss-mb", type=int, default=1024)
    args = parser.parse_args()
    shm = Path("/dev/shm")
    mem_base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    work = Path(tempfile.mkdtemp(prefix="shardex-bench-"))
    mem = Path(tempfile.mkdtemp(prefix="shardex-bench-", dir=mem_base)) if mem_base else None
    try:
        src = (mem or work) / "input.bin"  # reading the input never touches the disk
        make_file(src, args.mb * MB)
        size_mb = args.mb
        sha_s = best_of(3, lambda: sha256_file(src))
        figures = {"file_mb": size_mb, "sha256_mb_per_s": round(size_mb / sha_s, 1)}
        print(f"{size_mb} MB file: sha256 {figures['sha256_mb_per_s']} MB/s")
        for where, base in (("memory", mem), ("disk", work)):
            if base is None:
                continue
            add_s, cat_s = measure_store(src, base, size_mb)
            figures[f"{where}_add_mb_per_s"] = round(size_mb / add_s, 1)
            figures[f"{where}_cat_mb_per_s"] = round(size_mb / cat_s, 1)
            figures[f"{where}_add_vs_sha256"] = round(sha_s / add_s, 3)
            figures[f"{where}_cat_vs_sha256"] = round(sha_s / cat_s, 3)
            line = (f"  store in {where:<6}: add {size_mb / add_s:7.1f} MB/s = {sha_s / add_s:.2f} x sha256 "
                    f"(aim >= 0.70); cat {size_mb / cat_s:7.1f} MB/s = {sha_s / cat_s:.2f} x sha256 (aim >= 0.80)")
            if where == "disk":
                copy_s = best_of(3, lambda: copy_file(src, work / "copy.bin"))
                figures["disk_plain_copy_mb_per_s"] = round(size_mb / copy_s, 1)
                figures["disk_add_vs_plain_copy"] = round(copy_s / add_s, 3)
                line += f"\n  (a plain copy of the same bytes to this disk: {size_mb / copy_s:.1f} MB/s; " \
                        f"add = {copy_s / add_s:.2f} x that)"
            print(line)
        src.unlink()

        big = work / "big.bin"
        make_file(big, args.rss_mb * MB)
        rss_dir = work / "rss-store"
        add_rss, cid = child_rss("add", rss_dir, str(big))
        big.unlink()
        cat_rss, n = child_rss("cat", rss_dir, cid)
        assert int(n) == args.rss_mb * MB
        figures.update({"rss_file_mb": args.rss_mb, "add_peak_rss_mb": round(add_rss / MB, 1),
                        "cat_peak_rss_mb": round(cat_rss / MB, 1)})
        print(f"{args.rss_mb} MB file: peak RSS add {figures['add_peak_rss_mb']} MB, "
              f"cat {figures['cat_peak_rss_mb']} MB (aim < 100 MB)")
        print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if mem is not None:
            shutil.rmtree(mem, ignore_errors=True)


if __name__ == "__main__":
    main()
