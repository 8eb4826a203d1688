"""A real redis-server for the tests of the shared cache tier: one per test session, on a free
loopback port, started and stopped here (fixtures imported by the modules that use it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

REDIS = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port):
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="session")
def server():
    """``(url, restart)``: one server for the session; ``restart()`` stops and starts it."""
    port = _free_port()
    state = {"proc": _start(port)}

    def stop():
        state["proc"].terminate()
        state["proc"].wait(10)

    def start():
        state["proc"] = _start(port)

    yield f"redis://127.0.0.1:{port}/0", stop, start
    stop()


@pytest.fixture
def url(server):
    import redis

    url = server[0]
    redis.Redis.from_url(url).flushdb()
    return url
