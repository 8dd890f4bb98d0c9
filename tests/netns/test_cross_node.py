"""The cross-node tests of tests/integration, unchanged, across hosts: broker on a,
broker2 on b, node1 + node2 on c, node3 on d, HAProxy on e, the clients on f, every
link over the namespaces' own addresses, CURVE on (fixtures: conftest.py)."""
import os

from harness import netns
from tests.integration.test_balancer import (  # noqa: F401  (collected here, against these hosts)
    balanced, test_balancer_health_checks_and_pages,
    test_clients_through_the_balancer_spread_over_nodes_and_chat,
    test_long_polling_session_sticks_to_its_node)
from tests.integration.test_chat import *  # noqa: F401,F403
from tests.integration.test_presence import (  # noqa: F401
    test_members_and_presence_events_span_every_node, test_members_request_is_validated,
    test_rooms_lists_active_rooms_with_cluster_wide_counts)


def test_every_process_runs_in_its_own_host(balanced, hosts):
    """Each pid is the program itself (ip execs it), inside the namespace of its host,
    serving on that host's address."""
    for proc in balanced.procs:
        host = netns.PLACES[proc.name]
        assert proc.pid in hosts.pids(host), (proc.name, host)
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            program = os.path.basename(f.read().split(b"\0")[0].decode())
        assert program.startswith(("python", "haproxy")), (proc.name, program)
    assert {balanced.address(name) for name in ("broker", "broker2", "node1", "node3",
                                                "balancer")} == {
        hosts.addr[h] for h in "abcde"}
