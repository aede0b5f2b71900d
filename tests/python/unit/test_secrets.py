"""The agent's key leaves its environment, /proc/self/environ included."""

from __future__ import annotations

import os
import subprocess
import sys

SECRET = "0x" + "ab" * 32


def test_scrubbed_variables_are_gone_from_proc_environ_and_os_environ() -> None:
    code = (
        "import os\n"
        "from shardex.secrets import scrub_environ\n"
        "assert open('/proc/self/environ', 'rb').read().count(os.environ['SHARDEX_PRIVATE_KEY'].encode()) == 1\n"
        "print(sorted(scrub_environ()))\n"
        "print(open('/proc/self/environ', 'rb').read().decode(errors='replace'))\n"
        "print('SHARDEX_PRIVATE_KEY' in os.environ, os.environ['OTHER'])\n"
    )
    env = {**os.environ, "SHARDEX_PRIVATE_KEY": SECRET, "SHARDEX_KEYSTORE_PASSWORD": "hunter2", "OTHER": "kept"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    names, environ, last = out.split("\n", 2)[0], out.split("\n", 2)[1], out.strip().splitlines()[-1]
    assert names == "['SHARDEX_KEYSTORE_PASSWORD', 'SHARDEX_PRIVATE_KEY']"
    assert SECRET not in out and SECRET[2:] not in out and "hunter2" not in out
    assert "OTHER=kept" in environ
    assert last == "False kept"
