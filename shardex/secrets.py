"""Keep secrets out of a process's environment once they have been read.

``os.environ.pop`` is not enough: ``/proc/<pid>/environ`` shows the block the
process was started with, and that block stays in memory whatever the C
library's ``environ`` array later points to. ``scrub_environ`` overwrites the
values in place, then unsets them.
"""

from __future__ import annotations

import ctypes
import os

SECRET_VARIABLES = ("SHARDEX_PRIVATE_KEY", "SHARDEX_KEYSTORE_PASSWORD")


def scrub_environ(names: tuple[str, ...] = SECRET_VARIABLES) -> list[str]:
    """Zero and unset these variables in this process; returns the names that were set."""
    found = [n for n in names if n in os.environ]
    if not found:
        return []
    prefixes = tuple(f"{n}=".encode() for n in found)
    try:
        libc = ctypes.CDLL(None)
        entries = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
        i = 0
        while (address := entries[i]) is not None:
            entry = ctypes.string_at(address)
            for prefix in prefixes:
                if entry.startswith(prefix):
                    ctypes.memset(address + len(prefix), ord("0"), len(entry) - len(prefix))
            i += 1
    except (OSError, ValueError, AttributeError):
        pass  # no C library to reach (not glibc/musl): unsetting below is all there is
    for name in found:
        os.environ.pop(name, None)  # also unsetenv()
    return found
