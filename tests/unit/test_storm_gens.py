"""bench.storm_gens: the generators' blocks, their source addresses and their lowered
CPU priority; bench.storm_watch's polls from an address of their own."""
import http.server
import os
import subprocess
import sys
import threading

import pytest

from bench.storm.generators import Generator, loopback_sources, lower_priority, split
from bench.storm.watch import WATCH_SOURCE, http_get

pytestmark = pytest.mark.timeout(20)

# A child with a second thread, which prints its pid once both threads run.
TWO_THREADS = ("import os, threading, time; threading.Thread(target=time.sleep, args=(30,), daemon=True)"
               ".start(); print(os.getpid(), flush=True); time.sleep(30)")


def test_blocks_cover_every_client_once():
    assert split(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert sum(count for _, count in split(100_000, 6)) == 100_000


def test_every_thread_of_a_generator_gets_the_nice_value_and_sched_idle():
    child = subprocess.Popen([sys.executable, "-c", TWO_THREADS], stdout=subprocess.PIPE, text=True)
    try:
        assert int(child.stdout.readline()) == child.pid
        tids = [int(t) for t in os.listdir("/proc/%d/task" % child.pid)]
        assert len(tids) == 2
        lower_priority(child.pid, nice=7, idle=True)
        assert [os.getpriority(os.PRIO_PROCESS, tid) for tid in tids] == [7, 7]
        assert [os.sched_getscheduler(tid) for tid in tids] == [os.SCHED_IDLE] * 2
    finally:
        child.kill()
        child.wait(5)


def test_without_a_request_nothing_changes():
    child = subprocess.Popen([sys.executable, "-c", TWO_THREADS], stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        lower_priority(child.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
    finally:
        child.kill()
        child.wait(5)


def test_each_generator_connects_from_loopback_addresses_of_its_own():
    first, second = loopback_sources("http://127.0.0.1:8001", 0), loopback_sources("http://127.0.0.1:8002", 1)
    assert len(first) == 4 and not set(first) & set(second) and "127.0.0.1" not in first + second
    assert all(address.startswith("127.") for address in first + second)
    assert loopback_sources("http://10.0.0.5:8001", 0) == []        # another host: the route decides
    assert loopback_sources("http://localhost:8001", 0) == []
    argv = Generator(2, "http://127.0.0.1:8003", 0, 10, "/tmp").argv
    assert argv[argv.index("--local-address") + 1] == ",".join(loopback_sources("http://127.0.0.1:8003", 2))
    assert "--local-address" not in Generator(0, "http://10.0.0.5:8001", 0, 10, "/tmp").argv


def test_a_generator_source_address_really_connects():
    """Linux routes all of 127.0.0.0/8 to lo: a socket bound to one of the addresses
    connects to a server on 127.0.0.1, and the server sees that address."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.client_address[0])
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        assert http_get(url, "/healthz", 5) == (200, '{"ok": true}')
        assert seen == [WATCH_SOURCE] and WATCH_SOURCE not in loopback_sources(url, 0)
    finally:
        server.shutdown()
        server.server_close()
