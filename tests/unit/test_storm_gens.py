"""bench.storm_gens: the generators' blocks and their lowered CPU priority."""
import os
import subprocess
import sys

import pytest

from bench.storm_gens import lower_priority, split

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
