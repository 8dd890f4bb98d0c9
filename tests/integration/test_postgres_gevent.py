"""psycopg 3 under gevent, as a node runs it (monkey.patch_all first): psycopg sees the
patched select module and waits with the cooperative poll() instead of its C wait, so a
slow query blocks only its own greenlet.  Against a real server (tests/integration/postgres.py)."""
import subprocess
import sys

import pytest

from .postgres import PostgresServer

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import sys, time, gevent, psycopg, psycopg.waiting
ticks = []
def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)
ticker = gevent.spawn(tick)
with psycopg.connect(sys.argv[1]) as conn:
    gevent.sleep(0.05)
    before = len(ticks)
    conn.execute("SELECT pg_sleep(0.5)")
    during = len(ticks) - before
ticker.kill()
print(psycopg.waiting.wait.__name__, during)
"""


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


def test_a_slow_query_under_gevent_lets_other_greenlets_run(postgres):
    done = subprocess.run([sys.executable, "-c", SCRIPT, postgres.url], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait, ticks = done.stdout.split()
    assert wait != "wait_c"          # psycopg's C wait would hold the whole hub
    assert int(ticks) >= 20, "only %s ticks of 10 ms during a 500 ms query" % ticks
