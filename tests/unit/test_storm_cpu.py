"""bench.storm_cpu: per-phase CPU of a storm's processes, grouped, per client."""
import os
import time

import pytest

from bench.procstat import CLK_TCK
from bench.storm.cpu import CpuLedger, lines

pytestmark = pytest.mark.timeout(10)
# CPU the test burns between two marks: many clock ticks, little time.
BURN_CPU_S = 0.2


def test_phases_group_processes_and_leave_the_rest_to_other():
    ledger = CpuLedger()
    ledger.marks = [("start", 0.0, 0, {"node1": 1.0, "node2": 2.0, "gen0": 0.0, "broker": 5.0}, 0),
                    ("connect", 10.0, 12 * CLK_TCK, {"node1": 4.0, "node2": 5.0, "gen0": 3.0, "broker": 6.0},
                     CLK_TCK // 2),
                    ("reconnect", 30.0, 20 * CLK_TCK, {"node1": 5.0, "gen0": 4.0, "broker": 6.5}, CLK_TCK // 2)]
    phases = ledger.phases({"connect": 1000, "reconnect": 500})
    connect = phases["connect"]
    assert connect["wall_s"] == 10.0 and connect["host_busy_s"] == 12.0
    assert connect["groups"] == {"node": 6.0, "gen": 3.0, "broker": 1.0, "steal": 0.5, "other": 1.5}
    assert connect["ms_per_client"]["node"] == 6.0 and connect["ms_per_client"]["all"] == 12.0
    # node2 has no reading at the later mark (it stopped): it is left out, not counted negative
    assert phases["reconnect"]["cpu_s"] == {"node1": 1.0, "gen0": 1.0, "broker": 0.5}
    assert phases["reconnect"]["groups"]["other"] == 8.0 - 2.5 and phases["reconnect"]["groups"]["steal"] == 0
    text = "\n".join(lines(phases))
    assert "connect" in text and "node 6.0 s (6.00 ms/client)" in text


def test_a_live_process_is_read_and_a_gone_one_skipped():
    ledger = CpuLedger({"self": os.getpid()})
    ledger.add("gone", 2 ** 22 + 12345)   # above pid_max's default: no such process
    ledger.add("none", None)              # a service not found is not added
    assert set(ledger.pids) == {"self", "gone"}
    ledger.mark("a")
    burnt = time.process_time() + BURN_CPU_S
    deadline = time.monotonic() + 5
    while time.process_time() < burnt and time.monotonic() < deadline:
        sum(range(10000))
    ledger.mark("b")
    phase = ledger.phases()["b"]
    assert set(phase["cpu_s"]) == {"self"}
    # the kernel counts in clock ticks: the burn, give or take a tick or two
    assert BURN_CPU_S - 2 / CLK_TCK <= phase["cpu_s"]["self"] <= BURN_CPU_S + 0.1, phase
